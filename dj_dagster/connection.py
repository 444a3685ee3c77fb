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

    def __init__(self, host: str | sa.URL | None = None, user: str | None = None, password: str | None = None,
                 port: int | None = None, use_tls: bool | dict | None = None, *, url: str | sa.URL | None = None,
                 backend: str | None = None, database_name: str | None = None, config: Any = None,
                 **engine_kwargs: Any):
        """Connect to a database.

        Accepts a SQLAlchemy URL (``Connection("postgresql+psycopg://u@db/lab")``, or
        ``url=``), or datajoint's form ``Connection(host, user, password, port=None)``
        where ``host`` may carry the port (``"db:3306"``) and the backend comes from
        ``backend=`` or ``config["database.backend"]`` (``"mysql"`` or ``"postgresql"``).
        With neither, ``DJ_DATABASE_URL`` / ``config.database`` / embedded SQLite.
        ``config``: the configuration the server's defaults come from (a ``dj.Instance``'s;
        default: the global ``dj.config``). Used as a context manager, the connection
        is closed when the block ends.
        """
        if isinstance(host, sa.URL) or (isinstance(host, str) and "://" in host):
            url, host = host, None
        self.config = config
        self._use_tls = use_tls
        if host is not None or user is not None:
            url = _server_url(host, user, password, port, backend, database_name, config)
            tls = _tls_arguments(url.get_backend_name(), use_tls)
            if tls:
                engine_kwargs["connect_args"] = {**engine_kwargs.get("connect_args", {}), **tls}
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
        self._closed = False  # close() was called and nothing has reconnected since

    def __repr__(self) -> str:
        state = "disconnected" if self._closed else "connected"
        return f"Connection({_safe_url(self.url)!r}, {state})"

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc_info) -> bool:
        self.close()
        return False

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and (self is other or self.url == other.url)

    __hash__ = object.__hash__

    @property
    def conn_info(self) -> dict[str, Any]:
        """datajoint's description of the server (no password): host, port, user,
        database_name, ssl_input (the ``use_tls`` given) and, when TLS was asked for,
        ssl (the driver's TLS options)."""
        info = dict(host=self.url.host, port=self.url.port, user=self.url.username,
                    database_name=self.url.database, ssl_input=self._use_tls)
        if self._use_tls:
            info["ssl"] = _tls_arguments(self.url.get_backend_name(), self._use_tls)
        return info

    @property
    def is_connected(self) -> bool:
        """Whether the server answers (always true for an embedded SQLite file), and
        false after ``close()`` until something reconnects."""
        if self._closed:
            return False
        try:
            self.ping()
        except Exception:  # noqa: BLE001 - any failure means not connected
            return False
        return True

    def ping(self) -> None:
        """Raise ConnectionError_ when the database does not answer."""
        with self._connecting(), self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def get_user(self) -> str:
        """The user name as the server knows it (``user@host`` on MySQL)."""
        return str(self.scalar(sa.text(self.adapter.current_user_sql)))

    def query(self, sql: str, args: Any = (), *, as_dict: bool = False, suppress_warnings: bool = True,
              reconnect: bool | None = None) -> "QueryCursor":
        """Run one SQL statement as text, with ``args`` bound by the driver (``%s``
        placeholders on MySQL and PostgreSQL, ``?`` on SQLite), and return a cursor over its
        rows (all read before returning). Inside ``with conn.transaction:`` it joins the
        transaction. DDL through here makes the connection forget its cached catalog.
        After ``close()`` it reconnects when ``reconnect`` (default
        ``config.database.reconnect``) allows; a transaction whose connection was lost
        cannot be resumed: LostConnectionError, and its work is rolled back."""
        args = tuple(args) if isinstance(args, list) else args
        current = getattr(self._local, "conn", None)
        if current is not None and current.invalidated:
            raise ConnectionError_(f"The connection to {_safe_url(self.url)} was lost during a transaction; "
                                   f"the transaction was rolled back")
        if self._closed:
            if reconnect is None:
                reconnect = settings.database_settings(self.config)["reconnect"]
            if not reconnect:
                raise ConnectionError_(f"The connection to {_safe_url(self.url)} is closed (reconnect=False)")
        with self.transaction() as sa_conn:
            cursor = sa_conn.connection.driver_connection.cursor()
            try:
                cursor.execute(sql, args if args is not None else ())
                result = QueryCursor.read(cursor, as_dict)
            except Exception as exc:
                from .errors import translate_driver_error

                raise translate_driver_error(exc, self.adapter) from exc
            finally:
                cursor.close()
        if sql.lstrip()[:6].upper() in ("CREATE", "DROP S", "DROP T", "DROP D", "ALTER ", "RENAME"):
            self.invalidate()
        return result

    def start_transaction(self) -> None:
        """Begin a transaction that later queries and inserts of this thread join."""
        if self.in_transaction:
            from .errors import DataJointError

            raise DataJointError("Nested transactions are not supported.")
        block = self._transaction_block()
        block.__enter__()
        self._local.open_block = block

    def _finish(self, exc: BaseException | None) -> None:
        block = getattr(self._local, "open_block", None)
        if block is None:
            from .errors import DataJointError

            raise DataJointError("No transaction was started with start_transaction().")
        self._local.open_block = None
        if exc is None:
            block.__exit__(None, None, None)
        else:
            try:
                block.__exit__(type(exc), exc, None)
            except type(exc):
                pass

    def commit_transaction(self) -> None:
        """Commit the transaction begun by ``start_transaction()``."""
        self._finish(None)

    def cancel_transaction(self) -> None:
        """Roll back the transaction begun by ``start_transaction()``."""
        self._finish(_Cancelled())

    @property
    def backend(self) -> str:
        return self.adapter.name

    # --- transactions ---------------------------------------------------------
    @property
    def in_transaction(self) -> bool:
        return getattr(self._local, "conn", None) is not None

    @property
    def transaction(self) -> "_TransactionHandle":
        """``with conn.transaction:`` (datajoint's form: yields this connection) or
        ``with conn.transaction(write=True) as sa_conn:`` (the SQLAlchemy connection).
        Either joins the thread's transaction, or begins one, committed when the block
        ends and rolled back when it raises."""
        return _TransactionHandle(self)

    @contextmanager
    def _transaction_block(self, write: bool = True) -> Iterator[SAConnection]:
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
            begun = conn.begin()
            try:
                yield conn
            except BaseException:
                if begun.is_active:
                    begun.rollback()
                raise
            if conn.invalidated:  # lost (or closed) inside the block: nothing is left to commit
                begun.close()
            else:
                begun.commit()
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
        self._closed = False

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
        """Close the pooled connections. A transaction this thread has open loses its
        connection (its work is rolled back). Later use reconnects (see ``query``);
        ``is_connected`` is false until then."""
        self._closed = True
        current = getattr(self._local, "conn", None)
        if current is not None and not current.invalidated:
            current.invalidate()
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


