"""The per-table jobs table ``~~name``: one row per key of the key source with its
status (pending, reserved, success, error, ignore), so that many workers on many
machines can share the work of one populate without computing a key twice.

A make that runs inside one transaction (the plain ``make``) claims its key by locking
the pending job row for that transaction (``FOR UPDATE SKIP LOCKED``; SQLite's write
transaction is already exclusive): a rival worker skips the locked row, the job turns
to success in the same commit as the rows, and a worker that dies holds nothing. A make
that computes outside a transaction (three-part and generator makes) reserves with one
committed UPDATE ... WHERE status = 'pending' instead: the rowcount says who won, and
``refresh()`` returns reservations of dead workers to pending."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import threading
import traceback

import sqlalchemy as sa

from .errors import DataError
from .types import parse_type

STATUSES = ("pending", "reserved", "success", "error", "ignore")
STALE_AFTER = dt.timedelta(hours=24)
ANALYZE_AFTER = 500  # new jobs in one refresh after which the planner statistics are refreshed
# (jobs table, key) reserved by a make running in this process: refresh() returns this
# process's other reservations (left when recording a make's outcome failed) to pending
_HELD: set[tuple[str, tuple]] = set()
_HELD_LOCK = threading.Lock()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None, microsecond=0)


class Jobs:
    """The jobs of one auto-populated table."""

    def __init__(self, table):
        self.target = table
        self.connection = table._connection
        self.name = jobs_table_name(table.table_name)
        self._sa = None
        self._source_heading = None
        self._blob_stack = False  # error_stack is a <blob> (datajoint's layout), not text

    @property
    def source_heading(self):
        """Jobs are keyed like the key source: one job per make(key) call."""
        if self._source_heading is None:
            self._source_heading = self.target.key_source.heading
        return self._source_heading

    @property
    def key_attrs(self) -> list[str]:
        return self.source_heading.primary_key

    @property
    def sa_table(self) -> sa.Table:
        if self._sa is None:
            self._sa = self._ensure()
        return self._sa

    def _ensure(self) -> sa.Table:
        """The jobs table, declared on first use in datajoint-python 2.x's layout (so that
        datajoint workers can share the queue), or the existing one as it is."""
        adapter = self.connection.adapter
        t = self.target
        sa_schema, sa_name = adapter.table_address(t.database, self.name)
        with self.connection.reading() as conn:
            insp = sa.inspect(conn)
            existing = ({c["name"]: c["type"] for c in insp.get_columns(sa_name, schema=sa_schema)}
                        if insp.has_table(sa_name, schema=sa_schema) else None)
        if existing is None:
            table = self._layout(adapter, sa_schema, sa_name, create=True)
            try:
                with self.connection.transaction() as tx:
                    adapter.create_types(tx, table.columns)
                    table.create(tx, checkfirst=True)
            except sa.exc.DBAPIError:  # another worker declared it at the same moment
                with self.connection.reading() as conn:
                    if not sa.inspect(conn).has_table(sa_name, schema=sa_schema):
                        raise
            existing = {c.name: c.type for c in table.columns}
        # query with the columns the table has (an older dj_dagster layout lacks some)
        table = self._layout(adapter, sa_schema, sa_name, create=False, reflected=existing)
        self._blob_stack = "error_stack" in table.c and not isinstance(existing["error_stack"], sa.String)
        return table

    def _layout(self, adapter, sa_schema, sa_name, create: bool, reflected: dict | None = None) -> sa.Table:
        """datajoint 2.x's ``~~table``: the key, then status, priority, times, error and
        worker; ``:type:`` comments as datajoint writes them."""
        fit = getattr(adapter, "fit_reflected", None)
        # key columns copy the target's column types (PostgreSQL: its enum types)
        target_types = self.target._info.column_types if create else {}

        def col(name, type_text, nullable=False, default=None, key=False, spec=None):
            spec = spec or parse_type(type_text)
            if create:
                parent = (target_types[name], sa_schema) if key and name in target_types else None
                sql_type = adapter.ddl_type(spec, sa_schema, sa_name, name, parent)
            else:
                sql_type = adapter.sql_type(spec, sa_name, name)
            if not create:
                if spec.name == "enum":  # datajoint's PostgreSQL enum type binds like text
                    sql_type = sa.Enum(*spec.args, native_enum=False, create_constraint=False,
                                       length=max(map(len, spec.args)))
                elif fit is not None and name in reflected:
                    sql_type = fit(sql_type, spec, reflected[name])
                if name == "error_stack" and isinstance(reflected.get(name), sa.String):
                    sql_type = sa.Text()
            return sa.Column(name, sql_type, primary_key=key, nullable=nullable, autoincrement=False,
                             server_default=default if create else None,
                             comment=f":{spec.text}:" if adapter.supports_comments else None)

        now = sa.text(adapter.timestamp_default)
        columns = [col(a.name, "", key=True, spec=a.type) for a in self.source_heading if a.in_key] + [
            col("status", "enum(" + ",".join(f"'{s}'" for s in STATUSES) + ")"),
            col("priority", "int8"),
            col("created_time", "datetime(3)", default=now),
            col("scheduled_time", "datetime(3)", default=now),
            col("reserved_time", "datetime(3)", nullable=True),
            col("completed_time", "datetime(3)", nullable=True),
            col("duration", "float64", nullable=True),
            col("error_message", "varchar(2047)", default=""),
            col("error_stack", "<blob>", nullable=True),
            col("user", "varchar(255)", default=""),
            col("host", "varchar(255)", default=""),
            col("pid", "int32", default=sa.text("0")),
            col("connection_id", "int64", default=sa.text("0")),
            col("version", "varchar(64)", default=""),
        ]
        if not create:
            columns = [c for c in columns if c.name in reflected]
        index = f"idx_{sa_name}_status_priority_scheduled_time"
        if len(index) > 60:
            index = f"idx_{hashlib.md5(sa_name.encode()).hexdigest()[:12]}_status"
        extras = [sa.Index(index, "status", "priority", "scheduled_time")] if create else []
        return sa.Table(sa_name, sa.MetaData(), *columns, *extras, schema=sa_schema, mysql_engine="InnoDB",
                        comment=f"Job queue for {self.target.database}.{self.target.table_name}"
                        if create and adapter.supports_comments else None)

    def _server_now(self):
        """The server's clock (as SQL), which datajoint compares scheduled_time with, or
        the client's where the adapter has none."""
        now = self.connection.adapter.clock()
        return _now() if now is None else now

    def _now_param(self):
        """The server's clock in a cached statement (SQLite's is bound per call as ``p_now``)."""
        now = self._server_now()
        return now if isinstance(now, sa.sql.ClauseElement) else sa.bindparam("p_now", type_=sa.DateTime())

    def _clock(self, tx) -> dt.datetime:
        """The server's clock, read."""
        now = self.connection.adapter.clock()
        return _now() if now is None else tx.execute(sa.select(now)).scalar()

    def _stack(self, text: str):
        if not self._blob_stack:
            return text
        from .blob import pack

        return pack(text)

    # --- views ----------------------------------------------------------------
    def _rows(self, status: str | None = None) -> list[dict]:
        t = self.sa_table
        stmt = sa.select(t)
        if status:
            stmt = stmt.where(t.c.status == status)
        names = [c.name for c in t.columns]
        rows = [dict(zip(names, r)) for r in self.connection.query_all(stmt)]
        if self._blob_stack:
            from .blob import unpack

            for r in rows:
                if r.get("error_stack") is not None:
                    r["error_stack"] = unpack(bytes(r["error_stack"]))
        return rows

    @property
    def pending(self) -> list[dict]:
        return self._rows("pending")

    @property
    def reserved(self) -> list[dict]:
        return self._rows("reserved")

    @property
    def errors(self) -> list[dict]:
        return self._rows("error")

    def to_dicts(self) -> list[dict]:
        return self._rows()

    def __len__(self) -> int:
        return int(self.connection.scalar(sa.select(sa.func.count()).select_from(self.sa_table)))

    def _where_key(self, key: dict):
        t = self.sa_table
        return [t.c[k] == sa.bindparam(None, key[k], type_=t.c[k].type) for k in self.key_attrs]

    # --- life cycle -----------------------------------------------------------
    def refresh(self, *restrictions, priority: int = 5, stale_timeout: dt.timedelta | None = STALE_AFTER,
                version: str | None = None) -> dict[str, int]:
        """Add pending jobs for keys to do; drop pending jobs whose key is done or gone and
        error jobs whose key is gone (as datajoint does); return to pending the
        reservations of dead workers and this process's reservations that no make
        holds (a make whose error could not be recorded while the database was down).
        Retried when the database rolls it back for a deadlock."""
        return self.connection.retrying(lambda: self._refresh(restrictions, priority, stale_timeout, version))

    def _refresh(self, restrictions, priority, stale_timeout, version) -> dict[str, int]:
        target = self.target
        t = self.sa_table
        key = self.key_attrs
        todo = target._todo(restrictions)
        added = removed = recovered = 0
        with self.connection.transaction() as tx:
            existing = {tuple(r[:-1]): r[-1] for r in tx.execute(sa.select(*[t.c[k] for k in key], t.c.status))}
            wanted = {tuple(k[n] for n in key): k for k in todo.keys()}  # key values -> key, to do
            # new keys in key order: other workers may add the same keys at the same time,
            # and one order avoids deadlocks
            rows = [wanted[v] for v in sorted(v for v in wanted if v not in existing)]
            now = self._clock(tx)
            # kept success jobs whose result was deleted since: to do again
            redo = [k for v, k in wanted.items() if existing.get(v) == "success"]
            for k in redo:
                tx.execute(sa.update(t).where(*self._where_key(k), t.c.status == "success").values(
                    status="pending", scheduled_time=now, reserved_time=None, completed_time=None))
            added += len(redo)
            if rows:
                adapter = self.connection.adapter
                tx.execute(adapter.insert(t, "skip", key), [
                    {**k, "status": "pending", "priority": priority, "scheduled_time": now, "version": version or ""}
                    for k in rows])
                if len(rows) >= ANALYZE_AFTER:
                    adapter.analyze(tx, t)
            added += len(rows)
            # keys still to do are wanted; of the others, pending jobs whose key is done or
            # gone and error jobs whose key is gone from the key source are dropped
            source = target.key_source.proj()
            removed = self._drop(tx, "pending", [v for v, s in existing.items() if s == "pending" and v not in wanted],
                                 None if not restrictions else lambda d: (source - target.proj()) & d)
            removed += self._drop(tx, "error", [v for v, s in existing.items() if s == "error" and v not in wanted],
                                  lambda d: source & d)
            with _HELD_LOCK:
                held = {k for n, k in _HELD if n == self._ident}
            for r in tx.execute(sa.select(t).where(t.c.status == "reserved")).mappings().all():
                here = r["host"] == socket.gethostname() and r["pid"]
                dead = here and not pid_alive(r["pid"])
                orphaned = here and r["pid"] == os.getpid() and tuple(r[k] for k in key) not in held
                old = stale_timeout is not None and r["reserved_time"] and now - r["reserved_time"] > stale_timeout
                if dead or orphaned or old:
                    tx.execute(sa.update(t).where(*self._where_key(r), t.c.status == "reserved")
                               .values(status="pending", reserved_time=None, host="", pid=0))
                    recovered += 1
        return {"added": added, "removed": removed, "recovered": recovered}

    def _drop(self, tx, status: str, candidates: list[tuple], still_wanted) -> int:
        """Delete the jobs of ``status`` among ``candidates`` (key tuples) whose key
        ``still_wanted(keys)`` does not return (None: none is wanted, with no query)."""
        if not candidates:
            return 0
        key = self.key_attrs
        jobs = [dict(zip(key, c)) for c in candidates]
        still = set() if still_wanted is None else {tuple(d[n] for n in key) for d in still_wanted(jobs).keys()}
        t = self.sa_table
        gone = [d for c, d in zip(candidates, jobs) if c not in still]
        for d in gone:
            tx.execute(sa.delete(t).where(*self._where_key(d), t.c.status == status))
        return len(gone)

    def reserve(self, key: dict, version: str | None = None) -> bool:
        t = self.sa_table
        values = dict(status="reserved", reserved_time=self._server_now(), host=socket.gethostname(),
                      pid=os.getpid(), user=os.environ.get("USER", ""), version=version or "")
        with self.connection.transaction() as tx:
            n = tx.execute(sa.update(t).where(*self._where_key(key), t.c.status == "pending").values(**values)).rowcount
            if n == 1:
                self._hold(key)
                return True
            exists = tx.execute(sa.select(t.c.status).where(*self._where_key(key))).first()
            if exists is None:
                try:
                    with tx.begin_nested():
                        tx.execute(sa.insert(t).values(**key, scheduled_time=self._server_now(), priority=5,
                                                       **values))
                    self._hold(key)
                    return True
                except sa.exc.IntegrityError:
                    return False
        return False

    def _statement(self, purpose: str, build):
        """Statements built once per Jobs object, with the key as bound parameters."""
        cache = self.__dict__.setdefault("_statements", {})
        if purpose not in cache:
            t = self.sa_table
            cache[purpose] = build(t, [t.c[k] == sa.bindparam(f"k_{k}", type_=t.c[k].type)
                                       for k in self.key_attrs])
        return cache[purpose]

    def _key_params(self, key: dict) -> dict:
        return {f"k_{k}": key[k] for k in self.key_attrs}

    def claim(self, tx, key: dict) -> str | None:
        """Claim the key's pending job inside the caller's transaction, unless another
        worker holds it or the result already exists. Returns None (not claimed),
        ``"removed"`` (the job row is deleted by the claim itself: one statement, as the
        finished job is deleted anyway) or ``"locked"`` (complete() finishes the row)."""
        from .settings import config

        target = self.target.sa_table
        adapter = self.connection.adapter
        remove = adapter.delete_with_locked_subquery and not config.get("jobs_keep_completed")

        def build(t, where):
            done = sa.select(sa.literal(1)).select_from(target).where(
                *[target.c[k] == sa.bindparam(f"k_{k}", type_=t.c[k].type) for k in self.key_attrs])
            if remove:
                cols = [t.c[k] for k in self.key_attrs]
                held = adapter.for_update_skip_locked(
                    sa.select(*cols).where(*where, t.c.status == "pending", ~done.exists()))
                return sa.delete(t).where(sa.tuple_(*cols).in_(held))
            stmt = sa.select(sa.literal(1)).select_from(t).where(*where, t.c.status == "pending", ~done.exists())
            return adapter.for_update_skip_locked(stmt)

        stmt, params = self._statement(("claim", remove), build), self._key_params(key)
        if remove:
            return "removed" if self.connection.direct.write(tx, stmt, params) == 1 else None
        return "locked" if self.connection.direct.rows(tx, stmt, params) else None

    @property
    def _ident(self) -> str:
        return f"{self.target.database}.{self.name}"

    def _hold(self, key: dict) -> None:
        with _HELD_LOCK:
            _HELD.add((self._ident, tuple(key[k] for k in self.key_attrs)))

    def release(self, key: dict) -> None:
        """This process no longer works on the key (called before its outcome is written)."""
        with _HELD_LOCK:
            _HELD.discard((self._ident, tuple(key[k] for k in self.key_attrs)))

    def pending_keys(self, limit: int | None = None) -> list[dict]:
        t = self.sa_table
        key = self.key_attrs
        stmt = (sa.select(*[t.c[k] for k in key]).where(t.c.status == "pending")
                .order_by(t.c.priority, t.c.scheduled_time))
        if limit:
            stmt = stmt.limit(limit)
        return [dict(zip(key, r)) for r in self.connection.query_all(stmt)]

    def complete(self, key: dict, duration: float, version: str | None = None, claimed: str | None = None) -> None:
        """The key's job is done (inside the make's transaction, so it commits with the
        rows): deleted, as datajoint does, or kept as ``success`` when
        ``config["jobs_keep_completed"]`` is set."""
        from .settings import config

        self.release(key)
        if claimed == "removed":
            return
        if not config.get("jobs_keep_completed"):
            self.connection.execute(self._statement("done", lambda t, where: sa.delete(t).where(*where)),
                                    self._key_params(key))
            return

        def build(t, where):
            return sa.update(t).where(*where).values(
                status="success", reserved_time=sa.func.coalesce(t.c.reserved_time, self._now_param()),
                completed_time=self._now_param(), duration=sa.bindparam("p_duration"),
                host=sa.bindparam("p_host"), pid=sa.bindparam("p_pid"), user=sa.bindparam("p_user"),
                version=sa.bindparam("p_version"), error_message="", error_stack=None)

        self.connection.execute(self._statement("complete", build), {
            **self._key_params(key), "p_now": _now(), "p_duration": duration, "p_host": socket.gethostname(),
            "p_pid": os.getpid(), "p_user": os.environ.get("USER", ""), "p_version": version or ""})

    def error(self, key: dict, exc: BaseException, duration: float, claimed: bool = False) -> None:
        """Record a failed make. A claimed key's job was only locked, and the rollback
        released it: it is marked only if still pending (a rival may have taken it)."""
        self.release(key)
        t = self.sa_table
        msg = f"{type(exc).__name__}: {exc}"[:2047]
        stack = "".join(traceback.format_exception(exc))[-60000:]
        where = self._where_key(key) + ([t.c.status == "pending"] if claimed else [])
        self.connection.execute(sa.update(t).where(*where).values(
            status="error", completed_time=self._server_now(), duration=duration, error_message=msg,
            error_stack=self._stack(stack), host=socket.gethostname(), pid=os.getpid()))

    def ignore(self, key: dict) -> None:
        """Mark the key's job ``ignore`` (populate with reserve_jobs skips it), adding the
        job if it has none. The key is checked as an insert checks its values."""
        key = self._checked_key(key)
        t = self.sa_table
        with self.connection.transaction() as tx:
            n = tx.execute(sa.update(t).where(*self._where_key(key)).values(status="ignore")).rowcount
            if not n:
                tx.execute(sa.insert(t).values(**key, status="ignore", scheduled_time=self._server_now(), priority=5))

    def _checked_key(self, key: dict) -> dict:
        """The target's primary key from ``key`` (other attributes dropped), its values
        validated and converted for the database."""
        from .insert_rows import prepare_rows

        missing = [k for k in self.key_attrs if k not in key]
        if missing:
            raise DataError(f"{self.target.full_table_name}: a job's key needs {self.key_attrs}; {missing} missing")
        return prepare_rows(self.target, [{k: key[k] for k in self.key_attrs}], ignore_extra_fields=False,
                            check_duplicates=False, encode=False, partial=True)[0]

    def clear_errors(self) -> int:
        t = self.sa_table
        return self.connection.execute(sa.delete(t).where(t.c.status == "error")).rowcount

    def delete(self) -> int:
        return self.connection.execute(sa.delete(self.sa_table)).rowcount


def jobs_table_name(table_name: str) -> str:
    """``~~name`` beside the auto-populated table ``name`` (tier prefix dropped)."""
    return f"~~{table_name.lstrip('_#')}"


def pid_alive(pid: int) -> bool:
    """Whether a process of this host still runs (a dead worker's reservation is stale)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["Jobs", "STATUSES", "jobs_table_name", "pid_alive"]
