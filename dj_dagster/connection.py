"""The connection: one SQLAlchemy engine, its backend adapter, and transactions.

A transaction is per thread. Nested ``transaction()`` blocks join the outer one, so a
``make`` that inserts into its table and its parts commits or rolls back as one."""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import Connection as SAConnection

from . import settings
from .adapters import Adapter, adapter_for
from .errors import ConnectionError_
from .execution import DirectExecutor


log = logging.getLogger(__name__)

RETRY_ATTEMPTS = 4  # runs of a transaction the database rolled back for a deadlock
IDLE_PING_S = 1.0  # a pooled connection idle longer than this is pinged before use


def _safe_url(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


def _ping_when_idle(engine: sa.Engine) -> None:
    """Check a pooled connection at checkout if it sat idle: a database restarted meanwhile
    would otherwise fail the first statement of the next transaction. A dead one raises
    DisconnectionError, on which the pool connects afresh. Busy connections skip the
    round trip (the reason pool_pre_ping is off)."""
    dialect = engine.dialect

    @sa.event.listens_for(engine, "checkin")
    def _checked_in(dbapi_conn, record):
        record.info["dj_idle_since"] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn, record, proxy):
        since = record.info.pop("dj_idle_since", None)
        if since is None or time.monotonic() - since < IDLE_PING_S:
            return
        try:
            dialect.do_ping(dbapi_conn)
        except Exception as exc:
            if dialect.is_disconnect(exc, dbapi_conn, None):
                raise sa.exc.DisconnectionError("stale pooled connection") from None
            raise


def _alive(engine: sa.Engine, pooled) -> bool:
    """Ping a kept connection; a dead one is invalidated (the pool then connects afresh)."""
    try:
        engine.dialect.do_ping(pooled.dbapi_connection)
        return True
    except Exception as exc:  # noqa: BLE001 - whatever the ping met, use a fresh connection
        if not engine.dialect.is_disconnect(exc, pooled.dbapi_connection, None):
            log.debug("ping of a kept read connection failed: %s", type(exc).__name__)
        pooled.invalidate()
        pooled.close()
        return False


_FORKED: list = []  # connections inherited across a fork: kept referenced, never closed here


class _Held:
    """The pooled read connection kept for the next read (see Connection._take_reader)."""

    __slots__ = ("pooled", "used", "pid")

    def __init__(self, pooled):
        self.pooled, self.used, self.pid = pooled, time.monotonic(), os.getpid()

    def release(self):
        pooled, self.pooled = self.pooled, None
        if pooled is not None and self.pid != os.getpid():  # the parent's socket
            _FORKED.append(pooled)
            return None
        return pooled

    def close(self) -> None:
        pooled = self.release()
        if pooled is not None:
            try:
                pooled.close()
            except Exception:  # noqa: BLE001 - a connection already gone needs no return
                pass

    __del__ = close


