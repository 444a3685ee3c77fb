"""Reliability under load and faults (issue #8): workers, a Dagster sensor and a process
that inserts and cascade-deletes roots, all at once; a PostgreSQL restart and an S3
outage during populate; Dagster run processes sharing one SQLite file; secrets kept out
of Dagster's event log, error messages and reprs. Every test is bounded in time."""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import subprocess
import sys
import time
import traceback
import uuid
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import sqlalchemy as sa

import dj_dagster as dj
import dj_dagster.connection as dj_connection
from definitions.runner import run_until_settled
from dj_dagster.external import UploadError, gc
from dj_dagster.orchestration import DataJointResource, build_definitions
from dj_dagster.partition_keys import encode_key
from dj_dagster.settings import config
from dj_dagster.stores import clear_store_cache, get_store
from tests.conftest import URLS, backend_url
from tests.e2e_util import ROOT, wait_until
from tests.s3server import TEST_ACCESS_KEY, TEST_SECRET_KEY, s3_server
from tests.tcpproxy import TcpProxy

# the scale (5000 keys, 40 churn rounds) takes about 2 minutes per backend on 2 cores
LOAD_KEYS = int(os.environ.get("DJ_LOAD_KEYS", "300"))
CHURN_ROUNDS = int(os.environ.get("DJ_CHURN_ROUNDS", "20"))
LOAD_WORKERS = 4
LOAD_TIMEOUT_S = float(os.environ.get("DJ_LOAD_TIMEOUT_S", "600"))


# --------------------------------------------------------------------------- helpers


@pytest.fixture
def spawn(fault_env, tmp_path):
    """Start ``python -m tests.fault_pipeline ACTION``; output goes to a file (a pipe
    nobody reads while the process runs could fill up). Whatever still runs when the test
    ends is told to stop, then killed, before the schema is dropped."""
    procs = []

    def start(action: str, env: dict, log: Path) -> subprocess.Popen:
        with open(log, "w") as out:
            procs.append(subprocess.Popen([sys.executable, "-m", "tests.fault_pipeline", action], env=env,
                                          cwd=ROOT, stdout=out, stderr=subprocess.STDOUT))
        return procs[-1]

    yield start
    (tmp_path / "stop").touch()
    for proc in procs:
        try:
            proc.wait(timeout=10 if proc.poll() is None else 0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=30)


def _finish(proc: subprocess.Popen, log: Path, timeout: float) -> dict:
    """Wait for the process; return the JSON counts it printed last."""
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=30)
        raise AssertionError(f"{log.name} did not finish in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
    text = log.read_text()
    assert proc.returncode == 0, f"{log.name} failed:\n{text[-3000:]}"
    lines = [ln for ln in text.splitlines() if ln.startswith("{")]
    assert lines, f"{log.name} printed no report:\n{text[-3000:]}"
    return json.loads(lines[-1])


def _import_pipeline(module: str, env: dict, monkeypatch):
    """Import a pipeline module in this process against the database of the subprocesses."""
    for name in ("DJ_DATABASE_URL", "DJ_FAULT_SCHEMA", "DJ_FAULT_DIR"):
        if name in env:
            monkeypatch.setenv(name, env[name])
    sys.modules.pop(module, None)
    __import__(module)
    return sys.modules[module]


@pytest.fixture
def fault_env(backend, tmp_path_factory, tmp_path):
    """Environment for pipeline subprocesses: a database URL, a fresh schema name, and a
    folder for the stop file and the logs. The schema is dropped afterwards."""
    url = backend_url(backend, tmp_path_factory)
    name = f"djf_{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJ_", "DAGSTER_"))}
    env.update(DJ_DATABASE_URL=url, DJ_FAULT_SCHEMA=name, DJ_FAULT_DIR=str(tmp_path), PYTHONPATH=str(ROOT))
    yield env
    connection = dj.Connection(url)
    dj.Schema(name, connection=connection, create_tables=False).drop(force=True, safemode=False)
    connection.close()


