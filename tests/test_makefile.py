"""``make airflow`` serves the UI and API on localhost only, as the README says."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_make_airflow_binds_localhost():
    out = subprocess.run(["make", "-n", "-s", "airflow"], cwd=PROJECT, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    [line] = [line for line in out.splitlines() if "airflow standalone" in line]
    assert re.search(r"(^|\s)AIRFLOW__API__HOST=127\.0\.0\.1\s", line), line
