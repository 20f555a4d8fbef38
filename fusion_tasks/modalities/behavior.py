"""Behaviour: views, clicks, purchases and ratings of items by users, one landing file per day."""

from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Features, Modality, Vocabulary, end_of_day, unique_pairs
from fusion_tasks.schemas import Column, Schema
from fusion_tasks.storage import DataRoot

EVENT_TYPES = frozenset({"view", "click", "purchase", "rating"})
# Implicit confidence of one event; a rating's weight grows with its value (see event_weights).
EVENT_WEIGHTS = {"view": 1.0, "click": 2.0, "purchase": 4.0, "rating": 1.0}

SCHEMA = Schema(
    name="behavior",
    version=1,
    columns=(
        Column("user_id", "key"),
        Column("item_id", "key"),
        Column("event_type", "str", allowed=EVENT_TYPES),
        Column("value", "float", min_value=0.0),
        Column("timestamp", "timestamp"),
    ),
)


def event_weights(frame: pd.DataFrame) -> np.ndarray:
    """Confidence of each event: the type's weight, times ``value / 2.5`` for ratings (1..5 -> 0.4..2)."""
    types = frame["event_type"].to_numpy()
    base = np.full(len(types), np.nan)
    for name, weight in EVENT_WEIGHTS.items():  # a comparison per type: several times faster than a hashed map
        base[types == name] = weight
    is_rating = types == "rating"
    return np.where(is_rating, base * frame["value"].to_numpy(dtype="float64") / 2.5, base)


@dataclasses.dataclass(frozen=True)
class BehaviorFeatures(Features):
    """``events``: (user_idx, item_idx, weight, day) of the events before the origin (within ``history_days``),
    ``day`` in days since 1970; ``seen``: every (user_idx, item_idx) done before the origin in all history."""

    events: pd.DataFrame
    seen: pd.DataFrame

    def is_empty(self) -> bool:
        return len(self.events) == 0


def build_features(staged: pd.DataFrame, vocab: Vocabulary, origin: dt.date,
                   config: RunConfig) -> BehaviorFeatures:
    """Events up to ``origin`` as (user_idx, item_idx, weight, day) with ``day`` in days since 1970,
    limited to the last ``history_days`` when set; ``seen``: every (user_idx, item_idx) pair done
    before ``origin`` in all history (a user's past items are never candidates, however old)."""
    before = staged.loc[staged["timestamp"] < end_of_day(origin)]
    seen = unique_pairs(vocab.user_index(before["user_id"]), vocab.item_index(before["item_id"]), len(vocab.items))
    kept = before
    if config.history_days:
        start = end_of_day(origin - dt.timedelta(days=config.history_days))
        kept = kept.loc[kept["timestamp"] >= start]
    days = (kept["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None).to_numpy("datetime64[D]")
            .astype("int64"))
    events = pd.DataFrame({
        "user_idx": vocab.user_index(kept["user_id"]),
        "item_idx": vocab.item_index(kept["item_id"]),
        "weight": event_weights(kept),
        "day": days,
    })
    return BehaviorFeatures(events=events, seen=seen)


def exact_duplicates(staged: pd.DataFrame, root: DataRoot, config: RunConfig) -> pd.Series:
    """With ``duplicate_events="quarantine"``, every repeat of an event equal in all columns to an
    earlier one (earlier file or row) is rejected; the first is kept."""
    if config.duplicate_events == "keep":
        return pd.Series(None, index=staged.index, dtype="object")
    repeat = staged.duplicated(subset=SCHEMA.names, keep="first").to_numpy()
    return pd.Series(np.where(repeat, "exact duplicate of an earlier event", None), index=staged.index,
                     dtype="object")


MODALITY = Modality(
    name="behavior",
    reason="what people with tastes like yours chose",
    schema=SCHEMA,
    time_column="timestamp",
    daily=True,
    id_columns={"user_id": "user", "item_id": "item"},
    build_features=build_features,
    features=BehaviorFeatures,
    profile_column="event_type",
    row_rules=(exact_duplicates,),
)