class Connection:
    """Owns the engine; hands out the thread's current transaction connection."""

    def __init__(self, url: str | sa.URL | None = None, **engine_kwargs: Any):
        url = url or settings.config.get("database_url") or settings.default_database_url()
        try:
            self.url = sa.make_url(url)
        except Exception:
            raise ConnectionError_("Invalid database URL (not shown: it may hold a password)") from None
        self.adapter: Adapter = adapter_for(self.url)
        try:
            self.engine = self.adapter.create_engine(self.url, **engine_kwargs)
            # reads outside a transaction get a pool of their own, always in autocommit:
            # nothing to set at checkout nor to roll back at checkin
            self._reader = self.adapter.create_engine(
                self.url, **{**engine_kwargs, "isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
            ) if self.adapter.autocommit_reads else None
        except Exception as exc:  # the driver's message may embed the URL
            raise ConnectionError_(f"Cannot open {_safe_url(self.url)}: {type(exc).__name__}") from None
        if self.adapter.server:
            for engine in self.engines:
                _ping_when_idle(engine)
        self.direct = DirectExecutor(self.engine, self.adapter)
        self._lend = (self._take_reader, self._give_back_reader)
        self._held: _Held | None = None  # the read connection kept for the next read
        self._held_lock = threading.Lock()
        self.metadata = sa.MetaData()
        self.tables: dict[str, Any] = {}  # "schema.table" -> Table instance (bound to this connection)
        self._local = threading.local()
        self._graph = None

    def __repr__(self) -> str:
        return f"Connection({_safe_url(self.url)!r})"

    @property
    def backend(self) -> str:
        return self.adapter.name

    # --- transactions ---------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[SAConnection]:
        """Join the thread's transaction, or begin one (committed on success)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        pinned = getattr(self._local, "pinned", None)
        if pinned is None:
            with self._connecting():
                conn = self.engine.connect()
        else:
            conn = pinned
            if conn.invalidated:  # lost with its server: reconnect now
                with self._connecting():
                    conn.connection
        if self.adapter.begins_by_mode:
            conn.execution_options(dj_write=write)
        self._local.conn = conn
        try:
            with conn.begin():
                yield conn
        finally:
            self._local.conn = None
            if pinned is None:
                conn.close()

    @contextmanager
    def pinned(self) -> Iterator[None]:
        """Keep one pooled connection for this thread's transactions until the block ends:
        a loop of short transactions (populate's one per key) then skips the pool's
        checkout and checkin per transaction."""
        if getattr(self._local, "pinned", None) is not None or self.in_transaction:
            yield
            return
        with self._connecting():
            conn = self.engine.connect()
        self._local.pinned = conn
        try:
            yield
        finally:
            self._local.pinned = None
            conn.close()

    @contextmanager
    def reading(self) -> Iterator[SAConnection]:
        """The current transaction's connection, or a short-lived read connection."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        if self.adapter.autocommit_reads:
            with self._connecting():
                conn = self._reader.connect()
            with conn:
                yield conn
            return
        with self.transaction(write=False) as conn:
            yield conn

    def _take_reader(self) -> Any:
        """A pooled read connection (autocommit). One is kept between reads, for whichever
        thread reads next: a loop of small queries (``len()``, ``fetch1`` in a notebook)
        then skips the pool's checkout and checkin per statement. It is pinged when it sat
        idle, and kept only while the pool has room for other threads."""
        with self._held_lock:
            held, self._held = self._held, None
        pooled = held.release() if held is not None else None
        if pooled is not None and (time.monotonic() - held.used <= IDLE_PING_S or _alive(self._reader, pooled)):
            return pooled
        with self._connecting():
            return self._reader.raw_connection()

    def _give_back_reader(self, pooled) -> None:
        pool = self._reader.pool
        if getattr(pool, "checkedout", None) and pool.checkedout() < pool.size() and pooled.is_valid:
            with self._held_lock:
                if self._held is None:
                    self._held = _Held(pooled)
                    return
        pooled.close()

    @contextmanager
    def _connecting(self) -> Iterator[None]:
        """A failed connect as our error, naming the server (never its password)."""
        try:
            yield
        except sa.exc.OperationalError as exc:
            raise ConnectionError_(f"Cannot connect to {_safe_url(self.url)}: {exc.orig}") from None

    def is_transient(self, exc: BaseException) -> bool:
        """Whether the database rolled the transaction back for a deadlock or lock wait."""
        from .errors import TransientError

        return isinstance(exc, TransientError) or (
            isinstance(exc, sa.exc.DBAPIError) and self.adapter.is_transient(exc))

    def retrying(self, work, attempts: int = RETRY_ATTEMPTS):
        """Run ``work`` (one whole transaction) again, after a short random pause, when
        the database rolled it back for a deadlock: the victim's work is redone rather
        than recorded as an error."""
        for attempt in range(1, attempts + 1):
            try:
                return work()
            except Exception as exc:
                if attempt == attempts or self.in_transaction or not self.is_transient(exc):
                    raise
                log.info("transaction rolled back by the database (%s); retry %d of %d",
                         type(exc).__name__, attempt, attempts - 1)
                time.sleep(random.uniform(0.02, 0.1) * 2 ** attempt)

    def execute(self, stmt: Any, params: Any = None) -> sa.CursorResult:
        """Run a write statement inside the current (or a new) transaction."""
        with self.transaction() as conn:
            return conn.execute(stmt, params) if params is not None else conn.execute(stmt)

    def query_all(self, stmt: Any, params: Any = None) -> list:
        """Every row, as sequences (straight from the driver when the statement allows)."""
        current = getattr(self._local, "conn", None)
        if current is not None:
            return self.direct.rows(current, stmt, params)
        if self._reader is not None:
            return self.direct.read(self._reader, stmt, params, self._lend, connecting=self._connecting)
        with self.reading() as conn:
            return self.direct.rows(conn, stmt, params)

    def scalar(self, stmt: Any, params: Any = None) -> Any:
        rows = self.query_all(stmt, params)
        return rows[0][0] if rows else None

    # --- dependencies ---------------------------------------------------------
    @property
    def dependencies(self):
        from .dependencies import Dependencies

        if self._graph is None:
            self._graph = Dependencies(self)
        return self._graph

    def invalidate(self) -> None:
        """Forget cached catalog facts after DDL."""
        if self._graph is not None:
            self._graph.clear()

    @property
    def engines(self) -> list[sa.Engine]:
        """The engine of transactions and, on servers, the autocommit engine of reads."""
        return [e for e in (self.engine, self._reader) if e is not None]

    def close(self) -> None:
        with self._held_lock:
            held, self._held = self._held, None
        if held is not None:
            held.close()
        for engine in self.engines:
            engine.dispose()

    def after_fork(self) -> None:
        """In a forked child: drop the parent's pooled sockets without closing them."""
        self._held_lock = threading.Lock()  # the parent may have held it at the fork
        held, self._held = self._held, None
        if held is not None:
            held.release()  # the parent's socket: kept referenced in _FORKED, never closed
        for engine in self.engines:
            engine.dispose(close=False)


_default: Connection | None = None
_lock = threading.Lock()


def conn(url: str | sa.URL | None = None, reset: bool = False, **engine_kwargs: Any) -> Connection:
    """The process-wide default connection; ``conn(url)`` or ``reset=True`` replaces it."""
    global _default
    with _lock:
        if _default is None or reset or url is not None:
            if _default is not None:
                _default.close()
            _default = Connection(url, **engine_kwargs)
        return _default
