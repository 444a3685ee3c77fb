"""The per-table jobs table ``~~name``: one row per key of the key source with its
status (pending, reserved, success, error, ignore), so that many workers on many
machines can share the work of one populate without computing a key twice.

A worker reserves a key with one UPDATE ... WHERE status = 'pending'; the database
lets exactly one such UPDATE change the row, so the rowcount says who won."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import socket
import traceback

import sqlalchemy as sa

from .types import parse_type

STATUSES = ("pending", "reserved", "success", "error", "ignore")
STALE_AFTER = dt.timedelta(hours=24)


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

        def col(name, type_text, nullable=False, default=None, key=False, spec=None):
            spec = spec or parse_type(type_text)
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

        now = sa.text("CURRENT_TIMESTAMP(3)" if adapter.name in ("mysql", "postgresql") else "CURRENT_TIMESTAMP")
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
        """The server's clock (as SQL), which datajoint compares scheduled_time with."""
        if self.connection.adapter.name in ("mysql", "postgresql"):
            return sa.func.localtimestamp()
        return _now()

    def _clock(self, tx) -> dt.datetime:
        """The server's clock, read."""
        if self.connection.adapter.name in ("mysql", "postgresql"):
            return tx.execute(sa.select(sa.func.localtimestamp())).scalar()
        return _now()

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
        rows = [dict(r._mapping) for r in self.connection.query_all(stmt)]
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
        """Add pending jobs for keys to do, drop pending jobs whose key is done or gone,
        and return reservations of dead workers to pending."""
        target = self.target
        t = self.sa_table
        key = self.key_attrs
        todo = target._todo(restrictions)
        added = removed = recovered = 0
        with self.connection.transaction() as tx:
            existing = {tuple(r) for r in tx.execute(sa.select(*[t.c[k] for k in key]))}
            rows = [k for k in todo.keys() if tuple(k[n] for n in key) not in existing]
            now = self._clock(tx)
            if rows:  # other workers may add the same keys at the same time
                adapter = self.connection.adapter
                tx.execute(adapter.insert(t, "skip", key), [
                    {**k, "status": "pending", "priority": priority, "scheduled_time": now, "version": version or ""}
                    for k in rows])
            added = len(rows)
            # pending jobs whose result exists or whose key left the key source
            source = target.key_source.proj()
            stale = [dict(zip(key, r)) for r in tx.execute(
                sa.select(*[t.c[k] for k in key]).where(t.c.status == "pending"))]
            if stale:
                still = {tuple(d[n] for n in key) for d in (source - target.proj()).keys()}
                gone = [d for d in stale if tuple(d[n] for n in key) not in still]
                for d in gone:
                    tx.execute(sa.delete(t).where(*self._where_key(d)))
                removed = len(gone)
            for r in tx.execute(sa.select(t).where(t.c.status == "reserved")).mappings().all():
                dead = (r["host"] == socket.gethostname() and r["pid"] and not pid_alive(r["pid"]))
                old = stale_timeout is not None and r["reserved_time"] and now - r["reserved_time"] > stale_timeout
                if dead or old:
                    tx.execute(sa.update(t).where(*self._where_key(r), t.c.status == "reserved")
                               .values(status="pending", reserved_time=None, host="", pid=0))
                    recovered += 1
        return {"added": added, "removed": removed, "recovered": recovered}

    def reserve(self, key: dict, version: str | None = None) -> bool:
        t = self.sa_table
        values = dict(status="reserved", reserved_time=self._server_now(), host=socket.gethostname(),
                      pid=os.getpid(), user=os.environ.get("USER", ""), version=version or "")
        with self.connection.transaction() as tx:
            n = tx.execute(sa.update(t).where(*self._where_key(key), t.c.status == "pending").values(**values)).rowcount
            if n == 1:
                return True
            exists = tx.execute(sa.select(t.c.status).where(*self._where_key(key))).first()
            if exists is None:
                try:
                    with tx.begin_nested():
                        tx.execute(sa.insert(t).values(**key, scheduled_time=self._server_now(), priority=5,
                                                       **values))
                    return True
                except sa.exc.IntegrityError:
                    return False
        return False

    def pending_keys(self, limit: int | None = None) -> list[dict]:
        t = self.sa_table
        key = self.key_attrs
        stmt = (sa.select(*[t.c[k] for k in key]).where(t.c.status == "pending")
                .order_by(t.c.priority, t.c.scheduled_time))
        if limit:
            stmt = stmt.limit(limit)
        return [dict(zip(key, r)) for r in self.connection.query_all(stmt)]

    def complete(self, key: dict, duration: float) -> None:
        t = self.sa_table
        self.connection.execute(sa.update(t).where(*self._where_key(key)).values(
            status="success", completed_time=self._server_now(), duration=duration, error_message="",
            error_stack=None))

    def error(self, key: dict, exc: BaseException, duration: float) -> None:
        t = self.sa_table
        msg = f"{type(exc).__name__}: {exc}"[:2047]
        stack = "".join(traceback.format_exception(exc))[-60000:]
        self.connection.execute(sa.update(t).where(*self._where_key(key)).values(
            status="error", completed_time=self._server_now(), duration=duration, error_message=msg,
            error_stack=self._stack(stack)))

    def ignore(self, key: dict) -> None:
        t = self.sa_table
        with self.connection.transaction() as tx:
            n = tx.execute(sa.update(t).where(*self._where_key(key)).values(status="ignore")).rowcount
            if not n:
                tx.execute(sa.insert(t).values(**key, status="ignore", scheduled_time=self._server_now(), priority=5))

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
