"""What every backend adapter provides. Everything that differs between SQLite,
MySQL/MariaDB and PostgreSQL lives in one subclass per backend; the rest of the
library asks the adapter and never tests the dialect name."""

from __future__ import annotations

from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ..types import TypeSpec


class AlterMixin:
    """ALTER TABLE statements for secondary attributes and comments."""

    def _qualified(self, conn, schema: str, table: str) -> str:
        prep = conn.dialect.identifier_preparer
        sa_schema, sa_name = self.table_address(schema, table)
        return (prep.quote_identifier(sa_schema) + "." if sa_schema else "") + prep.quote_identifier(sa_name)

    def add_column(self, conn, schema: str, table: str, column: sa.Column) -> None:
        self.create_types(conn, [column])
        ddl = sa.schema.CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} ADD COLUMN {ddl}")
        self._column_comment(conn, schema, table, column)

    def drop_column(self, conn, schema: str, table: str, name: str) -> None:
        q = conn.dialect.identifier_preparer.quote_identifier(name)
        conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} DROP COLUMN {q}")

    def modify_column(self, conn, schema: str, table: str, column: sa.Column) -> None:
        raise NotImplementedError

    def _column_comment(self, conn, schema: str, table: str, column: sa.Column) -> None:
        """Backends whose ADD/MODIFY COLUMN cannot carry the comment set it here."""

    def change_comment(self, conn, schema: str, table: str, column: sa.Column) -> None:
        """alter() of an attribute's comment alone (its type, default and nullability as they are)."""
        self._column_comment(conn, schema, table, column)

    def set_table_comment(self, conn, schema: str, table: str, comment: str) -> None:
        raise NotImplementedError

    renames_columns = True  # alter() may rename a column in place (values kept)
    places_columns = False  # columns can be placed (ALTER ... AFTER): alter() keeps the declared order

    def rename_column(self, conn, schema: str, table: str, old: str, new: str) -> None:
        q = conn.dialect.identifier_preparer.quote_identifier
        conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} RENAME COLUMN {q(old)} TO {q(new)}")

    def alter_columns(self, conn, schema: str, table: str, steps) -> None:
        """Apply alter()'s steps (:class:`dj_dagster.alter.AlterStep`) one statement
        each, inside the caller's transaction (``after`` is ignored: columns keep their
        place where the backend cannot move them)."""
        for step in steps:
            if step.kind == "drop":
                self.drop_column(conn, schema, table, step.name)
            elif step.kind == "add":
                self.add_column(conn, schema, table, step.column)
            else:
                if step.kind == "rename":
                    self.rename_column(conn, schema, table, step.old, step.name)
                if step.retype:
                    self.modify_column(conn, schema, table, step.column)
                else:
                    self.change_comment(conn, schema, table, step.column)


