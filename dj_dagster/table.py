"""Base tables: a class bound to a schema, whose instances are the table (optionally
restricted). Writes (insert, delete, drop) live here; reads come from the query
algebra it inherits."""

from __future__ import annotations

import contextvars
import re
import logging
import warnings
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from . import catalog, provenance
from .errors import (DataError, DataJointError, DuplicateError, IntegrityError, QueryError, TransientError,
                     UnknownFieldError, translate_driver_error)
from .expression import QueryExpression, next_alias
from .provenance import PROV_ATTRIBUTE
from .insert_rows import ValidationResult, prepare_rows, validate_rows

log = logging.getLogger(__name__)

# set while a make() runs, so Computed/Imported tables accept its inserts
_inside_make: contextvars.ContextVar[frozenset] = contextvars.ContextVar("dj_inside_make", default=frozenset())
# the running make's provenance stamp (autopopulate._Stamp), added to the rows it inserts into its table
_make_stamp: contextvars.ContextVar = contextvars.ContextVar("dj_make_stamp", default=None)


# what the class answers as its table would: ``Subject.heading``, ``Subject.fetch1()``
_CLASS_LEVEL = frozenset({
    "insert", "insert1", "update1", "delete", "delete_quick", "drop", "drop_quick", "describe",
    "heading", "primary_key", "proj", "aggr", "join", "fetch", "fetch1", "to_dicts", "to_pandas",
    "to_arrays", "keys", "head", "tail", "populate", "progress", "key_source", "parents", "children",
    "ancestors", "descendants", "parts", "full_table_name", "connection", "jobs", "alter", "validate",
    "is_declared", "staged_insert1", "insert_dataframe", "to_polars", "to_arrow", "extend", "preview", "restrict_in_place",
    "sql", "restrict", "make_sql", "table_name", "database",
})


class TableMeta(type):
    """Lets the class stand for its table: ``Subject & key``, ``Subject.insert1(row)``."""

    def __getattribute__(cls, name: str):
        if name in _CLASS_LEVEL and type.__getattribute__(cls, "_schema") is not None:
            return getattr(cls(), name)
        return type.__getattribute__(cls, name)

    def __and__(cls, other):
        return cls() & other

    def __sub__(cls, other):
        return cls() - other

    def __mul__(cls, other):
        return cls() * other

    def __rmul__(cls, other):
        return other * cls()

    def __add__(cls, other):
        return cls() + other

    def __xor__(cls, other):
        return cls() ^ other

    def __matmul__(cls, other):
        return cls() @ other

    def __len__(cls):
        return len(cls())

    def __iter__(cls):
        return iter(cls())

    def __contains__(cls, key):
        return key in cls()


