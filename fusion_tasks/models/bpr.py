"""Behavioural collaborative filtering, pairwise: Bayesian Personalised Ranking (Rendle et al., 2009).

Matrix factorisation with an item bias, trained by SGD so that each user's item ranks above a sampled
negative item. The solver is ``implicit``'s CPU implementation (already the ALS solver), on one thread with a
seeded generator, so a fit is reproducible. The solver draws each step's negative item as the item of a random
interaction, so in proportion to its popularity. On the dense synthetic world of ``make bench-generalise`` a tuned
external BPR was the best list of all, above the published fusion of the other models (0.6478 against 0.6322
NDCG@10); with this model in the fusion the published list is above it (``bench/generalisation.md``). On Ciao it is
weak (``BENCHMARKS.md``), and the fusion weighs it accordingly.

The epochs run in chunks of ``CHUNK_ITERATIONS``, each with its own seed derived from ``random_state`` and the
chunk's number. A fit of more epochs therefore starts with exactly the fit of fewer, and tuning continues the best
fit so far when a candidate differs from it only by more epochs (``fit_from``): the same factors as a fresh fit, for
the cost of the extra epochs only. The search starts at 50 epochs and tries 100 last, so that candidate costs 50.

Interactions count once, whatever their type or age: the solver reads the matrix as binary, so BPR has no
half-life. A user without interactions at the origin gets a constant row, as with ALS: the model has no signal
for them, and the pool marks it unavailable (item bias alone would be popularity, which the fusion has already).
Such a user's row is never read by the solver, so zeroing it changes nothing a continued fit learns.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy import sparse

from fusion_tasks.models.base import FactorModel
from fusion_tasks.training_data import TrainingData

CHUNK_ITERATIONS = 50  # epochs per solver call, each seeded by (random_state, chunk); a call costs ~45 ms of set-up


class BPRRecommender(FactorModel):
    name = "bpr"
    modalities = ("behavior",)
    group = "behavior"
    search_space: ClassVar[dict[str, tuple]] = {
        "factors": (64, 32),
        "learning_rate": (0.01, 0.05),
        "regularization": (0.01, 0.001),
        "iterations": (50, 100),
    }

    def __init__(self, factors: int = 64, learning_rate: float = 0.01, regularization: float = 0.01,
                 iterations: int = 50, random_state: int = 0) -> None:
        self.factors = factors
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.iterations = iterations
        self.random_state = random_state

    def fit(self, data: TrainingData) -> BPRRecommender:
        return self._train(data, None, 0)

    def fit_from(self, data: TrainingData, previous: BPRRecommender) -> BPRRecommender:
        """The same fit as ``fit``, continued from ``previous`` when it differs only by fewer epochs (a whole
        number of chunks): its factors are this fit's after those epochs."""
        same = (isinstance(previous, BPRRecommender)
                and {k: v for k, v in previous.get_params().items() if k != "iterations"}
                == {k: v for k, v in self.get_params().items() if k != "iterations"})
        if not (same and previous.iterations < self.iterations and previous.iterations % CHUNK_ITERATIONS == 0):
            return self.fit(data)
        return self._train(data, previous, previous.iterations // CHUNK_ITERATIONS)

    def _train(self, data: TrainingData, previous: BPRRecommender | None, first_chunk: int) -> BPRRecommender:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        matrix = _binary(data.interactions)
        model = BayesianPersonalizedRanking(factors=self.factors, learning_rate=self.learning_rate,
                                            regularization=self.regularization, num_threads=1)
        if previous is not None:
            model.user_factors = previous.user_factors_.copy()
            model.item_factors = previous.item_factors_.copy()
        done, chunk = first_chunk * CHUNK_ITERATIONS, first_chunk
        while done < self.iterations:
            model.iterations = min(CHUNK_ITERATIONS, self.iterations - done)
            model.random_state = int(np.random.SeedSequence([self.random_state, chunk]).generate_state(1)[0])
            model.fit(matrix, show_progress=False)  # continues from the factors it holds after the first chunk
            done, chunk = done + model.iterations, chunk + 1
        # the last column is the item bias (users carry a 1 there); a user without interactions: a row of zeros
        self.user_factors_ = np.asarray(model.user_factors, dtype="float32")
        self.user_factors_[np.diff(matrix.indptr) == 0] = 0.0
        self.item_factors_ = np.asarray(model.item_factors, dtype="float32")
        return self


def _binary(interactions: sparse.spmatrix) -> sparse.csr_matrix:
    matrix = interactions.tocsr(copy=True).astype("float32")
    matrix.eliminate_zeros()
    matrix.data[:] = 1.0
    matrix.sort_indices()
    return matrix
