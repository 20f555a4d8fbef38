"""
### multimodal_fusion: fused top-K recommendations from behaviour, content and social data

**Schedule**: daily (`@daily` data intervals, UTC). The run for logical date **D** covers the day D
and reads every modality *as of D*: events up to the end of D, content and social versions valid by D.
Nothing after D is read, so a backfilled date gives the answer it would have given that day.

**Unpausing** (also from the trigger form, where it is ticked by default) lets the scheduler start the
run of the latest complete day, yesterday (`catchup` is off). If that day's behaviour partition has not
landed, `wait_for_landing` waits for it (checking every 5 minutes, until the end of D plus
`landing_wait_hours`), then fails naming the missing folder.

**Manual runs**: set `as_of_date` in the trigger form. A run without a logical date and without
`as_of_date` fails at once, and so does a conf key that is not a param. Runs triggered through the
UI or the REST API get a run id and a note naming the date they compute (`as_of_2024-04-29__manual__…`).

**Flow**: `plan_run` → `wait_for_landing` → `extract_<modality>` (parallel; validated, bad rows quarantined) →
`build_training_data` → `train_<model>` (parallel, pool `fusion_training`; each model tuned on the
validation folds within `tuning_budget_seconds`, then fitted at the test and final origins) → `score_candidates` →
`fit_weighted_sum` / `fit_stacking` / `fit_deep_fusion` (tuned on validation folds before the holdout) → `evaluate` and
`fuse_recommendations` → `quality_gate` → `publish_recommendations`.

**Outputs**: every sink of `sinks` gets one new version of D (the same version id and row checksum). Files under
`$FUSION_DATA_ROOT`: `published/recommendations/ds=D/` (Parquet: user_id, item_id, rank, score, contribution per
modality) and `published/metrics/ds=D/metrics.json`; the database: tables `recommendations` and
`published_runs`, view `recommendations_latest`, in the Airflow connection `database_conn_id` (PostgreSQL) or,
when it is not defined, `$FUSION_DATA_ROOT/serving/fusionrec.sqlite`. Then the Asset `fusionrec_recommendations`
gets an event with the ds and version in its extra (`fusionrec_export` is scheduled on it).

**Gate**: below the NDCG floor the run fails; more than the tolerance below the last published
date, publishing is skipped and the previous table stays current. Reasons are in the task log and in
`fused/ds=D/gate.json`.

**Backfill**: `airflow backfill create --dag-id multimodal_fusion --from-date A --to-date B`
(forward or `--run-backwards`; each date is independent; at most `max_active_runs` at once).
"""

from __future__ import annotations

import datetime as dt
import logging

import pendulum
from airflow.sdk import Asset, CronDataIntervalTimetable, Param, PokeReturnValue, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from fusion_tasks import catalogue

log = logging.getLogger(__name__)

# One task per registered implementation, listed from the library's package folders without importing them
# (fusion_tasks.catalogue reads file names only): a new modality, model or fusion method needs no edit here.
MODALITIES = list(catalogue.modalities())  # extract_<modality>
MODELS = list(catalogue.models())  # train_<model>
METHODS = list(catalogue.methods())  # fit_<method>
SINKS = list(catalogue.sinks())
TRAINING_POOL = "fusion_training"
RECOMMENDATIONS = Asset(name="fusionrec_recommendations", uri="fusionrec://recommendations")  # fusion_tasks.contract

DESCRIPTION = ("Daily fused top-K recommendations from behaviour, content and social data, published behind a "
               "quality gate")

