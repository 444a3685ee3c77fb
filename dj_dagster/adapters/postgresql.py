"""PostgreSQL through psycopg 3: a DataJoint schema is a PostgreSQL schema.

``enum`` columns are declared as datajoint 2.3.5 declares them: a native enum type
``enum_<8 hex digits>`` in the table's schema, named by its values (see
:func:`enum_type_name`) and shared by every column of the schema with those values; a
foreign-key column has the type of the parent column. Tables declared by dj_dagster
before that have VARCHAR columns with a CHECK constraint, which are read as they are."""

from __future__ import annotations

import hashlib
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg

from .base import Adapter

COPY_MIN_ROWS = 50
BYTEA_COPY_MAX = 2048  # mean bytea bytes per row up to which text COPY (hex) still beats INSERT
INSERT_BYTES = 2 * 1024 * 1024  # bytea bytes per INSERT statement (one huge VALUES list is slower)
ENUM_TYPE_PATTERN = "^enum_[0-9a-f]{8}$"


def enum_type_name(values: Iterable[str]) -> str:
    """datajoint 2.3.5's name for the enum type of a value set: ``enum_`` and the first 8
    hex digits of the MD5 of the values as written between single quotes, sorted and
    joined by ``_`` (the order of the values does not change the name)."""
    written = sorted(v.replace("'", "''") for v in values)
    return "enum_" + hashlib.md5("_".join(written).encode("utf-8")).hexdigest()[:8]


class _Char(sa.types.TypeDecorator):
    """``char(n)`` read as MySQL and SQLite return it: without the blanks that PostgreSQL
    pads it with (and ignores in comparisons), so a pipeline gets the same values on
    every backend."""

    impl = sa.CHAR
    cache_ok = True

    def __init__(self, length: int):
        super().__init__(length)
        self.length = length  # part of SQLAlchemy's cache key: char(2) and char(8) differ

    def process_result_value(self, value, dialect):
        return value.rstrip(" ") if value is not None else None


class _UInt64(sa.types.TypeDecorator):
    """``uint64`` (numeric(20)) read as an ``int``, as MySQL and SQLite return it, not a
    Decimal: a pipeline gets the same Python type on every backend."""

    impl = sa.Numeric(20, 0)
    cache_ok = True

    def process_result_value(self, value, dialect):
        return int(value) if value is not None else None


def _binary_safe(t: sa.types.TypeEngine) -> bool:
    """Whether psycopg loads a result column of this type to the same Python value from
    the binary format as from text. Not REAL (binary float4 arrives widened, text rounds
    it to the shortest repr), nor enums and other types psycopg has no binary loader for
    (they would arrive as bytes), nor untyped expressions."""
    if isinstance(t, (_Char, _UInt64)):
        return True
    if isinstance(t, sa.Float):
        return isinstance(t, sa.Double)
    return isinstance(t, (sa.Integer, sa.Numeric, sa.Boolean, sa.String, sa.Date, sa.DateTime, sa.Time,
                          sa.Uuid, sa.JSON, sa.LargeBinary)) and not isinstance(t, sa.Enum)


def _binary_results(conn, cursor, statement, parameters, context, executemany):
    """``before_cursor_execute``: a SELECT of bytea columns asks for binary results (psycopg's
    ``Cursor.format``), sparing the server the hex encoding and the client its decoding
    (2-3x faster for large values), when every column loads alike in both formats.
    SQLAlchemy processes the rows as usual. (Statements without bytea results may skip
    SQLAlchemy's execute: see execution.py.)"""
    stmt = getattr(getattr(context, "compiled", None), "statement", None)
    if stmt is not None and getattr(stmt, "is_select", False):
        types = [c.type for c in stmt.selected_columns]
        if any(isinstance(t, sa.LargeBinary) for t in types) and all(map(_binary_safe, types)):
            from psycopg.pq import Format

            cursor.format = Format.BINARY
    return statement, parameters


_binary_results.dj_direct_safe = True  # it acts on bytea results only, which never run direct


