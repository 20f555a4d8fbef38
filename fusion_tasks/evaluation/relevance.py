"""Relevance in any window, also one after the run's date: the pairs a user did for the first time."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks.modalities.base import Vocabulary, end_of_day


def first_time_pairs(events: pd.DataFrame, vocab: Vocabulary, seen: sparse.spmatrix, start: dt.date,
                     end: dt.date) -> pd.DataFrame:
    """The (user, item) pairs users of ``vocab`` did in (start, end] and not before.

    ``events`` has ``user_id``, ``item_id`` and ``timestamp``; ``seen`` (users x items of ``vocab``,
    non-zero: done) holds each user's past. Returns one row per pair with ``user_id``, ``item_id``,
    ``user_idx`` and ``item_idx``; an item outside the vocabulary (new after it) has ``item_idx`` -1.
    """
    window = events.loc[(events["timestamp"] >= end_of_day(start)) & (events["timestamp"] < end_of_day(end))]
    pairs = window[["user_id", "item_id"]].drop_duplicates()
    users = vocab.user_index(pairs["user_id"])
    pairs = pairs.assign(user_idx=users, item_idx=vocab.item_index(pairs["item_id"])).loc[users >= 0]
    done = np.zeros(len(pairs), dtype=bool)
    in_vocab = pairs["item_idx"].to_numpy() >= 0
    if in_vocab.any():
        done[in_vocab] = np.asarray(seen[pairs["user_idx"].to_numpy()[in_vocab],
                                         pairs["item_idx"].to_numpy()[in_vocab]]).ravel() != 0
    return pairs.loc[~done].reset_index(drop=True)
