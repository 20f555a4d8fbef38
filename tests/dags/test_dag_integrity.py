"""The DAG file as Airflow tests its own examples: imports cleanly, cheaply, and has the expected shape."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
DAG_FILE = DAGS / "multimodal_fusion.py"
HEAVY = ("pandas", "numpy", "pyarrow", "sklearn", "scipy", "tensorflow")
# the DAG file reads the task lists from the catalogue (file names); nothing else of the library is imported
LIBRARY_AT_PARSE = {"fusion_tasks", "fusion_tasks.catalogue"}


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    return bag.dags["multimodal_fusion"]


def _parse_in_subprocess(tmp_path: Path, extra_env: dict[str, str] | None = None) -> dict:
    """Import the DAG module in a fresh interpreter; report parse time and which heavy modules came along."""
    code = (
        f"import json, sys, time; sys.path.insert(0, {str(DAGS)!r}); t = time.perf_counter();"
        "import multimodal_fusion; took = time.perf_counter() - t;"
        f"heavy = [m for m in sys.modules if m in {HEAVY!r} or (m.startswith('fusion_tasks') "
        f"and m not in {sorted(LIBRARY_AT_PARSE)!r})];"
        "print(json.dumps({'seconds': took, 'heavy': heavy}))"
    )
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), **(extra_env or {})}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_parsing_imports_no_heavy_module_and_is_fast(tmp_path):
    result = _parse_in_subprocess(tmp_path)
    assert result["heavy"] == []
    assert result["seconds"] < 5.0


def test_parsing_needs_no_database(tmp_path):
    # a metadata DB that cannot exist: any DB access at parse time would raise
    broken = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/missing/dir/airflow.db"}
    assert _parse_in_subprocess(tmp_path, broken)["heavy"] == []


def test_task_graph(dag):
    from fusion_tasks import modalities, models
    from fusion_tasks.fusion import methods

    extract = {f"extract_{m}" for m in modalities.REGISTRY}
    train = {f"train_{m}" for m in models.REGISTRY}
    fit = {f"fit_{m}" for m in methods.REGISTRY}
    assert {"extract_behavior", "train_als", "fit_weighted_sum", "fit_stacking", "fit_deep_fusion"} <= (
        extract | train | fit)
    expected = {"plan_run", "wait_for_landing", "build_training_data", "score_candidates", "evaluate",
                "fuse_recommendations", "quality_gate", "publish_recommendations"} | extract | train | fit
    assert set(dag.task_ids) == expected

    def downstream(task_id):
        return dag.get_task(task_id).downstream_task_ids

    assert downstream("wait_for_landing") == extract
    for task_id in extract:
        assert downstream(task_id) == {"build_training_data"}
    assert downstream("build_training_data") == train
    for task_id in train:
        assert downstream(task_id) == {"score_candidates"}
    assert downstream("score_candidates") == fit
    for task_id in fit:
        assert downstream(task_id) == {"evaluate", "fuse_recommendations"}
    assert downstream("evaluate") == {"quality_gate"}
    assert downstream("fuse_recommendations") == {"quality_gate"}
    assert downstream("quality_gate") == {"publish_recommendations"}
    assert downstream("plan_run") >= extract | train | fit | {"publish_recommendations"}


def test_every_task_has_retries_and_a_timeout(dag):
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.execution_timeout is not None and task.execution_timeout <= dt.timedelta(hours=2), task.task_id


def test_training_tasks_use_the_training_pool(dag):
    for task in dag.tasks:
        if task.task_id.startswith("train_"):
            assert task.pool == "fusion_training"


def test_schedule_params_and_docs(dag):
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression in ("@daily", "0 0 * * *")
    assert dag.max_active_runs == 2
    assert dag.doc_md and "Backfill" in dag.doc_md
    params = dag.params
    for name in ("as_of_date", "top_k", "modalities", "methods"):
        assert params.get_param(name).description, name
    assert params["top_k"] == 10
    assert params["as_of_date"] is None
    assert dag.description and "recommendations" in dag.description


def test_every_param_has_a_title_and_a_description(dag):
    for name, param in dag.params.items():
        assert (param.schema.get("title") or "").strip(), name
        assert (param.description or "").strip(), name


def test_list_params_are_multi_select_choices(dag):
    """The trigger form renders an array with ``examples`` as a multi-select list of those values."""
    from fusion_tasks import catalogue

    for name in ("modalities", "methods", "sinks"):
        allowed = catalogue.names(name)
        schema = dag.params.get_param(name).schema
        assert schema["type"] == "array"
        assert schema["examples"] == list(allowed) == schema["items"]["enum"], name
        assert schema["minItems"] == 1


def test_param_defaults_are_the_library_defaults(dag):
    """The DAG and ``python -m fusion_tasks run`` compute the same thing for a date unless told otherwise."""
    from fusion_tasks.config import RunConfig

    defaults = RunConfig.defaults()
    params = {name: dag.params[name] for name in dag.params if name != "as_of_date"}
    assert params == defaults
    assert defaults["candidates_per_model"] == 50


def test_the_landing_sensor_frees_its_slot_while_waiting(dag):
    sensor = dag.get_task("wait_for_landing")
    assert sensor.mode == "reschedule"
    assert sensor.poke_interval == 300


def test_task_lists_match_the_library_registries():
    sys.path.insert(0, str(DAGS))
    import multimodal_fusion

    from fusion_tasks import modalities, models, sinks
    from fusion_tasks.fusion import methods

    assert multimodal_fusion.MODELS == list(models.REGISTRY)
    assert multimodal_fusion.MODALITIES == list(modalities.REGISTRY)
    assert sorted(multimodal_fusion.METHODS) == sorted(methods.REGISTRY)
    assert multimodal_fusion.SINKS == list(sinks.REGISTRY)


def test_publishing_updates_the_asset_the_consumer_dag_is_scheduled_on():
    from airflow.dag_processing.dagbag import DagBag

    from fusion_tasks.contract import ASSET_NAME, ASSET_URI

    bag = DagBag(dag_folder=str(DAGS))
    assert bag.import_errors == {}
    [outlet] = bag.dags["multimodal_fusion"].get_task("publish_recommendations").outlets
    assert (outlet.name, outlet.uri.rstrip("/")) == (ASSET_NAME, ASSET_URI)
    consumer = bag.dags["fusionrec_export"]
    assert [asset.name for asset in consumer.timetable.asset_condition.objects] == [ASSET_NAME]
    assert consumer.get_task("export_published").inlets == [outlet]


def test_the_landing_sensor_waits_for_a_missing_partition_then_fails_with_a_clear_message(dag, tmp_path):
    """What unpausing does: the scheduler runs yesterday; without its partition the sensor waits, not fails."""
    from airflow.sdk.exceptions import AirflowFailException

    from fusion_tasks.config import RunConfig

    poke = dag.get_task("wait_for_landing").python_callable
    yesterday = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    waiting = poke(RunConfig(as_of_date=yesterday, data_root=tmp_path, landing_wait_hours=36).to_dict())
    assert waiting.is_done is False
    overdue = RunConfig(as_of_date=yesterday - dt.timedelta(days=3), data_root=tmp_path).to_dict()
    with pytest.raises(AirflowFailException, match="landing partition for .* is missing: .*date=.*did not arrive"):
        poke(overdue)


def test_bad_input_settings_are_params_with_the_library_defaults(dag):
    import dataclasses
    import datetime as dt

    from fusion_tasks.config import RunConfig

    defaults = {f.name: f.default for f in dataclasses.fields(RunConfig)}
    for name in ("max_quarantine_share", "quarantine_min_rejected", "earliest_plausible_date", "embedding_dim",
                 "duplicate_events", "volume_window_days", "volume_factor", "fail_on_volume_anomaly",
                 "ties_of_unknown_users"):
        param = dag.params.get_param(name)
        assert param.description and (name == "max_quarantine_share" or param.schema.get("title")), name
        default = defaults[name]
        assert param.value == (default.isoformat() if isinstance(default, dt.date) else default), name
    config = RunConfig.from_dict({**{k: dag.params[k] for k in dag.params if k != "as_of_date"},
                                  "as_of_date": "2024-03-01"})
    assert config.earliest_plausible_date == dt.date(1995, 1, 1)
