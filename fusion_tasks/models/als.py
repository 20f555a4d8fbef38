"""Behavioural collaborative filtering: implicit-feedback ALS (Hu, Koren & Volinsky, 2008)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import FactorModel, decayed_interactions
from fusion_tasks.training_data import TrainingData


class ALSRecommender(FactorModel):
    """Matrix factorisation of the implicit interaction matrix with confidence ``1 + alpha * r``.

    ``r = log1p(decayed event weight)``: events are decayed by age before weighting. The solver is
    ``implicit``'s CPU implementation (conjugate-gradient least squares, Takács et al. 2011), on one
    BLAS thread: several times faster than a numpy solver, which makes per-run tuning affordable.
    """

    name = "als"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {
        "half_life_days": (180.0, 0.0, 30.0),
        "factors": (32, 64),
        "regularization": (0.1, 10.0),
        "alpha": (10.0, 40.0),
    }

    def __init__(self, factors: int = 32, iterations: int = 15, regularization: float = 0.1,
                 alpha: float = 10.0, half_life_days: float = 180.0, random_state: int = 0) -> None:
        self.factors = factors
        self.iterations = iterations
        self.regularization = regularization
        self.alpha = alpha
        self.half_life_days = half_life_days
        self.random_state = random_state

    def fit(self, data: TrainingData) -> ALSRecommender:
        from implicit.cpu.als import AlternatingLeastSquares
        from threadpoolctl import threadpool_limits

        matrix = decayed_interactions(data, self.half_life_days)
        matrix.data = np.log1p(matrix.data).astype("float32")
        with threadpool_limits(1, "blas"):  # implicit checks the BLAS threads when it is built: limit them first
            model = AlternatingLeastSquares(factors=self.factors, regularization=self.regularization,
                                            alpha=self.alpha, iterations=self.iterations,
                                            random_state=self.random_state, num_threads=1)
            model.fit(matrix.tocsr(), show_progress=False)
        self.user_factors_ = np.asarray(model.user_factors, dtype="float32")
        self.item_factors_ = np.asarray(model.item_factors, dtype="float32")
        return self
