"""The interface every fusion method follows, and what the methods share.

A fusion method learns, from the validation folds' candidate pools only, how to turn each pooled
(user, item)'s base-model features into one score. It is a class registered in
``fusion_tasks.fusion.methods.REGISTRY``; ``fit`` returns plain JSON (no pickle), and ``scores``
and ``contributions`` apply that JSON to any pool. Contributions are additive per modality group
(``behavior``, ``content``, ``social``, ``cross``, ``context``) and sum to the score exactly.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from fusion_tasks import arrays, models
from fusion_tasks.contract import CONTRIBUTION_GROUPS


@dataclasses.dataclass(frozen=True)
class FoldPool:
    """One validation fold: its pool (with ``label``) and the number of relevant items per user."""

    name: str
    pool: pd.DataFrame
    n_relevant: pd.Series


@dataclasses.dataclass(frozen=True)
class FitInput:
    """What a method is fitted on: the folds, the base models to fuse and the context columns to use.

    ``models`` and ``context`` may be a subset of what the pools hold (the benchmark's modality
    ablation fits a method on the behaviour models alone, say); a method must only read those.
    """

    folds: tuple[FoldPool, ...]
    models: tuple[str, ...]
    context: tuple[str, ...]
    k: int
    seed: int

    def without(self, fold: str) -> FitInput:
        return dataclasses.replace(self, folds=tuple(f for f in self.folds if f.name != fold))


class FusionMethod(abc.ABC):
    """One way of fusing base-model scores.

    ``name`` is the registry key and the task name (``fit_<name>``); ``simplicity`` orders methods
    when their cross-validated NDCG ties (lower wins).
    """

    name: ClassVar[str]
    simplicity: ClassVar[int] = 0

    @abc.abstractmethod
    def fit(self, data: FitInput) -> dict[str, Any]:
        """Learn from ``data.folds``; returns JSON-serialisable parameters (``models`` included)."""

    @abc.abstractmethod
    def scores(self, fitted: dict[str, Any], pool: pd.DataFrame) -> np.ndarray:
        """The fused score of every pool row, float64, finite; higher is better."""

    @abc.abstractmethod
    def contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> pd.DataFrame:
        """``contribution_<group>`` columns for ``CONTRIBUTION_GROUPS``, summing to ``scores``."""

    def scores_and_contributions(self, fitted: dict[str, Any], pool: pd.DataFrame) -> tuple[np.ndarray, pd.DataFrame]:
        """Both at once, with the same values as ``scores`` and ``contributions``; a method whose score is the
        sum of its contributions overrides it to compute them once."""
        return self.scores(fitted, pool), self.contributions(fitted, pool)


def empty_contributions(pool: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(0.0, index=pool.index, columns=[f"contribution_{g}" for g in CONTRIBUTION_GROUPS])


def group_of(model: str) -> str:
    """The modality group a base model's score is credited to."""
    return models.get(model).group


def top_k(pool: pd.DataFrame, scores: np.ndarray, k: int) -> pd.DataFrame:
    """The k best pooled items per user by ``scores`` (ties by item index), with 1-based ranks."""
    order = np.lexsort((pool["item_idx"].to_numpy(), -scores, pool["user_idx"].to_numpy()))
    ranked = pool.iloc[order][["user_idx", "item_idx"]].assign(score=scores[order])
    ranked["rank"] = ranked.groupby("user_idx").cumcount() + 1
    return ranked.loc[ranked["rank"] <= k].reset_index(drop=True)


def pool_ndcg(pool: pd.DataFrame, scores: np.ndarray, n_relevant: pd.Series, k: int) -> float:
    """Mean NDCG@k over the users of ``n_relevant`` (binary labels from ``pool['label']``)."""
    return float(PoolRanker(pool, n_relevant, k).ndcg(scores))


