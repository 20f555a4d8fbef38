"""Classic baselines for the quality benchmark, with one scoring and candidate rule for all.

Every baseline is fitted on a users x items matrix of what happened up to an origin (binary: a
user rated an item) and scores every item for a batch of users. ``top_k`` ranks the candidates
of each user: items known by the origin that the user has not interacted with (full ranking, ties
broken by item index, the same rule as the pipeline's candidate pools).

* ``MostPop``: distinct users per item, optionally only over the last ``window_days``.
* ``DecayedPop``: time-decayed popularity, one vote per (user, item) weighted by the age of its latest
  interaction (half-life tuned on the validation window like every baseline's settings).
* ``ItemKNN``: item-item cosine over the binary matrix, ``score(u) = x_u S`` with ``S`` kept sparse
  and pruned to each item's ``neighbours`` most similar items.
* ``EASE`` (Steck 2019): closed form ``B = I - P / diag(P)``, ``P = (XᵀX + λI)⁻¹``; dense in items,
  so it is fitted on the ``max_items`` most popular items known at the origin (other items score
  -inf, i.e. are ranked after every modelled item, in item-index order).
* ``ImplicitALS`` / ``ImplicitBPR``: ``implicit`` 0.7.3 (CPU), user x item CSR input.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from scipy import sparse

NEG = -np.inf


def binary(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    out = matrix.tocsr().astype("float32", copy=True)
    out.data[:] = 1.0
    out.eliminate_zeros()
    return out


class MostPop:
    name = "MostPop"

    def __init__(self, window_days: int = 0) -> None:
        self.window_days = window_days

    def fit(self, x: sparse.csr_matrix, events_day: np.ndarray | None = None, origin_day: int = 0,
            events: tuple[np.ndarray, np.ndarray] | None = None, **_: Any) -> MostPop:
        if self.window_days and events is not None:
            users, items = events
            keep = events_day > origin_day - self.window_days
            m = sparse.csr_matrix((np.ones(keep.sum(), "float32"), (users[keep], items[keep])), shape=x.shape)
            x = binary(m)
        self.pop_ = np.asarray(x.sum(axis=0)).ravel().astype("float32")
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop_, (len(users), len(self.pop_))).copy()


class DecayedPop:
    """Time-decayed popularity: each (user, item) votes once, weighted ``0.5 ** (age / half_life)``
    by the age of the user's latest interaction with the item at the origin."""

    name = "DecayedPop"

    def __init__(self, half_life_days: float = 30.0) -> None:
        self.half_life_days = half_life_days

    def fit(self, x: sparse.csr_matrix, events_day: np.ndarray | None = None, origin_day: int = 0,
            events: tuple[np.ndarray, np.ndarray] | None = None, **_: Any) -> DecayedPop:
        if events is None or events_day is None:
            raise ValueError("DecayedPop needs the events and their days")
        users, items = events
        weight = np.power(0.5, np.maximum(origin_day - events_day, 0) / self.half_life_days)
        order = np.lexsort((events_day, items, users))
        u, i, w = users[order], items[order], weight[order]
        last = np.r_[(u[1:] != u[:-1]) | (i[1:] != i[:-1]), True]
        pairs = sparse.csr_matrix((w[last], (u[last], i[last])), shape=x.shape)
        self.pop_ = np.asarray(pairs.sum(axis=0)).ravel().astype("float32")
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.pop_, (len(users), len(self.pop_))).copy()


class ItemKNN:
    name = "ItemKNN"

    def __init__(self, neighbours: int = 100, shrink: float = 0.0) -> None:
        self.neighbours = neighbours
        self.shrink = shrink

    def fit(self, x: sparse.csr_matrix, **_: Any) -> ItemKNN:
        xc = x.tocsc()
        norms = np.sqrt(np.asarray(xc.multiply(xc).sum(axis=0)).ravel())
        active = np.flatnonzero(norms > 0)
        sub = xc[:, active]
        gram = (sub.T @ sub).tocsr().astype("float32")
        gram.setdiag(0)
        gram.eliminate_zeros()
        n = norms[active]
        rows = np.repeat(np.arange(gram.shape[0]), np.diff(gram.indptr))
        gram.data = gram.data / (n[rows] * n[gram.indices] + self.shrink)
        gram = _prune_rows(gram, self.neighbours)
        full = sparse.csr_matrix((gram.data, active[gram.indices], gram.indptr), shape=(len(active), x.shape[1]))
        expand = sparse.csr_matrix((np.ones(len(active), "float32"), (active, np.arange(len(active)))),
                                   shape=(x.shape[1], len(active)))
        self.sim_ = (expand @ full).tocsr()
        self.x_ = x
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return (self.x_[users] @ self.sim_).toarray().astype("float32")


