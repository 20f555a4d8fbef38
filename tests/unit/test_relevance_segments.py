"""First-time pairs of a window, cold users and the head of the catalogue, on hand-made data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.evaluation.relevance import first_time_pairs
from fusion_tasks.evaluation.report import COLD_USER_MAX_HISTORY, cold_users, head_items
from fusion_tasks.modalities.base import Vocabulary

VOCAB = Vocabulary(users=np.array(["u1", "u2"]), items=np.array(["a", "b", "c"]))


def events(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return frame.assign(timestamp=pd.to_datetime(frame["timestamp"], utc=True))


def test_first_time_pairs_keep_new_pairs_of_known_users_within_the_window() -> None:
    seen = sparse.csr_matrix(np.array([[1, 0, 0], [0, 0, 0]], dtype="float32"))  # u1 did a before
    frame = events([
        ("u1", "a", "2020-01-02T10:00"),  # done before: not new
        ("u1", "b", "2020-01-02T10:00"),
        ("u1", "b", "2020-01-03T10:00"),  # the same pair again: one row
        ("u2", "z", "2020-01-04T23:59"),  # an item outside the vocabulary, on the window's last day
        ("u3", "a", "2020-01-02T10:00"),  # a user outside the vocabulary
        ("u2", "c", "2020-01-01T23:59"),  # on the start day: before the window
        ("u2", "a", "2020-01-05T00:00"),  # the day after the end
    ])
    out = first_time_pairs(frame, VOCAB, seen, dt.date(2020, 1, 1), dt.date(2020, 1, 4))
    assert out.to_dict(orient="records") == [
        {"user_id": "u1", "item_id": "b", "user_idx": 0, "item_idx": 1},
        {"user_id": "u2", "item_id": "z", "user_idx": 1, "item_idx": -1},
    ]


def test_first_time_pairs_of_an_empty_window() -> None:
    out = first_time_pairs(events([("u1", "a", "2019-06-01T00:00")]), VOCAB, sparse.csr_matrix((2, 3)),
                           dt.date(2020, 1, 1), dt.date(2020, 1, 4))
    assert list(out.columns) == ["user_id", "item_id", "user_idx", "item_idx"] and out.empty


def test_cold_users_have_at_most_the_threshold_of_past_items() -> None:
    n = COLD_USER_MAX_HISTORY
    seen = sparse.csr_matrix(np.array([[1] * n + [0], [1] * (n + 1), [0] * (n + 1)], dtype="float32"))
    assert cold_users(seen).tolist() == [True, False, True]


def test_the_head_is_the_most_done_share_of_the_known_items() -> None:
    # 10 items, 9 known (item 9 is not, though most done); popularity by item 0..9
    popularity = [1, 5, 0, 5, 2, 0, 0, 3, 0, 9]
    seen = sparse.csr_matrix(np.array([[1 if u < p else 0 for p in popularity] for u in range(9)], dtype="float32"))
    known = np.array([True] * 9 + [False])
    # LONG_TAIL_HEAD_SHARE 0.2: ceil(0.2 * 9) = 2 items: the two with 5 users (1 before 3)
    assert np.flatnonzero(head_items(seen, known)).tolist() == [1, 3]
    # ties among items nobody did: the lower index first
    assert np.flatnonzero(head_items(sparse.csr_matrix((1, 10)), np.ones(10, dtype=bool))).tolist() == [0, 1]
