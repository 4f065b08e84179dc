# Nightshift Airflow image: the official Airflow 3.3.2 image plus the project's pinned
# dependencies and code. Used by every Airflow service in docker-compose.yaml.
#
#   docker compose build
#
# Dependencies are baked in at build time, never installed when a container starts.
FROM apache/airflow:3.3.2-python3.11

# mysqlclient ships no Linux wheels: it is compiled from source against the MySQL/MariaDB
# client headers, which needs a C toolchain and pkg-config.
USER root
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        default-libmysqlclient-dev \
        build-essential \
        pkg-config \
    && apt-get autoremove -yqq --purge \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/*

USER airflow
WORKDIR /opt/airflow

# Requirements first, so code changes do not invalidate the (slow) dependency layer.
COPY --chown=airflow:0 requirements.txt requirements.lock ./

# requirements.lock is a constraints file: it pins every version (direct and transitive)
# without adding packages of its own.
#
# The extra PyTorch index makes torch==2.13.0 resolve to the CPU-only build (2.13.0+cpu,
# which satisfies the ==2.13.0 pin): the default PyPI wheel pulls in several GB of CUDA
# libraries that the Celery workers never use. Everything else is pinned exactly by the
# lock, so it is the same version whichever index serves it.
RUN pip install --no-cache-dir \
        --extra-index-url https://download.pytorch.org/whl/cpu \
        -r requirements.txt \
        -c requirements.lock

# dbt in its own virtualenv (dbt-bigquery's Google pins conflict with the Airflow provider's),
# pinned by its own lock; the dbt tasks run it through Cosmos (NIGHTSHIFT_DBT).
COPY --chown=airflow:0 requirements-dbt.txt requirements-dbt.lock ./
RUN python -m venv /opt/airflow/dbt-venv \
    && /opt/airflow/dbt-venv/bin/python -m pip install --no-cache-dir --disable-pip-version-check \
        -r requirements-dbt.txt -c requirements-dbt.lock
ENV NIGHTSHIFT_DBT=/opt/airflow/dbt-venv/bin/dbt \
    NIGHTSHIFT_DBT_TARGET=/opt/airflow/dbt-target \
    AIRFLOW__COSMOS__ENABLE_TELEMETRY=False \
    DO_NOT_TRACK=1

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# nightshift_core lives in include/, the nightshift package in plugins/.
ENV PYTHONPATH=/opt/airflow/include:/opt/airflow/plugins

# The dbt manifest the dbt DAG is rendered from, parsed at build time (outside include/, which the
# compose file mounts read-only: a changed project mounted over it is reported as a stale manifest).
COPY --chown=airflow:0 scripts/lib.sh scripts/dbt_setup.sh /opt/airflow/scripts/
RUN NIGHTSHIFT_DBT_VENV=/opt/airflow/dbt-venv NIGHTSHIFT_DBT_PROJECT=/opt/airflow/include/dbt \
    /opt/airflow/scripts/dbt_setup.sh parse
