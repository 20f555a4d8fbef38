"""What the dashboard shows, built from the published metrics only (``published/metrics/ds=D/metrics.json``).

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


def read_published(root: DataRoot) -> list[tuple[dt.date, dict[str, Any] | None]]:
    """Every published date with its metrics, oldest first; None for a file that is not valid JSON."""
    out = []
    for day in root.published_dates("metrics"):
        try:
            payload = root.read_published_metrics(day)
        except FileNotFoundError:  # unpublished between listing and reading
            continue
        except ValueError:
            out.append((day, None))
            continue
        out.append((day, payload if isinstance(payload, dict) else None))
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
