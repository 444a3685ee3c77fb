"""Creating tables from definitions and reading them back from the database.

The database is the source of truth: a table's heading is always rebuilt from the
catalog (columns, keys, foreign keys, indexes) and the ``:type:comment`` column
comments, whether the table was declared by a class here, by another process, or by
datajoint-python."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field

import sqlalchemy as sa

from .declare import TableDef, unquote_default
from .errors import AccessError, DeclarationError, MissingTableError, translate_driver_error
from .heading import Attribute, Heading
from .types import parse_type

log = logging.getLogger(__name__)


@dataclass
class ForeignKeyInfo:
    parent: str  # "schema.table"
    attr_map: dict[str, str]  # child -> parent attribute
    primary: bool

    @property
    def renamed(self) -> bool:
        return any(c != p for c, p in self.attr_map.items())


@dataclass
class TableInfo:
    schema: str
    name: str
    heading: Heading
    sa_table: sa.Table
    comment: str = ""
    foreign_keys: list[ForeignKeyInfo] = field(default_factory=list)
    indexes: list[tuple[bool, tuple[str, ...]]] = field(default_factory=list)
    column_types: dict = field(default_factory=dict)  # column -> reflected SQL type

    @property
    def full_name(self) -> str:
        return f"{self.schema}.{self.name}"

    def memo(self, key, build):
        """``build()``, made once per table and kept with its catalog entry (which DDL
        replaces): statements whose SQL never changes for the table."""
        memos = self.__dict__.setdefault("_memos", {})
        if key not in memos:
            memos[key] = build()
        return memos[key]


def full_name(schema: str, table: str) -> str:
    return f"{schema}.{table}"


def split_name(name: str) -> tuple[str, str]:
    schema, _, table = name.partition(".")
    return schema, table


def _query_table(connection, schema: str, table: str, attrs: list[Attribute],
                 reflected: dict | None = None) -> sa.Table:
    """The SQLAlchemy table used to build queries (typed columns, no constraints);
    ``reflected`` (column -> reflected type) lets the adapter fit older column types."""
    adapter = connection.adapter
    fit = getattr(adapter, "fit_reflected", None)
    reflected = reflected or {}
    sa_schema, sa_name = adapter.table_address(schema, table)
    key = f"{sa_schema}.{sa_name}" if sa_schema else sa_name
    if key in connection.metadata.tables:
        connection.metadata.remove(connection.metadata.tables[key])

    def sql_type(a):
        t = adapter.sql_type(a.type)
        return fit(t, a.type, reflected[a.name]) if fit and a.name in reflected else t

    cols = [sa.Column(a.name, sql_type(a), primary_key=a.in_key, nullable=a.nullable,
                      server_default=sa.FetchedValue() if a.default is not None else None,
                      autoincrement=a.type.auto_increment)
            for a in attrs]
    return sa.Table(sa_name, connection.metadata, *cols, schema=sa_schema)


def build_table(adapter, schema: str, table: str, definition: TableDef) -> sa.Table:
    """The SQLAlchemy table a definition declares: columns, keys, foreign keys (ON UPDATE
    CASCADE ON DELETE RESTRICT), indexes and comments (nothing is run)."""
    md = sa.MetaData()
    sa_schema, sa_name = adapter.table_address(schema, table)
    parents = {}
    for fk in definition.foreign_keys:
        pinfo = fk.parent._info
        if pinfo.full_name not in parents:
            p_schema, p_name = adapter.table_address(pinfo.schema, pinfo.name)
            parents[pinfo.full_name] = sa.Table(
                p_name, md, *[sa.Column(a.name, adapter.sql_type(a.type), primary_key=True)
                              for a in pinfo.heading if a.in_key], schema=p_schema)
    copied = {}  # foreign-key attribute -> (reflected type, schema) of the parent column
    for fk in definition.foreign_keys:
        pinfo = fk.parent._info
        for child, p in fk.attr_map.items():
            if p in pinfo.column_types:
                copied.setdefault(child, (pinfo.column_types[p], adapter.table_address(pinfo.schema, pinfo.name)[0]))
    auto = [a.name for a in definition.attributes if a.type.auto_increment]
    if auto and not adapter.auto_increment_in_composite_key and len(definition.primary_key) > 1:
        raise DeclarationError(f"Table {schema}.{table}: attribute {auto[0]!r} is auto_increment in a primary key "
                               f"of {len(definition.primary_key)} attributes, which {adapter.name} cannot number")
    columns = [build_column(adapter, a, schema, table, copied.get(a.name)) for a in definition.attributes]
    constraints = []
    for fk in definition.foreign_keys:
        ptable = parents[fk.parent._info.full_name]
        constraints.append(sa.ForeignKeyConstraint(
            list(fk.attr_map), [ptable.c[p] for p in fk.attr_map.values()],
            onupdate="CASCADE", ondelete="RESTRICT"))
    for unique, attrs in definition.indexes:
        constraints.append(sa.Index(_index_name(sa_name, attrs), *attrs, unique=unique))
    for cols in _fk_support_indexes(adapter, definition):
        constraints.append(sa.Index(_index_name(sa_name, cols), *cols))
    return sa.Table(sa_name, md, *columns, *constraints, schema=sa_schema,
                    comment=definition.comment if adapter.supports_comments else None, mysql_engine="InnoDB")


def _index_name(sa_name: str, columns) -> str:
    """``idx_<table>_<columns>``, as datajoint names the indexes it declares (unique per
    schema on PostgreSQL and per file on SQLite, where the table name holds the schema)."""
    name = f"idx_{sa_name}_{'_'.join(columns)[:30]}"
    if len(name) > 63:  # PostgreSQL's limit
        name = f"{name[:52]}_{hashlib.md5(name.encode()).hexdigest()[:10]}"
    return name


def declare(connection, schema: str, table: str, definition: TableDef) -> None:
    """CREATE TABLE with keys, foreign keys (ON UPDATE CASCADE ON DELETE RESTRICT),
    indexes and comments."""
    adapter = connection.adapter
    sa_table = build_table(adapter, schema, table, definition)
    with connection.transaction() as conn:
        created = False  # by this call: a table that was there (another process's) stays
        try:
            try:
                adapter.create_types(conn, sa_table.columns)
                indexes = set(sa_table.indexes)
                sa_table.indexes.clear()  # created one by one below: MySQL commits the table first
                try:
                    sa_table.create(conn)
                finally:
                    sa_table.indexes.update(indexes)
                created = True
                for index in sorted(indexes, key=lambda i: i.name):
                    index.create(conn)
                adapter.columns_created(conn, schema, table, sa_table.columns)
            except sa.exc.DBAPIError as exc:
                # a missing privilege is an AccessError, as datajoint raises it
                kind = AccessError if isinstance(translate_driver_error(exc), AccessError) else DeclarationError
                raise kind(f"Cannot declare table {schema}.{table}: {getattr(exc, 'orig', exc)}") from None
            adapter.write_comments(conn, schema, table, definition.comment,
                                   {a.name: a.sql_comment for a in definition.attributes})
            _write_lineage(conn, adapter, schema, table, definition)
        except BaseException:
            if created:
                _undo_create(adapter, conn, schema, table)  # where DDL outlives the rollback
            raise
    connection.invalidate()


def _undo_create(adapter, conn, schema: str, table: str) -> None:
    try:
        adapter.undo_create(conn, schema, table)
    except Exception as exc:  # noqa: BLE001 - the declaration's own error matters more
        log.warning("could not remove the half-declared table %s.%s: %s", schema, table, type(exc).__name__)


def _fk_support_indexes(adapter, definition: TableDef) -> list[tuple[str, ...]]:
    """The indexes to declare for foreign keys (see ``Adapter.indexes_foreign_keys``)."""
    if not adapter.indexes_foreign_keys:
        return []
    prefixes = [tuple(definition.primary_key)] + [tuple(attrs) for _, attrs in definition.indexes]
    out = []
    for cols in sorted((tuple(fk.attr_map) for fk in definition.foreign_keys), key=len, reverse=True):
        if not any(p[:len(cols)] == cols for p in prefixes):
            out.append(cols)
            prefixes.append(cols)
    return out


LINEAGE_TABLE = "~lineage"


def lineage_table(adapter, schema: str) -> sa.Table:
    """datajoint-python's per-schema ``~lineage`` table: the origin
    (``schema.table.attribute``) of every primary-key and foreign-key attribute, which
    datajoint reads for its semantic matching of joins and restrictions."""
    sa_schema, sa_name = adapter.table_address(schema, LINEAGE_TABLE)
    return sa.Table(
        sa_name, sa.MetaData(),
        sa.Column("table_name", sa.String(64), primary_key=True, comment="table name within the schema"),
        sa.Column("attribute_name", sa.String(64), primary_key=True, comment="attribute name"),
        sa.Column("lineage", sa.String(255), nullable=False, comment="origin: schema.table.attribute"),
        schema=sa_schema, mysql_engine="InnoDB")


def _write_lineage(conn, adapter, schema: str, table: str, definition: TableDef) -> None:
    """Record the lineage of a declared table where datajoint-python looks for it, so
    that datajoint can join it with the tables it declared itself (MySQL and PostgreSQL,
    datajoint's backends)."""
    if not adapter.keeps_lineage:
        return
    rows = {}
    for fk in definition.foreign_keys:
        parent = fk.parent._info.heading
        for child, p in fk.attr_map.items():
            rows.setdefault(child, parent[p].lineage or f"{fk.parent._info.full_name}.{p}")
    for a in definition.attributes:
        if a.in_key:
            rows.setdefault(a.name, f"{schema}.{table}.{a.name}")
    rows = {k: v for k, v in rows.items() if not k.startswith("_")}  # _singleton has none
    t = lineage_table(adapter, schema)
    conn.execute(sa.schema.CreateTable(t, if_not_exists=True))
    conn.execute(sa.delete(t).where(t.c.table_name == table))
    if rows:
        conn.execute(sa.insert(t), [{"table_name": table, "attribute_name": k, "lineage": v}
                                    for k, v in rows.items()])


def forget_lineage(conn, adapter, schema: str, table: str) -> None:
    """Remove a dropped table's ``~lineage`` rows, as datajoint does."""
    if not adapter.keeps_lineage:
        return
    t = lineage_table(adapter, schema)
    if sa.inspect(conn).has_table(t.name, schema=t.schema):
        conn.execute(sa.delete(t).where(t.c.table_name == table))


def build_column(adapter, a: Attribute, schema: str, table: str, parent: tuple | None = None) -> sa.Column:
    """The DDL column of an attribute (type per backend, default, comment); ``parent``:
    (reflected type, schema) of the parent column a foreign-key attribute references."""
    kwargs = {}
    if a.default is not None:
        _check_storable_default(adapter, a, table)
        kwargs["server_default"] = _server_default(a, table)
    sa_schema, sa_name = adapter.table_address(schema, table)
    return sa.Column(a.name, adapter.ddl_type(a.type, sa_schema, sa_name, a.name, parent), primary_key=a.in_key,
                     nullable=a.nullable, comment=a.sql_comment, autoincrement=a.type.auto_increment, **kwargs)


def _check_storable_default(adapter, a: Attribute, table: str) -> None:
    """A default beyond what the backend stores for the type (SQLite's uint64) would be
    stored rounded: refused as an inserted value is (adapter.int_refusal)."""
    if a.type.name not in adapter.narrower_ints:
        return
    try:
        value = int(a.default.strip("'\""))
    except ValueError:
        return  # not an integer: the declaration's own check refuses it
    why = adapter.int_refusal(a.type.name, value)
    if why is not None:
        raise DeclarationError(f"Table {table}: default {a.default!r} of attribute {a.name!r}: {why}")


def _server_default(a: Attribute, table: str):
    text = a.default
    if text.upper() == "CURRENT_TIMESTAMP":
        return sa.text("CURRENT_TIMESTAMP")
    value = unquote_default(text)
    if value is not None:
        return value
    if a.type.name == "bool":
        return sa.text("TRUE" if text.lower() in ("1", "true") else "FALSE")
    try:
        float(text)
    except ValueError:
        raise DeclarationError(f"Table {table}: default {text!r} of attribute {a.name!r} must be quoted") from None
    return sa.text(text)


def _declared_type(comment: str, reflected_type) -> tuple:
    if comment.startswith(":"):
        _, type_text, rest = comment.split(":", 2)
        return parse_type(type_text), rest
    try:
        return parse_type(str(reflected_type).lower()), comment
    except DeclarationError:
        return parse_type("bytes"), comment


def load(connection, schema: str, table: str) -> TableInfo:
    """Read a table's heading, keys and foreign keys from the database (cached)."""
    key = full_name(schema, table)
    cached = connection.tables.get(key)
    if cached is not None:
        return cached
    adapter = connection.adapter
    sa_schema, sa_name = adapter.table_address(schema, table)
    with connection.reading() as conn:
        insp = sa.inspect(conn)
        if not insp.has_table(sa_name, schema=sa_schema):
            raise MissingTableError(f"Table {key} does not exist")
        columns = insp.get_columns(sa_name, schema=sa_schema)
        pk = insp.get_pk_constraint(sa_name, schema=sa_schema).get("constrained_columns") or []
        fks = insp.get_foreign_keys(sa_name, schema=sa_schema)
        indexes = insp.get_indexes(sa_name, schema=sa_schema)
        table_comment, comments = adapter.read_comments(conn, schema, table)
    fk_infos = []
    for fk in fks:
        p_schema, p_table = adapter.referred_table(fk, schema)
        fk_infos.append(ForeignKeyInfo(full_name(p_schema, p_table),
                                       dict(zip(fk["constrained_columns"], fk["referred_columns"])),
                                       all(c in pk for c in fk["constrained_columns"])))
    lineage = {}
    inherited = {}  # child attribute -> the parent attribute's declared type
    for fk in fk_infos:
        if fk.parent == key:
            continue
        p_schema, p_table = split_name(fk.parent)
        parent = load(connection, p_schema, p_table)
        for c, p in fk.attr_map.items():
            lineage.setdefault(c, parent.heading[p].lineage)
            inherited.setdefault(c, parent.heading[p].type)
    attrs = []
    by_name = {c["name"]: c for c in columns}
    for name in pk + [c["name"] for c in columns if c["name"] not in pk]:
        col = by_name[name]
        raw_comment = comments.get(name, col.get("comment") or "")
        if not raw_comment.startswith(":") and name in inherited:
            # datajoint-python leaves foreign-key columns without a ``:type:`` comment:
            # they have the declared type of the parent attribute they reference
            spec, comment = inherited[name], raw_comment
        else:
            spec, comment = _declared_type(raw_comment, col["type"])
        default = col.get("default")
        attrs.append(Attribute(
            name=name, type=spec, in_key=name in pk, nullable=bool(col.get("nullable")) and name not in pk,
            default=_normal_default(default, spec), comment=comment,
            # lineage as datajoint's: a key attribute originates here, an inherited one in
            # its parent; a native secondary attribute has none (joins never match on it)
            lineage=lineage.get(name, f"{key}.{name}" if name in pk else None), hidden=name.startswith("_")))
    index_list = [(bool(i.get("unique")), tuple(i["column_names"])) for i in indexes
                  if i.get("column_names") and not _is_fk_index(i, fk_infos)]
    reflected = {c["name"]: c["type"] for c in columns}
    info = TableInfo(schema, table, Heading.of(attrs), _query_table(connection, schema, table, attrs, reflected),
                     table_comment, fk_infos, index_list, reflected)
    connection.tables[key] = info
    return info


def _is_fk_index(index: dict, fks: list[ForeignKeyInfo]) -> bool:
    return not index.get("unique") and any(tuple(index["column_names"]) == tuple(f.attr_map) for f in fks)


def _normal_default(default, spec=None) -> str | None:
    if default is None:
        return None
    text = str(default).split("::")[0]
    if text.upper() in ("NULL",):
        return None
    if text.lower().startswith(("current_timestamp", "now()")):
        return "CURRENT_TIMESTAMP"
    if spec is not None and spec.numeric and len(text) > 1 and text[0] == text[-1] == "'":
        # datajoint-python quotes every default, numbers too: DEFAULT '1.5'
        text = text[1:-1]
    return text


def forget(connection, schema: str, table: str) -> None:
    connection.tables.pop(full_name(schema, table), None)
    connection.invalidate()
