"""What the per-user API answers and the example consumer exports, read from the database sink.

``user_recommendations`` is the body of ``GET /fusionrec/api/v1/recommendations/{user_id}``: the ranked items
of a user for a published date, each with its score, its per-modality contributions, their shares and a
sentence saying which modality the item is mostly recommended for. ``published_metrics`` is the body of
``GET /fusionrec/api/v1/metrics/{ds}`` before it is reduced to numbers.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fusion_tasks import modalities
from fusion_tasks.contract import CONTRIBUTION_GROUPS
from fusion_tasks.metrics_schema import checked_metrics
from fusion_tasks.sinks.database import Database
from fusion_tasks.storage import DataRoot, atomic_path

# what each contribution group's share is explained by: every registered modality's own ``reason`` (its name
# when it declares none), then the groups that belong to no modality
REASONS = {
    **{name: modality.reason or f"its {name.replace('_', ' ')} signal"
       for name, modality in modalities.REGISTRY.items()},
    "cross": "how your signals combine",
    "context": "what is popular and recent",
}
MAX_K = 200


class NotPublishedError(LookupError):
    """Nothing published for the user (or the date) asked for; the message says which."""


def explain(contributions: dict[str, float]) -> dict[str, Any]:
    """Each group's share of the item's score (absolute contributions, summing to 1) and a sentence naming
    the main one: "mostly because of what people you trust rated" when it has half or more of the score,
    "because of A and B" otherwise."""
    magnitude = {group: abs(float(contributions.get(group, 0.0))) for group in CONTRIBUTION_GROUPS}
    total = sum(magnitude.values())
    shares = {group: (value / total if total > 0 else 0.0) for group, value in magnitude.items()}
    ranked = sorted((g for g in shares if shares[g] > 0), key=lambda g: -shares[g])
    if not ranked:
        return {"shares": shares, "main": None, "text": "no signal beyond the item's rank"}
    main = ranked[0]
    if shares[main] >= 0.5 or len(ranked) == 1:
        text = f"mostly because of {REASONS[main]}"
    else:
        text = f"because of {REASONS[main]} and {REASONS[ranked[1]]}"
    return {"shares": shares, "main": main, "text": text}


def user_recommendations(database: Database, user_id: str, day: dt.date | None = None, k: int = 10) -> dict[str, Any]:
    """The user's top ``k`` for ``day`` (default: the newest published date). Raises ``NotPublishedError``."""
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be within 1..{MAX_K}, got {k}")
    found = database.user_recommendations(user_id, day, k)
    if found is None:
        dates = database.user_dates(user_id)
        if not dates:
            raise NotPublishedError(f"no recommendations were published for user {user_id!r}")
        which = day.isoformat() if day is not None else "the newest published date"
        raise NotPublishedError(f"no recommendations for user {user_id!r} on {which}; published for them: "
                       f"{', '.join(d.isoformat() for d in dates[-5:])}")
    published, rows = found
    items = []
    for row in rows:
        contributions = {group: float(row[f"contribution_{group}"]) for group in CONTRIBUTION_GROUPS}
        items.append({"rank": int(row["rank"]), "item_id": row["item_id"], "score": float(row["score"]),
                      "contributions": contributions, "explanation": explain(contributions)})
    return {"user_id": user_id, "ds": published.isoformat(), "version": rows[0]["version_id"],
            "method": rows[0]["method"], "k": k, "items": items}


def published_metrics(database: Database, day: dt.date) -> dict[str, Any]:
    """``{"ds", "version", "metrics"}`` of ``day`` in the database sink, the metrics checked against the schema
    (``MetricsSchemaError`` naming the date). Raises ``NotPublishedError`` when the date is not there."""
    run = database.published_run(day) if database.has_schema() else None
    if run is None:
        raise NotPublishedError(f"no metrics published for {day.isoformat()}")
    return {"ds": day, "version": run["version_id"],
            "metrics": checked_metrics(run["metrics"], f"metrics of {day.isoformat()} in the database sink")}


def export_csv(database: Database, root: DataRoot, day: dt.date) -> dict[str, Any]:
    """Write ``day``'s rows from the database sink to ``root.export_path(day)`` (atomically); ``NotPublishedError``
    when the date is not in the database."""
    import pandas as pd

    run = database.published_run(day)
    if run is None:
        raise NotPublishedError(f"{day.isoformat()} is not published in the database sink {database.location}")
    columns = ("user_id", "item_id", "rank", "score", *(f"contribution_{g}" for g in CONTRIBUTION_GROUPS))
    with database.reading() as conn:
        rows = database.execute(conn, f"SELECT {', '.join(columns)} FROM recommendations WHERE ds = ? AND "
                                      "version_id = ? ORDER BY user_id, rank",
                                (day.isoformat(), run["version_id"])).fetchall()
    path = root.export_path(day)
    with atomic_path(path) as tmp:
        pd.DataFrame(rows, columns=list(columns)).to_csv(tmp, index=False)
    return {"ds": day.isoformat(), "version": run["version_id"], "rows": len(rows), "path": str(path)}