class Table(QueryExpression, metaclass=TableMeta):
    """A base table. Subclasses set ``definition`` and are bound by ``@schema``."""

    definition: str = ""
    declaration_context: dict | None = None  # the names foreign keys resolved in (set by @schema)
    tier: str = "Manual"
    _schema = None  # the Schema object (set by the decorator)
    _table_name: str | None = None
    _own_from = None  # set by _own_alias()

    def __init__(self):
        cls = type(self)
        if cls._schema is None or cls._schema.database is None:
            self._where = []  # undecorated, or its schema not activated: an error on first use
            return
        info = self._info
        # A name fixed per table keeps statements alike across calls, so SQLAlchemy's
        # compiled cache and the server's prepared statements are reused (self-joins wrap
        # one side in a subquery of its own name). Built once per table: every restriction
        # in a make() starts from it.
        source = _memo_source(info)
        self._connection = cls._schema.connection
        self._from, self._cols, self._aliases = source  # expressions copy _cols before changing it
        self._used = self._aliases
        self._where = []

    # --- identity -------------------------------------------------------------
    # instance lookups of class attributes (self._schema) skip TableMeta.__getattribute__,
    # which class lookups (type(self)._schema) pay: these run several times per key in a make
    @property
    def _info(self) -> catalog.TableInfo:
        schema = self._schema
        if schema is None or schema.database is None:
            raise _not_configured(type(self))
        connection = schema.connection
        info = connection.tables.get(f"{schema.database}.{self._table_name}")
        return info if info is not None else catalog.load(connection, schema.database, self._table_name)

    @property
    def table_name(self) -> str:  # instance access
        return self._table_name

    @property
    def database(self) -> str:
        return self._schema.database

    @property
    def adapter(self):
        """The backend adapter of the table's connection (datajoint's ``Table.adapter``)."""
        return self._connection.adapter

    @property
    def full_table_name(self) -> str:
        if self._schema is None or self._schema.database is None:
            raise _not_configured(type(self))
        return f"{self._schema.database}.{self._table_name}"

    @property
    def heading(self):
        return self._info.heading

    @property
    def _heading(self):
        return self._info.heading

    @_heading.setter
    def _heading(self, value):  # copies of a restricted table keep the table heading
        pass

    @property
    def sa_table(self) -> sa.Table:
        return self._info.sa_table

    def _fk_target(self):
        return self, {}

    # --- restriction by one key (see QueryExpression._where) ----------------------
    def _keyable(self) -> bool:
        return (self._key is None and not self._where_list and self._own_from is None and not self._complex
                and not self._order_by)

    def _keyed_statement(self, names: list[str], key: tuple):
        key_names, values = key
        info = self._info

        def build():
            source, cols, _ = _memo_source(info)
            params = tuple(f"dj_key_{i}" for i in range(len(key_names)))
            return sa.select(*[cols[n].label(n) for n in names]).select_from(source).where(
                *[cols[k] == sa.bindparam(p, type_=cols[k].type) for p, k in zip(params, key_names)]), params
        stmt, params = info.memo(("fetch_by_key", key_names, tuple(names)), build)
        return stmt, dict(zip(params, values))

    # --- graph ----------------------------------------------------------------
    def _graph_names(self, names: list[str], as_objects: bool):
        return [self.connection_tables_object(n) for n in names] if as_objects else names

    def connection_tables_object(self, name: str):
        from .schema import table_object

        return table_object(self._connection, name)

    def parents(self, primary: bool | None = None, as_objects: bool = False, foreign_key_info: bool = False):
        edges = self._connection.dependencies.parents(self.full_table_name, primary)
        if foreign_key_info:
            return [(p, d) for p, d in edges]
        return self._graph_names(list(dict.fromkeys(p for p, _ in edges)), as_objects)

    def children(self, primary: bool | None = None, as_objects: bool = False, foreign_key_info: bool = False):
        edges = self._connection.dependencies.children(self.full_table_name, primary)
        if foreign_key_info:
            return [(c, d) for c, d in edges]
        return self._graph_names(list(dict.fromkeys(c for c, _ in edges)), as_objects)

    def descendants(self, as_objects: bool = False):
        return self._graph_names(self._connection.dependencies.descendants(self.full_table_name), as_objects)

    def ancestors(self, as_objects: bool = False):
        return self._graph_names(self._connection.dependencies.ancestors(self.full_table_name), as_objects)

    def parts(self, as_objects: bool = False):
        prefix = self.table_name + "__"
        names = [f"{self.database}.{t}" for t in self._schema.list_tables() if t.startswith(prefix)]
        return self._graph_names(names, as_objects)

    # --- writes ---------------------------------------------------------------
    def _check_direct_insert(self, allow_direct_insert: bool | None) -> None:
        if self.tier in ("Imported", "Computed") and not allow_direct_insert:
            if self.full_table_name not in _inside_make.get():
                raise DataJointError(
                    f"Direct insert into {self.tier} table {self.full_table_name} is not allowed; its rows are made "
                    "by populate(). Pass allow_direct_insert=True to override.")

    def insert(self, rows: Any, replace: bool = False, skip_duplicates: bool = False,
               ignore_extra_fields: bool = False, allow_direct_insert: bool | None = None,
               chunk_size: int | None = None) -> None:
        """Insert rows atomically: a bad row anywhere writes nothing. ``rows``: a list (or
        iterable) of dicts, numpy records or positional sequences (deprecated), a numpy
        record array, a pandas DataFrame (a named index is read as columns), a polars
        DataFrame, a pyarrow Table, a CSV path, or a query (copied by one statement;
        ``chunk_size`` is refused). ``chunk_size``: rows per statement (default
        ``config['insert_chunk_size']``); every chunk is in the same transaction."""
        self._check_direct_insert(allow_direct_insert)
        if isinstance(rows, type) and issubclass(rows, QueryExpression):
            rows = rows()
        if isinstance(rows, QueryExpression):
            if chunk_size is not None:
                raise DataError(f"chunk_size is not supported for QueryExpression inserts (into "
                                f"{self.full_table_name}): the rows are copied by one statement")
            return self._insert_from_query(rows, replace, skip_duplicates, ignore_extra_fields)
        mode = "replace" if replace else "skip" if skip_duplicates else None
        prepared = prepare_rows(self, rows, ignore_extra_fields, check_duplicates=not (replace or skip_duplicates))
        if not prepared:
            return
        stamp = _make_stamp.get()
        if stamp is not None and stamp.table == self.full_table_name:
            stamp.apply(prepared)
        if PROV_ATTRIBUTE in self.heading.attributes:  # an Entry table declared with provenance capture
            provenance.attach(self, prepared)
        adapter = self._connection.adapter
        try:
            with self._connection.transaction() as conn:
                if len(prepared) == 1 and prepared[0]:  # a make's one row: the cached statement, on the cursor
                    self._connection.direct.write(conn, self._insert_statement(mode), prepared[0])
                    return
                from . import settings

                chunk = chunk_size or settings.config.get("insert_chunk_size", 10_000)
                key = self.primary_key
                for group in _by_columns(prepared):
                    if not group[0]:  # every value the server's default: one row per statement
                        with warnings.catch_warnings():  # SQLAlchemy doubts a key left to the server
                            warnings.simplefilter("ignore", sa.exc.SAWarning)
                            for _ in group:
                                conn.execute(sa.insert(self.sa_table))
                        continue
                    if len(group) == 1:
                        self._connection.direct.write(conn, self._insert_statement(mode), group[0])
                        continue
                    for start in range(0, len(group), chunk):
                        adapter.bulk_insert(conn, self.sa_table, group[start:start + chunk], mode, key)
        except sa.exc.IntegrityError as exc:
            raise self._integrity_error(exc, prepared) from None
        except sa.exc.DBAPIError as exc:
            if adapter.is_transient(exc):
                raise TransientError(f"Insert into {self.full_table_name} was rolled back by the database "
                                     f"({_driver_message(exc)}); it can be retried") from exc
            raise DataError(f"Cannot insert into {self.full_table_name}: {_driver_message(exc)}") from None

    def _insert_statement(self, mode: str | None):
        return self._info.memo(("insert", mode),
                               lambda: self._connection.adapter.insert(self.sa_table, mode, self.primary_key))

    def insert1(self, row: Any, **kwargs) -> None:
        self.insert([row], **kwargs)

    @property
    def staged_insert1(self):
        """A context manager staging one row whose ``<object@>`` content is written
        straight into its store (see :mod:`dj_dagster.staged_insert`)."""
        from .staged_insert import staged_insert1

        return staged_insert1(self)

    def _insert_from_query(self, query: QueryExpression, replace, skip_duplicates, ignore_extra_fields):
        names = [n for n in query.heading.names if n in self.heading.attributes]
        if PROV_ATTRIBUTE in self.heading.attributes and PROV_ATTRIBUTE in query.heading.attributes:
            names.append(PROV_ATTRIBUTE)  # a copied row keeps the record of where it entered
        extra = [n for n in query.heading.names if n not in self.heading.attributes]
        if extra and not ignore_extra_fields:
            raise DataError(f"Cannot insert into {self.full_table_name}: query has attributes {extra} that the "
                            "table lacks (pass ignore_extra_fields=True)")
        if replace:
            raise DataError("replace=True is not supported when inserting from a query")
        if skip_duplicates:  # rows whose primary key the table already holds are left out
            query = query.restrict(type(self)().proj(), semantic_check=False, negate=True)
        stmt = sa.insert(self.sa_table).from_select(names, query.make_sql(names))
        try:
            self._connection.execute(stmt)
        except sa.exc.IntegrityError as exc:
            raise self._integrity_error(exc, []) from None
        except sa.exc.DBAPIError as exc:
            raise translate_driver_error(exc) from None

    def _integrity_error(self, exc: Exception, rows: list[dict]) -> DataJointError:
        adapter = self._connection.adapter
        msg = _driver_message(exc)
        # inside an enclosing transaction (a make), PostgreSQL refuses further queries
        # until rollback: the error then says what the batch and the driver know
        diagnose = not self._connection.in_transaction
        if adapter.is_duplicate(exc):
            key = self.primary_key
            if any(self.heading[k].hidden for k in key):
                return DuplicateError(f"{self.full_table_name} holds a single row and already has it")
            if not diagnose and len(rows) == 1:
                return DuplicateError(f"Duplicate entry in {self.full_table_name}: the key "
                                      f"{ {n: rows[0][n] for n in key} } already exists")
            for i, row in enumerate(rows[:5000] if diagnose else []):
                k = {n: row[n] for n in key}
                if k in type(self)():
                    return DuplicateError(f"Duplicate entry in {self.full_table_name}: row {i} with key {k} "
                                          "already exists (use skip_duplicates=True or replace=True)")
            return DuplicateError(f"Duplicate entry in {self.full_table_name}: {msg}")
        if adapter.is_fk_violation(exc):
            for name, data in self._connection.dependencies.parents(self.full_table_name) if diagnose else []:
                parent = self.connection_tables_object(name)
                for i, row in enumerate(rows[:5000]):
                    k = {p: row.get(c) for c, p in data["attr_map"].items()}
                    if any(v is None for v in k.values()):
                        continue
                    if k not in parent:
                        return IntegrityError(f"Cannot insert into {self.full_table_name}: row {i} refers to "
                                              f"{k} which is missing from parent {name}")
            return IntegrityError(f"Foreign key violation in {self.full_table_name}: {msg}")
        return IntegrityError(f"Cannot insert into {self.full_table_name}: {msg}")

    def update1(self, row: dict) -> None:
        """Update secondary attributes of one existing row (use sparingly: computed
        results are immutable; correct upstream data and recompute instead). ``row``: a
        dict (or mapping) with the whole primary key and the attributes to set; None
        resets an attribute to its declared default (NULL when it has none and is
        nullable). The table must not be restricted."""
        from collections.abc import Mapping

        if not isinstance(row, Mapping):
            raise DataError(f"update1 on {self.full_table_name} takes a dict, got a {type(row).__name__}")
        if self._where:
            raise DataError(f"update1 cannot be applied to a restricted table ({self.full_table_name})")
        row = dict(row)
        key = {k: row.pop(k) for k in self.primary_key if k in row}
        if len(key) != len(self.primary_key):
            raise DataError(f"update1 on {self.full_table_name} needs the full primary key {self.primary_key}")
        unknown = [k for k in row if k not in self.heading.attributes]
        if unknown:
            raise UnknownFieldError(f"update1 on {self.full_table_name}: unknown attributes {unknown}")
        if not row:
            return
        heading = self.heading
        reset = [k for k, v in row.items() if v is None and heading[k].default is not None]
        prepared = prepare_rows(self, [{**key, **{k: v for k, v in row.items() if k not in reset}}], False,
                                check_duplicates=False, partial=True)[0]
        t = self.sa_table
        values = {k: prepared[k] for k in row if k not in reset}
        values.update({k: self._default_value(heading[k]) for k in reset})
        stmt = sa.update(t).where(*[t.c[k] == sa.bindparam(None, prepared[k], type_=t.c[k].type) for k in key]).values(
            values)
        with self._connection.transaction() as conn:
            count = conn.execute(stmt).rowcount
            if count != 1:
                raise DataError(f"update1: no row with key {key} in {self.full_table_name}")

    def _default_value(self, attr):
        """What an UPDATE sets to reset ``attr`` to its declared default: the DEFAULT
        keyword where the backend has it, else the default as the table's DDL wrote it (a
        quoted value bound as a parameter, converted as an insert would)."""
        if attr.default.lower() == "null":
            return None
        if self._connection.adapter.name != "sqlite":
            return sa.text("DEFAULT")
        value = catalog._server_default(attr, self.full_table_name)
        if isinstance(value, str):
            return prepare_rows(self, [{attr.name: value}], False, check_duplicates=False, partial=True)[0][attr.name]
        return value

    def validate(self, rows: Any, *, ignore_extra_fields: bool = False) -> ValidationResult:
        """Check rows without writing them. ``rows`` takes every form ``insert`` takes
        (dicts, sequences, numpy records, DataFrames, polars/pyarrow tables, a CSV path).
        Returns a :class:`ValidationResult`: true when every row would insert (foreign
        keys and unique indexes other than the primary key are left to the database);
        ``.errors`` lists ``(row, attribute, message)``, ``.summary()`` reports them."""
        return validate_rows(self, rows, ignore_extra_fields)

    def insert_dataframe(self, df, index_as_pk: bool | None = None, **insert_kwargs) -> None:
        """Insert a pandas DataFrame, with its index read as ``index_as_pk`` says: True,
        the index holds the primary key (its names must be the key's); False, the index is
        dropped; None (default), the index is used when its names are the primary key's
        and dropped otherwise (a frame from ``to_pandas()`` goes back as it came).
        ``insert_kwargs`` are passed to :meth:`insert`."""
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            raise DataError(f"insert_dataframe requires a pandas DataFrame, got a {type(df).__name__}")
        names = [n for n in df.index.names if n is not None]
        if index_as_pk is None:
            index_as_pk = bool(names) and set(names) == set(self.primary_key)
        if index_as_pk and set(names) != set(self.primary_key):
            raise DataError(f"DataFrame index columns {names} do not match the primary key {self.primary_key} of "
                            f"{self.full_table_name}; pass index_as_pk=False to drop the index, or reset_index() "
                            "first")
        self.insert(df.reset_index(drop=not index_as_pk), **insert_kwargs)

    def delete_quick(self, get_count: bool = False) -> int | None:
        """Delete the restricted rows without cascading (the database refuses if children exist)."""
        stmt = self._delete_statement()
        try:
            count = self._connection.execute(stmt).rowcount
        except sa.exc.IntegrityError as exc:
            raise IntegrityError(f"Cannot delete from {self.full_table_name}: rows have dependents "
                                 f"({_driver_message(exc)}); use delete() to cascade") from None
        return count if get_count else None

    def _own_alias(self) -> "Table":
        """This table under an alias object of its own, so that a restriction's references
        to it can be told apart from those of other expressions over the same table."""
        new = self._copy()
        new._from, new._cols, new._aliases = _query_source(self.sa_table, self._from.name)
        new._used = self._used | new._aliases
        new._own_from = new._from
        return new

    def _delete_statement(self):
        t = self.sa_table
        if not self._where and not self._complex:
            return sa.delete(t)
        if self._own_from is self._from and not self._complex and not any(map(_names_alias_in_text, self._where)):
            # DELETE ... WHERE <the restriction on the table itself>: one scan, where the
            # general form below matches the table against a subquery of itself
            alias = self._from
            return sa.delete(t).where(*[visitors.replacement_traverse(
                w, {}, lambda e: t.c[e.name] if getattr(e, "table", None) is alias else None) for w in self._where])
        key = self.primary_key
        sub = self.make_sql(key).subquery(next_alias(self))
        keys = sa.select(*[sub.c[k] for k in key])
        target = t.c[key[0]] if len(key) == 1 else sa.tuple_(*[t.c[k] for k in key])
        return sa.delete(t).where(target.in_(keys))

    def delete(self, transaction: bool = True, prompt: bool | None = None, part_integrity: str = "enforce",
               force_parts: bool = False, force_masters: bool = False, dry_run: bool = False,
               safemode: bool | None = None) -> int:
        """Delete the restricted rows and every row that depends on them, in one
        transaction; returns the number of rows deleted from this table. ``prompt``
        (datajoint's name; ``safemode`` is the same) asks before committing, default
        ``config["safemode"]``. ``part_integrity``: ``"enforce"`` refuses to delete part
        rows without their master, ``"ignore"`` allows it, ``"cascade"`` deletes the
        masters too."""
        from .cascade import cascade_delete

        safemode = prompt if prompt is not None else safemode
        if force_parts:
            part_integrity = "ignore"
        return cascade_delete(self, safemode=safemode, part_integrity=part_integrity, dry_run=dry_run)

    def drop_quick(self) -> None:
        from .cascade import drop_tables

        drop_tables(self._connection, [self.full_table_name])

    def drop(self, prompt: bool | None = None, part_integrity: str = "enforce", safemode: bool | None = None) -> None:
        """Drop the table and every table that depends on it; ``prompt`` (or
        ``safemode``) asks first, default ``config["safemode"]``. A part table is dropped
        only with its master unless ``part_integrity="ignore"``."""
        from .cascade import drop_with_descendants

        drop_with_descendants(self, safemode=prompt if prompt is not None else safemode,
                              part_integrity=part_integrity)

    @property
    def is_declared(self) -> bool:
        """Whether the table exists in the database now (asked of the server)."""
        connection = self._schema.connection
        with connection.reading() as tx:
            return self._table_name in connection.adapter.list_tables(tx, self._schema.database)

    # --- description ----------------------------------------------------------
    def describe(self, printout: bool = False) -> str:
        from .describe import describe

        text = describe(self)
        if printout:
            print(text)
        return text

    def alter(self, prompt: bool = True, context: dict | None = None, definition: str | None = None) -> dict:
        """Change secondary attributes and the comment to match the class's definition
        (or ``definition``); returns the attributes added, dropped, changed and renamed.
        A comment opening with ``{old_name}`` renames that attribute, keeping its values.
        ``context`` resolves foreign-key names (default: the table's declaration context);
        ``prompt`` shows the changes and asks first."""
        from .alter import alter

        if isinstance(prompt, str):  # the older call alter(definition): asks under safe mode
            from .settings import config

            prompt, definition = bool(config.get("safemode")), prompt
        return alter(self, definition or type(self).definition, context=context, prompt=prompt)


