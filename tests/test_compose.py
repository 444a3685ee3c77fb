"""The docker-compose deployment: valid for docker-compose, and consistent with the image,
the Dagster instance and workspace files, and dj_dagster's settings.

`docker-compose config -q` needs Debian's docker-compose (.ci/run installs it): without it
those tests skip locally but FAIL when the environment variable CI is set.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"

SECRETS = {
    "DJ_DB_ROOT_PASSWORD": "db-root-pw-123",
    "DAGSTER_PG_PASSWORD": "dagster-pg-pw-456",
    "MINIO_ROOT_USER": "minio-admin",
    "MINIO_ROOT_PASSWORD": "minio-root-pw-789",
    "DJ_S3_ACCESS_KEY": "pipeline-user",
    "DJ_S3_SECRET_KEY": "pipeline-s3-secret-0ab",
}


def _docker_compose() -> str:
    exe = shutil.which("docker-compose")
    if exe is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("docker-compose is not installed (CI is set: .ci/run should install it)")
        pytest.skip("docker-compose is not installed (apt-get install -y docker-compose)")
    return exe


def _run_compose(args: list[str], env_file: Path, extra_env: dict[str, str] | None = None):
    env = {k: v for k, v in os.environ.items() if k not in SECRETS and not k.startswith("COMPOSE_")}
    env.update(extra_env or {})
    return subprocess.run(
        [_docker_compose(), "--env-file", str(env_file), "-f", str(COMPOSE), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def env_file(tmp_path) -> Path:
    path = tmp_path / "compose.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in SECRETS.items()))
    return path


@pytest.fixture
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


# --------------------------------------------------------------------------- docker-compose


def test_compose_config_is_valid(env_file):
    result = _run_compose(["config", "-q"], env_file)
    assert result.returncode == 0, result.stderr


def test_compose_secrets_have_no_defaults(tmp_path):
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _run_compose(["config", "-q"], empty)
    assert result.returncode != 0
    assert any(name in result.stderr for name in SECRETS), result.stderr


def test_compose_resolved_pipeline_environment(env_file):
    result = _run_compose(["config"], env_file)
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    env = services["user_code"]["environment"]
    assert env["DJ_DATABASE_URL"] == (
        f"mysql+pymysql://root:{SECRETS['DJ_DB_ROOT_PASSWORD']}@pipeline-db:3306/"
    )
    stores = json.loads(env["DJ_STORES"])
    assert stores["main"]["location"] == "dj-store/objects"
    assert env["DJ_STORE_MAIN_SECRET_KEY"] == SECRETS["DJ_S3_SECRET_KEY"]
    assert services["pipeline-db"]["environment"]["MARIADB_ROOT_PASSWORD"] == SECRETS["DJ_DB_ROOT_PASSWORD"]
    for name in ("webserver", "daemon"):
        assert services[name]["environment"]["DAGSTER_PG_PASSWORD"] == SECRETS["DAGSTER_PG_PASSWORD"]
        # only the code server (where runs execute) holds the pipeline's credentials
        assert not any(k.startswith("DJ_") for k in services[name]["environment"])


# --------------------------------------------------------------------------- consistency


def test_services_and_dependencies(raw):
    services = raw["services"]
    assert {"pipeline-db", "dagster-db", "minio", "minio-setup", "user_code", "webserver", "daemon"} <= set(services)
    assert services["pipeline-db"]["image"].startswith("mariadb:")
    assert services["dagster-db"]["image"].startswith("postgres:")
    assert "minio" in services["minio"]["image"]
    assert services["minio-setup"]["depends_on"]["minio"]["condition"] == "service_healthy"
    user_code = services["user_code"]
    assert user_code["build"]["dockerfile"] == "Dockerfile"
    assert user_code["depends_on"]["minio-setup"]["condition"] == "service_completed_successfully"
    for name in ("webserver", "daemon"):
        assert services[name]["image"] == user_code["image"]
        assert services[name]["depends_on"]["user_code"]["condition"] == "service_healthy"
        assert "/opt/dagster/app/workspace.yaml" in services[name]["command"]
    assert services["webserver"]["command"][0] == "dagster-webserver"
    assert services["daemon"]["command"][:2] == ["dagster-daemon", "run"]


def test_pipeline_stores_spec_has_no_secret_and_loads(raw, monkeypatch):
    env = raw["services"]["user_code"]["environment"]
    assert env["DJ_DATABASE_URL"].startswith("mysql+pymysql://")
    spec_text = env["DJ_STORES"].replace("${DJ_S3_BUCKET:-dj-store}", "dj-store")
    stores = json.loads(spec_text)
    assert set(stores) == {"main"} and env["DJ_DEFAULT_STORE"] == "main"
    assert not {"access_key", "secret_key"} & set(stores["main"])

    from dj_dagster.settings import config
    from dj_dagster.stores import clear_store_cache, get_store

    monkeypatch.setenv("DJ_STORES", spec_text)
    monkeypatch.setenv("DJ_STORE_MAIN_ACCESS_KEY", SECRETS["DJ_S3_ACCESS_KEY"])
    monkeypatch.setenv("DJ_STORE_MAIN_SECRET_KEY", SECRETS["DJ_S3_SECRET_KEY"])
    monkeypatch.setitem(config, "stores", json.loads(spec_text))
    monkeypatch.setitem(config, "default_store", "main")
    clear_store_cache()
    try:
        store = get_store(None)
        assert (store.name, store.protocol, store.location) == ("main", "s3", "dj-store/objects")
        assert store.endpoint_url == "http://minio:9000"
        assert store.fs.secret == SECRETS["DJ_S3_SECRET_KEY"]
        assert SECRETS["DJ_S3_SECRET_KEY"] not in repr(store)
    finally:
        clear_store_cache()


def test_workspace_points_at_the_code_server(raw):
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] == "user_code" and grpc["host"] in raw["services"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    cmd = json.loads(re.search(r"^CMD (\[.*?\])", dockerfile, re.S | re.M).group(1).replace("\\\n", ""))
    assert cmd[:3] == ["dagster", "code-server", "start"]
    assert cmd[cmd.index("-p") + 1] == str(grpc["port"])
    assert cmd[cmd.index("-h") + 1] == "0.0.0.0"
    module = cmd[cmd.index("-m") + 1]
    assert module == "definitions.all" and (ROOT / "definitions" / "all.py").exists()
    health = raw["services"]["user_code"]["healthcheck"]["test"]
    assert health[-1] == str(grpc["port"])


def test_dockerfile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\s*$", text, re.M)
    assert "pip install ." in text and "dagster-postgres" in text
    assert "COPY deploy/dagster.yaml ${DAGSTER_HOME}/dagster.yaml" in text
    for src in re.findall(r"^COPY (\S+)", text, re.M):
        for part in src.split():
            assert (ROOT / part).exists(), f"COPY source {part} missing"


def test_dagster_instance_config_is_valid(monkeypatch):
    from dagster._core.instance.config import dagster_instance_config

    for key, value in {
        "DAGSTER_PG_HOST": "dagster-db",
        "DAGSTER_PG_PORT": "5432",
        "DAGSTER_PG_USERNAME": "dagster",
        "DAGSTER_PG_PASSWORD": "pw",
        "DAGSTER_PG_DB": "dagster",
    }.items():
        monkeypatch.setenv(key, value)
    cfg, custom_class = dagster_instance_config(str(DEPLOY), "dagster.yaml")
    assert custom_class is None
    db = cfg["storage"]["postgres"]["postgres_db"]
    # every connection detail comes from the environment the compose file sets
    assert all(isinstance(v, dict) and "env" in v for v in db.values())
    compose_env = yaml.safe_load(COMPOSE.read_text())["x-dagster-storage-env"]
    assert {v["env"] for v in db.values()} <= set(compose_env)
