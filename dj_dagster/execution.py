"""Statements run on the driver's cursor, compiled by SQLAlchemy.

SQLAlchemy's ``Connection.execute`` adds an execution context, a result object and event
dispatch to every statement: for a small query, a cost of the order of its round trip
(``python -m bench -k "len()" --profile`` shows the split).
DataJoint's hot paths (``len()``, the key restriction and the one-row insert of every
make, a job claim, a streamed fetch) are exactly such statements. For them we keep
SQLAlchemy's compiler and its cache key, and run the compiled string on the DBAPI cursor
ourselves, applying the dialect's bind and result converters as SQLAlchemy would. A
statement takes this path only when that gives the same result: no parameters expanded at
execution (``IN`` lists), no Python-side defaults, no bytea results (the PostgreSQL
adapter's binary-result hook), no SQL echo, and no event listener watching cursor
executions (other than ours marked ``dj_direct_safe``), so that what a listener counts or
changes is still seen. Everything else goes through SQLAlchemy as before. Where the adapter
allows it (PostgreSQL, when every result column loads alike from both formats), results
come in the driver's binary format: numbers and dates then skip text formatting and parsing.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import contextmanager, nullcontext
from typing import Any

import sqlalchemy as sa

PLAN_CACHE_SIZE = 512  # compiled statements kept per connection (LRU)
KEEP_CURSOR_ROWS = 1000  # a driver cursor is kept for the next statement after a result this small


class _Plan:
    """A compiled statement and how to bind its parameters and convert its results on the driver."""

    __slots__ = ("compiled", "sql", "positions", "processors", "escaped", "direct", "results", "binary", "named")

    def __init__(self, compiled, direct: bool, binary: bool = False):
        self.compiled = compiled
        self.sql = compiled.string
        self.positions = list(compiled.positiontup) if compiled.positional else None
        self.processors = dict(getattr(compiled, "_bind_processors", None) or {})
        self.escaped = dict(getattr(compiled, "escaped_bind_names", None) or {})  # name -> name in the SQL
        self.direct = direct
        self.results = None  # per result column: the dialect's converter or None, from the first run
        self.binary = binary  # ask the driver for results in its binary format
        # every parameter comes from the caller (a cached statement of named parameters:
        # the key of a make's fetch, a one-row insert): bound by name, as SQLAlchemy would
        binds = getattr(compiled, "binds", None) or {}
        plain = binds and not self.escaped and all(b.required and b.callable is None for b in binds.values())
        self.named = tuple(binds) if plain else None

    def bind(self, params: dict | None, extracted) -> Any:
        """The driver's parameters, as SQLAlchemy's execution context builds them."""
        if self.named is not None and params is not None and all(n in params for n in self.named):
            values = {n: params[n] for n in self.named}
            for name, process in self.processors.items():
                values[name] = process(values[name])
            return values if self.positions is None else tuple(values[n] for n in self.positions)
        values = self.compiled.construct_params(params, extracted_parameters=extracted, escape_names=False)
        for name, process in self.processors.items():
            if name in values:
                values[name] = process(values[name])
        if self.positions is not None:
            return tuple(values[n] for n in self.positions)
        if self.escaped:
            return {self.escaped.get(n, n): v for n, v in values.items()}
        return values

    def result_processors(self, dialect, description) -> list | None:
        """As SQLAlchemy's result metadata does: each column's converter for the type
        code the driver reported (None: the value is used as it comes). None when the
        columns cannot be matched by position."""
        columns = getattr(self.compiled, "_result_columns", None) or []
        if len(columns) != len(description):
            return None
        return [c[3].dialect_impl(dialect).result_processor(dialect, d[1]) for c, d in zip(columns, description)]


class DirectExecutor:
    """Per-connection cache of compiled statements that may bypass SQLAlchemy's execute."""

    def __init__(self, engine: sa.Engine, adapter):
        self._adapter = adapter
        self._plans: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._dbapi_error = engine.dialect.loaded_dbapi.Error

    def _plan(self, engine: sa.Engine, stmt, column_keys: tuple | None):
        """The statement's plan and extracted bind values, or (None, None) when it must go
        through SQLAlchemy."""
        if _observed(engine):
            return None, None
        dialect = engine.dialect
        try:
            ck = stmt._generate_cache_key()
        except AttributeError:  # not a ClauseElement (a string, say)
            return None, None
        if ck is None:
            return None, None
        key = (id(dialect), ck.key, column_keys)  # the reader's engine has a dialect of its own
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return (plan, ck.bindparams) if plan.direct else (None, None)
        compiled = stmt.compile(dialect=dialect, cache_key=ck,
                                column_keys=list(column_keys) if column_keys else None)
        direct = self._direct(compiled)
        types = [c[3] for c in getattr(compiled, "_result_columns", None) or ()]
        plan = _Plan(compiled, direct, direct and self._adapter.binary_results(dialect, types))
        with self._lock:
            self._plans[key] = plan
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        return (plan, ck.bindparams) if plan.direct else (None, None)

    def _direct(self, compiled) -> bool:
        # parameters expanded at execution (IN lists), Python-side column defaults, schema
        # translation: SQLAlchemy's execution context does work we would have to repeat
        if any(getattr(compiled, a, None) for a in ("post_compile_params", "literal_execute_params",
                                                    "insert_prefetch", "update_prefetch", "schema_translate_map")):
            return False
        if getattr(compiled, "_bind_processors", None) is None:  # a SQLAlchemy without it: be safe
            return False
        return not any(isinstance(c[3], sa.LargeBinary) for c in getattr(compiled, "_result_columns", None) or ())

    def rows(self, conn: sa.Connection, stmt, params: dict | None = None) -> list:
        """All rows of a SELECT, as tuples (or SQLAlchemy Rows on the fallback path)."""
        plan, extracted = self._plan(conn.engine, stmt, None)
        if plan is not None:
            pooled = conn.connection
            rows = self._run(conn.engine, pooled.dbapi_connection, conn.invalidate, plan,
                             plan.bind(params, extracted), fetch=True, kept=pooled.info)
            if rows is not None:
                return rows
        return (conn.execute(stmt, params) if params is not None else conn.execute(stmt)).all()

    def read(self, engine: sa.Engine, stmt, params: dict | None, lend, connecting=nullcontext) -> list:
        """:meth:`rows` outside a transaction, on a pooled driver connection of ``engine``
        (an autocommit engine) without a SQLAlchemy Connection around it: the one that
        ``lend = (take, give_back)`` lends. ``connecting()``: a context that turns a failed
        connect of the SQLAlchemy fallback into the caller's error."""
        plan, extracted = self._plan(engine, stmt, None)
        if plan is not None:
            take, give_back = lend
            pooled = take()
            try:
                rows = self._run(engine, pooled.dbapi_connection, pooled.invalidate, plan,
                                 plan.bind(params, extracted), fetch=True, kept=pooled.info)
            finally:
                give_back(pooled)
            if rows is not None:
                return rows
        with connecting():
            conn = engine.connect()
        with conn:
            return (conn.execute(stmt, params) if params is not None else conn.execute(stmt)).all()

    def write(self, conn: sa.Connection, stmt, params: dict | None = None) -> int:
        """Run one DML statement (``params``: one row) and return its rowcount."""
        column_keys = tuple(params) if params else None
        plan, extracted = self._plan(conn.engine, stmt, column_keys)
        if plan is None:
            result = conn.execute(stmt, params) if params is not None else conn.execute(stmt)
            return result.rowcount
        pooled = conn.connection
        return self._run(conn.engine, pooled.dbapi_connection, conn.invalidate, plan,
                         plan.bind(params, extracted), fetch=False, kept=pooled.info)

    def stream(self, conn: sa.Connection, stmt, cursor_factory, size: int):
        """The rows of a SELECT in lists of up to ``size``, from the cursor that
        ``cursor_factory(driver_connection)`` opens (a server-side one, so that a large
        result is never held whole); None when the statement must go through SQLAlchemy."""
        plan, extracted = self._plan(conn.engine, stmt, None)
        if plan is None:
            return None
        engine, dbapi_conn = conn.engine, conn.connection.dbapi_connection
        values = plan.bind(None, extracted)
        cursor = cursor_factory(dbapi_conn, plan.binary)
        with self._driver_errors(engine, dbapi_conn, cursor, conn.invalidate, plan, values):
            cursor.execute(plan.sql, values)
            if not self._matched(engine, plan, cursor):
                _close(cursor)
                return None

        def chunks():
            try:
                while True:
                    with self._driver_errors(engine, dbapi_conn, cursor, conn.invalidate, plan, values):
                        rows = cursor.fetchmany(size)
                    if not rows:
                        return
                    yield _converted(plan, rows)
            finally:
                _close(cursor)

        return chunks()

    def _run(self, engine: sa.Engine, dbapi_conn, invalidate, plan: _Plan, values, fetch: bool,
             kept: dict | None = None):
        """Execute on the driver; None when the result columns cannot be matched to the
        compiled ones (the caller then asks SQLAlchemy). ``kept``: the pool's ``info`` of
        the connection, where its driver cursors are kept for the next statement."""
        cursor, keep = _cursor(self._adapter, kept, dbapi_conn, plan.binary), False
        try:
            cursor.execute(plan.sql, values)
            if not fetch:
                keep = True
                return cursor.rowcount
            if plan.results is None:  # the first run: learn the converters (cursor.description costs)
                if cursor.description is None:
                    return []
                if not self._matched(engine, plan, cursor):
                    return None
            rows = cursor.fetchall()
            keep = len(rows) <= KEEP_CURSOR_ROWS  # a kept cursor holds its last result
        except self._dbapi_error as exc:
            raise self._as_sqlalchemy(exc, engine, dbapi_conn, cursor, invalidate, plan, values) from exc
        finally:
            if not keep:
                _drop_cursor(kept, plan.binary, cursor)
        return _converted(plan, rows) if plan.results else rows

    @staticmethod
    def _matched(engine: sa.Engine, plan: _Plan, cursor) -> bool:
        """Learn the result converters from the first run; False if the driver's columns
        do not match the compiled ones (SQLAlchemy runs the statement from then on)."""
        if plan.results is None and cursor.description is not None:
            procs = plan.result_processors(engine.dialect, cursor.description)
            if procs is None:
                plan.direct = False
                return False
            plan.results = procs if any(procs) else []
        return True

    @contextmanager
    def _driver_errors(self, engine: sa.Engine, dbapi_conn, cursor, invalidate, plan: _Plan, values):
        try:
            yield
        except self._dbapi_error as exc:
            raise self._as_sqlalchemy(exc, engine, dbapi_conn, cursor, invalidate, plan, values) from exc

    def _as_sqlalchemy(self, exc, engine: sa.Engine, dbapi_conn, cursor, invalidate, plan: _Plan, values):
        """A driver error as SQLAlchemy raises it: its exception type, and a connection the
        server dropped invalidated."""
        dialect = engine.dialect
        lost = dialect.is_disconnect(exc, dbapi_conn, cursor)
        if lost:
            invalidate(exc)
        return sa.exc.DBAPIError.instance(
            plan.sql, values, exc, self._dbapi_error, hide_parameters=engine.hide_parameters,
            connection_invalidated=lost, dialect=dialect)


