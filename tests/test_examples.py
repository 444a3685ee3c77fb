"""The example pipelines in definitions/ run end to end through Dagster (in process) on
each selected backend, with blobs in a local object store."""

from __future__ import annotations

import datetime as dt
import importlib
import sys
import uuid

import dagster as dg
import pytest

import dj_dagster as dj
from dj_dagster import stores
from tests.conftest import backend_url


@pytest.fixture
def example_env(backend, tmp_path, tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DJ_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DJ_DATABASE_URL", backend_url(backend, tmp_path_factory))
    monkeypatch.setenv("DJ_NEURO_SCHEMA", f"neuro_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("DJ_FRACTAL_SCHEMA", f"fractal_{uuid.uuid4().hex[:8]}")
    monkeypatch.setenv("DJ_NEURO_RAW", str(tmp_path / "raw"))
    monkeypatch.delenv("DJ_STORES", raising=False)
    saved = dict(dj.config)
    dj.config.reload()
    stores.clear_store_cache()
    dj.conn(reset=True)
    modules = []

    def load(name):
        sys.modules.pop(name, None)
        module = importlib.import_module(name)
        modules.append(module)
        return module

    yield load, tmp_path
    for module in modules:
        module.schema.drop(force=True, safemode=False)
        sys.modules.pop(module.__name__, None)
    dj.config.clear()
    dj.config.update(saved)
    stores.clear_store_cache()
    dj.conn(reset=True)


def test_neuro_pipeline(example_env):
    load, tmp_path = example_env
    neuro = load("definitions.neuro")
    from definitions.runner import run_until_settled

    neuro.Subject.insert([{"subject": "m1"}, {"subject": "m2", "species": "rat"}])
    sessions = []
    for i, (subject, session) in enumerate([("m1", 1), ("m1", 2), ("m2", 1)]):
        path = neuro.write_raw(subject, session, seed=i)
        sessions.append({"subject": subject, "session": session, "session_date": dt.date(2026, 1, 1 + i),
                         "raw_file": path.name})
    neuro.Session.insert(sessions)
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(neuro.defs, instance)
        assert runs and all(r.success for r in runs)
    assert len(neuro.Recording()) == 3 and len(neuro.SpikeSort()) == 3
    assert len(neuro.SpikeSort.Unit()) == 12 and len(neuro.SubjectSummary()) == 2
    traces = (neuro.Recording & {"subject": "m1", "session": 1}).fetch1("traces")
    assert traces.shape == (2000, 4)
    stored = list((tmp_path / "home" / "store").rglob("*"))
    assert any(p.is_file() for p in stored), "blobs did not reach the object store"
    total = (neuro.SubjectSummary & {"subject": "m1"}).fetch1("total_spikes")
    assert total == sum((neuro.SpikeSort.Unit & {"subject": "m1"}).to_arrays("n_spikes"))


def test_fractal_pipeline(example_env):
    load, _ = example_env
    fractal = load("definitions.fractal")
    from definitions.runner import run_until_settled

    fractal.JuliaSpec.insert(fractal.SPECS[:2])
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(fractal.defs, instance)
        assert runs and all(r.success for r in runs)
    assert len(fractal.Denoised()) == 2 * len(fractal.DenoiseMethod())
    best = dj.U("method").aggr(fractal.Denoised * fractal.DenoiseMethod, mse="min(mse)").to_dicts(order_by="mse")
    assert best[-1]["method"] == "none"  # any filter beats the noisy image
