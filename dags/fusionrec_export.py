"""
### fusionrec_export: the newest published recommendations as CSV, each time a date is published

An example of a downstream DAG: it is scheduled on the Asset `fusionrec_recommendations`, which
`multimodal_fusion.publish_recommendations` updates with `{"ds", "version", "rows", "method", "checksum"}` in
each event's extra. For every triggering event it reads that date from the database sink (the same
`database_conn_id` resolution as the publisher: the Airflow connection `fusionrec_db`, else the embedded
SQLite) and writes `$FUSION_DATA_ROOT/exports/ds=D/recommendations.csv` atomically. A date republished
since the event is exported at its current version, and the task log says so.
"""

from __future__ import annotations

import logging

import pendulum
from airflow.sdk import Asset, dag, get_current_context, task

log = logging.getLogger(__name__)

RECOMMENDATIONS = Asset(name="fusionrec_recommendations", uri="fusionrec://recommendations")  # fusion_tasks.contract


@dag(
    dag_id="fusionrec_export",
    schedule=[RECOMMENDATIONS],
    start_date=pendulum.datetime(2000, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "fusionrec", "retries": 2, "retry_delay": pendulum.duration(minutes=1)},
    doc_md=__doc__,
    tags=["fusionrec", "consumer"],
)
def fusionrec_export():
    @task(inlets=[RECOMMENDATIONS])
    def export_published(database_conn_id: str = "fusionrec_db") -> list[dict]:
        import datetime as dt

        from fusion_tasks.config import default_data_root
        from fusion_tasks.serving import export_csv
        from fusion_tasks.sinks.connections import database_for
        from fusion_tasks.storage import DataRoot

        events = get_current_context()["triggering_asset_events"][RECOMMENDATIONS]
        root = DataRoot(default_data_root())
        database = database_for(database_conn_id, root)
        out = []
        for event in events:
            day = dt.date.fromisoformat(event.extra["ds"])
            exported = export_csv(database, root, day)
            if exported["version"] != event.extra.get("version"):
                log.info("%s was republished since the event (version %s): exporting version %s",
                         day, event.extra.get("version"), exported["version"])
            log.info("exported %s rows of %s (version %s) to %s", exported["rows"], day, exported["version"],
                     exported["path"])
            out.append(exported)
        return out

    export_published()


fusionrec_export()
