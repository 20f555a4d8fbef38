"""Which fusion method is published: the best on the held-out folds, the simpler on a tie."""

from __future__ import annotations

import numpy as np
import pandas as pd

from fusion_tasks.fusion.base import PoolRanker
from fusion_tasks.fusion.methods import REGISTRY, choose_method


def result(cv_ndcg: float) -> dict:
    return {"cv_ndcg": cv_ndcg}


def test_the_best_leave_one_fold_out_ndcg_is_published_even_when_it_is_the_most_complex() -> None:
    simple, complex_ = sorted(("weighted_sum", "deep_fusion"), key=lambda m: REGISTRY[m].simplicity)
    assert choose_method({simple: result(0.100), complex_: result(0.102), "stacking": result(0.101)}) == complex_
    assert choose_method({simple: result(0.103), complex_: result(0.102), "stacking": result(0.101)}) == simple


def test_a_tie_goes_to_the_simpler_method() -> None:
    ranked = sorted(REGISTRY, key=lambda m: REGISTRY[m].simplicity)
    assert choose_method({m: result(0.2) for m in reversed(ranked)}) == ranked[0]
    assert choose_method({ranked[-1]: result(0.2), ranked[1]: result(0.2 + 1e-12)}) == ranked[1]


def test_per_user_ndcg_averages_to_the_pool_ndcg() -> None:
    pool = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2], "item_idx": [1, 2, 1, 3, 4], "label": [0, 1, 1, 0, 0]})
    n_relevant = pd.Series([1, 2, 1], index=[0, 1, 2])
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    ranker = PoolRanker(pool, n_relevant, k=2)
    per_user = ranker.ndcg_per_user(scores)
    np.testing.assert_allclose(per_user, [1 / np.log2(3), (1 / np.log2(3)) / (1 + 1 / np.log2(3)), 0.0])
    assert np.isclose(per_user.mean(), ranker.ndcg(scores))