class _Cancelled(Exception):
    """Rolls back a transaction begun by start_transaction()."""


class _TransactionHandle:
    """What ``Connection.transaction`` returns: call it for the SQLAlchemy connection, or
    use it directly as a context manager for datajoint's ``with conn.transaction:``."""

    __slots__ = ("_connection", "_block")

    def __init__(self, connection: Connection):
        self._connection, self._block = connection, None

    def __call__(self, write: bool = True):
        return self._connection._transaction_block(write)

    def __enter__(self) -> Connection:
        self._block = self._connection._transaction_block()
        self._block.__enter__()
        return self._connection

    def __exit__(self, *exc_info) -> bool:
        return bool(self._block.__exit__(*exc_info))


class QueryCursor:
    """The rows of one ``Connection.query``, read in full: ``fetchone``, ``fetchall``,
    iteration, ``rowcount``, ``lastrowid`` and ``description`` as a DB-API cursor has."""

    def __init__(self, rows: list, description, rowcount: int, lastrowid: Any):
        self._rows, self.description, self.rowcount, self.lastrowid = rows, description, rowcount, lastrowid
        self._next = 0

    @classmethod
    def read(cls, cursor, as_dict: bool) -> "QueryCursor":
        rows = list(cursor.fetchall()) if cursor.description else []
        if as_dict and cursor.description:
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row)) for row in rows]
        return cls(rows, cursor.description, cursor.rowcount, getattr(cursor, "lastrowid", None))

    def fetchone(self):
        if self._next >= len(self._rows):
            return None
        self._next += 1
        return self._rows[self._next - 1]

    def fetchmany(self, size: int = 1) -> list:
        rows = self._rows[self._next:self._next + size]
        self._next += len(rows)
        return rows

    def fetchall(self) -> list:
        rows = self._rows[self._next:]
        self._next = len(self._rows)
        return rows

    def __iter__(self):
        while (row := self.fetchone()) is not None:
            yield row

    def close(self) -> None:
        pass