def _not_configured(cls: type) -> DataJointError:
    return DataJointError(f"Table class {cls.__name__} is not properly configured: decorate it with @schema "
                          "and activate the schema (dj.Schema(name) or schema.activate(name)) before using it")


class FreeTable(Table):
    """A table named by its full name, with no class written for it:
    ``FreeTable(connection, "schema.table")`` (the class registered for the table, or
    one made from the catalog, answers its methods); ``FreeTable("schema.table")`` uses
    ``dj.conn()``."""

    def __new__(cls, connection=None, full_table_name: str | None = None):
        if cls is not FreeTable:  # a bound FreeTable class, as type(self)() makes it
            return super().__new__(cls)
        from .schema import table_class

        if isinstance(connection, str) and full_table_name is None:  # FreeTable("schema.table"): dj.conn()'s
            from .connection import conn

            connection, full_table_name = conn(), connection
        if isinstance(connection, str) and full_table_name is None:  # FreeTable("schema.table")
            from .connection import conn as default_connection

            connection, full_table_name = default_connection(), connection
        if connection is None or full_table_name is None:
            raise DataJointError("FreeTable(connection, full_table_name) needs the table's full name")
        base = table_class(connection, full_table_name)
        made = connection.__dict__.setdefault("free_classes", {})
        cls = made.get(full_table_name)
        if cls is None or base not in cls.__bases__:
            cls = type(base.__name__, (FreeTable, base), {"__module__": __name__})
            made[full_table_name] = cls
        return super().__new__(cls)

    def __init__(self, connection=None, full_table_name: str | None = None):
        super().__init__()


