"""The direct statement path (dj_dagster/execution.py), the pinned populate connection and
deterministic subquery names, on every backend: the hot statements really skip
SQLAlchemy's execute, and give the same values, types and errors as when they do not."""

import datetime as dt
import decimal
import uuid

import pytest
import sqlalchemy as sa

import dj_dagster as dj
from dj_dagster import execution
from dj_dagster.errors import DuplicateError


@pytest.fixture
def direct_runs(monkeypatch):
    """The statements that ran on the driver's cursor directly."""
    runs = []
    original = execution.DirectExecutor._run

    def spy(self, engine, dbapi_conn, invalidate, plan, values, fetch, **kw):
        runs.append(plan.sql)
        return original(self, engine, dbapi_conn, invalidate, plan, values, fetch, **kw)

    monkeypatch.setattr(execution.DirectExecutor, "_run", spy)
    return runs


def _declare(schema):
    @schema
    class Sample(dj.Manual):
        definition = """
        sample : int32
        ---
        day : date
        stamp : datetime(3)
        price : decimal(8,2)
        flag : bool
        uid : uuid
        doc = null : json
        weight = null : float64
        name : varchar(16)
        """

    @schema
    class Doubled(dj.Computed):
        definition = """
        -> Sample
        ---
        twice : float64
        """

        def make(self, key):
            weight = (Sample & key).fetch1("weight")
            self.insert1({**key, "twice": 2 * (weight or 0.0)})

    return Sample, Doubled


def _row(i):
    return {"sample": i, "day": dt.date(2024, 2, 29), "stamp": dt.datetime(2024, 1, 1, 1, 2, 3, 456000),
            "price": decimal.Decimal("-1.50"), "flag": i % 2 == 0, "uid": uuid.UUID(int=i),
            "doc": {"i": i, "list": [1, None]}, "weight": None if i == 3 else i / 4, "name": f"s{i}"}


def test_hot_statements_run_direct_with_the_same_values(schema, direct_runs):
    Sample, Doubled = _declare(schema)
    for i in range(6):
        Sample.insert1(_row(i))  # one-row inserts
    assert sum(s.lstrip().upper().startswith("INSERT") for s in direct_runs) == 6

    direct_runs.clear()
    assert len(Sample) == 6 and len(Sample & {"sample": 2}) == 1
    one = (Sample & {"sample": 2}).fetch1()
    everything = Sample.to_dicts(order_by="sample")
    assert len(direct_runs) >= 3

    # the same reads through SQLAlchemy (a listener keeps statements on its path)
    seen = []

    def listener(*args):
        seen.append(args[2])

    engines = schema.connection.engines
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", listener)
    direct_runs.clear()
    try:
        one_sa = (Sample & {"sample": 2}).fetch1()
        everything_sa = Sample.to_dicts(order_by="sample")
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", listener)
    assert direct_runs == [] and len(seen) >= 2
    assert one == one_sa == _row(2)
    assert everything == everything_sa == [_row(i) for i in range(6)]
    for a, b in zip(everything, everything_sa):
        assert {k: type(v) for k, v in a.items()} == {k: type(v) for k, v in b.items()}


