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

COPY --chown=airflow:0 dags/ /opt/airflow/dags/
COPY --chown=airflow:0 plugins/ /opt/airflow/plugins/
COPY --chown=airflow:0 include/ /opt/airflow/include/

# nightshift_core lives in include/, the nightshift package in plugins/.
ENV PYTHONPATH=/opt/airflow/include:/opt/airflow/plugins