def _names_alias_in_text(clause) -> bool:
    """Whether SQL text outside any subquery (so possibly naming this table's alias) is in the clause."""
    if isinstance(clause, sa.TextClause):
        return True
    if isinstance(clause, (sa.sql.selectable.SelectBase, sa.FromClause)):
        return False
    return any(_names_alias_in_text(c) for c in clause.get_children())


def _memo_source(info: catalog.TableInfo) -> tuple:
    """The table's FROM element, columns and alias names, built once per catalog entry."""
    return info.memo("query_source", lambda: _query_source(info.sa_table, _alias_for(info.name)))


def _query_source(sa_table: sa.Table, alias_name: str) -> tuple:
    """The table under an alias: (alias, its columns by name, the set of alias names)."""
    alias = sa_table.alias(alias_name)
    return alias, {c.name: c for c in alias.columns}, frozenset([alias.name])


def _alias_for(table_name: str) -> str:
    return "t_" + re.sub(r"[^a-z0-9_]", "_", table_name.lstrip("_#"))[:40]


def _by_columns(rows: list[dict]) -> list[list[dict]]:
    """executemany needs one column set per statement; rows that omit defaults differ."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault(tuple(row), []).append(row)
    return list(groups.values())


def _driver_message(exc: Exception) -> str:
    orig = getattr(exc, "orig", exc)
    return str(orig).splitlines()[0] if str(orig) else type(orig).__name__


__all__ = ["Table", "TableMeta", "FreeTable", "QueryError"]
