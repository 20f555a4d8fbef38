"""The fused top-K table of a date, its output contract, and its atomic publication."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pandas as pd

from fusion_tasks.config import RunConfig
from fusion_tasks.contract import COLUMNS, CONTRIBUTIONS
from fusion_tasks.fusion import methods
from fusion_tasks.fusion.candidates import load_pool
from fusion_tasks.gate_text import describe_gate
from fusion_tasks.metrics_schema import checked_metrics
from fusion_tasks.sinks import REGISTRY as SINKS
from fusion_tasks.sinks import (
    Database,
    DatabaseSink,
    FileSink,
    PreparedLoad,
    Publication,
    Sink,
    SinkError,
    table_checksum,
)
from fusion_tasks.storage import DataRoot, new_version_id, read_json, read_parquet, write_parquet


class OutputContractError(ValueError):
    """A recommendation table breaks the published contract."""


def fuse_recommendations(root: DataRoot, config: RunConfig) -> dict[str, Any]:
    """Rank the final pool (models fitted on all data up to D) with the chosen fusion method.

    Writes ``fused/ds=D/recommendations.parquet`` with ``COLUMNS``: for each user of the
    vocabulary at most ``top_k`` items, rank 1..n, the fused score and each modality's additive
    contribution to it (they sum to the score).
    """
    pool = load_pool(root, config, "final")
    fitted = methods.load_fitted_methods(root, config)
    method = methods.choose_method(fitted)
    scores, parts = methods.scores_and_contributions(method, fitted[method], pool)
    parts = parts.reindex(columns=CONTRIBUTIONS, fill_value=0.0)
    ranked = methods.top_k(pool, scores, config.top_k)
    order = np.lexsort((pool["item_idx"].to_numpy(), -scores, pool["user_idx"].to_numpy()))
    best = order[pool.iloc[order].groupby("user_idx").cumcount().to_numpy() < config.top_k]
    users = read_parquet(root.features_users(config.as_of_date))["user_id"].to_numpy()
    items = read_parquet(root.features_items(config.as_of_date))["item_id"].to_numpy()
    table = pd.DataFrame({
        "user_id": users[ranked["user_idx"].to_numpy()],
        "item_id": items[ranked["item_idx"].to_numpy()],
        "rank": ranked["rank"].astype("int32").to_numpy(),
        "score": ranked["score"].astype("float64").to_numpy(),
    })
    for column in CONTRIBUTIONS:
        table[column] = parts[column].to_numpy()[best]
    catalogue = set(items.tolist())
    check_output_contract(table, config.top_k, catalogue)
    path = write_parquet(table, root.fused_recommendations(config.as_of_date))
    n_users = table["user_id"].nunique()
    return {"method": method, "path": str(path), "rows": len(table), "users": int(n_users),
            "users_in_scope": len(users), "users_with_fewer_than_k": int((table.groupby("user_id").size()
                                                                          < config.top_k).sum())}


def check_output_contract(table: pd.DataFrame, k: int, catalogue: set[str]) -> None:
    """Raise ``OutputContractError`` unless: only ``COLUMNS``; at most k rows per user; ranks 1..n
    unique; no duplicate items per user; every item in the catalogue; scores finite and
    non-increasing with rank; contributions finite."""
    problems = []
    if list(table.columns) != COLUMNS:
        problems.append(f"columns {list(table.columns)} != {COLUMNS}")
    else:
        per_user = table.groupby("user_id")
        if (per_user.size() > k).any():
            problems.append(f"{int((per_user.size() > k).sum())} users have more than {k} rows")
        ordered = table.sort_values(["user_id", "rank"])
        if not (ordered["rank"].to_numpy() == ordered.groupby("user_id").cumcount().to_numpy() + 1).all():
            problems.append("ranks are not 1..n per user")
        if table.duplicated(["user_id", "item_id"]).any():
            problems.append(f"{int(table.duplicated(['user_id', 'item_id']).sum())} duplicate (user, item) rows")
        unknown = ~table["item_id"].isin(catalogue)
        if unknown.any():
            problems.append(f"{int(unknown.sum())} items are not in the catalogue")
        numbers = table[["score", *CONTRIBUTIONS]].to_numpy(dtype="float64")
        if not np.isfinite(numbers).all():
            problems.append("non-finite score or contribution")
        increasing = ordered.groupby("user_id")["score"].diff().fillna(0) > 1e-9
        if increasing.any():
            problems.append(f"{int(increasing.sum())} scores increase with rank")
    if problems:
        raise OutputContractError("recommendation table breaks the output contract: " + "; ".join(problems))


def contribution_shares(table: pd.DataFrame) -> dict[str, float]:
    """Each group's share of the published scores: the sum of the absolute values of its contribution
    column over all rows, divided by the same sum over all groups (shares add up to 1; all 0 when every
    contribution is 0). Keys are the group names (``behavior``, ``content``, ``social``, ``cross``,
    ``context``)."""
    magnitude = table[CONTRIBUTIONS].abs().sum()
    total = float(magnitude.sum())
    return {column.removeprefix("contribution_"): (float(value) / total if total > 0 else 0.0)
            for column, value in magnitude.items()}


def extraction_summary(root: DataRoot, config: RunConfig) -> dict[str, dict[str, Any]]:
    """Per selected modality, from its staged manifest of D: rows read, staged and quarantined, the
    quarantined share and the count per reject reason. A modality without a manifest is left out."""
    out = {}
    for modality in config.modalities:
        path = root.staged_manifest(modality, config.as_of_date)
        if not path.is_file():
            continue
        manifest = read_json(path)
        out[modality] = {key: manifest.get(key) for key in ("rows_read", "rows_staged", "rows_quarantined",
                                                            "quarantine_share", "quarantine_reasons")}
    return out


def publish(root: DataRoot, config: RunConfig, database: Database | None = None) -> dict[str, Any]:
    """Publish D's recommendations and metrics to every sink of ``config.sinks``, as one new version.

    Refuses (``PermissionError``) when the quality gate did not pass for D, and (``MetricsSchemaError``) when
    the metrics would not follow ``fusion_tasks.metrics_schema.PUBLISHED_SCHEMA``. ``database`` is the
    database sink's database (default: the embedded SQLite of the data root).

    Under the date's lock, every sink is *prepared* (written, not visible) before any is *committed*, so a
    sink that cannot take the version (unreachable, wrong credentials, an older schema) fails the publish
    with ``SinkError`` and every sink keeps its previous version. The file sink is the source of truth and
    commits first; if a later sink fails to commit, the error says so and a rerun publishes a new version
    to all of them. Sinks that disagreed before this publish (a failure between two commits) are named
    in ``repaired``.
    """
    day = config.as_of_date
    gate = read_json(root.fused_gate(day))
    if not gate["passed"]:
        raise PermissionError(f"quality gate did not pass for {config.as_of_date}: {gate['reason']}")
    table = read_parquet(root.fused_recommendations(day))
    check_output_contract(table, config.top_k, set(read_parquet(root.features_items(day))["item_id"].tolist()))
    report = read_json(root.fused_metrics(day))
    report["gate"] = gate
    settings = {key: value for key, value in config.to_dict().items() if key != "data_root"}
    report["config"] = settings
    report["contribution_share"] = contribution_shares(table)
    report["extraction"] = extraction_summary(root, config)
    checksum = table_checksum(table)
    report["published_table"] = {"rows": len(table), "users": int(table["user_id"].nunique()), "checksum": checksum}
    checked_metrics(report, f"the metrics to publish for {day.isoformat()}")
    publication = Publication(
        ds=config.as_of_date, version_id=new_version_id(), method=report["chosen_method"], table=table,
        metrics=report, checksum=checksum, gate_decision=describe_gate(gate, config.top_k),
        config=settings, published_at=dt.datetime.now(dt.UTC))
    written = write_to_sinks(root, publication, build_sinks(config.sinks, root, database))
    return {"rows": len(table), "users": int(table["user_id"].nunique()), "method": report["chosen_method"],
            "version": publication.version_id, "checksum": publication.checksum, **written,
            "recommendations": str(root.published("recommendations", config.as_of_date)),
            "metrics": str(root.metrics_path(config.as_of_date))}


def write_to_sinks(root: DataRoot, publication: Publication, targets: list[Sink]) -> dict[str, list[str]]:
    """Prepare ``publication`` in every sink, then commit them in order, under the date's lock (see
    ``publish``). Returns the sinks committed and those that disagreed with the file sink before."""
    day = publication.ds
    with root.publish_lock(day):
        before = {sink.name: sink.current(day) for sink in targets}
        truth = before.get(FileSink.name)
        repaired = sorted(name for name, version in before.items()
                          if name != FileSink.name and truth is not None and version != truth)
        prepared: list[tuple[Sink, PreparedLoad]] = []
        try:
            for sink in targets:
                prepared.append((sink, sink.prepare(publication)))
        except BaseException:
            for _, load in prepared:
                load.abort()
            raise
        committed: list[str] = []
        for sink, load in prepared:
            try:
                load.commit()
            except Exception as err:
                for _, later in prepared[len(committed) + 1:]:
                    later.abort()
                raise SinkError(f"{day}: version {publication.version_id} is current in {committed or 'no sink'} "
                                f"but the {sink.name} sink failed to commit ({err}); rerun the publish to bring "
                                "every sink to one version") from err
            committed.append(sink.name)
    return {"sinks": committed, "repaired": repaired}


def build_sinks(names: tuple[str, ...], root: DataRoot, database: Database | None = None) -> list[Sink]:
    """The sinks named in ``names``, the file sink first (the source of truth commits first)."""
    built: list[Sink] = []
    for name in sorted(names, key=lambda n: n != FileSink.name):
        if name == FileSink.name:
            built.append(FileSink(root))
        elif name == DatabaseSink.name:
            built.append(DatabaseSink(database or Database.sqlite(root.serving_db())))
        else:
            raise ValueError(f"unknown sink {name!r}; registered: {sorted(SINKS)}")
    return built
