"""Test-wide settings: an isolated Airflow home and data root, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

_home = Path(tempfile.mkdtemp(prefix="fusionrec-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_home))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("FUSION_DATA_ROOT", str(_home / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
