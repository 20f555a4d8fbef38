"""``history_days`` limits what models train on, never what counts as a user's past: an item done
before the window is still excluded from the user's candidates and still counts as known."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.fusion.candidates import score_pool
from fusion_tasks.modalities import behavior
from fusion_tasks.modalities.base import Vocabulary
from fusion_tasks.models.popularity import PopularityRecommender
from fusion_tasks.training_data import TrainingData

ORIGIN = dt.date(2024, 6, 30)
VOCAB = Vocabulary(users=np.array(["u0", "u1", "u2"]), items=np.array(["i0", "i1", "i2", "i3", "i4", "i5"]))


def staged() -> pd.DataFrame:
    rows = [
        ("u0", "i0", "2023-01-05"),  # u0's old item, outside a 90-day window
        ("u0", "i4", "2023-01-06"),  # an item nobody did within the window
        ("u0", "i1", "2024-06-01"),
        ("u1", "i0", "2024-06-10"), ("u1", "i1", "2024-06-11"),
        ("u2", "i0", "2024-06-12"), ("u2", "i2", "2024-06-12"),
        ("u1", "i5", "2024-06-13"), ("u2", "i5", "2024-06-14"),
        ("u2", "i3", "2024-07-02"),  # after the origin
    ]
    return pd.DataFrame({"user_id": [r[0] for r in rows], "item_id": [r[1] for r in rows],
                         "event_type": "rating", "value": 4.0,
                         "timestamp": pd.to_datetime([f"{r[2]}T12:00:00Z" for r in rows])})


def load(history_days: int) -> TrainingData:
    config = RunConfig(as_of_date=ORIGIN, history_days=history_days, holdout_days=1, validation_days=1)
    features = {"behavior": behavior.build_features(staged(), VOCAB, ORIGIN, config)}
    return TrainingData.from_features("final", ORIGIN, VOCAB, features)


def test_the_window_limits_training_events_but_not_the_users_past() -> None:
    windowed, full = load(90), load(0)
    assert sorted(map(tuple, windowed.events[["user_idx", "item_idx"]].to_numpy().tolist())) == [
        (0, 1), (1, 0), (1, 1), (1, 5), (2, 0), (2, 2), (2, 5)]
    assert len(full.events) == 9
    assert (windowed.seen != full.seen).nnz == 0
    assert windowed.seen[0, 0] and not windowed.interactions[0, 0]
    assert not windowed.seen[2, 3], "an event after the origin is not part of the past"
    # i4 was done only before the window and is still a known item; i3 appears only after the origin
    assert windowed.item_known.tolist() == [True, True, True, False, True, True]


def test_an_item_done_before_the_window_is_never_a_candidate() -> None:
    data = load(90)
    model = PopularityRecommender().fit(data)
    pool = score_pool(data, {"popularity": model}, np.array([0]), per_model=4)
    # i0 is the most popular item, but u0 did it (and i4) in 2023: i5 and i2 are left (i3 is not known by the
    # origin), in the order of their popularity
    assert pool.sort_values("rank_popularity")["item_idx"].tolist() == [5, 2]
