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

from .errors import DataError, DataJointError
from .table import Table
from .types import parse_type

STATUSES = ("pending", "reserved", "success", "error", "ignore")
ANALYZE_AFTER = 500  # new jobs in one refresh after which the planner statistics are refreshed
# (jobs table, key) reserved by a make running in this process: refresh() returns this
# process's other reservations (left when recording a make's outcome failed) to pending
_HELD: set[tuple[str, tuple]] = set()
_HELD_LOCK = threading.Lock()


ERROR_MESSAGE_LENGTH = 2047  # error_message is a varchar(2047)
TRUNCATION_APPENDIX = "...truncated"  # ends a message cut to fit


def _now() -> dt.datetime:
    """The client's clock (UTC), to the millisecond as datetime(3) keeps it."""
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def jobs_class(target_cls) -> type:
    """The class of the jobs table of the auto-populated class ``target_cls`` (one per
    table and connection, so that ``Table.jobs`` costs no catalog lookup after the first)."""
    schema = target_cls._schema
    name = jobs_table_name(target_cls._table_name)
    registry = schema.connection.__dict__.setdefault("job_classes", {})
    full = f"{schema.database}.{name}"
    cls = registry.get(full)
    if cls is None or cls._target_class is not target_cls:
        cls = type("Jobs", (Jobs,), {"_schema": schema, "_table_name": name, "_target_class": target_cls,
                                     "__module__": __name__})
        registry[full] = cls
    return cls


def forget_jobs_class(connection, full_jobs_name: str) -> None:
    """After the jobs table is dropped: the next ``Table.jobs`` declares it anew."""
    connection.__dict__.get("job_classes", {}).pop(full_jobs_name, None)
    connection.tables.pop(full_jobs_name, None)


