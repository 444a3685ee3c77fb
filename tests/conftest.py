"""Backends for tests. ``DJ_TEST_BACKENDS=sqlite,mysql,postgresql`` selects them (default
sqlite); a selected backend that cannot be reached FAILS the test run, never skips."""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

os.environ.setdefault("DJ_SAFEMODE", "0")  # our tests run unattended: no delete/drop prompts (tests of them opt in)
import dj_dagster as dj  # noqa: E402

URLS = {
    "sqlite": None,  # a fresh file per test
    "mysql": os.environ.get("DJ_TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "postgresql": os.environ.get("DJ_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"),
}


def selected_backends() -> list[str]:
    raw = os.environ.get("DJ_TEST_BACKENDS", "sqlite")
    names = [b.strip() for b in raw.split(",") if b.strip()]
    unknown = set(names) - set(URLS)
    if unknown:
        raise pytest.UsageError(f"DJ_TEST_BACKENDS names unknown backends {sorted(unknown)}")
    return names


def pytest_configure(config):
    config.addinivalue_line("markers", "backends(*names): the backends a test applies to")


def pytest_generate_tests(metafunc):
    if "backend" in metafunc.fixturenames:
        # a test module (BACKENDS = {...}) or a test (@pytest.mark.backends(...)) may name
        # the backends it applies to
        allowed = getattr(metafunc.module, "BACKENDS", None)
        marker = metafunc.definition.get_closest_marker("backends")
        if marker is not None:
            allowed = set(marker.args)
        backends = [b for b in selected_backends() if allowed is None or b in allowed]
        metafunc.parametrize("backend", backends, scope="session")


_reachable: dict[str, bool] = {}


def backend_url(backend: str, tmp_path_factory) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'test.sqlite'}"
    url = URLS[backend]
    if backend not in _reachable:
        try:
            engine = sa.create_engine(url)
            with engine.connect() as c:
                c.exec_driver_sql("SELECT 1")
            engine.dispose()
            _reachable[backend] = True
        except Exception as exc:  # noqa: BLE001
            _reachable[backend] = False
            pytest.fail(f"Backend {backend} selected by DJ_TEST_BACKENDS is unreachable: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0]}", pytrace=False)
    if not _reachable[backend]:
        pytest.fail(f"Backend {backend} is unreachable", pytrace=False)
    return url


@pytest.fixture
def connection(backend, tmp_path_factory):
    c = dj.Connection(backend_url(backend, tmp_path_factory))
    yield c
    c.close()


@pytest.fixture
def schema(connection):
    """A fresh, uniquely named schema, dropped afterwards."""
    name = f"djt_{uuid.uuid4().hex[:10]}"
    s = dj.Schema(name, connection=connection)
    yield s
    s.drop(force=True, safemode=False)


@pytest.fixture
def make_schema(connection):
    """Factory for extra schemas in the same database (cross-schema tests)."""
    made = []

    def factory(prefix: str = "djx"):
        s = dj.Schema(f"{prefix}_{uuid.uuid4().hex[:8]}", connection=connection)
        made.append(s)
        return s

    yield factory
    for s in reversed(made):
        s.drop(force=True, safemode=False)
