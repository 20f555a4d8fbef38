"""Session fixtures for the integration tests; the machinery is in ``harness.py``."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.harness import AirflowInstance, running_airflow
from tests.integration.postgres import running_postgres


@pytest.fixture(scope="session")
def integration_tmp() -> Iterator[Path]:
    base = Path(tempfile.mkdtemp(prefix="fusionrec-integration-"))
    yield base
    if os.environ.get("FUSIONREC_KEEP_INTEGRATION_TMP") != "1":
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow(integration_tmp: Path) -> Iterator[AirflowInstance]:
    """The session's shared Airflow for tests that only trigger runs (the backfill test starts its own two).

    Its metadata database is a real PostgreSQL server on loopback, as in docker-compose.yaml.
    """
    with running_postgres() as postgres, running_airflow(integration_tmp, "shared",
                                                           database_url=postgres.url) as instance:
        yield instance
