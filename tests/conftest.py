"""Test-wide settings: an isolated Airflow home and data root, set before Airflow is imported."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

_home = Path(tempfile.mkdtemp(prefix="fusionrec-airflow-"))
os.environ.setdefault("AIRFLOW_HOME", str(_home))
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(PROJECT / "dags")
os.environ["AIRFLOW__CORE__PLUGINS_FOLDER"] = str(PROJECT / "plugins")
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.setdefault("FUSION_DATA_ROOT", str(_home / "data"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def prepared_world(tmp_path_factory: pytest.TempPathFactory):
    """A factory: a synthetic world of ``spec`` with every modality extracted and the training data built for
    its last day (settings: ``RunConfig`` overrides); returns ``(root, config)``."""
    from fusion_tasks.config import RunConfig
    from fusion_tasks.pipeline import extract
    from fusion_tasks.storage import DataRoot
    from fusion_tasks.synthetic import generate
    from fusion_tasks.training_data import build_training_data

    def prepare(name: str, spec, **settings):
        root = DataRoot(tmp_path_factory.mktemp(name))
        generate(root, spec)
        config = RunConfig(as_of_date=spec.end, data_root=root.root, **settings)
        for modality in config.modalities:
            extract(root, config, modality)
        build_training_data(root, config)
        return root, config

    return prepare