def _tls_arguments(backend: str, use_tls: bool | dict | None) -> dict[str, Any]:
    """The driver's connect arguments for datajoint's ``use_tls``: True requires TLS
    (the connection fails when the server does not offer it; certificates are not checked
    unless options say so), False turns TLS off, a dict gives the driver's TLS options
    (pymysql's ``ssl`` dict; libpq's ``sslmode``, ``sslrootcert``, ...), None leaves the
    driver's default."""
    if use_tls is None:
        return {}
    if backend == "postgresql":
        if isinstance(use_tls, dict):
            return {"sslmode": "require", **use_tls}
        return {"sslmode": "require" if use_tls else "disable"}
    if isinstance(use_tls, dict):  # pymysql takes an empty dict as "no TLS": ask for it explicitly
        return {"ssl": dict(use_tls) or {"check_hostname": False}}
    return {"ssl": {"check_hostname": False}} if use_tls else {"ssl_disabled": True}


def _server_url(host: str | None, user: str | None, password: str | None, port: int | None,
                backend: str | None, database_name: str | None, config: Any = None) -> sa.URL:
    """A SQLAlchemy URL from datajoint's connection arguments and ``config.database``."""
    return settings.server_url(settings.database_settings(config), host, user, password, port, backend,
                               database_name)


_default: Connection | None = None
_lock = threading.Lock()


def conn(host: str | sa.URL | None = None, user: str | None = None, password: str | None = None, *,
         reset: bool = False, use_tls: bool | dict | None = None, url: str | sa.URL | None = None,
         **engine_kwargs: Any) -> Connection:
    """The process-wide default connection.

    ``conn()`` returns it (connecting on first use from ``DJ_DATABASE_URL``,
    ``config.database`` or the embedded default). ``conn("postgresql+psycopg://...")``
    or ``conn(host, user, password)`` (datajoint's form) connects with those settings:
    when they differ from the current default's, the default is replaced, never silently
    kept (a different ``use_tls`` counts as a difference). ``reset=True`` always
    reconnects. ``use_tls`` defaults to ``config.database.use_tls``.
    """
    global _default
    settings._refuse_in_thread_safe_mode()
    if isinstance(host, sa.URL) or (isinstance(host, str) and "://" in host):
        url, host = host, None
    given = url is not None or host is not None or user is not None or password is not None
    if url is not None and use_tls is not None:
        from .errors import DataJointError

        raise DataJointError("use_tls applies to conn(host, user, password); a URL connection takes its TLS "
                             "settings in the URL (e.g. ?ssl_ca=... for MySQL, ?sslmode=require for PostgreSQL)")
    with _lock:
        if given and _default is not None and not reset:
            wanted = sa.make_url(url) if url is not None else _server_url(
                host, user if user is not None else settings.config["database.user"],
                password if password is not None else settings.config["database.password"], None, None, None)
            if wanted == _default.url and (use_tls is None or use_tls == _default._use_tls):
                return _default
            reset = True
        if _default is None or reset:
            if _default is not None:
                _default.close()
            if url is None and (given or settings.config["database.user"]):
                _default = Connection(host, user if user is not None else settings.config["database.user"],
                                      password if password is not None else settings.config["database.password"],
                                      use_tls=use_tls if use_tls is not None else settings.config["database.use_tls"],
                                      **engine_kwargs)
            else:
                _default = Connection(url=url, **engine_kwargs)
        return _default