class Adapter(AlterMixin):
    name = "base"
    current_user_sql = "SELECT current_user"  # Connection.get_user()
    native_enum = False
    supports_comments = True  # column and table comments live in the catalog
    skip_locked = True  # SELECT ... FOR UPDATE SKIP LOCKED
    # DELETE ... WHERE key IN (SELECT ... FOR UPDATE SKIP LOCKED) claims and removes a job
    # in one statement (MySQL refuses a subquery on the table it deletes from)
    delete_with_locked_subquery = True
    autocommit_reads = True  # reads outside a transaction need no BEGIN/COMMIT
    server = True  # a database server, which may restart under an idle pool (not an embedded file)
    keeps_lineage = True  # datajoint's backends: ~lineage rows for its semantic checks
    timestamp_default = "CURRENT_TIMESTAMP(3)"  # a datetime(3) column's default
    # declare an index on each foreign key's columns (as datajoint-python does where the
    # server does not index them itself), unless a key or index already starts with them
    indexes_foreign_keys = False
    # string equality ignores trailing spaces (MySQL's PAD SPACE collations): restrictions
    # then compare lengths too
    pads_strings = False
    # a driver cursor may serve the next statement (not sqlite3's: a kept one can hold
    # its statement open, and COMMIT then fails with "SQL statements in progress")
    reuse_cursors = True
    # BEGIN depends on whether the transaction will write (SQLite's BEGIN IMMEDIATE takes
    # the write lock up front): transactions then mark their mode on the connection
    begins_by_mode = False
    # integer types stored in a smaller range than declared: type -> ((lo, hi), why);
    # inserts refuse values beyond it (they would be stored rounded)
    narrower_ints: dict[str, tuple[tuple[int, int], str]] = {}
    # an auto_increment attribute may sit in a primary key of several attributes
    auto_increment_in_composite_key = True

    def int_refusal(self, type_name: str, value: int) -> str | None:
        """Why an integer of the declared type cannot be stored exactly (``narrower_ints``),
        or None when it can."""
        narrower = self.narrower_ints.get(type_name)
        if narrower is None:
            return None
        (lo, hi), why = narrower
        return None if lo <= value <= hi else why

    # --- engine ---------------------------------------------------------------
    def create_engine(self, url: sa.URL, **kwargs: Any) -> Engine:
        # no pre-ping round trip per checkout: a dropped connection fails one statement,
        # is invalidated, and the next call reconnects
        return sa.create_engine(url, pool_recycle=1800, **kwargs)

    def clock(self) -> sa.ColumnElement | None:
        """The server's clock as SQL, which datajoint compares job times with; None where
        the client's clock (UTC) is bound instead."""
        return sa.func.localtimestamp()

    def begin(self, conn: Connection, write: bool) -> None:
        """Hook run when a transaction starts (SQLite takes its write lock here)."""

    # --- namespaces -----------------------------------------------------------
    def table_address(self, schema: str, table: str) -> tuple[str | None, str]:
        """(SQLAlchemy schema, SQL table name) of a DataJoint ``schema.table``."""
        return schema, table

    def create_schema(self, conn: Connection, schema: str) -> None:
        raise NotImplementedError

    def drop_schema(self, conn: Connection, schema: str) -> None:
        raise NotImplementedError

    def list_schemas(self, conn: Connection) -> list[str]:
        raise NotImplementedError

    def schema_exists(self, conn: Connection, schema: str) -> bool:
        """Whether ``schema`` exists, system schemas (which list_schemas leaves out) included."""
        return schema in self.list_schemas(conn)

    def list_tables(self, conn: Connection, schema: str) -> list[str]:
        schema_name, _ = self.table_address(schema, "")
        return sa.inspect(conn).get_table_names(schema=schema_name)

    # --- types ----------------------------------------------------------------
    def sql_type(self, spec: TypeSpec, table: str = "", attr: str = "") -> sa.types.TypeEngine:
        from ..codecs import stored_spec

        spec = stored_spec(spec)  # a codec type: the core type its codec chain stores
        n, a = spec.name, spec.args
        if spec.is_codec:
            return sa.JSON(none_as_null=True) if spec.external else self.bytes_type()
        simple = {
            "int8": sa.SmallInteger(), "int16": sa.SmallInteger(), "int32": sa.Integer(),
            "int64": sa.BigInteger(), "uint8": sa.SmallInteger(), "uint16": sa.Integer(),
            "uint32": sa.BigInteger(), "uint64": sa.Numeric(20, 0),
            "float32": sa.REAL(), "float64": sa.Double(), "bool": sa.Boolean(create_constraint=False),
            "uuid": sa.Uuid(), "json": sa.JSON(none_as_null=True), "bytes": self.bytes_type(), "date": sa.Date(),
            "datetime": sa.DateTime(), "time": sa.Time(), "text": sa.Text(),
        }
        if n in simple and not (n == "datetime" and a):
            return simple[n]
        if n == "datetime":
            return self.datetime_type(a[0])
        if n == "char":
            return sa.CHAR(a[0])
        if n == "varchar":
            return sa.String(a[0])
        if n == "decimal":
            return sa.Numeric(*a, asdecimal=True)
        if n == "enum":
            return sa.Enum(*a, native_enum=self.native_enum, create_constraint=True,
                           name=f"{table}_{attr}_enum"[:63] if table else None, length=max(map(len, a)))
        raise ValueError(f"no SQL type for {spec.text}")

    def ddl_type(self, spec: TypeSpec, schema: str | None, table: str, attr: str,
                 parent: tuple | None = None) -> sa.types.TypeEngine:
        """The type a column is declared with (``sql_type`` without ``table`` is the one
        queries bind with). ``parent``: (reflected type, SQLAlchemy schema) of the column
        a foreign key or a jobs table's key copies."""
        return self.sql_type(spec, table, attr)

    def create_types(self, conn: Connection, columns: Iterable[sa.Column]) -> None:
        """Create what the column types need before CREATE TABLE / ADD COLUMN (PostgreSQL
        enum types)."""

    def columns_created(self, conn: Connection, schema: str, table: str, columns: Iterable[sa.Column]) -> None:
        """Hook run after CREATE TABLE, ADD COLUMN or a column type change, in the same
        transaction: physical settings the column DDL cannot carry (PostgreSQL's bytea
        storage)."""

    def bytes_type(self) -> sa.types.TypeEngine:
        return sa.LargeBinary()

    def datetime_type(self, precision: int) -> sa.types.TypeEngine:
        return sa.DateTime()

    # --- comments -------------------------------------------------------------
    def undo_create(self, conn: Connection, schema: str, table: str) -> None:
        """A declaration failed after its CREATE TABLE: remove what the rollback of the
        transaction does not (nothing where DDL is transactional)."""

    def write_comments(self, conn: Connection, schema: str, table: str, table_comment: str,
                       columns: dict[str, str]) -> None:
        """Store comments where the catalog cannot (SQLite); catalogs get them from DDL."""

    def read_comments(self, conn: Connection, schema: str, table: str) -> tuple[str, dict[str, str]]:
        insp = sa.inspect(conn)
        sa_schema, name = self.table_address(schema, table)
        cols = {c["name"]: c.get("comment") or "" for c in insp.get_columns(name, schema=sa_schema)}
        return (insp.get_table_comment(name, schema=sa_schema).get("text") or ""), cols

    def drop_comments(self, conn: Connection, schema: str, table: str) -> None:
        """Called after DROP TABLE: forget the table's stored comments (SQLite), or what
        else outlives it (PostgreSQL's enum types)."""

    # --- writes ---------------------------------------------------------------
    def insert(self, table: sa.Table, mode: str | None, key: Iterable[str]) -> Any:
        """An INSERT for executemany. mode: None, 'skip' (ignore duplicate keys) or
        'replace' (overwrite secondary attributes of existing keys)."""
        raise NotImplementedError

    def bulk_insert(self, conn: Connection, table: sa.Table, rows: list[dict], mode: str | None,
                    key: list[str]) -> None:
        if rows:
            conn.execute(self.insert(table, mode, key), rows)

    def cursor(self, dbapi_conn: Any, binary: bool = False) -> Any:
        """A driver cursor for a statement run directly (see execution.py); ``binary``:
        results in the driver's binary format, where :meth:`binary_results` allowed it."""
        return dbapi_conn.cursor()

    def referred_table(self, fk: dict, schema: str) -> tuple[str, str]:
        """(schema, table) of the parent of a reflected foreign key of a table in ``schema``."""
        return fk.get("referred_schema") or schema, fk["referred_table"]

    def server_cursor(self, dbapi_conn: Any, binary: bool = False) -> Any:
        """A driver cursor that reads a large result from the server as it is fetched
        (SQLite's own cursor already steps through the result)."""
        return dbapi_conn.cursor()

    def binary_results(self, dialect: Any, types: list) -> bool:
        """Whether a SELECT with result columns of these types may ask the driver for
        binary results: only where every value loads the same as from text."""
        return False

    def analyze(self, conn: Connection, table: sa.Table) -> None:
        """Refresh the planner's statistics of a table that just grew by many rows (where
        the server would otherwise plan with stale ones until its next automatic pass)."""

    def for_update_skip_locked(self, stmt: sa.Select) -> sa.Select:
        return stmt.with_for_update(skip_locked=True)

    def key_set(self, cols: list, keys: list[tuple]) -> sa.ColumnElement:
        """True where ``cols`` (columns or column expressions) equal one of ``keys``: a
        large list of distinct tuples, each value already of its column's Python type,
        none NULL. Backends bind the whole set as one value; this default is one IN list,
        which PyMySQL renders client-side (no server limit on parameters, and MariaDB turns
        a long IN list into a table of values itself)."""
        if len(cols) == 1:
            return cols[0].in_([k[0] for k in keys])
        return sa.tuple_(*cols).in_(keys)

    # --- errors ---------------------------------------------------------------
    def is_duplicate(self, exc: Exception) -> bool:
        return False

    def is_transient(self, exc: Exception) -> bool:
        """A deadlock or serialization failure (SQLSTATE 40001 / PostgreSQL's 40P01): the
        transaction was rolled back and may be run again."""
        orig = getattr(exc, "orig", exc)
        return getattr(orig, "sqlstate", None) in ("40001", "40P01")

    def is_fk_violation(self, exc: Exception) -> bool:
        return False