class Jobs(Table):
    """The job queue ``~~name`` of one auto-populated table, as a table: restrict it,
    ``len()`` it, fetch it, ``delete()`` it, and read ``pending``, ``reserved``,
    ``errors``, ``ignored`` and ``completed`` (restrictions by status). ``refresh()``,
    ``reserve()``, ``complete()``, ``error()`` and ``ignore()`` move jobs through their
    states. Obtained as ``Table.jobs``; declared on first use."""

    tier = "Jobs"
    _target_class = None  # the auto-populated class (set per jobs table by jobs_class)

    def __init__(self):
        cls = type(self)
        if cls._target_class is None:
            raise DataJointError("Jobs is reached through an auto-populated table: Table.jobs")
        if "_q" not in cls.__dict__:  # declared (or read) once per class
            cls._q, cls._blob_stack = self._ensure()
        super().__init__()

    # --- identity -------------------------------------------------------------
    @property
    def target(self):
        """The auto-populated table whose jobs these are."""
        return self._target_class()

    @property
    def name(self) -> str:
        return self._table_name

    @property
    def definition(self) -> str:
        """The jobs table's definition in datajoint's syntax (what ``_ensure`` declares)."""
        keys = "\n    ".join(f"{a.name} : {a.type.text}" for a in self.source_heading if a.in_key)
        states = ", ".join(f"'{s}'" for s in STATUSES)
        return (f"\n    # Job queue for {self.target.full_table_name}\n    {keys}\n    ---\n"
                f"    status : enum({states})\n    priority : int8\n"
                "    created_time=CURRENT_TIMESTAMP(3) : datetime(3)\n"
                "    scheduled_time=CURRENT_TIMESTAMP(3) : datetime(3)\n"
                "    reserved_time=null : datetime(3)\n    completed_time=null : datetime(3)\n"
                "    duration=null : float64\n"
                f"    error_message=\"\" : varchar({ERROR_MESSAGE_LENGTH})\n    error_stack=null : <blob>\n"
                "    user=\"\" : varchar(255)\n    host=\"\" : varchar(255)\n    pid=0 : int32\n"
                "    connection_id=0 : int64\n    version=\"\" : varchar(64)\n"
                "    INDEX (status, priority, scheduled_time)\n    ")

    @property
    def source_heading(self):
        """Jobs are keyed like the key source: one job per make(key) call."""
        return self._target_class().key_source.heading

    @property
    def key_attrs(self) -> list[str]:
        return self.primary_key

    def _ensure(self) -> tuple:
        """The jobs table, declared on first use in datajoint-python 2.x's layout (so that
        datajoint workers can share the queue), or the existing one as it is: (its
        SQLAlchemy table, whether error_stack is a blob)."""
        adapter = self._schema.connection.adapter
        connection = self._schema.connection
        sa_schema, sa_name = adapter.table_address(self._schema.database, self._table_name)
        with connection.reading() as conn:
            insp = sa.inspect(conn)
            existing = ({c["name"]: c["type"] for c in insp.get_columns(sa_name, schema=sa_schema)}
                        if insp.has_table(sa_name, schema=sa_schema) else None)
        if existing is None:
            table = self._layout(adapter, sa_schema, sa_name, create=True)
            try:
                with connection.transaction() as tx:
                    adapter.create_types(tx, table.columns)
                    table.create(tx, checkfirst=True)
                    adapter.write_comments(tx, self._schema.database, self._table_name, table.comment or "",
                                           {c.name: c.info["dj_comment"] for c in table.columns})
            except sa.exc.DBAPIError:  # another worker declared it at the same moment
                with connection.reading() as conn:
                    if not sa.inspect(conn).has_table(sa_name, schema=sa_schema):
                        raise
            existing = {c.name: c.type for c in table.columns}
            connection.tables.pop(f"{self._schema.database}.{self._table_name}", None)
        # query with the columns the table has (an older dj_dagster layout lacks some)
        table = self._layout(adapter, sa_schema, sa_name, create=False, reflected=existing)
        return table, "error_stack" in table.c and not isinstance(existing["error_stack"], sa.String)

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
                             server_default=default if create else None, info={"dj_comment": f":{spec.text}:"},
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
                        if create else None)

    def _server_now(self):
        """The server's clock to the millisecond (as SQL), which datajoint compares
        scheduled_time with, or the client's where the adapter has none."""
        if self.connection.adapter.clock() is None:
            return _now()
        return sa.func.localtimestamp(sa.literal_column("3"))

    def _clock(self, tx) -> dt.datetime:
        """The server's clock, read."""
        now = self._server_now()
        return now if isinstance(now, dt.datetime) else tx.execute(sa.select(now)).scalar()

    def _stack(self, text: str | None):
        if text is None or not self._blob_stack:
            return text
        from .blob import pack

        return pack(text)

    # --- views ----------------------------------------------------------------
    @property
    def pending(self) -> "Jobs":
        """Jobs waiting for a worker."""
        return self & {"status": "pending"}

    @property
    def reserved(self) -> "Jobs":
        """Jobs a worker is computing now."""
        return self & {"status": "reserved"}

    @property
    def errors(self) -> "Jobs":
        """Jobs whose make failed (``error_message``, ``error_stack`` say how)."""
        return self & {"status": "error"}

    @property
    def ignored(self) -> "Jobs":
        """Jobs populate skips."""
        return self & {"status": "ignore"}

    @property
    def completed(self) -> "Jobs":
        """Finished jobs, kept when ``config.jobs.keep_completed`` is set."""
        return self & {"status": "success"}

    def progress(self) -> dict:
        """The number of jobs of each status, and their ``total``."""
        t = self._q
        counts = dict.fromkeys(STATUSES, 0)
        for status, n in self.connection.query_all(sa.select(t.c.status, sa.func.count()).group_by(t.c.status)):
            counts[status] = int(n)
        counts["total"] = sum(counts.values())
        return counts

    def _where_key(self, key: dict):
        t = self._q
        return [t.c[k] == sa.bindparam(None, key[k], type_=t.c[k].type) for k in self.key_attrs]

    def _key_in(self, keys: list[tuple]):
        """``key IN (...)`` for key value tuples, as one clause with bound values."""
        t = self._q
        cols = [t.c[k] for k in self.key_attrs]
        return (cols[0].in_([k[0] for k in keys]) if len(cols) == 1 else sa.tuple_(*cols).in_(keys))

    # --- life cycle -----------------------------------------------------------
    def refresh(self, *restrictions, delay: float = 0, priority: int | None = None,
                stale_timeout: float | None = None, orphan_timeout: float | None = None,
                version: str | None = None) -> dict[str, int]:
        """Bring the queue up to date with the key source, as datajoint does:

        - keys of ``key_source & restrictions`` missing from the table and the queue
          become pending jobs, schedulable ``delay`` seconds from now, at ``priority``
          (default ``config.jobs.default_priority``);
        - with ``config.jobs.keep_completed``, success jobs whose rows were deleted
          since become pending again;
        - jobs whose key left the (unrestricted) key source are removed: success and
          error records at once when the table has no row for them either, others
          except ignored ones once older than ``stale_timeout`` seconds (default
          ``config.jobs.stale_timeout``; 0 turns this off);
        - reservations older than ``orphan_timeout`` seconds, of workers of this host
          that died, or of this process and no longer held by a make, become pending.

        Returns the counts ``added``, ``removed``, ``orphaned``, ``re_pended``. Retried
        when the database rolls it back for a deadlock."""
        from .settings import config

        priority = config.jobs.default_priority if priority is None else priority
        stale_timeout = config.jobs.stale_timeout if stale_timeout is None else stale_timeout
        return self.connection.retrying(lambda: self._refresh(restrictions, delay, priority, stale_timeout,
                                                              orphan_timeout, version))

    def _refresh(self, restrictions, delay, priority, stale_timeout, orphan_timeout, version) -> dict[str, int]:
        from .settings import config

        target = self.target
        t = self._q
        key = self.key_attrs
        result = {"added": 0, "removed": 0, "orphaned": 0, "re_pended": 0}
        todo = target._todo(restrictions)
        with self.connection.transaction() as tx:
            existing = {tuple(r[:-2]): (r[-2], r[-1]) for r in tx.execute(
                sa.select(*[t.c[k] for k in key], t.c.status, t.c.created_time))}
            wanted = {tuple(k[n] for n in key): k for k in todo.keys()}  # key values -> key, to do
            now = self._clock(tx)
            scheduled = now + dt.timedelta(seconds=delay)
            # new keys in key order: other workers may add the same keys at the same time,
            # and one order avoids deadlocks
            rows = [wanted[v] for v in sorted(v for v in wanted if v not in existing)]
            if rows:
                adapter = self.connection.adapter
                tx.execute(adapter.insert(t, "skip", key), [
                    {**k, "status": "pending", "priority": priority, "created_time": now,
                     "scheduled_time": scheduled, "version": version or ""} for k in rows])
                if len(rows) >= ANALYZE_AFTER:
                    adapter.analyze(tx, t)
            result["added"] = len(rows)
            if config.jobs.keep_completed:  # kept success jobs whose result was deleted since: to do again
                redo = [v for v in wanted if existing.get(v, ("",))[0] == "success"]
                for chunk in _chunks(redo):
                    tx.execute(sa.update(t).where(self._key_in(chunk), t.c.status == "success").values(
                        status="pending", priority=priority, created_time=now, scheduled_time=scheduled,
                        reserved_time=None, completed_time=None, duration=None))
                result["re_pended"] = len(redo)
            result["removed"] = self._remove_vanished(tx, existing, wanted, now, stale_timeout)
            result["orphaned"] = self._recover(tx, now, orphan_timeout)
        return result

    def _remove_vanished(self, tx, existing: dict, wanted: dict, now: dt.datetime, stale_timeout: float) -> int:
        """Delete the jobs whose key left the key source (see refresh)."""
        others = [v for v in existing if v not in wanted]  # keys to do are in the key source
        if not others:
            return 0
        key = self.key_attrs
        target = self.target
        as_dicts = [dict(zip(key, v)) for v in others]
        in_source = set()
        for chunk in _chunks(as_dicts):
            in_source |= {tuple(d[n] for n in key) for d in (target.key_source.proj() & chunk).keys()}
        vanished = {v for v in others if v not in in_source}
        # success and error records of vanished keys, and pending jobs of keys in the key
        # source: gone if the table has no row for them, done if it has
        asked = [dict(zip(key, v)) for v in others if existing[v][0] in ("success", "error") and v in vanished
                 or existing[v][0] == "pending" and v not in vanished]
        made = set()
        for chunk in _chunks(asked):
            made |= {tuple(d[n] for n in key) for d in (target.proj() & chunk).keys()}
        gone = {v for v in vanished if existing[v][0] in ("success", "error") and v not in made}
        gone |= {v for v in others if existing[v][0] == "pending" and v not in vanished and v in made}
        if stale_timeout and stale_timeout > 0:
            limit = now - dt.timedelta(seconds=stale_timeout)
            gone |= {v for v in vanished if existing[v][0] != "ignore" and existing[v][1] is not None
                     and existing[v][1] < limit}
        t = self._q
        for chunk in _chunks(sorted(gone)):
            tx.execute(sa.delete(t).where(self._key_in(chunk)))
        return len(gone)

    def _recover(self, tx, now: dt.datetime, orphan_timeout: float | None) -> int:
        """Return to pending the reservations older than ``orphan_timeout`` seconds, of
        dead workers of this host, and of this process that no make holds (a make whose
        outcome could not be recorded while the database was down)."""
        t = self._q
        key = self.key_attrs
        with _HELD_LOCK:
            held = {k for n, k in _HELD if n == self._ident}
        recovered = 0
        for r in tx.execute(sa.select(t).where(t.c.status == "reserved")).mappings().all():
            here = r["host"] == socket.gethostname() and r["pid"]
            dead = here and not pid_alive(r["pid"])
            orphaned = here and r["pid"] == os.getpid() and tuple(r[k] for k in key) not in held
            old = bool(orphan_timeout) and r["reserved_time"] is not None and \
                now - r["reserved_time"] > dt.timedelta(seconds=orphan_timeout)
            if dead or orphaned or old:
                tx.execute(sa.update(t).where(*self._where_key(r), t.c.status == "reserved")
                           .values(status="pending", reserved_time=None, host="", pid=0))
                recovered += 1
        return recovered

    def reserve(self, key: dict, version: str | None = None) -> bool:
        """Reserve the key's job for this worker: True if it was pending, schedulable now
        and its result is not in the table yet (one UPDATE, so two workers never both
        win); False otherwise. A key without a job is not reserved."""
        def build(t, where):
            target = self.target.sa_table
            done = sa.select(sa.literal(1)).select_from(target).where(
                *[target.c[k] == sa.bindparam(f"k_{k}", type_=t.c[k].type) for k in self.key_attrs])
            now = self._now_param()
            return sa.update(t).where(*where, t.c.status == "pending", t.c.scheduled_time <= now,
                                      ~done.exists()).values(
                status="reserved", reserved_time=now, host=sa.bindparam("p_host"), pid=sa.bindparam("p_pid"),
                user=sa.bindparam("p_user"), version=sa.bindparam("p_version"))

        params = {**self._key_params(key), "p_now": _now(), "p_host": socket.gethostname(), "p_pid": os.getpid(),
                  "p_user": os.environ.get("USER", ""), "p_version": version or ""}
        with self.connection.transaction() as tx:
            won = tx.execute(self._statement("reserve", build), params).rowcount == 1
        if won:
            self._hold(key)
        return won

    def _now_param(self):
        """The server's clock in a cached statement (SQLite's is bound per call as ``p_now``)."""
        now = self._server_now()
        return now if isinstance(now, sa.sql.ClauseElement) else sa.bindparam("p_now", type_=sa.DateTime())

    def _statement(self, purpose: str, build):
        """Statements built once per jobs table, with the key as bound parameters."""
        cache = type(self).__dict__.get("_statements")
        if cache is None:
            cache = {}
            type(self)._statements = cache
        if purpose not in cache:
            t = self._q
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
        remove = adapter.delete_with_locked_subquery and not config.jobs.keep_completed

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
        return f"{self.database}.{self._table_name}"

    def _hold(self, key: dict) -> None:
        with _HELD_LOCK:
            _HELD.add((self._ident, tuple(key[k] for k in self.key_attrs)))

    def release(self, key: dict) -> None:
        """This process no longer works on the key (called before its outcome is written)."""
        with _HELD_LOCK:
            _HELD.discard((self._ident, tuple(key[k] for k in self.key_attrs)))

    def pending_keys(self, limit: int | None = None, priority: int | None = None) -> list[dict]:
        """Keys of the pending jobs schedulable now, most urgent first (lowest priority
        number, then earliest scheduled); only those of ``priority`` or more urgent
        when given."""
        t = self._q
        key = self.key_attrs
        stmt = (sa.select(*[t.c[k] for k in key]).where(t.c.status == "pending",
                                                        t.c.scheduled_time <= self._now_param())
                .order_by(t.c.priority, t.c.scheduled_time))
        if priority is not None:
            stmt = stmt.where(t.c.priority <= priority)
        if limit:
            stmt = stmt.limit(limit)
        with self.connection.reading() as conn:
            rows = conn.execute(stmt, {"p_now": _now()}).all()
        return [dict(zip(key, r)) for r in rows]

    def complete(self, key: dict, duration: float | None = None, version: str | None = None,
                 claimed: str | None = None) -> None:
        """The key's job is done (inside the make's transaction, so it commits with the
        rows): deleted, as datajoint does, or kept as ``success`` when
        ``config.jobs.keep_completed`` is set."""
        from .settings import config

        self.release(key)
        if claimed == "removed":
            return
        if not config.jobs.keep_completed:
            self.connection.execute(self._statement("done", lambda t, where: sa.delete(t).where(*where)),
                                    self._key_params(key))
            return
        self._finish(key, "success", duration, version)

    def _finish(self, key: dict, status: str, duration: float | None, version: str | None = None,
                only_pending: bool = False, **values) -> int:
        """Mark the key's job ``status`` now, after ``duration`` seconds of work: a job
        the make did not reserve (its transaction locked it) gets the make's start as
        its reservation time."""
        t = self._q
        with self.connection.transaction() as tx:
            now = self._clock(tx)
            started = now - dt.timedelta(seconds=duration or 0)
            where = self._where_key(key) + ([t.c.status == "pending"] if only_pending else [])
            return tx.execute(sa.update(t).where(*where).values(
                status=status, completed_time=now, duration=duration,
                reserved_time=sa.func.coalesce(t.c.reserved_time, started), host=socket.gethostname(),
                pid=os.getpid(), user=os.environ.get("USER", ""),
                **({"version": version} if version is not None else {}), **values)).rowcount

    def error(self, key: dict, error_message: str, error_stack: str | None = None) -> None:
        """Mark the key's job failed with ``error_message`` (cut to 2047 characters,
        ending in "...truncated") and optionally the traceback ``error_stack``; a key
        without a job gets one."""
        self._record(self._checked_key(key), error_message, error_stack, None)

    def _record(self, key: dict, message: str, stack: str | None, duration: float | None,
                only_pending: bool = False) -> None:
        self.release(key)
        if len(message) > ERROR_MESSAGE_LENGTH:
            message = message[:ERROR_MESSAGE_LENGTH - len(TRUNCATION_APPENDIX)] + TRUNCATION_APPENDIX
        values = {"error_message": message, "error_stack": self._stack(stack)}
        if not self._finish(key, "error", duration, only_pending=only_pending, **values) and not only_pending:
            self.connection.execute(sa.insert(self._q).values(
                **key, **values, status="error", priority=5, scheduled_time=self._server_now(),
                completed_time=self._server_now()))

    def record_failure(self, key: dict, exc: BaseException, duration: float, claimed: bool = False) -> None:
        """Record a failed make, as datajoint words it (``Class: message``, and the
        traceback). A claimed key's job was only locked, and the rollback released it:
        it is marked only if still pending (a rival may have taken it)."""
        from .autopopulate import error_message

        message = error_message(exc)
        stack = "".join(traceback.format_exception(exc))[-60000:]
        self._record(key, message, stack, duration, only_pending=claimed)

    def ignore(self, key: dict) -> None:
        """Mark the key's job ``ignore`` (populate skips it), adding the job if it has
        none. The key is checked as an insert checks its values."""
        from .settings import config

        key = self._checked_key(key)
        t = self._q
        with self.connection.transaction() as tx:
            n = tx.execute(sa.update(t).where(*self._where_key(key)).values(status="ignore")).rowcount
            if not n:
                tx.execute(sa.insert(t).values(**key, status="ignore", scheduled_time=self._server_now(),
                                               priority=config.jobs.default_priority))

    def _checked_key(self, key: dict) -> dict:
        """The target's primary key from ``key`` (other attributes dropped), its values
        validated and converted for the database."""
        from .insert_rows import prepare_rows

        missing = [k for k in self.key_attrs if k not in key]
        if missing:
            raise DataError(f"{self.target.full_table_name}: a job's key needs {self.key_attrs}; {missing} missing")
        return prepare_rows(self, [{k: key[k] for k in self.key_attrs}], ignore_extra_fields=False,
                            check_duplicates=False, encode=False, partial=True)[0]

    def clear_errors(self) -> int:
        """Delete the error jobs (populate with reserve_jobs then retries their keys)."""
        return self.errors.delete_quick(get_count=True)

    def delete(self, *args, **kwargs) -> int:
        """Delete the (restricted) jobs, without prompting: nothing depends on them."""
        return self.delete_quick(get_count=True)

    def drop(self, *args, **kwargs) -> None:
        """Drop the jobs table, without prompting (the next ``Table.jobs`` declares it again)."""
        self.drop_quick()

    def drop_quick(self) -> None:
        adapter = self.connection.adapter
        with self.connection.transaction() as tx:
            tx.execute(sa.text(f"DROP TABLE IF EXISTS {adapter._qualified(tx, self.database, self._table_name)}"))
            adapter.drop_comments(tx, self.database, self._table_name)
        forget_jobs_class(self.connection, self.full_table_name)


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i:i + size]


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


__all__ = ["Jobs", "STATUSES", "ERROR_MESSAGE_LENGTH", "TRUNCATION_APPENDIX", "jobs_class", "jobs_table_name",
           "pid_alive"]