# --------------------------------------------------------------------------- 1. load


@pytest.mark.backends("mysql", "postgresql")
def test_load_workers_dagster_and_cascading_deletes(fault_env, spawn, monkeypatch, tmp_path):
    """4 workers and the Dagster sensor populate two levels while roots come and go:
    every remaining root is computed exactly once at both levels, nothing depends on a
    deleted root, no job is left reserved, and only deleted roots have failed jobs."""
    p = _import_pipeline("tests.fault_pipeline", fault_env, monkeypatch)
    p.Root.insert([(i, float(i)) for i in range(LOAD_KEYS)])
    env = {**fault_env, "DJ_CHURN_FIRST_ID": str(LOAD_KEYS), "DJ_CHURN_BATCH": str(max(10, LOAD_KEYS // 50)),
           "DJ_CHURN_ROUNDS": str(CHURN_ROUNDS), "DJ_CHURN_MAX_S": str(LOAD_TIMEOUT_S / 2)}
    started = time.monotonic()
    procs = {"dagster": spawn("dagster", env, tmp_path / "dagster.log")}
    wait_until(lambda: (tmp_path / "dagster-ready").exists() or procs["dagster"].poll() is not None, 180,
               interval=0.1, what="the Dagster process to start")
    for name in [f"work{i}" for i in range(LOAD_WORKERS)] + ["churn"]:
        procs[name] = spawn(name.rstrip("0123456789"), env, tmp_path / f"{name}.log")
    churn = _finish(procs.pop("churn"), tmp_path / "churn.log", LOAD_TIMEOUT_S)
    (tmp_path / "stop").touch()
    reports = {n: _finish(proc, tmp_path / f"{n}.log", LOAD_TIMEOUT_S - (time.monotonic() - started))
               for n, proc in procs.items()}
    elapsed = time.monotonic() - started

    roots = {int(r) for r in p.Root.to_arrays("root_id")}
    stage = sorted(int(r) for r in p.Stage.to_arrays("root_id"))
    final = sorted(int(r) for r in p.Final.to_arrays("root_id"))
    log_rows = p.MakeLog.to_dicts()
    logs = collections.Counter((r["tier"], int(r["root_id"])) for r in log_rows)
    reports["dagster"]["made"] = sum(r["pid"] == reports["dagster"]["pid"] for r in log_rows)
    duplicates = {k: n for k, n in logs.items() if n > 1}
    lost = {r for r in roots for tier in ("stage", "final") if logs[(tier, r)] != 1}
    orphans = (set(stage) - roots) | (set(final) - set(stage))
    deleted = set(range(LOAD_KEYS + churn["inserted"])) - roots
    failed = [(r, deadlock) for report in reports.values() for r, deadlock in report["failed_ids"]]
    error_jobs = [j for t in (p.Stage, p.Final) for j in t().jobs.errors]
    deadlocked = {int(j["root_id"]) for j in error_jobs if "deadlock" in j["error_message"].lower()}
    crashed = [d for n in reports if n.startswith("work") for d in reports[n]["populate_deadlocks"]]
    print("load:", dict(keys=LOAD_KEYS + churn["inserted"], remaining=len(roots), deleted=churn["deleted"],
                        delete_conflicts=churn["conflicts"], makes=sum(logs.values()), duplicates=len(duplicates),
                        lost=len(lost), orphans=len(orphans), failed_makes=len(failed), error_jobs=len(error_jobs),
                        deadlocked=len(deadlocked), populate_deadlocks=len(crashed), dagster=reports["dagster"],
                        seconds=round(elapsed, 1)))
    assert churn["deleted"] == len(deleted) > 0 and churn["rounds"] >= 5
    assert duplicates == {}, f"computed more than once: {list(duplicates)[:10]}"
    assert orphans == set()
    values = {int(r["root_id"]): r["b"] for r in p.Final.to_dicts()}
    assert all(values[r] == 2 * (r + 1) for r in roots - lost)
    for table in (p.Stage, p.Final):
        assert len(table().jobs.reserved) == 0, f"{table.__name__}: jobs left reserved"
    assert reports["dagster"]["runs"] > 0 and reports["dagster"]["unexplained"] == [], reports["dagster"]
    # a make (in a worker or a Dagster run) may fail only because its root was deleted under
    # it (such error jobs stay: see test_refresh_drops_error_jobs_of_deleted_keys) or
    # because it lost a deadlock
    samples = [reports[n]["error_samples"] for n in reports if n.startswith("work")]
    assert all(r in deleted or deadlock for r, deadlock in failed), samples
    assert {int(j["root_id"]) for j in error_jobs} <= deleted | deadlocked, samples
    assert lost <= deadlocked, f"remaining roots not computed exactly once: {sorted(lost - deadlocked)[:10]}"
    assert not lost and not crashed, f"deadlock victims not retried: {len(lost)} lost, {len(crashed)} crashed"
    assert stage == final == sorted(roots)


# --------------------------------------------------------------------------- 2. PostgreSQL restart


def _pg_address() -> tuple[str, int]:
    url = sa.make_url(URLS["postgresql"])
    return url.host or "127.0.0.1", url.port or 5432


def _pg_ctl(action: str) -> None:
    """pg_ctlcluster ACTION for the local cluster serving the test URL's port."""
    port = _pg_address()[1]
    out = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True).stdout
    cluster = [line.split()[:2] for line in out.splitlines() if line.split()[2] == str(port)]
    assert cluster, f"no local PostgreSQL cluster on port {port}:\n{out}"
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", *cluster[0], action], check=True,
                   capture_output=True, timeout=120)