def test_binary_results_only_where_values_load_alike(schema, monkeypatch):
    """PostgreSQL reads direct results in psycopg's binary format when every column loads
    to the same value as from text; REAL (widened in binary) and enum keep the text format."""
    plans = []
    original = execution.DirectExecutor._run

    def spy(self, engine, dbapi_conn, invalidate, plan, values, fetch, **kw):
        plans.append(plan)
        return original(self, engine, dbapi_conn, invalidate, plan, values, fetch, **kw)

    monkeypatch.setattr(execution.DirectExecutor, "_run", spy)
    Sample, _ = _declare(schema)

    @schema
    class Reading(dj.Manual):
        definition = """
        reading : int32
        ---
        level : float32
        kind : enum('low', 'high')
        """

    Sample.insert([_row(i) for i in range(3)])
    Reading.insert1({"reading": 1, "level": 0.1, "kind": "high"})
    plans.clear()
    assert Sample.to_dicts(order_by="sample") == [_row(i) for i in range(3)]
    assert (Reading & {"reading": 1}).fetch1() == {"reading": 1, "level": pytest.approx(0.1), "kind": "high"}
    assert (Reading & {"reading": 1}).fetch1("level") == 0.1  # not 0.10000000149011612, float4 widened
    selects = [p for p in plans if p.sql.lstrip().upper().startswith("SELECT")]
    assert len(selects) >= 2
    on_pg = schema.connection.backend == "postgresql"
    assert [p.binary for p in selects] == [on_pg] + [False] * (len(selects) - 1)


def test_direct_errors_are_sqlalchemy_errors(schema, direct_runs):
    Sample, _ = _declare(schema)
    Sample.insert1(_row(1))
    with pytest.raises(DuplicateError, match="sample"):
        Sample.insert1(_row(1))
    assert direct_runs, "the duplicate insert did not take the direct path"
    # the failed statement left the connection usable, and nothing half-written
    Sample.insert1(_row(2))
    assert Sample.keys(order_by="sample") == [{"sample": 1}, {"sample": 2}]
    # a driver error outside the integrity class arrives as SQLAlchemy's DBAPIError subclass
    executor, conn_ = schema.connection.direct, schema.connection
    with conn_.transaction() as tx, pytest.raises(sa.exc.DBAPIError):
        executor.rows(tx, sa.select(sa.text("no_such_column")).select_from(Sample().sa_table))


def test_populate_runs_direct_on_one_connection(schema, direct_runs):
    Sample, Doubled = _declare(schema)
    Sample.insert([_row(i) for i in range(20)])
    checkouts = []

    def checkout(*args):  # a pool event: statements keep the direct path
        checkouts.append(1)

    engine = schema.connection.engine
    sa.event.listen(engine, "checkout", checkout)
    try:
        direct_runs.clear()
        assert Doubled.populate()["success_count"] == 20
    finally:
        sa.event.remove(engine, "checkout", checkout)
    assert len(checkouts) < 10, f"{len(checkouts)} pool checkouts for 20 keys (one per key unpinned)"
    # per key: the fetch of the key's weight and the insert of its row
    assert len(direct_runs) >= 40
    got = dict(zip(*Doubled.to_arrays("sample", "twice")))
    assert got == {i: 2 * (_row(i)["weight"] or 0.0) for i in range(20)}


def test_populate_reconnects_a_pinned_connection_that_was_lost(schema):
    """A populate's pinned connection that the server dropped is replaced at the next key."""
    Sample, Doubled = _declare(schema)
    Sample.insert([_row(i) for i in range(4)])
    lost = []

    original = Doubled.make

    def make(self, key):
        if key["sample"] == 1 and not lost:
            lost.append(key)
            tx = self._connection._local.conn
            tx.invalidate()  # as a server restart would leave it, seen by the next statement
            raise RuntimeError("connection lost")
        return original(self, key)

    Doubled.make = make
    try:
        out = Doubled.populate(suppress_errors=True)
    finally:
        Doubled.make = original
    assert out["success_count"] == 3 and [k for k, _ in out["error_list"]] == [{"sample": 1}]
    assert Doubled.populate()["success_count"] == 1 and len(Doubled) == 4