def _prune_rows(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the k largest entries of each row (item i's k nearest neighbours)."""
    if not k:
        return matrix
    data, indices, indptr = [], [], [0]
    for i in range(matrix.shape[0]):
        lo, hi = matrix.indptr[i], matrix.indptr[i + 1]
        d, c = matrix.data[lo:hi], matrix.indices[lo:hi]
        if hi - lo > k:
            keep = np.argpartition(-d, k - 1)[:k]
            d, c = d[keep], c[keep]
        data.append(d)
        indices.append(c)
        indptr.append(indptr[-1] + len(d))
    out = sparse.csr_matrix((np.concatenate(data), np.concatenate(indices), np.array(indptr)), shape=matrix.shape)
    # column i of the pruned "row-neighbour" matrix: score(u, j) = sum_i x_ui sim(i, j) over j in N(i)
    return out


class EASE:
    name = "EASE"

    def __init__(self, l2: float = 500.0, max_items: int = 5000, min_users: int = 2) -> None:
        self.l2 = l2
        self.max_items = max_items
        self.min_users = min_users

    def fit(self, x: sparse.csr_matrix, item_known: np.ndarray | None = None, **_: Any) -> EASE:
        pop = np.asarray(x.sum(axis=0)).ravel()
        eligible = (pop >= self.min_users) & (item_known if item_known is not None else True)
        order = np.argsort(-pop, kind="stable")
        chosen = np.sort(order[eligible[order]][: self.max_items])
        sub = x[:, chosen]
        gram = (sub.T @ sub).toarray().astype("float64")
        gram[np.diag_indices_from(gram)] += self.l2
        p = np.linalg.inv(gram)
        b = p / (-np.diag(p))
        b[np.diag_indices_from(b)] = 0.0
        self.items_ = chosen
        self.b_ = b.astype("float32")
        self.x_ = sub.tocsr()
        self.n_items_ = x.shape[1]
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        out = np.full((len(users), self.n_items_), NEG, dtype="float32")
        out[:, self.items_] = (self.x_[users] @ self.b_)
        return out


class _Implicit:
    def __init__(self, **params: Any) -> None:
        self.params = params

    def score(self, users: np.ndarray) -> np.ndarray:
        return (self.model_.user_factors[users] @ self.model_.item_factors.T).astype("float32")


class ImplicitALS(_Implicit):
    name = "ALS (implicit)"

    def fit(self, x: sparse.csr_matrix, seed: int = 0, **_: Any) -> ImplicitALS:
        from implicit.cpu.als import AlternatingLeastSquares

        params = dict(self.params)
        alpha = params.pop("alpha", 10.0)
        from threadpoolctl import threadpool_limits

        self.model_ = AlternatingLeastSquares(random_state=seed, alpha=alpha, **params)
        with threadpool_limits(1, "blas"):
            self.model_.fit(x.tocsr().astype("float32"), show_progress=False)
        return self


class ImplicitBPR(_Implicit):
    name = "BPR (implicit)"

    def fit(self, x: sparse.csr_matrix, seed: int = 0, **_: Any) -> ImplicitBPR:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        self.model_ = BayesianPersonalizedRanking(random_state=seed, **self.params)
        self.model_.fit(x.tocsr().astype("float32"), show_progress=False)
        return self


# name -> (factory, grid)
BASELINES: dict[str, tuple[Any, list[dict[str, Any]]]] = {
    "MostPop": (MostPop, [{"window_days": 0}, {"window_days": 365}, {"window_days": 90}]),
    "DecayedPop": (DecayedPop, [{"half_life_days": h} for h in (7.0, 14.0, 30.0, 60.0, 120.0, 365.0)]),
    "ItemKNN": (ItemKNN, [{"neighbours": 50, "shrink": 0.0}, {"neighbours": 200, "shrink": 10.0}]),
    "EASE": (EASE, [{"l2": 200.0}, {"l2": 1000.0}]),
    "ALS (implicit)": (ImplicitALS, [{"factors": 32, "regularization": 0.05, "iterations": 15, "alpha": 10.0},
                                     {"factors": 64, "regularization": 0.1, "iterations": 15, "alpha": 20.0}]),
    "BPR (implicit)": (ImplicitBPR, [
        {"factors": 32, "learning_rate": 0.05, "regularization": 0.01, "iterations": 100},
        {"factors": 64, "learning_rate": 0.01, "regularization": 0.01, "iterations": 100}]),
}


def top_k(model: Any, users: np.ndarray, candidates: np.ndarray, seen: sparse.csr_matrix, k: int,
          batch: int = 512) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(user, item, rank) arrays of each user's top-k candidates, and the scoring seconds.

    ``candidates`` is a boolean mask over items (known at the origin); items in the user's row of
    ``seen`` are excluded. Ties (and -inf scores) are broken by item index, ascending.
    """
    started = time.perf_counter()
    out_u, out_i, out_r = [], [], []
    for start in range(0, len(users), batch):
        b = users[start:start + batch]
        scores = model.score(b).astype("float64")
        scores = np.where(np.isfinite(scores), scores, -1e30)
        scores[:, ~candidates] = -np.inf
        rows = seen[b]
        scores[np.repeat(np.arange(len(b)), np.diff(rows.indptr)), rows.indices] = -np.inf
        n = min(k, scores.shape[1])
        part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        # widen to include ties at the boundary, then order by (score desc, item asc)
        cut = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        for r in range(len(b)):
            cand = np.flatnonzero(scores[r] >= cut[r, 0]) if np.isfinite(cut[r, 0]) else part[r]
            cand = cand[np.isfinite(scores[r, cand])]
            order = np.lexsort((cand, -scores[r, cand]))[:k]
            chosen = cand[order]
            out_u.append(np.full(len(chosen), b[r]))
            out_i.append(chosen)
            out_r.append(np.arange(1, len(chosen) + 1))
    seconds = time.perf_counter() - started
    if not out_u:
        return np.zeros(0, int), np.zeros(0, int), np.zeros(0, int), seconds
    return np.concatenate(out_u), np.concatenate(out_i), np.concatenate(out_r), seconds