# Defaults are the library's (RunConfig); tests/dags/test_dag_integrity.py checks that each one matches.
PARAMS = {
    "as_of_date": Param(None, type=["null", "string"], format="date", title="As-of date",
                        description="The date to run for (YYYY-MM-DD). Required when the run has no logical date; "
                                    "overrides the logical date when set."),
    "top_k": Param(10, type="integer", minimum=1, maximum=200, title="K",
                   description="How many items to publish per user, and the K of every metric."),
    "modalities": Param(MODALITIES, type="array", items={"type": "string", "enum": MODALITIES}, minItems=1,
                        uniqueItems=True, examples=MODALITIES, title="Modalities",
                        description="Which modalities to use; behavior is required. A selected modality "
                                    "without landing data is staged empty and carries no signal."),
    "methods": Param(METHODS, type="array", items={"type": "string", "enum": METHODS}, minItems=1,
                     uniqueItems=True, examples=METHODS, title="Fusion methods",
                     description="Fusion methods to fit; the one with the best leave-one-fold-out NDCG "
                                 "is published (the simpler on a tie)."),
    "holdout_days": Param(14, type="integer", minimum=1, title="Holdout days",
                          description="Length of the test window ending at D."),
    "validation_days": Param(14, type="integer", minimum=1, title="Validation days",
                             description="Length of each validation window."),
    "n_folds": Param(3, type="integer", minimum=1, maximum=12, title="Validation folds",
                     description="Rolling validation windows before the test window (time-aware CV)."),
    "candidates_per_model": Param(50, type="integer", minimum=1, title="Candidates per model",
                                  description="Top-N of each base model that joins a user's fusion pool "
                                              "(at least K)."),
    "seed": Param(20240601, type="integer", title="Seed",
                  description="Base seed; every component derives its own."),
    "ndcg_floor": Param(0.005, type="number", minimum=0, title="Gate: NDCG floor",
                        description="Gate: minimum holdout NDCG@K to publish."),
    "regression_tolerance": Param(0.25, type="number", minimum=0, maximum=1, title="Gate: regression tolerance",
                                  description="Gate: largest relative NDCG drop against the last published date."),
    "max_quarantine_share": Param(0.05, type="number", minimum=0, maximum=1, title="Max quarantined share",
                                  description="Extraction fails (no retry) above this share of rejected rows."),
    "history_days": Param(0, type="integer", minimum=0, title="History days",
                          description="Days of behaviour history to train on (0: all). Items a user did earlier "
                                      "are still never recommended to them."),
    "landing_wait_hours": Param(6.0, type="number", minimum=0, maximum=36, title="Landing wait (hours)",
                                description="A missing behaviour partition of D is awaited (checked every "
                                            "5 minutes) until D ends plus this many hours (UTC); then the run "
                                            "fails naming the missing folder."),
    "tune_models": Param(True, type="boolean", title="Tune base models",
                         description="Tune every base model's hyperparameters on the validation folds "
                                     "(coordinate search over each model's search space)."),
    "tuning_budget_seconds": Param(600, type="number", exclusiveMinimum=0, title="Tuning budget (s)",
                                   description="Time budget per model for tuning; a model whose default "
                                               "setting alone exceeds it fails its training task."),
    "quarantine_min_rejected": Param(5, type="integer", minimum=0, title="Rejects before a delivery is judged",
                                     description="A landing file or a landing day fails on its own quarantine "
                                                 "share only when it has at least this many rejected rows (the "
                                                 "overall share has no minimum)."),
    "earliest_plausible_date": Param("1995-01-01", type="string", format="date", title="Earliest plausible date",
                                     description="Events timestamped and versions valid before this date are "
                                                 "quarantined (e.g. epoch 0 written for a missing time)."),
    "embedding_dim": Param(0, type="integer", minimum=0, title="Embedding dimension",
                           description="The length every content embedding must have; 0: the most common length. "
                                       "Other lengths are quarantined."),
    "duplicate_events": Param("quarantine", type="string", enum=["quarantine", "keep"], title="Duplicate events",
                              description="An event equal in every column to an earlier one: quarantine it (the "
                                          "safe default, a re-delivery must not count twice) or keep it."),
    "volume_window_days": Param(28, type="integer", minimum=1, title="Volume window (days)",
                                description="A day's behaviour volume is compared with the deliveries of this many "
                                            "days before it (judged once at least 7 exist)."),
    "volume_factor": Param(3.0, type="number", minimum=1, title="Volume anomaly factor",
                           description="A day is a volume anomaly below the recent minimum / factor or above the "
                                       "recent maximum * factor."),
    "ties_of_unknown_users": Param("keep", type="string", enum=["keep", "quarantine"], title="Ties of unknown users",
                                   description="A tie whose user has no behaviour event by D: keep it (a cold user "
                                               "who follows people; the default) or quarantine it."),
    "fail_on_volume_anomaly": Param(False, type="boolean", title="Fail on volume anomaly",
                                    description="Off: an anomaly is flagged in the manifest and the task log. On: "
                                                "the extract fails without retry."),
    "sinks": Param(SINKS, type="array", items={"type": "string", "enum": SINKS}, minItems=1, uniqueItems=True,
                   examples=SINKS, title="Publish sinks",
                   description="Where a published date goes: files (the source of truth, required) and the "
                               "database (tables recommendations, published_runs, view recommendations_latest)."),
    "database_conn_id": Param("fusionrec_db", type="string", minLength=1, title="Database connection",
                              description="Airflow connection (postgres) of the database sink; when no connection "
                                          "of this id exists, the embedded SQLite of the data root."),
}
LANDING_POKE_SECONDS = 300