def test_the_same_query_compiles_to_the_same_sql(schema):
    Sample, Doubled = _declare(schema)
    Sample.insert([_row(i) for i in range(6)])
    Doubled.populate()

    def query():
        heavy = Sample & (Doubled & "twice > 0.5").proj()
        per_flag = dj.U("flag").aggr(Sample, n="count(*)")
        # flag is a native secondary attribute: without lineage, so matched only without the semantic check
        joined = heavy.aggr(Doubled, total="sum(twice)").join(Sample.proj("flag"), semantic_check=False)
        return joined.restrict(per_flag.proj(m="n"), semantic_check=False)

    first, second = query(), query()
    assert first.sql == second.sql
    rows = first.to_dicts(order_by="sample")
    assert [r["sample"] for r in rows] == [2, 4, 5]  # weights 0.5, 1.0, 1.25; sample 3 has none
    assert rows == second.to_dicts(order_by="sample")
    assert [float(r["total"]) for r in rows] == [2 * _row(i)["weight"] for i in (2, 4, 5)]


@pytest.mark.backends("postgresql")
def test_refresh_of_many_keys_refreshes_planner_statistics(schema):
    """Without statistics, PostgreSQL planned each claim through the status index and
    scanned every pending job (quadratic in the number of keys)."""
    Sample, Doubled = _declare(schema)
    Sample.insert([_row(i) for i in range(600)])
    jobs = Doubled().jobs
    assert jobs.refresh()["added"] == 600
    table = jobs.sa_table
    name = f'"{table.schema}"."{table.name}"'
    with schema.connection.transaction() as tx:
        analyzed, = tx.execute(sa.text("SELECT last_analyze FROM pg_stat_user_tables WHERE schemaname = :s "
                                       "AND relname = :t"), {"s": table.schema, "t": table.name}).one()
        # the claim's lookup: one job by key among 600 pending ones
        plan = "\n".join(r[0] for r in tx.execute(sa.text(
            f"EXPLAIN SELECT 1 FROM {name} WHERE sample = 7 AND status = 'pending' FOR UPDATE SKIP LOCKED")))
    assert analyzed is not None
    assert "pkey" in plan, plan


def test_to_pandas_streams_in_chunks_on_a_server_cursor(schema, monkeypatch):
    from dj_dagster import fetch

    Sample, _ = _declare(schema)
    Sample.insert([_row(i) for i in range(20)])
    monkeypatch.setattr(fetch, "FETCH_CHUNK", 7)
    opened = []
    adapter = schema.connection.adapter
    original = adapter.server_cursor

    def server_cursor(dbapi_conn, binary=False):
        opened.append(binary)
        return original(dbapi_conn, binary)

    monkeypatch.setattr(adapter, "server_cursor", server_cursor)
    frame = (Sample & "sample >= 2").to_pandas()
    assert opened == [schema.connection.backend == "postgresql"]  # binary results there
    assert list(frame.index) == list(range(2, 20))
    expected = [_row(i) for i in range(2, 20)]
    assert list(frame["name"]) == [r["name"] for r in expected]
    assert list(frame["price"]) == [r["price"] for r in expected]
    assert list(frame["day"]) == [r["day"] for r in expected]
    assert frame["weight"].isna().tolist() == [r["weight"] is None for r in expected]


def _server_session_id(schema, pooled) -> int:
    dbapi_conn = pooled.dbapi_connection
    cur = dbapi_conn.cursor()
    cur.execute("SELECT pg_backend_pid()" if schema.connection.backend == "postgresql" else "SELECT CONNECTION_ID()")
    (pid,) = cur.fetchone()
    cur.close()
    return pid


