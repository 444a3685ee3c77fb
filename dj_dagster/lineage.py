"""The per-schema ``~lineage`` table: where each primary-key and foreign-key attribute
originates (``schema.table.attribute``), kept where datajoint-python reads it for its
semantic matching. dj_dagster itself derives lineage from the foreign keys when it loads
a table; these functions read and repair the stored rows (``Schema.rebuild_lineage``).
Every value reaches SQL as a bound parameter."""

from __future__ import annotations

import sqlalchemy as sa

from . import catalog


def _table(connection, database: str) -> sa.Table:
    return catalog.lineage_table(connection.adapter, database)


def ensure_lineage_table(connection, database: str) -> None:
    """Create ``database``'s ``~lineage`` table if it does not exist."""
    with connection.transaction() as conn:
        conn.execute(sa.schema.CreateTable(_table(connection, database), if_not_exists=True))


def lineage_table_exists(connection, database: str) -> bool:
    """Whether ``database`` has a ``~lineage`` table."""
    t = _table(connection, database)
    with connection.reading() as conn:
        return sa.inspect(conn).has_table(t.name, schema=t.schema)


def get_table_lineages(connection, database: str, table_name: str) -> dict[str, str]:
    """The stored lineage of ``table_name``'s attributes: ``{attribute: lineage}`` (empty
    when the schema has no ``~lineage`` table)."""
    if not lineage_table_exists(connection, database):
        return {}
    t = _table(connection, database)
    stmt = sa.select(t.c.attribute_name, t.c.lineage).where(t.c.table_name == table_name)
    return dict(connection.query_all(stmt))


def get_schema_lineages(connection, database: str) -> dict[str, str]:
    """Every stored lineage of ``database``: ``{"schema.table.attribute": lineage}``."""
    if not lineage_table_exists(connection, database):
        return {}
    t = _table(connection, database)
    rows = connection.query_all(sa.select(t.c.table_name, t.c.attribute_name, t.c.lineage))
    return {f"{database}.{table}.{attr}": lineage for table, attr, lineage in rows}


def get_lineage(connection, database: str, table_name: str, attribute_name: str) -> str | None:
    """The stored lineage of one attribute, or None."""
    return get_table_lineages(connection, database, table_name).get(attribute_name)


def insert_lineages(connection, database: str, entries) -> None:
    """Store ``entries``, ``(table, attribute, lineage)`` triples, replacing the stored
    lineage of the same attributes; creates the table when needed."""
    entries = [(str(t), str(a), str(v)) for t, a, v in entries]
    if not entries:
        return
    ensure_lineage_table(connection, database)
    t = _table(connection, database)
    with connection.transaction() as conn:
        for table, attr, _ in entries:
            conn.execute(sa.delete(t).where(t.c.table_name == table, t.c.attribute_name == attr))
        conn.execute(sa.insert(t), [{"table_name": tb, "attribute_name": a, "lineage": v} for tb, a, v in entries])


def delete_table_lineages(connection, database: str, table_name: str) -> None:
    """Remove the stored lineage of ``table_name``'s attributes."""
    if not lineage_table_exists(connection, database):
        return
    t = _table(connection, database)
    with connection.transaction() as conn:
        conn.execute(sa.delete(t).where(t.c.table_name == table_name))


def rebuild_schema_lineage(connection, database: str) -> None:
    """Replace every stored lineage row of ``database`` by the lineage its tables have
    now: a primary-key attribute originates in its table unless a foreign key brings it
    from a parent (whose lineage it takes, in this schema or another)."""
    with connection.reading() as conn:
        names = [n for n in connection.adapter.list_tables(conn, database) if not n.startswith("~")]
    rows = []
    for name in names:
        heading = catalog.load(connection, database, name).heading
        rows += [(name, a.name, a.lineage) for a in heading if a.lineage is not None and not a.hidden]
    ensure_lineage_table(connection, database)
    t = _table(connection, database)
    with connection.transaction() as conn:
        conn.execute(sa.delete(t))
        if rows:
            conn.execute(sa.insert(t), [{"table_name": tb, "attribute_name": a, "lineage": v} for tb, a, v in rows])
