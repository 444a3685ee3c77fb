# One image for the whole Dagster deployment (see docker-compose.yml): the user-code gRPC
# server that serves `definitions`, the webserver and the daemon.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home

WORKDIR /opt/dagster/app

# Dependencies first, in a layer of their own: it depends on pyproject.toml alone (an
# empty package stands in for the code), so code changes do not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir dj_dagster && touch dj_dagster/__init__.py \
    && pip install . "dagster-postgres==0.29.*" \
    && pip uninstall -y dj_dagster && rm -rf dj_dagster build
COPY dj_dagster ./dj_dagster
RUN pip install --no-deps .

# Pipeline definitions (loaded by module name from the working directory) and the
# instance/workspace configuration.
COPY definitions ./definitions
COPY deploy/workspace.yaml ./workspace.yaml
COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml

RUN useradd --create-home --uid 1000 dagster \
    && mkdir -p ${DAGSTER_HOME}/logs ${DAGSTER_HOME}/storage \
    && chown -R dagster:dagster ${DAGSTER_HOME}
USER dagster

EXPOSE 4000
CMD ["dagster", "code-server", "start", "-h", "0.0.0.0", "-p", "4000", \
     "-m", "definitions.all", "-a", "defs", "-d", "/opt/dagster/app"]
