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

``iterations`` are epochs over the interactions, and a fit makes at most ``MAX_SAMPLES`` (5 x 10^7) SGD steps:
with more than ``MAX_SAMPLES / iterations`` interactions, the epochs shrink to ``MAX_SAMPLES // interactions`` (at
least one). The cap bounds the cost: the solver's cost grew faster than the data (like events^1.26 in
``bench/cost_curve.md`` at ``9720940``), and at 10^7 events a fit of 100 epochs took 430-630 s, 18 or more times
ALS's, so that three of them, the search's default setting on its folds, exceed the default tuning budget
of 600 s and fail the training task. What it costs in quality, NDCG@10 of BPR alone at the test origin on the
window after it, 100 epochs against the cap (learning rate 0.01 unless said): on the cost curve's world of 10^7
events (7.4 x 10^6 interactions, 5 epochs under the cap) 0.038 in 634 s against 0.026 in 35 s, and 0.036 at
learning rate 0.05 (a candidate of the search), so 6% lower for an 18th of the cost; on its world of 10^6 events
(7.5 x 10^5 interactions, 66 epochs under the cap) more epochs ranked worse, 0.034 with 100 against 0.055 with 50
(the search's other candidate) and 0.049 with 20. Ciao (at most 2.8 x 10^5 events; 100 epochs were the best or level
there on the two dates tried) and the synthetic worlds of ``make bench-generalise`` (at most 1.7 x 10^5 events) are
under the cap, so their fits are unchanged. The epochs a fit made are ``epochs_``; a candidate setting that makes
the same fit as the best one (another ``iterations``, both over the cap) reuses it.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from fusion_tasks.models.base import BaseRecommender, FactorModel
from fusion_tasks.training_data import TrainingData

MAX_SAMPLES = 50_000_000  # SGD steps a fit makes at most (epochs x interactions); see the module docstring


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

    def epochs(self, n_interactions: int) -> int:
        """The epochs a fit on ``n_interactions`` interactions makes: ``iterations``, capped by ``MAX_SAMPLES``."""
        return int(max(1, min(self.iterations, MAX_SAMPLES // max(n_interactions, 1))))

    def fit(self, data: TrainingData) -> BPRRecommender:
        return self._fit(_binary(data))

    def fit_from(self, data: TrainingData, previous: BaseRecommender) -> BPRRecommender:
        """``previous``'s factors when it is the same fit: the same parameters and seed but ``iterations``, and the
        same epochs on this data (both over the cap); a fresh fit otherwise."""
        matrix = _binary(data)
        same = {k: v for k, v in self.get_params().items() if k != "iterations"}
        if (isinstance(previous, BPRRecommender) and hasattr(previous, "epochs_")
                and {k: v for k, v in previous.get_params().items() if k != "iterations"} == same
                and previous.epochs_ == self.epochs(matrix.nnz)):
            self.epochs_ = previous.epochs_
            self.user_factors_, self.item_factors_ = previous.user_factors_, previous.item_factors_
            return self
        return self._fit(matrix)

    def _fit(self, matrix) -> BPRRecommender:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        self.epochs_ = self.epochs(matrix.nnz)
        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, iterations=self.epochs_,
                                            num_threads=1, random_state=self.random_state)
        model.fit(matrix, show_progress=False)
        # the last column is the item bias (users carry a 1 there); a user without interactions: a row of zeros
        self.user_factors_ = np.asarray(model.user_factors, dtype="float32")
        self.user_factors_[np.diff(matrix.indptr) == 0] = 0.0
        self.item_factors_ = np.asarray(model.item_factors, dtype="float32")
        return self


def _binary(data: TrainingData):
    """The interactions as a binary CSR matrix with sorted indices, float32 (what the solver reads)."""
    matrix = data.interactions.tocsr(copy=True).astype("float32")
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix
