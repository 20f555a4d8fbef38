"""What the dashboard shows, built from the published metrics only (``published/metrics/ds=D/metrics.json``,
read and checked by ``fusion_tasks.metrics_schema.read_published_metrics``).

``dashboard_data`` reads every published date and returns plain JSON: one value per published date
(oldest first) for each series, ``None`` where a date lacks it. Model and method names come from the
files, never from a list here, so a new base model or fusion method shows up by itself. Nothing
per user or per item is returned: only aggregate metrics, shares and counts.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from fusion_tasks.gate_text import describe_gate
from fusion_tasks.metrics_schema import MetricsSchemaError, read_published_metrics
from fusion_tasks.storage import DataRoot

CHART_METRICS = ("ndcg", "recall", "hit_rate", "coverage")
SEGMENT_METRICS = ("ndcg", "recall", "hit_rate", "coverage", "n_users")


def _number(value: Any) -> float | int | None:
    """A JSON-safe number, or None (strings, booleans, NaN and infinities are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def aggregate_metrics(payload: Any) -> dict[str, dict[str, float | int | None]]:
    """``payload["metrics"]`` reduced to name -> metric -> number; everything else is dropped.

    Non-finite numbers become None (JSON has no NaN); non-numeric values and non-mapping entries are left out.
    """
    metrics = payload.get("metrics") if isinstance(payload, dict) else None
    if not isinstance(metrics, dict):
        return {}
    out: dict[str, dict[str, float | int | None]] = {}
    for method, values in metrics.items():
        if not isinstance(values, dict):
            continue
        out[str(method)] = {
            str(name): _number(value)
            for name, value in values.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    return out


class UnreadableMetricsError(ValueError):
    """A date's published metrics exist but cannot be read (bad JSON, a folder or a link loop in place,
    a dangling link) or do not follow the metrics schema (another version, a missing or mistyped key)."""


def read_metrics(root: DataRoot, day: dt.date) -> dict[str, Any] | None:
    """The published metrics of ``day``, checked against the schema; None when the date has none;
    ``UnreadableMetricsError`` naming the date when its entry is there but cannot be read or checked."""
    link = root.published("metrics", day)
    try:
        return read_published_metrics(root, day)  # retries a read that races a publish
    except FileNotFoundError:
        if link.is_symlink() and not link.exists():
            raise UnreadableMetricsError(f"metrics of {day.isoformat()} are unreadable: dangling link") from None
        return None
    except MetricsSchemaError as err:  # names the date
        raise UnreadableMetricsError(str(err)) from None
    except ValueError as err:
        raise UnreadableMetricsError(f"metrics of {day.isoformat()} are not valid JSON") from err
    except (OSError, RuntimeError) as err:  # a folder in place of the file (OSError), a link loop
        raise UnreadableMetricsError(f"metrics of {day.isoformat()} are unreadable: {type(err).__name__}") from err


def listed_dates(root: DataRoot) -> list[dt.date]:
    """Dates with a published metrics entry, readable or not (a broken link is listed, to be marked)."""
    base = root.published_dir("metrics")
    days = set(root.published_dates("metrics"))
    if base.is_dir():
        for entry in base.iterdir():
            if entry.name.startswith("ds=") and (entry.is_symlink() or entry.is_dir()):
                try:
                    days.add(dt.date.fromisoformat(entry.name.removeprefix("ds=")))
                except ValueError:
                    continue
    return sorted(days)


def read_published(root: DataRoot) -> list[tuple[dt.date, dict[str, Any] | None]]:
    """Every published date with its metrics, oldest first; None for a date that cannot be read."""
    out = []
    for day in listed_dates(root):
        try:
            payload = read_metrics(root, day)
        except UnreadableMetricsError:
            out.append((day, None))
            continue
        if payload is not None:  # None: unpublished between listing and reading
            out.append((day, payload))
    return out


def _ordered_union(lists: list[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)


def dashboard_data(root: DataRoot) -> dict[str, Any]:
    """The dashboard's JSON. Keys:

    - ``dates``: published dates (ISO), oldest first; ``k``: the K of each date;
    - ``base_models`` and ``methods``: names found in the files (base models as each file lists them
      in ``base_models``; methods are the other entries of ``metrics``);
    - ``metrics``: ``{metric: {name: [value per date]}}`` for ``CHART_METRICS`` (holdout, at K);
    - ``decisions``: per date, the chosen method, whether the gate passed, its kind, the numbers it
      compared and its decision as a sentence;
    - ``contribution_share``: ``{group: [share per date]}``, each group's share of the published scores;
    - ``quarantine``: ``{modality: [rows quarantined per date]}`` and ``quarantine_share`` alike;
    - ``segments``: ``{date: {segment: {name: {metric: value}}}}`` for ``SEGMENT_METRICS``;
    - ``unreadable``: dates whose metrics file could not be read.
    """
    published = read_published(root)
    readable = [(day, payload) for day, payload in published if payload is not None]
    payloads = [payload for _, payload in readable]
    dates = [day.isoformat() for day, _ in readable]

    def mapping(payload: dict[str, Any], key: str) -> dict[str, Any]:
        value = payload.get(key)
        return value if isinstance(value, dict) else {}

    names = _ordered_union([list(mapping(p, "metrics")) for p in payloads])
    base = _ordered_union([[n for n in p.get("base_models") or [] if isinstance(n, str)] for p in payloads])
    base_models = [name for name in base if name in names]
    methods = [name for name in names if name not in base]

    metrics = {metric: {name: [_number(mapping(mapping(p, "metrics"), name).get(metric)) for p in payloads]
                        for name in names}
               for metric in CHART_METRICS}

    decisions = []
    for day, payload in readable:
        gate = mapping(payload, "gate")
        k = _number(payload.get("k"))
        sentence = None
        if {"method", "ndcg", "floor", "tolerance", "passed"} <= set(gate) and k is not None:
            sentence = describe_gate(gate, int(k))
        decisions.append({
            "date": day.isoformat(), "chosen_method": payload.get("chosen_method"), "k": k,
            "passed": gate.get("passed"), "kind": gate.get("kind"), "ndcg": _number(gate.get("ndcg")),
            "floor": _number(gate.get("floor")), "tolerance": _number(gate.get("tolerance")),
            "previous_date": gate.get("previous_date"), "previous_ndcg": _number(gate.get("previous_ndcg")),
            "decision": sentence,
        })

    groups = _ordered_union([list(mapping(p, "contribution_share")) for p in payloads])
    shares = {group: [_number(mapping(p, "contribution_share").get(group)) for p in payloads] for group in groups}

    modalities = _ordered_union([list(mapping(p, "extraction")) for p in payloads])
    quarantine = {m: [_number(mapping(mapping(p, "extraction"), m).get("rows_quarantined")) for p in payloads]
                  for m in modalities}
    quarantine_share = {m: [_number(mapping(mapping(p, "extraction"), m).get("quarantine_share")) for p in payloads]
                        for m in modalities}

    segments = {}
    for day, payload in readable:
        segments[day.isoformat()] = {
            segment: {name: {metric: _number(values.get(metric)) for metric in SEGMENT_METRICS}
                      for name, values in table.items() if isinstance(values, dict)}
            for segment, table in mapping(payload, "segments").items() if isinstance(table, dict)
        }

    return {
        "dates": dates,
        "k": [_number(p.get("k")) for p in payloads],
        "base_models": base_models,
        "methods": methods,
        "metrics": metrics,
        "decisions": decisions,
        "contribution_share": shares,
        "quarantine": quarantine,
        "quarantine_share": quarantine_share,
        "segments": segments,
        "unreadable": [day.isoformat() for day, payload in published if payload is None],
    }
