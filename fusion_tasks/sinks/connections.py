"""The database sink's database inside Airflow: the DAG and the plugin call ``database_for``.

This is the one module of the library that imports Airflow, and only when it is called (from a DAG task or
the API server): an Airflow connection (``conn_id``, a setting, ``fusionrec_db`` by default) of type
``postgres`` is used through the postgres provider's hook. When no connection of that id is defined, the
embedded SQLite database of the data root is used, and the returned ``Database`` says so in ``location``.
"""

from __future__ import annotations

from fusion_tasks.sinks.base import SinkError
from fusion_tasks.sinks.database import Database
from fusion_tasks.storage import DataRoot


def database_for(conn_id: str, root: DataRoot) -> Database:
    """The Airflow connection ``conn_id`` as a ``Database``; the data root's SQLite when it is not defined.

    Raises ``SinkError`` for a connection that exists but is not a PostgreSQL one.
    """
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        connection = BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return Database.sqlite(root.serving_db())
    if connection.conn_type not in ("postgres", "postgresql"):
        raise SinkError(f"the Airflow connection {conn_id!r} is of type {connection.conn_type!r}; the database "
                        "sink needs a 'postgres' connection (or no connection of that id, for the embedded SQLite)")
    from airflow.providers.postgres.hooks.postgres import PostgresHook

    hook = PostgresHook(postgres_conn_id=conn_id)
    location = f"{conn_id} (postgresql://{connection.host}:{connection.port or 5432}/{connection.schema})"
    return Database(hook.get_conn, "postgresql", location)
