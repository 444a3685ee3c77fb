"""PostgreSQL through psycopg 3: a DataJoint schema is a PostgreSQL schema."""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .base import Adapter

COPY_MIN_ROWS = 50


class PostgreSQLAdapter(Adapter):
    name = "postgresql"

    def create_engine(self, url, **kwargs):
        engine = super().create_engine(url, **kwargs)
        # batch executemany INSERTs into multi-row VALUES (psycopg 3 would send one per row)
        engine.dialect.use_insertmanyvalues_wo_returning = True
        return engine

    def create_schema(self, conn, schema):
        conn.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')

    def drop_schema(self, conn, schema):
        conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def list_schemas(self, conn):
        rows = conn.exec_driver_sql(
            "SELECT nspname FROM pg_namespace WHERE substr(nspname, 1, 3) <> 'pg_' "
            "AND nspname NOT IN ('information_schema', 'public') ORDER BY nspname")
        return [r[0] for r in rows]

    def list_tables(self, conn, schema):
        rows = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema})
        return [r[0] for r in rows]

    def sql_type(self, spec, table="", attr=""):
        if not spec.is_codec and spec.name == "json":
            return pg.JSONB(none_as_null=True)
        if spec.is_codec and spec.external:
            return pg.JSONB(none_as_null=True)
        return super().sql_type(spec, table, attr)

    def bytes_type(self):
        return pg.BYTEA()

    def datetime_type(self, precision):
        return pg.TIMESTAMP(precision=precision)

    def bulk_insert(self, conn, table: sa.Table, rows: list[dict], mode: str | None, key: list[str]) -> None:
        """Plain batches go through COPY (an order of magnitude faster than INSERT);
        skip/replace modes need ON CONFLICT and use INSERT."""
        if mode is not None or len(rows) < COPY_MIN_ROWS:
            return super().bulk_insert(conn, table, rows, mode, key)
        import psycopg
        from psycopg.types.json import Jsonb

        columns = list(rows[0])
        json_cols = {c.name for c in table.columns if isinstance(c.type, (sa.JSON, pg.JSONB))}
        convert = [c in json_cols for c in columns]
        prep = conn.dialect.identifier_preparer
        target = prep.format_table(table)
        names = ", ".join(prep.quote_identifier(c) for c in columns)
        raw = conn.connection.driver_connection
        try:
            with raw.cursor() as cur, cur.copy(f"COPY {target} ({names}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([Jsonb(row[c]) if j and row[c] is not None else row[c]
                                    for c, j in zip(columns, convert)])
        except psycopg.Error as exc:
            wrapper = sa.exc.IntegrityError if (exc.sqlstate or "").startswith("23") else sa.exc.DBAPIError
            raise wrapper(f"COPY {target}", None, exc) from None

    def insert(self, table: sa.Table, mode: str | None, key: Iterable[str]):
        stmt = pg.insert(table)
        key = list(key)
        if mode == "skip":
            return stmt.on_conflict_do_nothing(index_elements=key)
        if mode == "replace":
            sec = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in key}
            return stmt.on_conflict_do_update(index_elements=key, set_=sec) if sec else \
                stmt.on_conflict_do_nothing(index_elements=key)
        return stmt

    def is_duplicate(self, exc):
        return getattr(getattr(exc, "orig", None), "sqlstate", None) == "23505"

    def is_fk_violation(self, exc):
        return getattr(getattr(exc, "orig", None), "sqlstate", None) == "23503"

    def modify_column(self, conn, schema, table, column):
        q = conn.dialect.identifier_preparer.quote_identifier(column.name)
        target = self._qualified(conn, schema, table)
        type_sql = column.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} TYPE {type_sql} USING {q}::{type_sql}")
        null = "DROP NOT NULL" if column.nullable else "SET NOT NULL"
        conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} {null}")
        if column.server_default is not None:
            default = sa.schema.CreateColumn(column).compile(dialect=conn.dialect).string.split(" DEFAULT ", 1)
            if len(default) == 2:
                conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} SET DEFAULT "
                                     f"{default[1].split(' NOT NULL')[0]}")
        else:
            conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} DROP DEFAULT")
        self._column_comment(conn, schema, table, column)

    def _column_comment(self, conn, schema, table, column):
        q = conn.dialect.identifier_preparer.quote_identifier(column.name)
        text = (column.comment or "").replace("'", "''")
        conn.exec_driver_sql(f"COMMENT ON COLUMN {self._qualified(conn, schema, table)}.{q} IS '{text}'"
                             .replace("%", "%%"))

    def set_table_comment(self, conn, schema, table, comment):
        text = comment.replace("'", "''").replace("%", "%%")
        conn.exec_driver_sql(f"COMMENT ON TABLE {self._qualified(conn, schema, table)} IS '{text}'")