def pool_ndcg_per_user(pool: pd.DataFrame, scores: np.ndarray, n_relevant: pd.Series, k: int) -> np.ndarray:
    """NDCG@k of each user of ``n_relevant``, in its order (see ``PoolRanker.ndcg_per_user``)."""
    return PoolRanker(pool, n_relevant, k).ndcg_per_user(scores)


class PoolRanker:
    """Fast repeated NDCG@k of one pool under many score vectors (the weight search's objective).

    Only users with a relevant item in the pool can score above 0, whatever the scores, so the
    others are dropped once (they still count in the mean). The kept rows are laid out once as a
    users x candidates matrix in item order. An evaluation sorts nothing: each relevant cell's rank is
    the number of its user's cells scored higher, or equal at a lower item index (ties broken by item
    index, as in ``top_k``), and only ranks below k count.
    """

    def __init__(self, pool: pd.DataFrame, n_relevant: pd.Series, k: int) -> None:
        users = pool["user_idx"].to_numpy()
        labels = pool["label"].to_numpy()
        rows = np.flatnonzero(arrays.contains(arrays.unique(users[labels > 0]), users))
        rows = rows[np.lexsort((pool["item_idx"].to_numpy()[rows], users[rows]))]
        codes, self.user_ids = pd.factorize(users[rows], sort=True)
        counts = np.bincount(codes, minlength=len(self.user_ids))
        width = int(counts.max()) if len(counts) else 0
        column = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        self.rows, self.cell = rows, (codes, column)
        self.shape = (len(self.user_ids), width)
        relevant = np.flatnonzero(labels[rows] > 0)  # positions among the kept rows
        self.relevant, self.relevant_user, self.relevant_column = relevant, codes[relevant], column[relevant]
        self.k = min(k, width)
        ideal = np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))
        idcg = pd.Series(ideal[np.minimum(n_relevant.to_numpy(), k) - 1], index=n_relevant.index)
        self.idcg = idcg.reindex(self.user_ids).to_numpy()
        self.n_users = len(n_relevant)
        self.n_relevant_index = n_relevant.index
        self.discount = 1.0 / np.log2(np.arange(self.k) + 2)

    def ndcg(self, scores: np.ndarray) -> float:
        """Mean NDCG@k over every user of ``n_relevant``; ``scores`` covers every row of the pool."""
        if not len(self.rows):
            return 0.0
        return float(self._kept_ndcg(scores[self.rows]).sum() / self.n_users)

    def ndcg_of_kept(self, kept_scores: np.ndarray) -> float:
        """``ndcg`` from the scores of the kept rows only (``scores[self.rows]``): a search that evaluates many
        score vectors computes just those."""
        if not len(self.rows):
            return 0.0
        return float(self._kept_ndcg(kept_scores).sum() / self.n_users)

    def ndcg_per_user(self, scores: np.ndarray) -> np.ndarray:
        """NDCG@k of every user of ``n_relevant``, in its order (0 for a user without a relevant pooled item)."""
        out = pd.Series(0.0, index=self.n_relevant_index)
        if len(self.rows):
            out.loc[self.user_ids] = self._kept_ndcg(scores[self.rows])
        return out.to_numpy()

    def _kept_ndcg(self, kept_scores: np.ndarray) -> np.ndarray:
        matrix = np.full(self.shape, -np.inf)
        matrix[self.cell] = kept_scores
        around = matrix[self.relevant_user]  # each relevant cell's row
        score = kept_scores[self.relevant][:, None]
        before = np.arange(self.shape[1]) < self.relevant_column[:, None]
        rank = (around > score).sum(axis=1) + ((around == score) & before).sum(axis=1)  # 0-based
        gain = np.where(rank < self.k, self.discount[np.minimum(rank, self.k - 1)], 0.0)
        dcg = np.bincount(self.relevant_user, weights=gain, minlength=self.shape[0])
        return dcg / self.idcg


def model_names_in(pool: pd.DataFrame) -> list[str]:
    return [c.removeprefix("z_") for c in pool.columns if c.startswith("z_")]
