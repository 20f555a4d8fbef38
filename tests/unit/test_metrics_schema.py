"""The metrics.json schema: what it accepts, what it refuses (naming the key), other versions, and its
readers (the dashboard, the plugin's routes, the per-user API) marking a bad date instead of serving it.

What a real pipeline run writes is checked in ``test_pipeline_quality.py`` (it reuses that run).
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from fusion_tasks.dashboard import dashboard_data
from fusion_tasks.evaluation.metrics import METRICS
from fusion_tasks.metrics_schema import (
    METRICS_SCHEMA_VERSION,
    PUBLICATION_PROPERTIES,
    MetricsSchemaError,
    read_published_metrics,
    validate_metrics,
)
from fusion_tasks.serving import published_metrics
from fusion_tasks.storage import DataRoot, publish_version

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
OLD, NEW = dt.date(2024, 4, 28), dt.date(2024, 4, 29)


def metric_values(ndcg: float) -> dict[str, Any]:
    return {"k": 10, "n_users": 5, "coverage": 0.5, **{m: ndcg for m in METRICS}, **{f"{m}_se": 0.01 for m in METRICS}}


def table() -> dict[str, Any]:
    return {"als": metric_values(0.1), "weighted_sum": metric_values(0.2)}


def published() -> dict[str, Any]:
    """A small payload of every published key."""
    return {
        "schema_version": METRICS_SCHEMA_VERSION, "as_of_date": "2024-04-29", "k": 10,
        "holdout": {"origin": "2024-04-15", "end": "2024-04-29"}, "catalogue_size": 120, "n_users_evaluated": 5,
        "chosen_method": "weighted_sum",
        "fusion": {"weighted_sum": {"cv_ndcg": 0.2, "cv_ndcg_per_fold": {"fold1": 0.2}, "folds": ["fold1"], "k": 10,
                                    "weights": {"als": 1.0}},
                   "stacking": {"cv_ndcg": 0.1, "cv_ndcg_per_fold": {"fold1": 0.1}, "folds": ["fold1"], "k": 10}},
        "metrics": table(), "metrics_known_items": table(), "metrics_by_k": {"10": table(), "20": table()},
        "segments": {"long_tail_items": table()}, "base_models": ["als"],
        "tuning": {"als": {"params": {"factors": 32}, "chosen": {}, "fold_ndcg": None, "trials": []}},
        "gate": {"method": "weighted_sum", "ndcg": 0.2, "floor": 0.005, "tolerance": 0.25, "passed": True,
                 "reason": None, "kind": None, "previous_date": "2024-04-28", "previous_ndcg": 0.19},
        "config": {"top_k": 10}, "contribution_share": {"behavior": 1.0, "content": 0.0},
        "extraction": {"behavior": {"rows_read": 10, "rows_staged": 9, "rows_quarantined": 1, "quarantine_share": 0.1,
                                    "quarantine_reasons": {"user_id: null": 1}}},
        "published_table": {"rows": 50, "users": 5, "checksum": "ab12"},
    }


def changed(path: str, value: Any = None, *, delete: bool = False) -> dict[str, Any]:
    """``published()`` with the key at the dotted ``path`` set to ``value`` (or removed)."""
    payload = published()
    *parents, last = path.split(".")
    target = payload
    for key in parents:
        target = target[key]
    if delete:
        del target[last]
    else:
        target[last] = value
    return payload


def test_a_payload_of_every_key_passes_and_the_evaluation_keys_alone_are_the_fused_file():
    validate_metrics(published())
    evaluation = {k: v for k, v in published().items() if k not in PUBLICATION_PROPERTIES}
    validate_metrics(evaluation, published=False)
    with pytest.raises(MetricsSchemaError, match="^missing key 'gate'$"):
        validate_metrics(evaluation)
    without_previous = changed("gate.previous_date", delete=True)
    del without_previous["gate"]["previous_ndcg"]
    validate_metrics(without_previous)  # the first published date


@pytest.mark.parametrize("path", ["chosen_method", "metrics.als.ndcg", "metrics.weighted_sum.ndcg_se",
                                  "gate.passed", "fusion.stacking.cv_ndcg", "tuning.als.params",
                                  "extraction.behavior.rows_quarantined", "published_table.checksum"])
def test_a_missing_key_is_refused_naming_it(path):
    with pytest.raises(MetricsSchemaError, match=f"^missing key '{path}'$"):
        validate_metrics(changed(path, delete=True))


@pytest.mark.parametrize(("path", "value", "message"), [
    ("k", "10", "key 'k' must be an integer, got a string"),
    ("n_users_evaluated", True, "key 'n_users_evaluated' must be an integer, got a boolean"),
    ("metrics.als.ndcg", None, "key 'metrics.als.ndcg' must be a number, got null"),
    ("metrics_by_k.20.als.coverage", "50%", "key 'metrics_by_k.20.als.coverage' must be a number, got a string"),
    ("segments.long_tail_items.als", [0.1], "key 'segments.long_tail_items.als' must be an object, got an array"),
    ("base_models", "als", "key 'base_models' must be an array, got a string"),
    ("base_models", ["als", 3], "key 'base_models[1]' must be a string, got an integer"),
    ("gate.passed", "yes", "key 'gate.passed' must be a boolean, got a string"),
    ("gate.reason", 0, "key 'gate.reason' must be a string or null, got an integer"),
    ("gate.kind", "late", 'key \'gate.kind\' must be one of [null, "floor", "regression"], got "late"'),
    ("as_of_date", "29/04/2024", 'key \'as_of_date\' must be a date (YYYY-MM-DD), got "29/04/2024"'),
    ("holdout.end", "20240429", 'key \'holdout.end\' must be a date (YYYY-MM-DD), got "20240429"'),
    ("holdout.origin", 20240415, "key 'holdout.origin' must be a string, got an integer"),
    ("contribution_share.social", "none", "key 'contribution_share.social' must be a number, got a string"),
    ("metrics.als.novelty", 0.3, "unknown key 'metrics.als.novelty'"),
    ("ndcg", 0.2, "unknown key 'ndcg'"),
])
def test_a_wrong_type_or_unknown_key_is_refused_naming_it(path, value, message):
    with pytest.raises(MetricsSchemaError) as caught:
        validate_metrics(changed(path, value))
    assert str(caught.value) == message


@pytest.mark.parametrize(("version", "says"), [
    (None, "written before metrics.json had a version, and not in version 1's keys (unknown key 'ndcg'); rerun "
           "the pipeline for that date to rewrite it"),
    (0, f"schema_version 0 is older than the version this fusionrec reads ({METRICS_SCHEMA_VERSION}); rerun the "
        "pipeline for that date to rewrite it"),
    (METRICS_SCHEMA_VERSION + 1, f"schema_version {METRICS_SCHEMA_VERSION + 1} is newer than the version this "
                                 f"fusionrec reads ({METRICS_SCHEMA_VERSION}); upgrade fusionrec to read it"),
    ("1", "key 'schema_version' must be an integer, got a string"),
])
def test_another_version_is_refused_saying_what_to_do(version, says):
    payload = changed("schema_version", delete=True) if version is None else changed("schema_version", version)
    payload["ndcg"] = 0.2  # another version's keys are not looked at
    with pytest.raises(MetricsSchemaError) as caught:
        validate_metrics(payload)
    assert str(caught.value) == says


def test_metrics_written_before_the_stamp_read_as_version_1_when_they_have_its_keys():
    validate_metrics(changed("schema_version", delete=True))


# the readers ------------------------------------------------------------------------------------------------
@pytest.fixture
def root(tmp_path: Path) -> DataRoot:
    """NEW published with the current schema, OLD with metrics of before the version and without a key."""
    root = DataRoot(tmp_path)
    old = changed("schema_version", delete=True)
    del old["published_table"]
    for day, payload in ((OLD, old), (NEW, published())):
        publish_version(root, day, {"metrics": lambda folder, p=payload: (folder / "metrics.json").write_text(
            json.dumps(p))})
    return root


def test_the_file_reader_names_the_date(root):
    assert read_published_metrics(root, NEW) == published()
    unstamped = r"^metrics of 2024-04-28: written before metrics.json had a version, and not in version 1's keys"
    with pytest.raises(MetricsSchemaError, match=unstamped + r" \(missing key 'published_table'"):
        read_published_metrics(root, OLD)


def test_the_dashboard_and_the_plugin_mark_a_date_of_another_version(root, monkeypatch):
    data = dashboard_data(root)
    assert data["dates"] == [NEW.isoformat()] and data["unreadable"] == [OLD.isoformat()]
    monkeypatch.setenv("FUSION_DATA_ROOT", str(root.root))
    spec = importlib.util.spec_from_file_location("fusion_plugin", PLUGINS / "fusion_plugin.py")
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    with TestClient(plugin.create_app(require_access=lambda: None)) as client:
        assert client.get(f"/metrics/{NEW}").json()["metrics"]["weighted_sum"]["ndcg"] == 0.2
        broken = client.get(f"/metrics/{OLD}")
    assert broken.status_code == 500
    assert broken.json()["detail"].startswith("metrics of 2024-04-28: written before metrics.json had a version")


class OneRun:
    """A database sink holding one published run (what ``Database.published_run`` returns)."""

    def __init__(self, metrics: dict[str, Any]) -> None:
        self.metrics = metrics

    def has_schema(self) -> bool:
        return True

    def published_run(self, day: dt.date) -> dict[str, Any] | None:
        return {"version_id": "abc", "metrics": self.metrics} if day == NEW else None


def test_the_database_reader_checks_the_metrics_too():
    assert published_metrics(OneRun(published()), NEW) == {"ds": NEW, "version": "abc", "metrics": published()}
    with pytest.raises(MetricsSchemaError, match=r"^metrics of 2024-04-29 in the database sink: schema_version 0 "):
        published_metrics(OneRun(changed("schema_version", 0)), NEW)