class PostgreSQLAdapter(Adapter):
    name = "postgresql"
    indexes_foreign_keys = True

    def create_engine(self, url, **kwargs):
        engine = super().create_engine(url, **kwargs)
        # batch executemany INSERTs into multi-row VALUES (psycopg 3 would send one per row)
        engine.dialect.use_insertmanyvalues_wo_returning = True
        if engine.dialect.driver == "psycopg":
            sa.event.listen(engine, "before_cursor_execute", _binary_results, retval=True)
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

    def schema_exists(self, conn, schema):
        return conn.execute(sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                            {"s": schema}).first() is not None

    def list_tables(self, conn, schema):
        rows = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = :s"), {"s": schema})
        return [r[0] for r in rows]

    def sql_type(self, spec, table="", attr=""):
        from ..codecs import stored_spec

        spec = stored_spec(spec)
        if not spec.is_codec and spec.name == "json":
            return pg.JSONB(none_as_null=True)
        if spec.is_codec and spec.external:
            return pg.JSONB(none_as_null=True)
        if not spec.is_codec and spec.name == "char":
            return _Char(spec.args[0])
        if not spec.is_codec and spec.name == "uint64":
            return _UInt64()
        return super().sql_type(spec, table, attr)

    def ddl_type(self, spec, schema, table, attr, parent=None):
        """An enum column gets datajoint's enum type in the table's schema; a column
        copying a parent column (foreign key, jobs key) gets the parent's type: its enum
        type (possibly in the parent's schema, as datajoint does) or the VARCHAR of an
        older dj_dagster table, so that the two compare and reference each other."""
        if spec.is_codec or spec.name != "enum":
            return super().ddl_type(spec, schema, table, attr, parent)
        if parent is not None:
            parent_type, parent_schema = parent
            if not isinstance(parent_type, pg.ENUM):
                return super().ddl_type(spec, schema, table, attr)
            return pg.ENUM(*parent_type.enums, name=parent_type.name, schema=parent_type.schema or parent_schema,
                           create_type=False)
        return pg.ENUM(*spec.args, name=enum_type_name(spec.args), schema=schema, create_type=False)

    def create_types(self, conn, columns):
        """CREATE TYPE for the enum types not in their schema yet, as datajoint does before
        CREATE TABLE: an existing type is used as it is, and when columns of one table
        share a type, the value order of the last one makes it (it orders the values)."""
        types = {}
        for column in columns:
            if isinstance(column.type, pg.ENUM):
                types[column.type.schema, column.type.name] = column.type
        for enum_type in types.values():
            enum_type.create(conn, checkfirst=True)

    def drop_comments(self, conn, schema, table):
        """Called after DROP TABLE. PostgreSQL keeps comments in its catalog, but enum
        types outlive their tables: drop datajoint-named enum types of the schema that
        nothing uses any more, as datajoint's drop does for the types of a dropped table
        (a type still in use, by a table of this schema or of another, stays). Best effort,
        as in datajoint: a type a concurrent declaration has just taken stays too."""
        rows = conn.execute(sa.text(
            "SELECT t.typname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = :schema AND t.typtype = 'e' AND t.typname ~ :pattern AND NOT EXISTS ("
            "SELECT 1 FROM pg_catalog.pg_depend d WHERE d.refclassid = 'pg_catalog.pg_type'::regclass "
            "AND d.refobjid = t.oid AND d.deptype = 'n')"), {"schema": schema, "pattern": ENUM_TYPE_PATTERN})
        prep = conn.dialect.identifier_preparer
        for (name,) in rows.all():
            try:
                with conn.begin_nested():
                    conn.exec_driver_sql(f"DROP TYPE IF EXISTS {prep.quote_identifier(schema)}."
                                         f"{prep.quote_identifier(name)}")
            except sa.exc.DBAPIError:
                pass

    def columns_created(self, conn, schema, table, columns):
        """bytea columns get STORAGE EXTERNAL (out of line, never compressed by the
        server): their values come from codecs that compress when it pays (blob.pack), and
        pglz would otherwise try every value over ~2 kB, spending seconds per 100 MiB to
        store most of them uncompressed after all. Storage is physical: datajoint reads
        and writes these tables as usual."""
        prep = conn.dialect.identifier_preparer
        clauses = [f"ALTER COLUMN {prep.quote_identifier(c.name)} SET STORAGE EXTERNAL"
                   for c in columns if isinstance(c.type, sa.LargeBinary)]
        if clauses:
            conn.exec_driver_sql(f"ALTER TABLE {self._qualified(conn, schema, table)} {', '.join(clauses)}")
        for c in columns:
            if c.primary_key and c.autoincrement is True:
                self._sync_serial(conn, schema, table, c.name)
                key = list(getattr(getattr(c, "table", None), "primary_key", ()))
                if key and key[0] is not c:  # the trigger's max() needs an index led by the column
                    q = prep.quote_identifier
                    conn.exec_driver_sql(f"CREATE INDEX {q(f'~ai_{table}_{c.name}'[:63])} "
                                         f"ON {self._qualified(conn, schema, table)} ({q(c.name)})")

    def _sync_serial(self, conn, schema, table, column):
        """An ``auto_increment`` column is a serial, whose sequence ignores the values
        inserted explicitly: a later generated value could repeat one. After each insert
        statement a trigger moves the sequence past the largest value in the column (as
        MySQL's counter moves), one trigger function per schema."""
        q = conn.dialect.identifier_preparer.quote_identifier
        function = f"{q(schema)}.{q('~dj_sync_serial')}"
        conn.exec_driver_sql(f"""CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    seq text := pg_get_serial_sequence(format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME), TG_ARGV[0]);
    top bigint;
    used bigint;
BEGIN
    EXECUTE format('SELECT max(%I) FROM %I.%I', TG_ARGV[0], TG_TABLE_SCHEMA, TG_TABLE_NAME) INTO top;
    EXECUTE format('SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END FROM %s', seq) INTO used;
    IF top > used THEN
        PERFORM setval(seq, top);
    END IF;
    RETURN NULL;
END $$""".replace("%", "%%"))
        trigger = q(f"~sync_{column}"[:63])
        conn.exec_driver_sql(f"CREATE TRIGGER {trigger} AFTER INSERT ON {self._qualified(conn, schema, table)} "
                             f"FOR EACH STATEMENT EXECUTE FUNCTION {function}('{column}')")

    def add_column(self, conn, schema, table, column):
        super().add_column(conn, schema, table, column)
        self.columns_created(conn, schema, table, [column])

    def bytes_type(self):
        return pg.BYTEA()

    def datetime_type(self, precision):
        return pg.TIMESTAMP(precision=precision)

    def bulk_insert(self, conn, table: sa.Table, rows: list[dict], mode: str | None, key: list[str]) -> None:
        """Plain batches go through COPY (an order of magnitude faster than INSERT), unless
        they carry large bytea values: text COPY sends those hex-encoded, INSERT binds them
        in binary, in statements of about INSERT_BYTES each. skip/replace modes need ON
        CONFLICT and use INSERT."""
        if not rows:
            return
        binary = [c.name for c in table.columns if c.name in rows[0] and isinstance(c.type, sa.LargeBinary)]
        size = sum(len(r[c]) for r in rows for c in binary if r[c] is not None)
        if mode is None and len(rows) >= COPY_MIN_ROWS and size <= BYTEA_COPY_MAX * len(rows):
            return self._copy(conn, table, rows)
        page = max(1, min(conn.dialect.insertmanyvalues_page_size, INSERT_BYTES * len(rows) // max(size, 1)))
        conn.execute(self.insert(table, mode, key), rows, execution_options={"insertmanyvalues_page_size": page})

    def _copy(self, conn, table: sa.Table, rows: list[dict]) -> None:
        """COPY in text format on the transaction's driver connection."""
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

    def cursor(self, dbapi_conn, binary=False):
        return dbapi_conn.cursor(binary=True) if binary else dbapi_conn.cursor()

    def server_cursor(self, dbapi_conn, binary=False):
        import uuid

        # a named cursor: DECLARE ... CURSOR
        return dbapi_conn.cursor(name=f"dj_{uuid.uuid4().hex}", binary=binary)

    def binary_results(self, dialect, types):
        # binary numbers and dates skip the server's formatting and the client's parsing
        return dialect.driver == "psycopg" and bool(types) and all(map(_binary_safe, types))

    def analyze(self, conn, table):
        # autovacuum analyzes a new jobs table only after a while: until then a claim by key
        # may be planned through the status index and scan every pending job
        conn.execute(sa.text(f"ANALYZE {conn.dialect.identifier_preparer.format_table(table)}"))

    def is_duplicate(self, exc):
        return getattr(getattr(exc, "orig", None), "sqlstate", None) == "23505"

    def is_fk_violation(self, exc):
        return getattr(getattr(exc, "orig", None), "sqlstate", None) == "23503"

    # datajoint refuses alter()'s renames on PostgreSQL: so do we, the same alter
    # declaring the same tables on either library
    renames_columns = False

    def modify_column(self, conn, schema, table, column):
        """ALTER the type (the old default goes first: it may not cast to the new type),
        nullability, default and comment. Enum values change by casting through text,
        and the CHECK constraint of an older dj_dagster enum column goes."""
        prep = conn.dialect.identifier_preparer
        q = prep.quote_identifier(column.name)
        target = self._qualified(conn, schema, table)
        self.create_types(conn, [column])
        old_check = prep.quote_identifier(f"{self.table_address(schema, table)[1]}_{column.name}_enum"[:63])
        conn.exec_driver_sql(f"ALTER TABLE {target} DROP CONSTRAINT IF EXISTS {old_check}")
        conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} DROP DEFAULT")
        type_sql = column.type.compile(dialect=conn.dialect)
        via = "::text" if isinstance(column.type, pg.ENUM) else ""
        self._refuse_lossy_cast(conn, target, schema, table, column.name, q, via, type_sql)
        conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} TYPE {type_sql} USING {q}{via}::{type_sql}")
        self.columns_created(conn, schema, table, [column])  # a new type has its default storage
        null = "DROP NOT NULL" if column.nullable else "SET NOT NULL"
        conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} {null}")
        if column.server_default is not None:
            default = sa.schema.CreateColumn(column).compile(dialect=conn.dialect).string.split(" DEFAULT ", 1)
            if len(default) == 2:
                conn.exec_driver_sql(f"ALTER TABLE {target} ALTER COLUMN {q} SET DEFAULT "
                                     f"{default[1].split(' NOT NULL')[0]}")
        self._column_comment(conn, schema, table, column)

    @staticmethod
    def _refuse_lossy_cast(conn, target, schema, table, name, q, via, type_sql):
        """An explicit cast truncates text and rounds numbers without an error (MySQL's strict
        mode refuses both): refuse the type change when a stored value would not survive it.
        Raised inside alter()'s transaction, so nothing of the alter remains."""
        text = "::text" if via else ""
        probe = (f"SELECT {q}::text FROM {target} WHERE {q} IS NOT NULL AND "
                 f"({q}{via}::{type_sql}){text} IS DISTINCT FROM {q}{text} LIMIT 1")
        try:
            with conn.begin_nested():
                row = conn.exec_driver_sql(probe).first()
        except sa.exc.DBAPIError:  # values of these types do not compare: the cast itself decides
            return
        if row is not None:
            from ..errors import DataError

            raise DataError(f"Cannot alter {schema}.{table}: attribute {name!r} holds {str(row[0])[:60]!r}, which "
                            f"{type_sql} would store changed (truncated or rounded); no change was made")

    def _column_comment(self, conn, schema, table, column):
        q = conn.dialect.identifier_preparer.quote_identifier(column.name)
        text = (column.comment or "").replace("'", "''")
        conn.exec_driver_sql(f"COMMENT ON COLUMN {self._qualified(conn, schema, table)}.{q} IS '{text}'"
                             .replace("%", "%%"))

    def set_table_comment(self, conn, schema, table, comment):
        text = comment.replace("'", "''").replace("%", "%%")
        conn.exec_driver_sql(f"COMMENT ON TABLE {self._qualified(conn, schema, table)} IS '{text}'")

    def key_set(self, cols, keys):
        """One typed array per column, joined back into rows by ``unnest``: a key set of
        any size is as many parameters as the key has attributes (psycopg allows 65,535
        parameters, and a long IN list of row values exhausts the parser's stack). An enum
        column is compared as text (its type lives in the table's schema)."""
        arrays, lhs = [], []
        for i, col in enumerate(cols):
            item = col.type
            if isinstance(item, sa.Enum) or isinstance(item, sa.types.NullType):
                col, item = sa.cast(col, sa.Text()), sa.Text()
            values = [k[i] for k in keys]
            arrays.append(sa.cast(sa.bindparam(None, values, type_=pg.ARRAY(item)), pg.ARRAY(item)))
            lhs.append(col)
        rows = sa.func.unnest(*arrays).table_valued(*[f"k{i}" for i in range(len(cols))]).render_derived()
        subquery = sa.select(*rows.c)
        return (lhs[0] if len(lhs) == 1 else sa.tuple_(*lhs)).in_(subquery)
