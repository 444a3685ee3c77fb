"""Several worker processes populate one table with reserve_jobs=True: every key is
computed exactly once; a worker killed mid-make leaves nothing half-done and its key is
computed by the next populate."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

import dj_dagster as dj
from tests.conftest import backend_url
from tests.e2e_util import ROOT, wait_until

N_KEYS = 2000
N_WORKERS = 4


@pytest.fixture
def worker_env(backend, tmp_path_factory):
    url = backend_url(backend, tmp_path_factory)
    name = f"djw_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJ_")}
    env.update(DJ_DATABASE_URL=url, DJ_WORKER_SCHEMA=name, PYTHONPATH=str(ROOT))
    connection = dj.Connection(url)
    yield env, connection, name
    dj.Schema(name, connection=connection, create_tables=False).drop(force=True, safemode=False)
    connection.close()


def _module(env, monkeypatch):
    """Import the pipeline in this process against the same database."""
    monkeypatch.setenv("DJ_DATABASE_URL", env["DJ_DATABASE_URL"])
    monkeypatch.setenv("DJ_WORKER_SCHEMA", env["DJ_WORKER_SCHEMA"])
    sys.modules.pop("tests.worker_pipeline", None)
    import tests.worker_pipeline as pipeline

    return pipeline


def test_four_workers_compute_each_key_once(worker_env, monkeypatch):
    env, connection, name = worker_env
    pipeline = _module(env, monkeypatch)
    pipeline.Item.insert([(i, float(i)) for i in range(N_KEYS)])
    procs = [subprocess.Popen([sys.executable, "-m", "tests.worker_pipeline", "populate"], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(N_WORKERS)]
    outputs = [p.communicate(timeout=900)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert len(pipeline.Result()) == N_KEYS
    items = pipeline.MakeLog.to_arrays("item_id")
    assert len(items) == N_KEYS and len(set(items)) == N_KEYS, "a key was computed twice"
    assert len(set(pipeline.MakeLog.to_arrays("pid"))) > 1, "only one worker did any work"
    assert len(pipeline.Result().jobs.reserved) == 0 and len(pipeline.Result().jobs.errors) == 0
    assert sum(int(o.split("success=")[1].split()[0]) for o in outputs) == N_KEYS


def _start_and_kill(env, action, tmp_path):
    """Start a worker on a key whose make hangs, and SIGKILL it once the make runs."""
    mark = tmp_path / "mark"
    proc = subprocess.Popen([sys.executable, "-m", "tests.worker_pipeline", action],
                            env={**env, "DJ_WORKER_MARK": str(mark)}, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_until(mark.exists, 120, interval=0.2, what="worker to start make for key 1")
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


def test_killed_worker_leaves_nothing_and_its_key_is_free(worker_env, monkeypatch, tmp_path):
    """A plain make claims its job by a lock of its own transaction: the killed worker's
    connection drops, the database rolls back, and the job is pending again at once."""
    env, connection, name = worker_env
    pipeline = _module(env, monkeypatch)
    pipeline.Item.insert([(1, -1.0), (2, 2.0)])
    jobs = pipeline.Result().jobs
    _start_and_kill(env, "populate", tmp_path)
    assert len(pipeline.Result & {"item_id": 1}) == 0 and len(pipeline.MakeLog & {"item_id": 1}) == 0
    assert {r["item_id"]: r["status"] for r in jobs.to_dicts()} == {1: "pending", 2: "pending"}
    pipeline.Item.update1({"item_id": 1, "value": 1.0})  # the cause of the hang is fixed

    def finished():  # no refresh(): the next populate claims key 1 once the server drops the dead session
        assert pipeline.Result.populate(reserve_jobs=True)["error_list"] == []
        return len(pipeline.Result()) == 2

    wait_until(finished, 60, interval=0.5, what="key 1 to be computed after the kill")
    assert sorted(pipeline.Result.to_arrays("doubled")) == [2.0, 4.0]
    assert jobs.to_dicts() == []


def test_killed_three_part_worker_is_recovered_by_refresh(worker_env, monkeypatch, tmp_path):
    """A three-part make computes outside a transaction, so its reservation is a
    committed row: refresh() finds the dead pid and returns the key to pending."""
    env, connection, name = worker_env
    pipeline = _module(env, monkeypatch)
    pipeline.Item.insert([(1, -1.0), (2, 2.0)])
    jobs = pipeline.Tripled().jobs
    _start_and_kill(env, "populate3", tmp_path)
    assert len(pipeline.Tripled & {"item_id": 1}) == 0
    assert [r["item_id"] for r in jobs.reserved] == [1]
    assert jobs.refresh()["orphaned"] == 1  # the dead worker's reservation, pending again
    pipeline.Item.update1({"item_id": 1, "value": 1.0})
    result = pipeline.Tripled.populate(reserve_jobs=True)
    assert result["error_list"] == []
    assert sorted(pipeline.Tripled.to_arrays("tripled")) == [3.0, 6.0]
    assert len(jobs.reserved) == 0


# --- populate(processes=N): a worker that dies ------------------------------------------

def _suicidal_table(schema, deadly: set):
    """A computed table whose make SIGKILLs its own process for the keys in ``deadly``."""

    @schema
    class Number(dj.Lookup):
        definition = """
        n : int32
        """
        contents = [(i,) for i in range(12)]

    @schema
    class Doubled(dj.Computed):
        definition = """
        -> Number
        ---
        doubled : int32
        pid : int32
        """

        def make(self, key):
            if key["n"] in deadly:
                os.kill(os.getpid(), signal.SIGKILL)
            self.insert1({**key, "doubled": 2 * key["n"], "pid": os.getpid()})

    return Doubled


@pytest.mark.timeout(180)
@pytest.mark.parametrize("reserve_jobs", [True, False])
def test_parallel_populate_survives_a_killed_worker(schema, reserve_jobs):
    Doubled = _suicidal_table(schema, {3})
    result = Doubled.populate(processes=2, reserve_jobs=reserve_jobs, suppress_errors=True,
                              return_exception_objects=True)
    assert result["success_count"] == 11
    assert [key for key, _ in result["error_list"]] == [{"n": 3}]
    err = result["error_list"][0][1]
    assert isinstance(err, dj.DataJointError) and "worker" in str(err) and "died" in str(err)
    assert "signal 9" in str(err)
    assert sorted(Doubled.to_arrays("n")) == [n for n in range(12) if n != 3]
    if reserve_jobs:
        errors = Doubled().jobs.errors.to_dicts()
        assert [e["n"] for e in errors] == [3] and "worker died" in errors[0]["error_message"]
        assert len(Doubled().jobs.reserved) == 0


@pytest.mark.timeout(180)
def test_parallel_populate_raises_after_a_death_without_suppress_errors(schema):
    Doubled = _suicidal_table(schema, {0})
    with pytest.raises(dj.DataJointError, match="died"):
        Doubled.populate(processes=2)
    assert len(Doubled()) == 11  # the other keys were still computed


@pytest.mark.timeout(180)
def test_parallel_populate_returns_when_every_worker_dies(schema):
    Doubled = _suicidal_table(schema, set(range(12)) - {5})
    result = Doubled.populate(processes=3, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 1 and len(result["error_list"]) == 11
    assert Doubled.to_arrays("n").tolist() == [5]
    assert len(Doubled().jobs.errors) == 11


def test_error_messages_alike_with_and_without_workers(tmp_path):
    """populate(processes=2) reports a make's error as one process does: 'Class: message'."""
    import dj_dagster as dj

    connection = dj.Connection(f"sqlite:///{tmp_path / 'w.sqlite'}")
    schema = dj.Schema("w_msgs", connection=connection)

    @schema
    class Source(dj.Manual):
        definition = """
        n : int32
        """

    @schema
    class Failing(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            raise ValueError("boom")

    Source.insert([{"n": i} for i in range(3)])
    one = Failing.populate(suppress_errors=True)["error_list"]
    two = Failing.populate(suppress_errors=True, processes=2)["error_list"]
    assert {m for _, m in one} == {m for _, m in two} == {"ValueError: boom"}
    connection.close()