def _pg_ready() -> bool:
    host, port = _pg_address()
    return subprocess.run(["pg_isready", "-q", "-h", host, "-p", str(port)], timeout=30).returncode == 0


@pytest.fixture
def pg_schema(schema):
    """The test schema on a PostgreSQL the test may stop; running again when the test
    ends, even on failure (before the schema is dropped)."""
    yield schema
    if not _pg_ready():
        with contextlib.suppress(subprocess.CalledProcessError):  # it may be starting already
            _pg_ctl("start")
    wait_until(_pg_ready, 90, interval=0.2, what="PostgreSQL to accept connections")


def declare_results(schema, style: str, fault):
    """Source -> Result with a part table; ``fault(key)`` runs mid-make: between the
    master row and its parts (plain make) or in make_compute (three-part make)."""

    @schema
    class Source(dj.Manual):
        definition = """
        k : int32
        """

    class Result(dj.Computed):
        definition = """
        -> Source
        ---
        v : int32
        """

        class Piece(dj.Part):
            definition = """
            -> master
            i : int16
            """

    def make(self, key):
        self.insert1({**key, "v": key["k"]})
        fault(key)
        self.Piece.insert([{**key, "i": i} for i in range(3)])

    def make_compute(self, key, k):
        fault(key)
        return k

    def make_insert(self, key, k):
        self.insert1({**key, "v": k})
        self.Piece.insert([{**key, "i": i} for i in range(3)])

    if style == "plain":
        Result.make = make
    else:
        Result.make_fetch = lambda self, key: key["k"]
        Result.make_compute = make_compute
        Result.make_insert = make_insert
    return Source, schema(Result)


def assert_whole(Result, expected: int) -> None:
    """``expected`` results, each with all three parts: nothing half-written."""
    pieces = collections.Counter(int(k) for k in Result.Piece.to_arrays("k"))
    assert len(Result()) == expected and set(pieces) == {int(k) for k in Result.to_arrays("k")}
    assert set(pieces.values()) <= {3}


RESTART_KEYS, FAULT_AT = 30, 10


