"""Training data as of a date: one id vocabulary, per-origin features, and evaluation windows.

For a run on date D, models are fitted at several *origins* (cut-offs) ``fold<k> < test < final = D``
(see ``RunConfig.origins``). Everything a model sees at an origin is true by that origin; the
window after a fold origin is where fusion is tuned, the window after ``test`` is only reported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks import modalities
from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Vocabulary, end_of_day
from fusion_tasks.storage import DataRoot, read_json, read_parquet, write_json, write_parquet


def build_training_data(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Build the vocabulary of D and the relevance of every evaluation window.

    Reads ``staged/<modality>/ds=D`` of every selected modality; writes ``features/ds=D/``
    (``users.parquet``, ``items.parquet``, ``relevance.parquet``, ``manifest.json``) and returns
    the manifest. Raises ``FileNotFoundError`` when a selected modality was not staged for D.
    """
    day = config.as_of_date
    staged = {name: _read_staged(root, name, day) for name in config.modalities}
    users: set[str] = set()
    items: set[str] = set()
    for name, frame in staged.items():
        for column, kind in modalities.get(name).id_columns.items():
            (users if kind == "user" else items).update(frame[column].astype(str).unique())
    vocab = Vocabulary(users=np.array(sorted(users), dtype=object).astype(str),
                       items=np.array(sorted(items), dtype=object).astype(str))
    folder = root.features(day)
    write_parquet(pd.DataFrame({"user_id": vocab.users}), root.features_users(day))
    write_parquet(pd.DataFrame({"item_id": vocab.items}), root.features_items(day))

    behavior = staged["behavior"]
    windows = []
    for origin_name, origin in config.origins().items():
        if origin_name == "final":
            continue
        end = config.window_end(origin_name)
        in_window = behavior.loc[(behavior["timestamp"] >= end_of_day(origin))
                                 & (behavior["timestamp"] < end_of_day(end))]
        before = behavior.loc[behavior["timestamp"] < end_of_day(origin)]
        rel = pd.DataFrame({"user_idx": vocab.user_index(in_window["user_id"]),
                            "item_idx": vocab.item_index(in_window["item_id"])}).drop_duplicates()
        seen = pd.DataFrame({"user_idx": vocab.user_index(before["user_id"]),
                             "item_idx": vocab.item_index(before["item_id"])}).drop_duplicates()
        rel = rel.merge(seen, how="left", indicator=True).query("_merge == 'left_only'").drop(columns="_merge")
        windows.append(rel.assign(origin=origin_name))
    relevance = pd.concat(windows, ignore_index=True).sort_values(["origin", "user_idx", "item_idx"])
    write_parquet(relevance.reset_index(drop=True), root.features_relevance(day))
    counts = relevance.groupby("origin")["user_idx"].nunique().to_dict()
    manifest = {
        "as_of_date": day.isoformat(),
        "n_users": len(vocab.users),
        "n_items": len(vocab.items),
        "modalities": list(config.modalities),
        "origins": {name: d.isoformat() for name, d in config.origins().items()},
        "evaluation_users": {name: int(counts.get(name, 0)) for name in config.origins() if name != "final"},
        "path": str(folder),
    }
    if counts.get("test", 0) == 0:
        raise ValueError(f"no user has new interactions in the holdout window ({config.test_origin}, {day}]; "
                         "a longer holdout_days or more history is needed")
    write_json(root.features_manifest(day), manifest)
    return manifest


def _read_staged(root: DataRoot, name: str, day: dt.date) -> pd.DataFrame:
    path = root.staged(name, day)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: {name} was not staged for {day}; run extract_{name} first")
    return read_parquet(path)


@dataclasses.dataclass
class TrainingData:
    """What a model may see at one origin, on the vocabulary of the run's date.

    ``interactions`` is users x items (summed event weights), ``events`` the events with their day
    (both within ``history_days``), ``seen`` users x items marking every pair done before the origin
    in all history (excluded from candidates), ``features[modality]`` what each modality built,
    ``item_known`` the items that existed by the origin (only those may be recommended there).
    """

    origin_name: str
    origin: dt.date
    vocab: Vocabulary
    events: pd.DataFrame
    interactions: sparse.csr_matrix
    seen: sparse.csr_matrix
    item_known: np.ndarray
    features: dict[str, dict[str, Any]]

    @property
    def n_users(self) -> int:
        return len(self.vocab.users)

    @property
    def n_items(self) -> int:
        return len(self.vocab.items)

    @property
    def origin_day(self) -> int:
        """The origin in days since 1970, the unit of ``events['day']``."""
        return (self.origin - dt.date(1970, 1, 1)).days

    def has(self, modality: str) -> bool:
        return modality in self.features

    @classmethod
    def load(cls, root: DataRoot, config: RunConfig, origin_name: str) -> TrainingData:
        """Assemble the data of one origin from ``staged/`` and ``features/`` of the run's date."""
        day = config.as_of_date
        origin = config.origins()[origin_name]
        vocab = Vocabulary(users=read_parquet(root.features_users(day))["user_id"].to_numpy(str),
                           items=read_parquet(root.features_items(day))["item_id"].to_numpy(str))
        features = {}
        for name in config.modalities:
            modality = modalities.get(name)
            features[name] = modality.build_features(_read_staged(root, name, day), vocab, origin, config)
        return cls.from_features(origin_name, origin, vocab, features)

    @classmethod
    def from_features(cls, origin_name: str, origin: dt.date, vocab: Vocabulary,
                      features: dict[str, dict[str, Any]]) -> TrainingData:
        """Assemble the matrices of one origin from what each modality built for it."""
        events = features["behavior"]["events"]
        interactions = sparse.csr_matrix(
            (events["weight"].to_numpy(), (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())),
            shape=(len(vocab.users), len(vocab.items)))
        interactions.sum_duplicates()
        pairs = features["behavior"]["seen"]
        seen = sparse.csr_matrix((np.ones(len(pairs), dtype=bool),
                                  (pairs["user_idx"].to_numpy(), pairs["item_idx"].to_numpy())),
                                 shape=(len(vocab.users), len(vocab.items)))
        item_known = np.zeros(len(vocab.items), dtype=bool)
        item_known[pairs["item_idx"].to_numpy()] = True
        if "content" in features:
            item_known |= features["content"]["has_content"] | (features["content"]["category_idx"] > 0)
        return cls(origin_name=origin_name, origin=origin, vocab=vocab, events=events,
                   interactions=interactions.astype("float32"), seen=seen, item_known=item_known, features=features)


def load_relevance(root: DataRoot, config: RunConfig, origin_name: str) -> pd.DataFrame:
    """(user_idx, item_idx) pairs new to each user in the window after ``origin_name``."""
    relevance = read_parquet(root.features_relevance(config.as_of_date))
    return relevance.loc[relevance["origin"] == origin_name, ["user_idx", "item_idx"]].reset_index(drop=True)


def load_manifest(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    return read_json(root.features_manifest(config.as_of_date))