def test_reads_reuse_a_kept_connection(schema):
    """Reads outside a transaction reuse one kept pooled connection (no checkout per
    read), keep at most one however many threads read, and replace one the server
    dropped after it sat idle."""
    Sample, _ = _declare(schema)
    Sample.insert([_row(i) for i in range(3)])
    connection = schema.connection
    if connection._reader is None:  # SQLite: reads share the one engine, nothing is kept
        assert [len(Sample) for _ in range(3)] == [3, 3, 3]
        return
    checkouts = []

    def checkout(*args):
        checkouts.append(1)

    sa.event.listen(connection._reader, "checkout", checkout)
    try:
        assert len(Sample) == 3
        checkouts.clear()
        assert [len(Sample & {"sample": i}) for i in range(3)] == [1, 1, 1]
        assert (Sample & {"sample": 2}).fetch1("name") == "s2"
        assert checkouts == []
    finally:
        sa.event.remove(connection._reader, "checkout", checkout)

    # threads reading at once: each read gets a connection, one stays kept afterwards
    import threading

    counts, errors = [], []

    def reader():
        try:
            counts.extend(len(Sample) for _ in range(20))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=reader) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == [] and counts == [3] * 80
    assert connection._reader.pool.checkedout() == 1 and connection._held is not None

    # the server ends the kept session: after an idle spell the next read pings, and
    # runs on a fresh connection
    victim = _server_session_id(schema, connection._held.pooled)
    with connection.transaction() as tx:
        kill = (f"SELECT pg_terminate_backend({victim})" if connection.backend == "postgresql"
                else f"KILL {victim}")
        tx.execute(sa.text(kill))
    connection._held.used -= 60  # as if idle for a minute
    assert len(Sample) == 3
    assert _server_session_id(schema, connection._held.pooled) != victim


def test_kept_cursors_do_not_hold_large_results(schema, monkeypatch):
    """The direct path keeps a driver cursor per connection for the next statement,
    except after a large result (a kept cursor holds its last result)."""
    monkeypatch.setattr(execution, "KEEP_CURSOR_ROWS", 5)
    Sample, _ = _declare(schema)
    Sample.insert([_row(i) for i in range(8)])
    executor = schema.connection.direct
    with schema.connection.transaction() as tx:
        info = tx.connection.info  # the pool's record of the driver connection
        table = Sample().sa_table
        assert len(executor.rows(tx, sa.select(table.c.sample).where(table.c.sample < 3))) == 3
        if not schema.connection.adapter.reuse_cursors:  # sqlite3: a cursor per statement
            assert "dj_cursors" not in info
            assert len(executor.rows(tx, sa.select(table.c.sample))) == 8
            return
        kept = info["dj_cursors"]
        assert kept[0] is tx.connection.dbapi_connection and any(c is not None for c in kept[1:])
        first = [c for c in kept[1:] if c is not None][0]
        assert len(executor.rows(tx, sa.select(table.c.sample).where(table.c.sample < 2))) == 2
        assert first in info["dj_cursors"][1:]  # the same cursor again
        assert len(executor.rows(tx, sa.select(table.c.sample))) == 8
        assert all(c is None for c in info["dj_cursors"][1:])
    assert Sample.keys(order_by="sample", limit=2) == [{"sample": 0}, {"sample": 1}]


def test_named_parameters_bind_as_sqlalchemy_binds_them(schema):
    """A cached statement whose parameters all come from the caller (a one-row insert, the
    key of a make's fetch) is bound by name, without SQLAlchemy's construct_params: the
    driver must receive the same values, type processors applied."""
    from dj_dagster.insert_rows import prepare_rows

    Sample, _ = _declare(schema)
    conn = schema.connection
    Sample.insert1(_row(1))
    row = prepare_rows(Sample(), [_row(2)], False, True)[0]
    held = Sample & {"sample": 1}
    fetch, key_params = held._keyed_statement(["day", "stamp", "uid"], held._key)
    with conn.transaction() as tx:
        for stmt, params, column_keys in [(Sample()._insert_statement(None), row, tuple(row)),
                                          (fetch, key_params, None)]:
            plan, extracted = conn.direct._plan(tx.engine, stmt, column_keys)
            assert plan is not None and plan.named is not None
            fast = plan.bind(params, extracted)
            plan.named = None
            slow = plan.bind(params, extracted)
            if isinstance(fast, dict):  # psycopg's Jsonb wrapper has no equality of its own
                fast, slow = ({k: getattr(v, "obj", v) for k, v in d.items()} for d in (fast, slow))
            assert fast == slow
    assert held.fetch1("uid") == uuid.UUID(int=1)
