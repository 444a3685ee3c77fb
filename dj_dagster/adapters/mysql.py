"""MySQL 8 and MariaDB through pymysql: a DataJoint schema is a MySQL database."""

from __future__ import annotations

import uuid
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine

from .base import Adapter

SYSTEM_DATABASES = {"information_schema", "mysql", "performance_schema", "sys"}


class BinaryUUID(sa.types.TypeDecorator):
    """``uuid`` as datajoint-python stores it on MySQL: the 16 bytes in BINARY(16)."""

    impl = mysql.BINARY(16)
    cache_ok = True

    @property
    def python_type(self):
        return uuid.UUID

    def process_bind_param(self, value, dialect):
        if value is None or (isinstance(value, bytes) and len(value) == 16):
            return value
        return (value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))).bytes

    def process_result_value(self, value, dialect):
        return None if value is None else uuid.UUID(bytes=bytes(value))


class MySQLAdapter(Adapter):
    name = "mysql"
    current_user_sql = "SELECT user()"  # Connection.get_user()
    pads_strings = True
    delete_with_locked_subquery = False
    native_enum = True

    def create_engine(self, url: sa.URL, **kwargs: Any) -> Engine:
        query = dict(url.query)
        query.setdefault("charset", "utf8mb4")
        return super().create_engine(url.set(query=query), **kwargs)

    def server_cursor(self, dbapi_conn, binary=False):
        import pymysql.cursors

        return dbapi_conn.cursor(pymysql.cursors.SSCursor)  # unbuffered: rows arrive as fetched

    def create_schema(self, conn, schema):
        conn.exec_driver_sql(f"CREATE DATABASE IF NOT EXISTS `{schema}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")

    def drop_schema(self, conn, schema):
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema}`")

    def list_schemas(self, conn):
        names = [r[0] for r in conn.exec_driver_sql("SHOW DATABASES")]
        return sorted(n for n in names if n not in SYSTEM_DATABASES)

    def schema_exists(self, conn, schema):
        return conn.execute(sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                            {"s": schema}).first() is not None

    def list_tables(self, conn, schema):
        rows = conn.execute(sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s "
                                    "AND table_type = 'BASE TABLE'"), {"s": schema})
        return [r[0] for r in rows]

    def sql_type(self, spec, table="", attr=""):
        from ..codecs import stored_spec

        spec = stored_spec(spec)
        unsigned = {"uint8": mysql.TINYINT(unsigned=True), "uint16": mysql.SMALLINT(unsigned=True),
                    "uint32": mysql.INTEGER(unsigned=True), "uint64": mysql.BIGINT(unsigned=True),
                    "int8": mysql.TINYINT(), "float32": mysql.FLOAT(asdecimal=False),
                    "float64": mysql.DOUBLE(asdecimal=False)}
        if not spec.is_codec and spec.name in unsigned:
            return unsigned[spec.name]
        if not spec.is_codec and spec.name == "uuid":
            return BinaryUUID()
        return super().sql_type(spec, table, attr)

    def fit_reflected(self, sql_type, spec, reflected):
        """The query type of an existing column: ``uuid`` columns declared before
        dj_dagster matched datajoint's BINARY(16) are MariaDB's native UUID or, on
        MySQL, CHAR(32) of hex digits."""
        if isinstance(sql_type, BinaryUUID):
            if isinstance(reflected, sa.Uuid):
                return sa.Uuid()
            if isinstance(reflected, sa.String):
                return sa.Uuid(native_uuid=False)
        return sql_type

    def bytes_type(self):
        return mysql.LONGBLOB()

    def datetime_type(self, precision):
        return mysql.DATETIME(fsp=precision)

    def insert(self, table: sa.Table, mode: str | None, key: Iterable[str]):
        stmt = mysql.insert(table)
        key = list(key)
        if mode == "skip":
            # a no-op update (the key set to its own current value) rather than INSERT IGNORE,
            # which would also swallow bad values; as in datajoint, a row conflicting on any
            # unique index is skipped and the row it conflicts with left unchanged
            return stmt.on_duplicate_key_update({key[0]: table.c[key[0]]})
        if mode == "replace":
            sec = {c.name: stmt.inserted[c.name] for c in table.columns if c.name not in key}
            return stmt.on_duplicate_key_update(sec or {key[0]: stmt.inserted[key[0]]})
        return stmt

    def is_duplicate(self, exc):
        return getattr(getattr(exc, "orig", None), "args", [None])[0] == 1062

    def is_transient(self, exc):  # deadlock, lock wait timeout
        return getattr(getattr(exc, "orig", None), "args", [None])[0] in (1213, 1205)

    def is_fk_violation(self, exc):
        return getattr(getattr(exc, "orig", None), "args", [None])[0] in (1451, 1452)

    def modify_column(self, conn, schema, table, column):
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} MODIFY COLUMN {ddl}")

    places_columns = True

    def alter_columns(self, conn, schema, table, steps):
        """All of alter()'s steps in one ALTER TABLE (MySQL commits each DDL statement:
        one statement changes everything or nothing). A rename is a CHANGE, which keeps
        the column's values."""
        q = conn.dialect.identifier_preparer.quote_identifier
        clauses = []
        for step in steps:
            if step.kind == "drop":
                clauses.append(f"DROP COLUMN {q(step.name)}")
                continue
            ddl = sa.schema.CreateColumn(step.column).compile(dialect=conn.dialect)
            head = {"add": "ADD COLUMN", "rename": f"CHANGE COLUMN {q(step.old or '')}"}.get(step.kind,
                                                                                          "MODIFY COLUMN")
            clauses.append(f"{head} {ddl}" + (f" AFTER {q(step.after)}" if step.after else ""))
        conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} " + ", ".join(clauses))

    def undo_create(self, conn, schema, table):
        # each DDL statement commits: a CREATE TABLE whose CREATE INDEX failed stays
        conn.exec_driver_sql(f"DROP TABLE IF EXISTS {self._qualified(conn, schema, table)}")

    def change_comment(self, conn, schema, table, column):
        self.modify_column(conn, schema, table, column)  # MySQL restates the column to change its comment

    def set_table_comment(self, conn, schema, table, comment):
        conn.execute(sa.text(f"ALTER TABLE {self._qualified(conn, schema, table)} COMMENT = :c"), {"c": comment})
