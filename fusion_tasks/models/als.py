"""Behavioural collaborative filtering: implicit-feedback ALS (Hu, Koren & Volinsky, 2008)."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import BaseRecommender, decayed_interactions
from fusion_tasks.training_data import TrainingData


class ALSRecommender(BaseRecommender):
    """Matrix factorisation of the implicit interaction matrix with confidence ``1 + alpha * r``.

    Each half-step improves every user's (or item's) solution of
    ``(YᵀY + Yᵀ(C_u - I)Y + λI) x_u = Yᵀ C_u p_u`` with a few conjugate-gradient steps, all rows at
    once through sparse products (Takács et al. 2011). Events are decayed by age before weighting.
    """

    name = "als"
    modalities = ("behavior",)
    group = "behavior"

    def __init__(self, factors: int = 32, iterations: int = 12, regularization: float = 0.1,
                 alpha: float = 10.0, half_life_days: float = 180.0, cg_steps: int = 3,
                 random_state: int = 0) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.half_life_days = half_life_days
        self.cg_steps = cg_steps
        self.random_state = random_state

    def fit(self, data: TrainingData) -> ALSRecommender:
        matrix = decayed_interactions(data, self.half_life_days)
        matrix.data = self.alpha * np.log1p(matrix.data)  # confidence minus one
        rng = np.random.default_rng(self.random_state)
        users = rng.normal(0, 0.01, (data.n_users, self.factors))
        items = rng.normal(0, 0.01, (data.n_items, self.factors))
        transposed = matrix.T.tocsr()
        for _ in range(self.iterations):
            users = self._solve(matrix, items, users)
            items = self._solve(transposed, users, items)
        self.user_factors_ = users.astype("float32")
        self.item_factors_ = items.astype("float32")
        return self

    def _solve(self, confidence: sparse.csr_matrix, fixed: np.ndarray, start: np.ndarray) -> np.ndarray:
        """A few conjugate-gradient steps on every row's normal equations at once (as in implicit)."""
        gram = fixed.T @ fixed + self.regularization * np.eye(self.factors)
        rows = np.repeat(np.arange(confidence.shape[0]), np.diff(confidence.indptr))
        cols = confidence.indices
        weighted = confidence.copy()

        def apply(x: np.ndarray) -> np.ndarray:
            weighted.data = confidence.data * np.einsum("ij,ij->i", x[rows], fixed[cols])
            return x @ gram + weighted @ fixed

        target = confidence.copy()
        target.data = 1.0 + confidence.data
        x = start
        residual = target @ fixed - apply(x)
        direction = residual.copy()
        rs_old = np.einsum("ij,ij->i", residual, residual)
        for _ in range(self.cg_steps):
            step = apply(direction)
            alpha = rs_old / np.maximum(np.einsum("ij,ij->i", direction, step), 1e-20)
            x = x + alpha[:, None] * direction
            residual -= alpha[:, None] * step
            rs_new = np.einsum("ij,ij->i", residual, residual)
            direction = residual + (rs_new / np.maximum(rs_old, 1e-20))[:, None] * direction
            rs_old = rs_new
        return x

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T