@pytest.mark.backends("postgresql")
@pytest.mark.parametrize("style, reserve", [
    ("plain", True), ("plain", False),
    ("three_part", True),
])
def test_postgres_restart_during_populate(pg_schema, style, reserve):
    """PostgreSQL stops in the middle of a make and starts once populate gave up: the key
    in flight leaves nothing behind, and a second populate() in the same process (same
    connection object) computes every remaining key."""
    stopped = []

    def fault(key):
        if key["k"] == FAULT_AT and not stopped:
            stopped.append(key)
            _pg_ctl("stop")  # terminates the make's session

    Source, Result = declare_results(pg_schema, style, fault)
    Source.insert([(k,) for k in range(RESTART_KEYS)])
    try:
        first = Result.populate(reserve_jobs=reserve, suppress_errors=True, return_exception_objects=True)
        failures = [e for _, e in first["error_list"]]
    except dj.DataJointError as exc:  # recording the job's error needs the database too
        first, failures = None, [exc]
    finally:
        if stopped:
            _pg_ctl("start")
    assert stopped and failures, "the fault did not strike"
    assert all(isinstance(e, (dj.DataJointError, sa.exc.DBAPIError)) for e in failures), failures
    assert first is None or (first["success_count"], len(failures)) == (FAULT_AT, RESTART_KEYS - FAULT_AT)
    wait_until(_pg_ready, 90, interval=0.2, what="PostgreSQL to accept connections")
    assert_whole(Result, FAULT_AT)

    second = Result.populate(reserve_jobs=reserve, suppress_errors=True)
    assert second["error_list"] == [] and second["success_count"] == RESTART_KEYS - FAULT_AT
    assert_whole(Result, RESTART_KEYS)
    if reserve:
        assert len(Result().jobs.reserved) == 0 and len(Result().jobs.errors) == 0


@pytest.mark.backends("postgresql")
def test_postgres_restart_while_idle(pg_schema):
    """Pooled connections die with a restart between two calls; the next call notices at
    checkout and reconnects instead of failing its first statement."""
    Source, Result = declare_results(pg_schema, "plain", lambda key: None)
    Source.insert([(k,) for k in range(10)])
    assert Result.populate(reserve_jobs=True, max_calls=5)["success_count"] == 5
    _pg_ctl("restart")
    wait_until(_pg_ready, 90, interval=0.2, what="PostgreSQL to accept connections")
    assert Result.populate(reserve_jobs=True)["success_count"] == 5  # raises on any failure
    assert_whole(Result, 10)


# --------------------------------------------------------------------------- 3. S3 outage


@pytest.fixture(scope="module")
def s3_behind_proxy():
    """An S3 server reached through a proxy the test can switch off: an outage that
    keeps the objects (a restarted in-memory server would lose them)."""
    with s3_server() as endpoint:
        proxy = TcpProxy(int(endpoint.rsplit(":", 1)[1]))
        proxy.start()
        try:
            yield endpoint, proxy
        finally:
            proxy.stop()


@pytest.fixture
def s3_store(s3_behind_proxy, monkeypatch):
    """Store ``s3``: a fresh bucket through the proxy; the direct client for checks."""
    import boto3

    endpoint, proxy = s3_behind_proxy
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=TEST_ACCESS_KEY,
                          aws_secret_access_key=TEST_SECRET_KEY, region_name="us-east-1")
    bucket = f"dj-fault-{uuid.uuid4().hex[:10]}"
    client.create_bucket(Bucket=bucket)
    spec = {"protocol": "s3", "endpoint_url": proxy.url, "location": f"{bucket}/objects",
            "access_key": TEST_ACCESS_KEY, "secret_key": TEST_SECRET_KEY,
            "config_kwargs": {"retries": {"max_attempts": 1}}, "retries": 1}
    monkeypatch.setitem(config, "stores", {"s3": spec})
    monkeypatch.setitem(config, "default_store", "s3")
    clear_store_cache()
    yield proxy, client, bucket
    proxy.stop()
    proxy.start()  # for the next test, whatever this one left
    clear_store_cache()


