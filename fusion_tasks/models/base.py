"""The contract every base recommender follows (scikit-learn style), and pickle-free persistence."""

from __future__ import annotations

import abc
import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import sparse

from fusion_tasks.storage import MODEL_PARAMS_FILE, MODEL_STATE_FILE, replace_folder
from fusion_tasks.training_data import TrainingData


class BaseRecommender(abc.ABC):
    """A recommender that scores every item of the vocabulary for a batch of users.

    Subclasses set ``name`` (registry key), ``modalities`` (what ``fit`` needs; the model is skipped
    when one is not selected) and ``group`` (the modality its score is credited to in published
    contributions: ``behavior``, ``content``, ``social`` or ``cross``). ``__init__`` only stores
    parameters; ``fit`` sets learned state in attributes ending in ``_`` and returns ``self``.
    Learned state must be numpy arrays, scipy sparse matrices or JSON scalars, so that ``save``
    writes ``params.json`` + ``state.npz`` and ``load`` reads them with ``allow_pickle=False``.
    """

    name: ClassVar[str]
    modalities: ClassVar[tuple[str, ...]] = ("behavior",)
    group: ClassVar[str] = "behavior"
    #: Values tried per parameter when a run tunes the model on its validation folds (the first value
    #: of each is the default). The search is coordinate-wise: see ``fusion_tasks.models.tuning``.
    search_space: ClassVar[dict[str, tuple]] = {}

    @classmethod
    def missing_data(cls, data: TrainingData) -> list[str]:
        """The modalities this model needs that had no data at all at ``data``'s origin: when there is one,
        the model has nothing to say there (its pool columns carry no signal, its tuning is skipped)."""
        return [m for m in cls.modalities if m in data.features and data.features[m].is_empty()]

    @abc.abstractmethod
    def fit(self, data: TrainingData) -> BaseRecommender:
        """Learn from what ``data`` holds at its origin (never anything later); returns ``self``."""

    @abc.abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Scores of shape ``(len(users), n_items)``, float32, finite; higher is better. A new array: the
        caller may change it in place (pool scoring does)."""

    def fit_from(self, data: TrainingData, previous: BaseRecommender) -> BaseRecommender:
        """Fit on ``data`` starting from ``previous``, a fit of the same class on the same data with other
        parameters; returns ``self``. Tuning fits a candidate setting this way from the best setting so far.
        The default ignores ``previous`` (``fit(data)``); a model may reuse what ``previous`` learnt that does not
        depend on the parameters that differ, when that gives the same fit for less work."""
        return self.fit(data)

    def low_rank(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``(left, right)``, float32, with ``score(users) == left @ right.T`` (``len(users) x k`` and
        ``n_items x k``) for a model whose scores are a low-rank product; ``None`` (the default) otherwise. Pool
        scoring then makes such a model's scores in cache-sized blocks and its moments from the factors."""
        return None

    # scikit-learn style parameters -----------------------------------------------------------
    def get_params(self) -> dict[str, Any]:
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    # persistence -----------------------------------------------------------------------------
    def save(self, folder: Path) -> Path:
        """Write ``params.json`` and ``state.npz`` (and ``_save_extra``'s files) into ``folder``; returns it.

        Atomic (``storage.replace_folder``): everything is written into a temporary sibling folder, synced
        to disk, that then replaces ``folder``; a failed write (a full disk) leaves the previous artefacts
        and no partial folder.
        """
        return replace_folder(Path(folder), self._write_artefacts)

    def _write_artefacts(self, folder: Path) -> None:
        arrays: dict[str, np.ndarray] = {}
        scalars: dict[str, Any] = {}
        for key, value in vars(self).items():
            if not key.endswith("_") or key.startswith("_"):
                continue
            if sparse.issparse(value):
                value = value.tocsr()
                arrays.update({f"{key}__data": value.data, f"{key}__indices": value.indices,
                               f"{key}__indptr": value.indptr, f"{key}__shape": np.array(value.shape)})
            elif isinstance(value, np.ndarray):
                arrays[key] = value
            else:
                scalars[key] = value
        np.savez(folder / MODEL_STATE_FILE, **arrays)
        (folder / MODEL_PARAMS_FILE).write_text(json.dumps(
            {"model": self.name, "params": self.get_params(), "state": scalars}, indent=2, sort_keys=True))
        self._save_extra(folder)

    def _save_extra(self, folder: Path) -> None:  # noqa: B027 - an optional hook, empty by default
        """Hook for artefacts that are not arrays (e.g. a Keras model file); ``folder`` is the
        temporary folder that ``save`` renames into place once everything is written."""

    @classmethod
    def load(cls, folder: Path) -> BaseRecommender:
        """Rebuild a fitted model written by ``save`` (no pickle anywhere)."""
        folder = Path(folder)
        meta = json.loads((folder / MODEL_PARAMS_FILE).read_text())
        if meta["model"] != cls.name:
            raise ValueError(f"{folder} holds a {meta['model']!r} model, not {cls.name!r}")
        model = cls(**meta["params"])
        for key, value in meta["state"].items():
            setattr(model, key, value)
        with np.load(folder / MODEL_STATE_FILE, allow_pickle=False) as state:
            names = set(state.files)
            for key in sorted(names):
                if "__" in key:
                    base, part = key.rsplit("__", 1)
                    if part != "data":
                        continue
                    matrix = sparse.csr_matrix(
                        (state[f"{base}__data"], state[f"{base}__indices"], state[f"{base}__indptr"]),
                        shape=tuple(state[f"{base}__shape"]))
                    setattr(model, base, matrix)
                else:
                    setattr(model, key, state[key])
        return model


class FactorModel(BaseRecommender):
    """A model whose fit leaves ``user_factors_`` and ``item_factors_`` (float32): its scores are their product,
    which pool scoring makes in blocks from the factors (``low_rank``)."""

    def score(self, users: np.ndarray) -> np.ndarray:
        return self.user_factors_[users] @ self.item_factors_.T

    def low_rank(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.user_factors_[users], self.item_factors_


def time_decay(days_ago: np.ndarray, half_life_days: float) -> np.ndarray:
    """``0.5 ** (days_ago / half_life)``; a half-life of 0 means no decay."""
    if not half_life_days:
        return np.ones_like(days_ago, dtype="float64")
    return np.power(0.5, np.maximum(days_ago, 0) / half_life_days)


def decayed_interactions(data: TrainingData, half_life_days: float) -> sparse.csr_matrix:
    """Users x items matrix of event weights decayed by age at the origin."""
    events = data.events
    weight = events["weight"].to_numpy() * time_decay(data.origin_day - events["day"].to_numpy(), half_life_days)
    matrix = sparse.csr_matrix((weight, (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())),
                               shape=(data.n_users, data.n_items))
    matrix.sum_duplicates()
    return matrix.astype("float32")


def dense_rows(matrix: sparse.spmatrix | np.ndarray) -> np.ndarray:
    """A float32 dense array from a sparse or dense product."""
    out = matrix.toarray() if sparse.issparse(matrix) else np.asarray(matrix)
    return out.astype("float32", copy=False)
