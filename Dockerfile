# The fusionrec Airflow image: the official Airflow 3.3.2 image plus the project's pinned dependencies.
# The Airflow version here must match the apache-airflow pin in requirements.txt (tests/test_compose.py checks).
FROM apache/airflow:3.3.2-python3.11

# requirements.txt pins apache-airflow==3.3.2 itself, so pip keeps the image's Airflow instead of
# up- or downgrading it; constraints.txt is the project's full resolved set, so the image runs the same
# versions as CI (including the PostgreSQL provider the metadata database needs).
COPY requirements.txt /requirements.txt
COPY constraints.txt /constraints.txt
RUN pip install --no-cache-dir -r /requirements.txt -c /constraints.txt

# The data root is a named volume in docker-compose.yaml; creating the mount point here (as the airflow
# user) makes Docker initialise the volume with this ownership, so tasks can write to it.
RUN mkdir -p /opt/airflow/var

ENV FUSION_DATA_ROOT=/opt/airflow/var \
    PYTHONPATH=/opt/airflow