def _cursor(adapter, kept: dict | None, dbapi_conn, binary: bool):
    """The driver cursor kept for this connection (one per result format): opening and
    closing one per statement costs as much as the rest of our path. Kept in the pool's
    ``info`` of the connection, which lives and is cleared with the driver connection."""
    if kept is None or not adapter.reuse_cursors:
        return adapter.cursor(dbapi_conn, binary)
    entry = kept.get("dj_cursors")
    if entry is None or entry[0] is not dbapi_conn:
        entry = kept["dj_cursors"] = [dbapi_conn, None, None]
    cursor = entry[1 + binary]
    if cursor is None:
        cursor = entry[1 + binary] = adapter.cursor(dbapi_conn, binary)
    return cursor


def _drop_cursor(kept: dict | None, binary: bool, cursor) -> None:
    entry = kept.get("dj_cursors") if kept is not None else None
    if entry is not None and entry[1 + binary] is cursor:
        entry[1 + binary] = None
    _close(cursor)


def _converted(plan: _Plan, rows: list) -> list:
    procs = plan.results
    if not procs:
        return rows
    return [tuple(v if p is None or v is None else p(v) for p, v in zip(procs, row)) for row in rows]


def _close(cursor) -> None:
    try:
        cursor.close()
    except Exception:  # noqa: BLE001 - the connection may be gone; an error raised before matters more
        pass


def _observed(engine: sa.Engine) -> bool:
    """Whether SQL echo or an event listener expects to see each cursor execution."""
    events = engine.dispatch
    return bool(engine.echo or events.after_cursor_execute) or any(
        not getattr(fn, "dj_direct_safe", False) for fn in events.before_cursor_execute)