S3_KEYS, S3_FAULT_AT = 8, 3


def test_s3_outage_during_populate(schema, s3_store):
    """S3 goes away during a populate that writes <blob@s3>: the keys fail as upload
    errors (no secret in them), none writes a row; once S3 is back the failed keys are
    retried and every row's object is in the bucket."""
    proxy, client, bucket = s3_store
    outages = []

    @schema
    class Shot(dj.Manual):
        definition = """
        shot : int32
        """

    @schema
    class Image(dj.Computed):
        definition = """
        -> Shot
        ---
        pixels : <blob@s3>
        """

        def make(self, key):
            if key["shot"] == S3_FAULT_AT and not outages:
                outages.append(key)
                proxy.stop()
            self.insert1({**key, "pixels": np.full(500, key["shot"], dtype=np.int32)})

    Shot.insert([(k,) for k in range(S3_KEYS)])
    first = Image.populate(reserve_jobs=True, suppress_errors=True, return_exception_objects=True)
    assert first["success_count"] == S3_FAULT_AT and len(first["error_list"]) == S3_KEYS - S3_FAULT_AT
    for _, exc in first["error_list"]:
        assert isinstance(exc, UploadError), repr(exc)
        assert TEST_SECRET_KEY not in f"{exc} {exc!r}"
    assert len(Image()) == S3_FAULT_AT and len(Image().jobs.errors) == S3_KEYS - S3_FAULT_AT

    proxy.start()
    assert Image().jobs.clear_errors() == S3_KEYS - S3_FAULT_AT  # retry what failed
    second = Image.populate(reserve_jobs=True)
    assert second["success_count"] == S3_KEYS - S3_FAULT_AT
    rows = Image.to_dicts(order_by="shot")
    assert [r["shot"] for r in rows] == list(range(S3_KEYS))
    assert all(np.array_equal(r["pixels"], np.full(500, r["shot"], dtype=np.int32)) for r in rows)
    objects = client.list_objects_v2(Bucket=bucket)["Contents"]
    assert len(objects) == S3_KEYS, "one object per row, none lost"
    assert gc(schema) == []


# --------------------------------------------------------------------------- 4. SQLite run workers

RUN_WORKERS, RUNS_EACH = 3, 3


@pytest.mark.backends("sqlite")
def test_dagster_run_workers_share_one_sqlite_file(fault_env, spawn, monkeypatch, tmp_path):
    """Several Dagster run processes materialize different partitions of the same assets
    in one SQLite file at the same time: no "database is locked", every run succeeds,
    every key is computed once."""
    p = _import_pipeline("tests.fault_pipeline", fault_env, monkeypatch)
    n = RUN_WORKERS * RUNS_EACH
    p.Root.insert([(i, float(i)) for i in range(n)])
    parts = [encode_key(p.Root.heading, {"root_id": i}) for i in range(n)]
    procs = []
    for w in range(RUN_WORKERS):
        env = {**fault_env, "DJ_PARTITIONS": ",".join(parts[w::RUN_WORKERS]), "DJ_MAKE_SLEEP": "0.05"}
        procs.append(spawn("runs", env, tmp_path / f"runs{w}.log"))
    wait_until(lambda: len(list(tmp_path.glob("ready-*"))) == RUN_WORKERS or
               any(proc.poll() is not None for proc in procs), 180, interval=0.1, what="run workers to start")
    (tmp_path / "go").touch()
    reports = [_finish(proc, tmp_path / f"runs{w}.log", 300) for w, proc in enumerate(procs)]
    print("runs:", [(round(r["end"] - r["start"], 1), r["succeeded"]) for r in reports], "overlap",
          round(min(r["end"] for r in reports) - max(r["start"] for r in reports), 1))
    logs = " ".join((tmp_path / f"runs{w}.log").read_text() for w in range(RUN_WORKERS))
    assert "database is locked" not in logs
    assert [r["succeeded"] for r in reports] == [RUNS_EACH] * RUN_WORKERS, reports
    assert max(r["start"] for r in reports) < min(r["end"] for r in reports), "the runs did not overlap"
    made = collections.Counter((r["tier"], int(r["root_id"])) for r in p.MakeLog.to_dicts())
    assert made == {(tier, i): 1 for tier in ("stage", "final") for i in range(n)}
    assert len(p.Stage()) == len(p.Final()) == n
    for table in (p.Stage, p.Final):
        assert len(table().jobs.errors) == 0 and len(table().jobs.reserved) == 0


