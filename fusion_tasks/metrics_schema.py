"""The schema of ``metrics.json``: its version, every key with its type and meaning, and the one reader.

The pipeline writes a date's metrics twice, both stamped with ``schema_version``:
``fused/ds=D/metrics.json`` (``evaluate_run``; ``EVALUATION_SCHEMA``) and, once the gate passed,
``published/metrics/ds=D/metrics.json`` (``publish``; ``PUBLISHED_SCHEMA``: the same keys and the
publication's), also kept by the database sink in ``published_runs.metrics``. The dashboard, the plugin
and the per-user API read published metrics through ``read_published_metrics`` (files) or
``checked_metrics`` (a payload from another sink), which refuse a payload of another version, saying
what to do, or one that breaks the schema, naming the first bad key.

The schemas are JSON Schema restricted to ``type``, ``properties``, ``required``,
``additionalProperties``, ``items``, ``enum``, ``format: date`` and ``description``, checked by
``validate_metrics`` (no dependency). Adding, removing or retyping a key makes a new
``METRICS_SCHEMA_VERSION``: a reader accepts its own version only (and a payload written before the stamp
existed when it has version 1's keys).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fusion_tasks.evaluation.metrics import METRICS
from fusion_tasks.storage import DataRoot

METRICS_SCHEMA_VERSION = 1


class MetricsSchemaError(ValueError):
    """A metrics payload of another schema version, or one that breaks the schema (the message names the key)."""


def _object(properties: dict[str, Any], description: str, optional: tuple[str, ...] = ()) -> dict[str, Any]:
    """An object with exactly ``properties``, all required but ``optional``."""
    return {"type": "object", "description": description, "properties": properties,
            "required": [key for key in properties if key not in optional], "additionalProperties": False}


def _map(values: dict[str, Any], description: str) -> dict[str, Any]:
    """An object whose keys are names (models, methods, modalities...) and whose values follow ``values``."""
    return {"type": "object", "description": description, "additionalProperties": values}


NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
STRING = {"type": "string"}
DATE = {"type": "string", "format": "date"}

METRIC_VALUES = _object(
    {"k": INTEGER, "n_users": INTEGER, "coverage": NUMBER,
     **{name: NUMBER for name in METRICS}, **{f"{name}_se": NUMBER for name in METRICS}},
    "one model or method at one K: the mean of each metric over the users evaluated and its standard "
    "error (<metric>_se), the share of the catalogue recommended, K and the number of users")
METRIC_TABLE = _map(METRIC_VALUES, "base model or fusion method -> its metrics")

EVALUATION_PROPERTIES: dict[str, Any] = {
    "schema_version": {"type": "integer", "enum": [METRICS_SCHEMA_VERSION],
                       "description": "the version of this schema the payload follows"},
    "as_of_date": {**DATE, "description": "the run's date D"},
    "k": {**INTEGER, "description": "K of the published top-K"},
    "holdout": _object({"origin": DATE, "end": DATE}, "the holdout window (origin, end]"),
    "catalogue_size": {**INTEGER, "description": "items that existed at the holdout's origin"},
    "n_users_evaluated": {**INTEGER, "description": "users with a new interaction in the holdout"},
    "chosen_method": {**STRING, "description": "the fusion method of the table (best cross-validated NDCG)"},
    "fusion": _map(_object({"cv_ndcg": NUMBER, "cv_ndcg_per_fold": _map(NUMBER, "fold -> NDCG@K"),
                            "folds": {"type": "array", "items": STRING}, "k": INTEGER,
                            "weights": _map(NUMBER, "base model -> weight")},
                           "a fitted method: its leave-one-fold-out NDCG@K (mean and per fold), the folds, "
                           "K, and the weighted sum's weights", optional=("weights",)),
                   "fusion method -> its cross-validation"),
    "metrics": {**METRIC_TABLE, "description": "the holdout at K, a relevant item new at the origin a miss"},
    "metrics_known_items": {**METRIC_TABLE, "description": "the holdout at K, items known at the origin only"},
    "metrics_by_k": _map(METRIC_TABLE, "K (a string: K and 2K) -> the holdout at that K"),
    "segments": _map(METRIC_TABLE, "segment (long-tail items, users with little history, users without "
                                   "ties) -> the holdout at K of its pairs"),
    "base_models": {"type": "array", "items": STRING, "description": "the base models, in pool order; the "
                                                                     "other names of metrics are fusion methods"},
    "tuning": _map({"type": "object", "required": ["params"], "properties": {"params": {"type": "object"}},
                    "description": "the parameters fitted with and the tuning record (chosen, fold_ndcg, "
                                   "trials, seconds or skipped)"},
                   "base model -> its tuning"),
}
PUBLICATION_PROPERTIES: dict[str, Any] = {
    "gate": _object({"method": STRING, "ndcg": NUMBER, "floor": NUMBER, "tolerance": NUMBER,
                     "passed": {"type": "boolean"}, "reason": {"type": ["string", "null"]},
                     "kind": {"enum": [None, "floor", "regression"]}, "previous_date": DATE,
                     "previous_ndcg": NUMBER},
                    "the quality gate's decision (fused/ds=D/gate.json); the previous published date and its "
                    "NDCG when there is one", optional=("previous_date", "previous_ndcg")),
    "config": {"type": "object", "description": "the run's settings (RunConfig without data_root)"},
    "contribution_share": _map(NUMBER, "contribution group -> its share of the absolute contributions "
                                       "in the published table (they add up to 1)"),
    "extraction": _map(_object({"rows_read": INTEGER, "rows_staged": INTEGER, "rows_quarantined": INTEGER,
                                "quarantine_share": NUMBER,
                                "quarantine_reasons": _map(INTEGER, "reason -> rows")},
                               "from the modality's staged manifest of D"),
                       "modality -> its extraction"),
    "published_table": _object({"rows": INTEGER, "users": INTEGER, "checksum": STRING},
                               "the table published with these metrics"),
}
EVALUATION_SCHEMA = _object(EVALUATION_PROPERTIES, "fused/ds=D/metrics.json: the holdout report of D")
PUBLISHED_SCHEMA = _object({**EVALUATION_PROPERTIES, **PUBLICATION_PROPERTIES},
                           "published/metrics/ds=D/metrics.json and published_runs.metrics: the report and "
                           "how its table was published")


def validate_metrics(payload: Any, *, published: bool = True) -> None:
    """Return when ``payload`` follows ``PUBLISHED_SCHEMA`` (``EVALUATION_SCHEMA`` when not ``published``).

    Raises ``MetricsSchemaError`` for a payload of another ``schema_version`` (before looking at its
    other keys), else naming the first key (``metrics.als.ndcg``) that is missing, unknown or of the
    wrong type.
    """
    if not isinstance(payload, dict):
        raise MetricsSchemaError(f"metrics must be an object, got {_a(_kind_of(payload))}")
    rewrite = "rerun the pipeline for that date to rewrite it"
    if "schema_version" not in payload:  # written before the stamp: read as version 1 when it has its keys
        try:
            _check({**payload, "schema_version": 1}, PUBLISHED_SCHEMA if published else EVALUATION_SCHEMA, "")
        except MetricsSchemaError as err:
            raise MetricsSchemaError(f"written before metrics.json had a version, and not in version 1's keys "
                                     f"({err}); {rewrite}") from None
        return
    version = payload["schema_version"]
    if _is(version, "integer") and version != METRICS_SCHEMA_VERSION:
        newer = version > METRICS_SCHEMA_VERSION
        raise MetricsSchemaError(f"schema_version {version} is {'newer' if newer else 'older'} than the version "
                                 f"this fusionrec reads ({METRICS_SCHEMA_VERSION}); "
                                 + ("upgrade fusionrec to read it" if newer else rewrite))
    _check(payload, PUBLISHED_SCHEMA if published else EVALUATION_SCHEMA, "")


def checked_metrics(payload: Any, source: str) -> dict[str, Any]:
    """``payload`` when it follows ``PUBLISHED_SCHEMA``; else ``MetricsSchemaError`` whose message
    starts with ``source`` (e.g. ``metrics of 2024-04-29``)."""
    try:
        validate_metrics(payload)
    except MetricsSchemaError as err:
        raise MetricsSchemaError(f"{source}: {err}") from None
    return payload


def read_published_metrics(root: DataRoot, day: dt.date) -> dict[str, Any]:
    """The published metrics of ``day`` in the files, checked (``checked_metrics``). Raises
    ``FileNotFoundError`` when the date is not published, ``ValueError`` when the file is not JSON."""
    return checked_metrics(root.read_published_metrics(day), f"metrics of {day.isoformat()}")


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_ARTICLES = {"object": "an object", "array": "an array", "string": "a string", "boolean": "a boolean",
             "integer": "an integer", "number": "a number", "null": "null"}


def _is(value: Any, kind: str) -> bool:
    if kind in ("integer", "number"):
        numeric = int if kind == "integer" else (int, float)
        return isinstance(value, numeric) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def _kind_of(value: Any) -> str:
    """The JSON type of ``value`` (an integer's is ``integer``), else its Python type's name."""
    return next((kind for kind in ("null", "boolean", "integer", "number", "string", "array", "object")
                 if _is(value, kind)), type(value).__name__)


def _a(kind: str) -> str:
    return _ARTICLES.get(kind, kind)


def _check(value: Any, schema: dict[str, Any], key: str) -> None:
    """Raise ``MetricsSchemaError`` naming the first key under ``key`` where ``value`` breaks ``schema``."""
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(value, kind) for kind in kinds):
            raise MetricsSchemaError(f"key {key!r} must be {' or '.join(map(_a, kinds))}, got {_a(_kind_of(value))}")
    if "enum" in schema and value not in schema["enum"]:
        raise MetricsSchemaError(f"key {key!r} must be one of {json.dumps(schema['enum'])}, got {json.dumps(value)}")
    if schema.get("format") == "date" and not _is_date(value):
        raise MetricsSchemaError(f"key {key!r} must be a date (YYYY-MM-DD), got {json.dumps(value)}")
    if isinstance(value, dict):
        for name in schema.get("required", ()):
            if name not in value:
                raise MetricsSchemaError(f"missing key {_join(key, name)!r}")
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for name, item in value.items():
            if name in properties:
                _check(item, properties[name], _join(key, name))
            elif extra is False:
                raise MetricsSchemaError(f"unknown key {_join(key, name)!r}")
            elif isinstance(extra, dict):
                _check(item, extra, _join(key, name))
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            _check(item, schema["items"], f"{key}[{index}]")


def _is_date(value: str) -> bool:
    try:
        return dt.date.fromisoformat(value).isoformat() == value
    except ValueError:
        return False


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name
