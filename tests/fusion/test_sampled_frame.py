"""Stacking and deep fusion take their training rows from the folds' pools without concatenating every pool."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_tasks.fusion.base import FitInput, FoldPool
from fusion_tasks.fusion.stacking import sample_rows, sampled_frame


def _folds(sizes: tuple[int, ...], seed: int = 3) -> FitInput:
    rng = np.random.default_rng(seed)
    folds = []
    for k, size in enumerate(sizes):
        pool = pd.DataFrame({"user_idx": rng.integers(0, 50, size), "item_idx": rng.integers(0, 80, size),
                             "z_a": rng.standard_normal(size).astype("float32"),
                             "label": (rng.random(size) < 0.05).astype("int8")})
        folds.append(FoldPool(f"fold{k + 1}", pool, pool.loc[pool["label"] > 0].groupby("user_idx").size()))
    return FitInput(folds=tuple(folds), models=("a",), context=(), k=10, seed=0)


def test_the_sample_is_the_rows_a_concatenation_of_the_pools_would_give() -> None:
    for sizes, max_rows in (((400, 0, 250, 900), 40_000), ((3_000, 2_000), 500), ((50,), 40_000)):
        data = _folds(sizes)
        whole = pd.concat([f.pool for f in data.folds], ignore_index=True)
        expected = whole.iloc[sample_rows(whole["label"].to_numpy(), 5, np.random.default_rng(7), max_rows)]
        got = sampled_frame(data, 5, np.random.default_rng(7), max_rows)
        pd.testing.assert_frame_equal(got, expected, check_exact=True)
