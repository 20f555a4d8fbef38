"""Social: what the people a user follows or trusts did recently, one and two hops away."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData


class SocialRecommender(BaseRecommender):
    """``score(u) = Â[u] X + two_hop * (Â Â)[u] X`` with Â the row-normalised tie matrix and X the
    decayed interactions (each user's row scaled to sum 1). Users without ties score 0."""

    name = "social"
    modalities = ("behavior", "social")
    group = "social"

    def __init__(self, half_life_days: float = 30.0, two_hop: float = 0.3) -> None:
        self.half_life_days = half_life_days
        self.two_hop = two_hop

    def fit(self, data: TrainingData) -> SocialRecommender:
        ties = _row_normalise(data.features["social"]["adjacency"].astype("float32"))
        reach = ties + self.two_hop * (ties @ ties)
        reach.setdiag(0)
        reach.eliminate_zeros()
        self.reach_ = reach.tocsr().astype("float32")
        self.interactions_ = _row_normalise(decayed_interactions(data, self.half_life_days))
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return dense_rows(self.reach_[users] @ self.interactions_)


def _row_normalise(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return (sparse.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ matrix).tocsr()
