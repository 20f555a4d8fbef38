"""Which fusion method is published: the simplest one the validation folds cannot tell apart from the best."""

from __future__ import annotations

import numpy as np

from fusion_tasks.fusion.base import PoolRanker
from fusion_tasks.fusion.methods import REGISTRY, choose_method

rng = np.random.default_rng(3)
BASE = rng.random(400)


def result(per_user: np.ndarray) -> dict:
    return {"cv_ndcg": float(per_user.mean()), "cv_ndcg_per_user": per_user.tolist()}


def test_a_method_better_only_within_noise_loses_to_the_simpler_one() -> None:
    simple, complex_ = sorted(("weighted_sum", "deep_fusion"), key=lambda m: REGISTRY[m].simplicity)
    noise = rng.normal(0, 0.2, len(BASE))
    noisy = BASE + noise - noise.mean() + 0.002  # better on average by 0.002; one standard error is about 0.01
    assert noisy.mean() > BASE.mean()
    assert choose_method({simple: result(BASE), complex_: result(noisy)}) == simple


def test_a_method_clearly_better_on_the_folds_is_published() -> None:
    better = BASE + 0.05 + rng.normal(0, 0.01, len(BASE))
    assert choose_method({"weighted_sum": result(BASE), "stacking": result(better)}) == "stacking"


def test_without_per_user_scores_the_best_mean_wins() -> None:
    assert choose_method({"weighted_sum": {"cv_ndcg": 0.1}, "stacking": {"cv_ndcg": 0.2}}) == "stacking"


def test_per_user_ndcg_averages_to_the_pool_ndcg() -> None:
    import pandas as pd

    pool = pd.DataFrame({"user_idx": [0, 0, 1, 1, 2], "item_idx": [1, 2, 1, 3, 4], "label": [0, 1, 1, 0, 0]})
    n_relevant = pd.Series([1, 2, 1], index=[0, 1, 2])
    scores = np.array([0.9, 0.1, 0.5, 0.7, 0.3])
    ranker = PoolRanker(pool, n_relevant, k=2)
    per_user = ranker.ndcg_per_user(scores)
    np.testing.assert_allclose(per_user, [1 / np.log2(3), (1 / np.log2(3)) / (1 + 1 / np.log2(3)), 0.0])
    assert np.isclose(per_user.mean(), ranker.ndcg(scores))
