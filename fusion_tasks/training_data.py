"""Training data as of a date: one id vocabulary, per-origin features, and evaluation windows.

For a run on date D, models are fitted at several *origins* (cut-offs) ``fold<k> < test < final = D``
(see ``RunConfig.origins``). Everything a model sees at an origin is true by that origin; the
window after a fold origin is where fusion is tuned, the window after ``test`` is only reported.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from fusion_tasks import arrays, modalities
from fusion_tasks.config import RunConfig
from fusion_tasks.modalities.base import Features, Vocabulary, end_of_day, pair_keys, unique_pairs
from fusion_tasks.storage import DataRoot, read_json, read_parquet, replace_folder, write_json, write_parquet


def build_training_data(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Build the vocabulary of D, the relevance of every evaluation window and, once per origin, what every
    modality builds for it (read by every model's training and by the pools: ``TrainingData.load``).

    Reads ``staged/<modality>/ds=D`` of every selected modality; writes ``features/ds=D/``
    (``users.parquet``, ``items.parquet``, ``relevance.parquet``, ``origin=<origin>/``, ``manifest.json``)
    and returns the manifest. Raises ``FileNotFoundError`` when a selected modality was not staged for D.
    """
    day = config.as_of_date
    staged = {name: _read_staged(root, name, day) for name in config.modalities}
    # each id column is hashed once: its codes and distinct ids make the vocabulary, then become its rows
    factorized = {(name, column): (kind, *pd.factorize(frame[column].astype(str)))
                  for name, frame in staged.items() for column, kind in modalities.get(name).id_columns.items()}
    ids = {kind: set() for kind in ("user", "item")}
    for kind, _, distinct in factorized.values():
        ids[kind].update(distinct)
    vocab = Vocabulary(users=np.array(sorted(ids["user"]), dtype=object).astype(str),
                       items=np.array(sorted(ids["item"]), dtype=object).astype(str))
    for (name, column), (kind, codes, distinct) in factorized.items():
        staged[name][column] = vocab.encode(codes, pd.Index(distinct), kind)
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
        n_items = len(vocab.items)
        rel = unique_pairs(vocab.user_index(in_window["user_id"]), vocab.item_index(in_window["item_id"]), n_items)
        seen = arrays.unique(pair_keys(vocab.user_index(before["user_id"]), vocab.item_index(before["item_id"]),
                                       n_items))
        new = ~arrays.contains(seen, pair_keys(rel["user_idx"].to_numpy(), rel["item_idx"].to_numpy(), n_items))
        rel = rel.loc[new]
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
    started = time.perf_counter()
    for origin_name, origin in config.origins().items():
        built = {name: modalities.get(name).build_features(frame, vocab, origin, config)
                 for name, frame in staged.items()}
        save_features(root.origin_features(day, origin_name), built)
    manifest["feature_seconds"] = round(time.perf_counter() - started, 3)
    write_json(root.features_manifest(day), manifest)
    return manifest


def save_features(folder: Path, features: dict[str, Features]) -> Path:
    """Write what each modality built for one origin into ``folder`` (atomically replaced), without pickle."""
    def write(tmp: Path) -> None:
        write_json(tmp / "layout.json", {name: built.save(tmp, name) for name, built in features.items()})

    return replace_folder(folder, write)


def load_features(folder: Path) -> dict[str, Features]:
    """What ``save_features`` wrote: each modality's ``Features``, with the same types."""
    if not (folder / "layout.json").is_file():
        raise FileNotFoundError(f"{folder}: no features for this origin; run build_training_data first")
    return {name: modalities.get(name).features.load(folder, name, layout)
            for name, layout in read_json(folder / "layout.json").items()}


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
    in all history (excluded from candidates), ``features[modality]`` what each modality built (its
    ``Features``),
    ``item_known`` the items that existed by the origin (only those may be recommended there).
    """

    origin_name: str
    origin: dt.date
    vocab: Vocabulary
    events: pd.DataFrame
    interactions: sparse.csr_matrix
    seen: sparse.csr_matrix
    item_known: np.ndarray
    features: dict[str, Features]

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
        """Assemble the data of one origin from what ``build_training_data`` stored for it."""
        day = config.as_of_date
        origin = config.origins()[origin_name]
        vocab = Vocabulary(users=read_parquet(root.features_users(day))["user_id"].to_numpy(str),
                           items=read_parquet(root.features_items(day))["item_id"].to_numpy(str))
        features = load_features(root.origin_features(day, origin_name))
        return cls.from_features(origin_name, origin, vocab, {name: features[name] for name in config.modalities})

    @classmethod
    def from_features(cls, origin_name: str, origin: dt.date, vocab: Vocabulary,
                      features: dict[str, Features]) -> TrainingData:
        """Assemble the matrices of one origin from what each modality built for it."""
        events = features["behavior"].events
        interactions = sparse.csr_matrix(
            (events["weight"].to_numpy(), (events["user_idx"].to_numpy(), events["item_idx"].to_numpy())),
            shape=(len(vocab.users), len(vocab.items)))
        interactions.sum_duplicates()
        pairs = features["behavior"].seen
        seen = sparse.csr_matrix((np.ones(len(pairs), dtype=bool),
                                  (pairs["user_idx"].to_numpy(), pairs["item_idx"].to_numpy())),
                                 shape=(len(vocab.users), len(vocab.items)))
        item_known = np.zeros(len(vocab.items), dtype=bool)
        item_known[pairs["item_idx"].to_numpy()] = True
        if "content" in features:
            item_known |= features["content"].has_content | (features["content"].category_idx > 0)
        return cls(origin_name=origin_name, origin=origin, vocab=vocab, events=events,
                   interactions=interactions.astype("float32"), seen=seen, item_known=item_known, features=features)


def load_relevance(root: DataRoot, config: RunConfig, origin_name: str) -> pd.DataFrame:
    """(user_idx, item_idx) pairs new to each user in the window after ``origin_name``."""
    relevance = read_parquet(root.features_relevance(config.as_of_date))
    return relevance.loc[relevance["origin"] == origin_name, ["user_idx", "item_idx"]].reset_index(drop=True)


def load_manifest(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    return read_json(root.features_manifest(config.as_of_date))
