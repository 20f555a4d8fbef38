"""Social: what the people a user follows or trusts did, one and two hops away.

``score(u) = Â[u] X + two_hop · (Â Â)[u] X + prior · pop``: ``Â`` is the row-normalised tie matrix
(so a score is the weighted share of the user's ties who did the item), ``X`` the users' decayed
interactions with one vote per (user, item), and ``pop`` the decayed item popularity scaled to
[0, 1]. The popularity prior orders the items no tie did, and is all a user without ties gets;
``prior = 0`` leaves such users without signal. Every knob is tuned per run (``search_space``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions, dense_rows
from fusion_tasks.training_data import TrainingData


class SocialRecommender(BaseRecommender):
    name = "social"
    modalities = ("behavior", "social")
    group = "social"
    search_space: ClassVar[dict[str, tuple]] = {
        "half_life_days": (0.0, 7.0, 30.0, 180.0),
        "two_hop": (0.3, 0.0, 1.0),
        "prior": (0.05, 0.0, 0.5),
    }

    def __init__(self, half_life_days: float = 0.0, two_hop: float = 0.3, prior: float = 0.05) -> None:
        self.half_life_days = half_life_days
        self.two_hop = two_hop
        self.prior = prior

    def fit(self, data: TrainingData) -> SocialRecommender:
        ties = _row_normalise(data.features["social"].adjacency.astype("float32"))
        reach = ties + self.two_hop * (ties @ ties) if self.two_hop else ties.copy()
        reach.setdiag(0)
        reach.eliminate_zeros()
        self.reach_ = reach.tocsr().astype("float32")
        votes = decayed_interactions(data, self.half_life_days)
        votes.data = np.minimum(votes.data, 1.0)
        self.interactions_ = votes.tocsr()
        popularity = np.asarray(votes.sum(axis=0)).ravel()
        self.popularity_ = (popularity / max(popularity.max(), 1e-12)).astype("float32")
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = dense_rows(self.reach_[users] @ self.interactions_)
        if self.prior:
            out += self.prior * self.popularity_[None, :]
        return out


def _row_normalise(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return (sparse.diags(np.divide(1.0, sums, out=np.zeros_like(sums), where=sums > 0)) @ matrix).tocsr()
