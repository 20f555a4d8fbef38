"""One typed, frozen run configuration, built in one place from DAG params and the environment."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fusion_tasks import catalogue

PROJECT_ROOT = Path(__file__).resolve().parent.parent

MODALITIES = catalogue.modalities()  # every registered modality; one without landing data is staged empty
DUPLICATE_POLICIES = ("quarantine", "keep")
SINKS = catalogue.sinks()


def default_data_root() -> Path:
    """``$FUSION_DATA_ROOT``, else ``var/`` in the project."""
    return Path(os.environ.get("FUSION_DATA_ROOT") or PROJECT_ROOT / "var")


def default_ciao_dir() -> Path:
    """``$FUSION_CIAO_DIR``, else the shared data folder beside the project."""
    return Path(os.environ.get("FUSION_CIAO_DIR") or PROJECT_ROOT.parent / "shared" / "data" / "ciao")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one run of the pipeline for one logical date needs.

    ``holdout_days`` is the length of the test window that ends at the as-of date (reported, never
    tuned on); ``validation_days`` the length of each of the ``n_folds`` rolling validation
    windows before it (weights and the meta-learner are chosen there).
    """

    as_of_date: dt.date
    data_root: Path = dataclasses.field(default_factory=default_data_root)
    top_k: int = 10
    modalities: tuple[str, ...] = MODALITIES
    methods: tuple[str, ...] = catalogue.methods()  # fitted; the best by cross-validated NDCG is published
    seed: int = 20240601
    holdout_days: int = 14
    validation_days: int = 14
    n_folds: int = 3
    candidates_per_model: int = 50  # the DAG's Param default is the same (tests/dags/test_dag_integrity.py)
    max_quarantine_share: float = 0.05
    ndcg_floor: float = 0.005
    regression_tolerance: float = 0.25
    history_days: int = 0  # training window; 0: all history. Past items are excluded over all history.
    tune_models: bool = True  # tune every base model on the validation folds
    tuning_budget_seconds: float = 600.0  # per model; a default setting over it fails the training task
    landing_wait_hours: float = 6.0  # a missing daily landing partition is awaited until D ends + this
    # Bad input (see the README's landing contract)
    quarantine_min_rejected: int = 5  # a landing file or day fails on its own share only from this many rejects
    earliest_plausible_date: dt.date = dt.date(1995, 1, 1)  # earlier timestamps / valid_from are quarantined
    embedding_dim: int = 0  # declared content embedding length; 0: the most common length
    duplicate_events: str = "quarantine"  # an exact duplicate behaviour event: "quarantine" or "keep"
    volume_window_days: int = 28  # a day's volume is compared with the deliveries of this many days before
    volume_factor: float = 3.0  # anomaly: below the recent minimum / factor or above the maximum * factor
    ties_of_unknown_users: str = "keep"  # a tie of a user with no behaviour event by D: "keep" or "quarantine"
    fail_on_volume_anomaly: bool = False  # False: flag in the manifest and the log; True: fail the extract
    # Publishing (see the README's "Reading the recommendations")
    sinks: tuple[str, ...] = SINKS  # where a date is published; "files" (the source of truth) is required
    database_conn_id: str = "fusionrec_db"  # the database sink's Airflow connection; absent: embedded SQLite

    def __post_init__(self) -> None:
        unknown = set(self.modalities) - set(MODALITIES)
        if unknown or not self.modalities:
            raise ValueError(f"modalities must be a non-empty subset of {MODALITIES}, got {self.modalities}")
        if catalogue.FIRST["modalities"] not in self.modalities:
            raise ValueError("the behavior modality is required: it defines users, items and relevance")
        methods = catalogue.methods()
        if set(self.methods) - set(methods) or not self.methods:
            raise ValueError(f"methods must be a non-empty subset of {methods}, got {self.methods}")
        for name in ("top_k", "holdout_days", "validation_days", "n_folds", "candidates_per_model"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.candidates_per_model < self.top_k:
            raise ValueError("candidates_per_model must be >= top_k")
        if self.tuning_budget_seconds <= 0:
            raise ValueError(f"tuning_budget_seconds must be > 0, got {self.tuning_budget_seconds}")
        if self.landing_wait_hours < 0:
            raise ValueError(f"landing_wait_hours must be >= 0, got {self.landing_wait_hours}")
        if not 0 <= self.max_quarantine_share <= 1:
            raise ValueError("max_quarantine_share must be within [0, 1]")
        if self.ties_of_unknown_users not in ("keep", "quarantine"):
            raise ValueError(f"ties_of_unknown_users must be 'keep' or 'quarantine', "
                             f"got {self.ties_of_unknown_users!r}")
        if self.duplicate_events not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicate_events must be one of {DUPLICATE_POLICIES}, got {self.duplicate_events!r}")
        for name in ("quarantine_min_rejected", "embedding_dim"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if catalogue.FIRST["sinks"] not in self.sinks or set(self.sinks) - set(SINKS):
            raise ValueError(f"sinks must include 'files' (the source of truth) and be a subset of "
                             f"{SINKS}, got {self.sinks}")
        if self.volume_window_days < 1 or self.volume_factor < 1:
            raise ValueError("volume_window_days must be >= 1 and volume_factor >= 1")

    @property
    def test_origin(self) -> dt.date:
        """The cut-off of the holdout: models are fitted on data up to it, scored on the window after."""
        return self.as_of_date - dt.timedelta(days=self.holdout_days)

    def origins(self) -> dict[str, dt.date]:
        """Named training cut-offs, oldest first: ``fold<k>`` (validation), ``test``, ``final``."""
        named = {}
        for k in range(self.n_folds, 0, -1):
            named[f"fold{k}"] = self.test_origin - dt.timedelta(days=k * self.validation_days)
        named["test"] = self.test_origin
        named["final"] = self.as_of_date
        return named

    def window_end(self, origin: str) -> dt.date:
        """Last day of the evaluation window that follows an origin."""
        start = self.origins()[origin]
        days = self.holdout_days if origin == "test" else self.validation_days
        return start + dt.timedelta(days=days)

    def seed_for(self, component: str, origin: str = "") -> int:
        """A seed derived from (base seed, as-of date, component, origin): reruns repeat, streams differ."""
        text = f"{self.seed}|{self.as_of_date.isoformat()}|{component}|{origin}"
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["as_of_date"] = self.as_of_date.isoformat()
        out["earliest_plausible_date"] = self.earliest_plausible_date.isoformat()
        out["data_root"] = str(self.data_root)
        out["modalities"] = list(self.modalities)
        out["methods"] = list(self.methods)
        out["sinks"] = list(self.sinks)
        return out

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The default of every setting but ``as_of_date`` and ``data_root``, as plain JSON values."""
        out = {}
        for field in dataclasses.fields(cls):
            if field.name in ("as_of_date", "data_root"):
                continue
            value = field.default
            if isinstance(value, dt.date):
                value = value.isoformat()
            out[field.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> RunConfig:
        """Build from plain values (DAG params, JSON); unknown keys raise ``TypeError``."""
        kwargs = dict(values)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(kwargs) - fields
        if unknown:
            raise TypeError(f"unknown run settings: {sorted(unknown)}")
        for key in ("as_of_date", "earliest_plausible_date"):
            if isinstance(kwargs.get(key), str):
                kwargs[key] = dt.date.fromisoformat(kwargs[key])
        if kwargs.get("data_root") in (None, ""):
            kwargs.pop("data_root", None)
        else:
            kwargs["data_root"] = Path(kwargs["data_root"])
        for key in ("modalities", "methods", "sinks"):
            if key in kwargs:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)