# --------------------------------------------------------------------------- 5. secrets


@contextlib.contextmanager
def database_user(admin_url: str, backend: str, password: str):
    """A database user with a password for one test; yields its URL (password included)."""
    user = f"djsec_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    database = sa.make_url(admin_url).database
    if backend == "mysql":  # %% is PyMySQL's escape of %
        create = [f"CREATE USER '{user}'@'%%' IDENTIFIED BY '{password}'",
                  f"GRANT ALL PRIVILEGES ON *.* TO '{user}'@'%%'"]
        drop = [f"DROP USER IF EXISTS '{user}'@'%%'"]
    else:
        create = [f"CREATE ROLE {user} LOGIN PASSWORD '{password}'", f"GRANT CREATE ON DATABASE {database} TO {user}"]
        drop = [f"DROP OWNED BY {user}", f"DROP ROLE IF EXISTS {user}"]
    with admin.connect() as c:
        for stmt in create:
            c.exec_driver_sql(stmt)
    try:
        yield sa.make_url(admin_url).set(username=user, password=password).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            for stmt in drop:
                c.exec_driver_sql(stmt)
        admin.dispose()


def declare_secret_pipeline(schema, url: str):
    """Key 1 computes; key 2 fails uploading to a missing bucket; key 3 fails connecting
    to a missing database with the password-bearing URL."""

    @schema
    class Sample(dj.Manual):
        definition = """
        sample : int32
        """

    @schema
    class Upload(dj.Computed):
        definition = """
        -> Sample
        ---
        pixels : <blob@s3>
        backup = null : <blob@gone>
        """

        def make(self, key):
            row = {**key, "pixels": np.arange(10)}
            if key["sample"] == 2:
                row["backup"] = np.arange(5)
            if key["sample"] == 3:
                other = dj.Connection(sa.make_url(url).set(database="no_such_db_x"))
                try:
                    other.scalar(sa.text("SELECT 1"))
                finally:
                    other.close()
            self.insert1(row)

    return Sample, Upload


def secret_free(secrets: list[str], **texts: str) -> None:
    """Name the places where a secret shows (never print the texts themselves)."""
    leaks = [name for name, text in texts.items() if any(secret in text for secret in secrets)]
    assert leaks == [], "a secret shows in these places"