DEFAULT_ARGS = {
    "owner": "fusionrec",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "execution_timeout": dt.timedelta(minutes=30),
}


def _config(spec: dict):
    """The frozen run configuration from the plan (plain JSON in XCom)."""
    from fusion_tasks.config import RunConfig

    return RunConfig.from_dict(spec)


def _root(spec: dict):
    from fusion_tasks.storage import DataRoot

    return DataRoot(_config(spec).data_root)


@dag(
    dag_id="multimodal_fusion",
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=2,
    max_active_tasks=4,
    default_args=DEFAULT_ARGS,
    params=PARAMS,
    description=DESCRIPTION,
    doc_md=__doc__,
    tags=["fusionrec", "recommendations"],
)
def multimodal_fusion():
    @task(execution_timeout=dt.timedelta(minutes=2))
    def plan_run() -> dict:
        """Turn the Airflow context into a plain run spec: the only place that reads the context."""
        from fusion_tasks.config import RunConfig

        context = get_current_context()
        unknown = sorted(set(context["dag_run"].conf or {}) - set(PARAMS))
        if unknown:
            raise AirflowFailException(f"unknown keys in the run's conf: {unknown}; the params are {sorted(PARAMS)}")
        params = {key: value for key, value in context["params"].items() if key in PARAMS}
        as_of = params.pop("as_of_date", None)
        if not as_of:
            logical = context["dag_run"].logical_date
            if logical is None:
                raise AirflowFailException(
                    "this run has no logical date and no as_of_date param: trigger it with "
                    "conf {\"as_of_date\": \"YYYY-MM-DD\"} or with a logical date")
            as_of = logical.date().isoformat()
        try:
            config = RunConfig.from_dict({**params, "as_of_date": as_of})
        except (TypeError, ValueError) as err:
            raise AirflowFailException(f"invalid run parameters: {err}") from None
        log.info("running for as_of_date=%s into %s", config.as_of_date, config.data_root)
        return config.to_dict()

    @task.sensor(mode="reschedule", poke_interval=LANDING_POKE_SECONDS, timeout=dt.timedelta(days=2),
                 execution_timeout=dt.timedelta(minutes=5))
    def wait_for_landing(spec: dict) -> PokeReturnValue:
        """Wait for D's daily landing partitions (until D ends + landing_wait_hours), instead of failing."""
        from fusion_tasks.pipeline import landing_status

        status = landing_status(_root(spec), _config(spec), dt.datetime.now(dt.UTC))
        if status["overdue"]:
            raise AirflowFailException(status["message"])  # past the deadline: retrying cannot help
        log.info("%s", status["message"])
        return PokeReturnValue(is_done=status["ready"])

    def extract_task(modality: str):
        @task(task_id=f"extract_{modality}", execution_timeout=dt.timedelta(minutes=20))
        def extract(spec: dict) -> dict:
            from fusion_tasks.pipeline import extract as run_extract
            from fusion_tasks.schemas import InputDataError

            config = _config(spec)
            if modality not in config.modalities:
                raise AirflowSkipException(f"{modality} is not selected for this run")
            try:
                manifest = run_extract(_root(spec), config, modality)
            except InputDataError as err:  # drift, unreadable file, too many rejects, volume anomaly
                raise AirflowFailException(f"{type(err).__name__}: {err}") from None  # retrying cannot help
            if manifest["rows_quarantined"]:
                log.info("%s: %s rows quarantined, reasons %s; per delivery: %s", modality,
                         manifest["rows_quarantined"], manifest["quarantine_reasons"],
                         manifest["deliveries"]["files"][:20])
            volume = manifest.get("volume") or {}
            if volume.get("anomaly"):
                log.warning("%s", volume["reason"])
            return {k: manifest[k] for k in ("rows_staged", "rows_quarantined", "quarantine_share", "staged_path")} | {
                "volume_anomaly": bool(volume.get("anomaly"))}

        return extract

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=dt.timedelta(minutes=20))
    def build_training_data(spec: dict) -> dict:
        from fusion_tasks.training_data import build_training_data as build

        manifest = build(_root(spec), _config(spec))
        return {k: manifest[k] for k in ("n_users", "n_items", "evaluation_users", "path")}

    def train_task(name: str):
        @task(task_id=f"train_{name}", pool=TRAINING_POOL, execution_timeout=dt.timedelta(minutes=60))
        def train(spec: dict, _features: dict) -> dict:
            from fusion_tasks import models

            config = _config(spec)
            if not models.is_enabled(name, config):
                raise AirflowSkipException(f"{name} needs modalities that are not selected")
            try:
                manifest = models.train_model(_root(spec), config, name)
            except models.TuningBudgetError as err:
                raise AirflowFailException(str(err)) from None  # the same budget would fail again
            return {"model": name, "fit_seconds": {o: f["fit_seconds"] for o, f in manifest["fits"].items()}}

        return train

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=dt.timedelta(minutes=60))
    def score_candidates(spec: dict) -> dict:
        from fusion_tasks.fusion.candidates import build_pools, enabled_models

        config = _config(spec)
        return build_pools(_root(spec), config, enabled_models(config))

    def fit_task(method: str):
        @task(task_id=f"fit_{method}", execution_timeout=dt.timedelta(minutes=30))
        def fit(spec: dict, _pools: dict) -> dict:
            from fusion_tasks.pipeline import fit_method

            config = _config(spec)
            if method not in config.methods:
                raise AirflowSkipException(f"{method} is not selected for this run")
            result = fit_method(_root(spec), config, method)
            return {"method": method, "cv_ndcg": result["cv_ndcg"], "weights": result["fitted"].get("weights")}

        return fit

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=dt.timedelta(minutes=30))
    def evaluate(spec: dict) -> dict:
        from fusion_tasks.evaluation.report import evaluate_run, summary_table

        report = evaluate_run(_root(spec), _config(spec))
        log.info("holdout metrics (K=%s, %s users):\n%s", report["k"], report["n_users_evaluated"],
                 summary_table(report))
        return {"chosen_method": report["chosen_method"], "n_users_evaluated": report["n_users_evaluated"]}

    @task(trigger_rule="none_failed_min_one_success", execution_timeout=dt.timedelta(minutes=30))
    def fuse_recommendations(spec: dict) -> dict:
        from fusion_tasks.publish import fuse_recommendations as fuse

        return fuse(_root(spec), _config(spec))

    @task(execution_timeout=dt.timedelta(minutes=5))
    def quality_gate(spec: dict, _metrics: dict, _fused: dict) -> dict:
        from fusion_tasks.evaluation.report import quality_gate as gate
        from fusion_tasks.gate_text import describe_gate

        config = _config(spec)
        decision = gate(_root(spec), config)
        sentence = describe_gate(decision, config.top_k)
        if decision["kind"] == "floor":
            raise AirflowFailException(sentence)
        if not decision["passed"]:
            raise AirflowSkipException(sentence)
        log.info("%s", sentence)
        return {"passed": True, "decision": sentence}

    @task(execution_timeout=dt.timedelta(minutes=15), outlets=[RECOMMENDATIONS])
    def publish_recommendations(spec: dict, _gate: dict) -> dict:
        from fusion_tasks.publish import publish
        from fusion_tasks.sinks import SchemaVersionError
        from fusion_tasks.sinks.connections import database_for

        config = _config(spec)
        database = database_for(config.database_conn_id, _root(spec)) if "database" in config.sinks else None
        if database is not None:
            log.info("database sink: %s", database.location)
        try:
            out = publish(_root(spec), config, database)
        except SchemaVersionError as err:
            raise AirflowFailException(str(err)) from None  # a rerun meets the same schema: migrate first
        if out["repaired"]:
            log.warning("sinks %s did not hold the file sink's version of %s; this publish brings them to %s",
                        out["repaired"], config.as_of_date, out["version"])
        get_current_context()["outlet_events"][RECOMMENDATIONS].extra = {
            "ds": config.as_of_date.isoformat(), **{key: out[key] for key in ("version", "rows", "method", "checksum")}}
        return out

    spec = plan_run()
    landed = wait_for_landing(spec)
    extracted = [extract_task(m)(spec) for m in MODALITIES]
    landed >> extracted
    features = build_training_data(spec)
    extracted >> features
    trained = [train_task(name)(spec, features) for name in MODELS]
    pools = score_candidates(spec)
    trained >> pools
    fitted = [fit_task(method)(spec, pools) for method in METHODS]
    metrics = evaluate(spec)
    fused = fuse_recommendations(spec)
    fitted >> metrics
    fitted >> fused
    publish_recommendations(spec, quality_gate(spec, metrics, fused))


multimodal_fusion()
