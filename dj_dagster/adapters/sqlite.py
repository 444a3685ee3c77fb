"""SQLite: the embedded default.

One database file holds every schema; a table's SQL name is ``"schema.table"``.
Attached files per schema were the alternative, but SQLite in WAL mode does not commit
a transaction atomically across attached files, and a cascading delete across schemas
must be atomic. SQLite has no column comments, so declared types and comments live in
the ``~dj_comment`` table. WAL mode and a busy timeout let several processes (Dagster
run workers) share the file; write transactions begin IMMEDIATE to take the write lock
up front instead of failing on a lock upgrade.
"""

from __future__ import annotations

import json
import os
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Connection, Engine

from .base import Adapter

COMMENTS = "~dj_comment"
SCHEMAS = "~dj_schema"
BUSY_TIMEOUT_S = 60


INT_TYPES = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


class SQLiteAdapter(Adapter):
    name = "sqlite"
    auto_increment_in_composite_key = False  # only an INTEGER PRIMARY KEY of its own is numbered
    current_user_sql = "SELECT 'sqlite'"  # Connection.get_user()
    supports_comments = False
    skip_locked = False
    autocommit_reads = False  # our BEGIN hook runs on every connection
    server = False
    reuse_cursors = False
    begins_by_mode = True
    narrower_ints = {"uint64": ((0, 2**63 - 1), "SQLite stores integers as signed 64-bit values: a uint64 above "
                                                "2**63-1 would be stored rounded, as a float")}
    keeps_lineage = False
    timestamp_default = "CURRENT_TIMESTAMP"

    def clock(self):
        return None  # job times bind the client's UTC clock, as a datetime (not SQLite's text)

    def create_engine(self, url: sa.URL, **kwargs: Any) -> Engine:
        if url.database and url.database != ":memory:":
            os.makedirs(os.path.dirname(os.path.abspath(url.database)), exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_S, "check_same_thread": False},
                                  **kwargs)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_S * 1000}")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            from ..sqltext import register_sqlite_functions  # loads sqlglot: at the first connection, not import

            register_sqlite_functions(dbapi_conn)

        @event.listens_for(engine, "begin")
        def _on_begin(conn):
            write = conn.get_execution_options().get("dj_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE TABLE IF NOT EXISTS "{SCHEMAS}" (name TEXT PRIMARY KEY)')
            conn.exec_driver_sql(
                f'CREATE TABLE IF NOT EXISTS "{COMMENTS}" (tbl TEXT NOT NULL, col TEXT NOT NULL, '
                "comment TEXT NOT NULL, PRIMARY KEY (tbl, col))")
        return engine

    def table_address(self, schema: str, table: str) -> tuple[str | None, str]:
        return None, f"{schema}.{table}"

    def create_schema(self, conn: Connection, schema: str) -> None:
        conn.execute(sa.text(f'INSERT INTO "{SCHEMAS}" (name) VALUES (:n) ON CONFLICT DO NOTHING'), {"n": schema})

    def drop_schema(self, conn: Connection, schema: str) -> None:
        conn.execute(sa.text(f'DELETE FROM "{SCHEMAS}" WHERE name = :n'), {"n": schema})

    def list_schemas(self, conn: Connection) -> list[str]:
        return [r[0] for r in conn.execute(sa.text(f'SELECT name FROM "{SCHEMAS}" ORDER BY name'))]

    def list_tables(self, conn: Connection, schema: str) -> list[str]:
        rows = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type='table' AND substr(name, 1, :n) = :p"),
            {"n": len(schema) + 1, "p": schema + "."})
        return [r[0][len(schema) + 1 :] for r in rows]

    def sql_type(self, spec, table: str = "", attr: str = ""):
        from ..codecs import stored_spec

        spec = stored_spec(spec)
        if spec.name in INT_TYPES and not spec.is_codec:
            # SQLite integers are 64-bit; INTEGER keeps rowid semantics. uint64 too: a NUMERIC
            # column would bind through a float (exact only to 2**53); values above 2**63-1
            # are refused at insert (narrower_ints)
            return sa.Integer()
        return super().sql_type(spec, table, attr)

    def write_comments(self, conn, schema, table, table_comment, columns):
        tbl = f"{schema}.{table}"
        rows = [{"t": tbl, "c": "", "m": table_comment}] + [{"t": tbl, "c": c, "m": m} for c, m in columns.items()]
        conn.execute(sa.text(f'DELETE FROM "{COMMENTS}" WHERE tbl = :t'), {"t": tbl})
        conn.execute(sa.text(f'INSERT INTO "{COMMENTS}" (tbl, col, comment) VALUES (:t, :c, :m)'), rows)

    def read_comments(self, conn, schema, table):
        rows = conn.execute(sa.text(f'SELECT col, comment FROM "{COMMENTS}" WHERE tbl = :t'),
                            {"t": f"{schema}.{table}"}).all()
        cols = {c: m for c, m in rows}
        return cols.pop("", ""), cols

    def drop_comments(self, conn, schema, table):
        conn.execute(sa.text(f'DELETE FROM "{COMMENTS}" WHERE tbl = :t'), {"t": f"{schema}.{table}"})

    def insert(self, table: sa.Table, mode: str | None, key: Iterable[str]):
        stmt = sqlite_dialect.insert(table)
        if mode == "skip":
            return stmt.on_conflict_do_nothing()
        if mode == "replace":
            key = list(key)
            sec = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
            return stmt.on_conflict_do_update(index_elements=key, set_=sec) if sec else stmt.on_conflict_do_nothing()
        return stmt

    def for_update_skip_locked(self, stmt):
        return stmt  # the IMMEDIATE transaction already holds the write lock

    def is_duplicate(self, exc):
        return "UNIQUE constraint failed" in str(exc)

    def is_fk_violation(self, exc):
        return "FOREIGN KEY constraint failed" in str(exc)

    def referred_table(self, fk, schema):
        referred = fk["referred_table"]
        if fk.get("referred_schema") is None and "." in referred:  # "schema.table", one file's tables
            return tuple(referred.split(".", 1))
        return super().referred_table(fk, schema)

    def modify_column(self, conn, schema, table, column):
        from ..errors import DataJointError

        raise DataJointError(f"SQLite cannot change the type, default or nullability of {schema}.{table}."
                             f"{column.name}; only comments can be altered on SQLite")

    def rename_column(self, conn, schema, table, old, new):
        super().rename_column(conn, schema, table, old, new)
        conn.execute(sa.text(f'UPDATE "{COMMENTS}" SET col = :new WHERE tbl = :t AND col = :old'),
                     {"t": f"{schema}.{table}", "old": old, "new": new})

    def set_table_comment(self, conn, schema, table, comment):
        self.set_column_comment(conn, schema, table, "", comment)

    def set_column_comment(self, conn, schema, table, name, comment):
        conn.execute(sa.text(f'INSERT INTO "{COMMENTS}" (tbl, col, comment) VALUES (:t, :c, :m) '
                             "ON CONFLICT (tbl, col) DO UPDATE SET comment = excluded.comment"),
                     {"t": f"{schema}.{table}", "c": name, "m": comment})

    def _column_comment(self, conn, schema, table, column):
        self.set_column_comment(conn, schema, table, column.name, column.comment or "")

    def key_set(self, cols, keys):
        """The keys as one JSON array bound as a single parameter and read back with
        ``json_each`` (SQLite allows 250,000 parameters at most). Values are converted as
        the column's type binds them; bytes travel as hex and are compared with
        ``hex(column)``. A key of several attributes is compared as one ``json_array``
        built on both sides from SQL values: SQLite evaluates a row-value ``NOT IN`` by
        scanning the whole set per row, a single-value one by a lookup. (Float and decimal
        attributes keep the row-value form: json_array prints 15 significant digits.)"""
        lhs, converters = [], []
        for col in cols:
            # the dialect's own type binds as the column stores (a generic DateTime has no
            # processor of its own: str() of a whole-second datetime lacks the stored .000000)
            process = col.type.dialect_impl(_DIALECT).bind_processor(_DIALECT)
            if isinstance(col.type, sa.LargeBinary):
                col, process = sa.func.hex(col), _hex
            elif _numeric_affinity(col.type):
                process = _integral(process)
            lhs.append(col)
            converters.append(process)
        rows = [[(c(v) if c else v) for c, v in zip(converters, k)] for k in keys]
        document = json.dumps([r[0] for r in rows] if len(cols) == 1 else rows, default=str)
        items = sa.func.json_each(sa.bindparam(None, document, type_=sa.String())).table_valued("value")
        if len(cols) == 1:
            return lhs[0].in_(sa.select(items.c.value))
        paths = [sa.func.json_extract(items.c.value, f"$[{i}]") for i in range(len(cols))]
        if any(isinstance(c.type, sa.Numeric) for c in cols):  # Float and Decimal: exact comparison
            return sa.tuple_(*lhs).in_(sa.select(*paths))
        return sa.func.json_array(*lhs).in_(sa.select(sa.func.json_array(*paths)))


_DIALECT = sqlite_dialect.pysqlite.dialect()


def _hex(value):
    return bytes(value).hex().upper()


def _numeric_affinity(sql_type) -> bool:
    """Whether SQLite stores the column with NUMERIC affinity (a REAL holding an integer
    is stored as that INTEGER)."""
    return isinstance(sql_type, (sa.Numeric, sa.Date, sa.DateTime, sa.Time, sa.Boolean)) and \
        not isinstance(sql_type, (sa.Float, sa.Integer))


def _integral(process):
    """``process``, then an integral float as the int NUMERIC affinity stores."""
    def convert(value):
        value = process(value) if process else value
        return int(value) if isinstance(value, float) and value.is_integer() else value
    return convert
