"""Ids encoded once against the vocabulary (categorical codes) give the same rows as looking up their strings."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_tasks.modalities.base import Vocabulary, unique_pairs


def test_encoded_ids_read_the_same_rows_as_their_strings() -> None:
    vocab = Vocabulary(users=np.array(["u1", "u2", "u3"]), items=np.array(["a", "b"]))
    ids = pd.Series(["u3", "u1", "u9", "u3", None])  # an id outside the vocabulary, and a missing one
    codes, distinct = pd.factorize(ids.astype(str))
    encoded = pd.Series(vocab.encode(codes, pd.Index(distinct), "user"))
    np.testing.assert_array_equal(vocab.user_index(encoded), vocab.user_index(ids))
    np.testing.assert_array_equal(vocab.user_index(encoded), [2, 0, -1, 2, -1])
    # a categorical of other categories is looked up by its strings
    other = pd.Series(pd.Categorical(["b", "a"], categories=["b", "a"]))
    np.testing.assert_array_equal(vocab.item_index(other), [1, 0])


def test_unique_pairs_are_the_distinct_pairs_sorted() -> None:
    pairs = unique_pairs(np.array([2, 0, 2, 1, 0]), np.array([1, 3, 1, 0, 3]), n_items=4)
    assert list(pairs.itertuples(index=False, name=None)) == [(0, 3), (1, 0), (2, 1)]
