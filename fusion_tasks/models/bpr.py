"""Behavioural collaborative filtering, pairwise: Bayesian Personalised Ranking (Rendle et al., 2009).

Matrix factorisation with an item bias, trained by SGD so that each user's item ranks above a sampled
negative item. The solver is ``implicit``'s CPU implementation (already the ALS solver), on one thread with a
seeded generator, so a fit is reproducible. The solver draws each step's negative item as the item of a random
interaction, so in proportion to its popularity. On the dense synthetic world of ``make bench-generalise`` a tuned
external BPR was the best list of all, above the published fusion of the other models (0.6478 against 0.6322
NDCG@10); with this model in the fusion the published list is above it (``bench/generalisation.md``). On Ciao it is
weak (``BENCHMARKS.md``), and the fusion weighs it accordingly.

Interactions count once, whatever their type or age: the solver reads the matrix as binary, so BPR has no
half-life. A user without interactions at the origin gets a constant row, as with ALS: the model has no signal
for them, and the pool marks it unavailable (item bias alone would be popularity, which the fusion has already).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import FactorModel
from fusion_tasks.training_data import TrainingData


class BPRRecommender(FactorModel):
    name = "bpr"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {
        "factors": (64, 32),
        "learning_rate": (0.01, 0.05),
        "regularization": (0.01, 0.001),
        "iterations": (100, 50),
    }

    def __init__(self, factors: int = 64, learning_rate: float = 0.01, regularization: float = 0.01,
                 iterations: int = 100, random_state: int = 0) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def fit(self, data: TrainingData) -> BPRRecommender:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        matrix = data.interactions.tocsr(copy=True).astype("float32")
        matrix.eliminate_zeros()
        matrix.data[:] = 1.0
        matrix.sort_indices()
        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, iterations=self.iterations,
                                            num_threads=1, random_state=self.random_state)
        model.fit(matrix, show_progress=False)
        # the last column is the item bias (users carry a 1 there); a user without interactions: a row of zeros
        self.user_factors_ = np.asarray(model.user_factors, dtype="float32")
        self.user_factors_[np.diff(matrix.indptr) == 0] = 0.0
        self.item_factors_ = np.asarray(model.item_factors, dtype="float32")
        return self