@pytest.mark.backends("mysql", "postgresql")
def test_secrets_stay_out_of_dagster_errors_and_reprs(backend, tmp_path_factory, tmp_path, s3_store, monkeypatch,
                                                      caplog, capfd):
    """A database user with a password and an S3 secret key: neither reaches Dagster's
    storage (runs, event log, metadata), error messages (failed connection, failed
    populate, the jobs table) or the repr of a connection, resource, store or config."""
    proxy, client, bucket = s3_store
    password, s3_secret = f"pw-{uuid.uuid4().hex}", f"s3-{uuid.uuid4().hex}"
    secrets = [password, s3_secret]
    stores = config["stores"]
    stores["s3"]["secret_key"] = s3_secret
    stores["gone"] = {**stores["s3"], "location": f"no-such-bucket-{uuid.uuid4().hex[:8]}/x"}
    clear_store_cache()
    assert get_store("s3").fs.secret == s3_secret  # the secret is in use
    caplog.set_level(logging.DEBUG)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    with database_user(backend_url(backend, tmp_path_factory), backend, password) as url:
        monkeypatch.setenv("DJ_SECRET_TEST_URL", url)
        connection = dj.Connection(url)
        schema = dj.Schema(f"djs_{uuid.uuid4().hex[:8]}", connection=connection)
        try:
            Sample, Upload = declare_secret_pipeline(schema, url)
            Sample.insert([(1,), (2,), (3,)])
            resource = DataJointResource(database_url=dg.EnvVar("DJ_SECRET_TEST_URL"))
            defs = build_definitions(Sample, Upload, partition_root=Sample, name=f"sec_{schema.database}",
                                     resources={"datajoint": resource})

            @dg.asset
            def database_reachable(datajoint: DataJointResource) -> int:
                return int(datajoint.connection().scalar(sa.text("SELECT 1")))

            monkeypatch.setattr(dj_connection, "_default", dj_connection._default)  # restored afterwards
            with dg.DagsterInstance.local_temp(tempdir=str(dagster_home)) as instance:
                runs = run_until_settled(defs, instance)
                assert sorted(r.success for r in runs) == [False, False, True]
                assert dg.materialize([database_reachable], resources={"datajoint": resource},
                                      instance=instance).success
                events = "\n".join(repr(e) for r in instance.get_runs() for e in instance.all_logs(r.run_id))
                run_records = "\n".join(repr(r) for r in instance.get_runs())
            assert "no_such_db_x" in events and "bucket does not exist" in events  # the failures were recorded
            jobs = " ".join(f"{j['error_message']} {j['error_stack']}" for j in Upload().jobs.errors)
            assert len(Upload().jobs.errors) == 2

            failed = dj.Connection(sa.make_url(url).set(database="no_such_db_x"))
            with pytest.raises(dj.DataJointError) as info:
                dj.Schema("anything", connection=failed)
            error = info.value
            chain = "".join(traceback.format_exception(error)) + repr(error.__context__) + str(error.__context__)
            result = Upload.populate(suppress_errors=True)  # the failures outside Dagster
            populate_errors = " ".join(f"{e} {e!r}" for _, e in result["error_list"])
            assert len(result["error_list"]) == 2
            with pytest.raises(dj.DataJointError, match="EnvVar") as refused:  # would land in run storage
                DataJointResource(database_url=url)
            reprs = " ".join(f"{o!r} {o!s}" for o in (
                connection, connection.engine, connection.url, failed, resource,
                refused.value, get_store("s3"), get_store("gone"), config))
        finally:
            schema.drop(force=True, safemode=False)
            connection.close()
    stored = {str(f.relative_to(dagster_home)): f.read_bytes().decode("latin-1")
              for f in dagster_home.rglob("*") if f.is_file()}
    assert any(schema.database in text for text in stored.values())  # the scan sees what Dagster wrote
    out = capfd.readouterr()
    secret_free(secrets, **stored, events=events, runs=run_records, jobs=jobs, connection_error=chain,
                populate_errors=populate_errors, reprs=reprs, logs=caplog.text, output=out.out + out.err)


# --------------------------------------------------------------------------- job hygiene


def test_refresh_drops_error_jobs_of_deleted_keys(schema):
    """A make that fails because its input was deleted meanwhile leaves an error job;
    once the key is gone from the key source, refresh() forgets it (as datajoint does),
    so error jobs under churn do not pile up forever."""

    @schema
    class Source(dj.Manual):
        definition = """
        k : int32
        """

    @schema
    class Fails(dj.Computed):
        definition = """
        -> Source
        """

        def make(self, key):
            raise RuntimeError("input went away")

    Source.insert([(1,), (2,)])
    assert len(Fails.populate(reserve_jobs=True, suppress_errors=True)["error_list"]) == 2
    (Source & {"k": 1}).delete(safemode=False)
    Fails().jobs.refresh()
    assert [int(j["k"]) for j in Fails().jobs.errors] == [2]
