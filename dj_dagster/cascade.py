"""Cascading delete and drop.

The restriction of the table being deleted propagates to every descendant as SQL
(semijoins on the foreign-key attributes, renamed ones included), the rows are
counted, and deleted leaves first in one transaction, so the database never holds a
result whose inputs are gone."""

from __future__ import annotations

import logging
import sys

import sqlalchemy as sa
from sqlalchemy.sql import visitors

from . import catalog, naming
from .errors import DataJointError, IntegrityError
from .jobs import jobs_table_name
from .settings import config

log = logging.getLogger(__name__)


def confirm(question: str) -> bool:
    """Ask with ``input()`` (a terminal, Jupyter, anything that answers it) until the
    answer is yes or no; an empty answer means no, and so does having no input at all
    (stdin closed or captured). Used where ``config["safemode"]`` / ``prompt=`` asks."""
    while True:
        try:
            answer = input(f"{question} [yes/No]: ").strip().lower()
        except (EOFError, OSError, RuntimeError):  # nobody can answer: the safe answer
            print("\nno answer: taken as no")
            return False
        if answer in ("yes", "no", ""):
            return answer == "yes"


def restricted_descendants(table) -> dict[str, object]:
    """``full name -> restricted table`` for the table and all its descendants."""
    from .schema import table_object

    conn = table._connection
    graph = conn.dependencies
    order = graph.descendants(table.full_table_name)
    restricted = {table.full_table_name: table}
    for name in order[1:]:
        conds = []
        for parent, data in graph.parents(name):
            if parent not in restricted:
                continue
            pexpr = restricted[parent]
            renames = {c: p for c, p in data["attr_map"].items() if c != p}
            conds.append(pexpr.proj(**renames) if renames else pexpr.proj())
        child = table_object(conn, name)._own_alias()  # deleted with DELETE ... WHERE <conds>
        restricted[name] = child & conds if conds else child & False
    return restricted


def _fixed_if_reading_descendants(table):
    """The rows to delete, by key, when the restriction reads a table the cascade deletes
    from first (``Session & Score.proj()``): as SQL it would be evaluated after those
    rows are gone."""
    graph = table._connection.dependencies
    below = {table.connection_tables_object(n).sa_table for n in graph.descendants(table.full_table_name)[1:]}
    if not below or not any(isinstance(e, sa.Table) and e in below for w in table._where for e in visitors.iterate(w)):
        return table
    return type(table)() & table.keys()


def cascade_delete(table, safemode: bool | None = None, part_integrity: str = "enforce",
                   dry_run: bool = False) -> int:
    if part_integrity not in ("enforce", "ignore"):
        raise DataJointError(f"part_integrity must be 'enforce' or 'ignore', got {part_integrity!r}")
    conn = table._connection
    safemode = config.safemode if safemode is None else safemode
    try:
        return _cascade_delete(table, conn, safemode, part_integrity, dry_run)
    except _Cancelled as cancelled:  # answered no: a message, as datajoint gives, not a traceback
        print(cancelled)
        log.warning("%s", cancelled)
        return 0


def _cascade_delete(table, conn, safemode: bool, part_integrity: str, dry_run: bool) -> int:
    with conn.transaction() as tx:
        restricted = restricted_descendants(_fixed_if_reading_descendants(table))
        if safemode or dry_run:  # a preview needs counts; otherwise DELETE reports them
            counts = {name: len(expr) for name, expr in restricted.items()}
            if dry_run:
                _check_parts(counts, restricted, part_integrity)
                return counts[table.full_table_name]
            preview = "\n".join(f"  {name}: {n}" for name, n in counts.items() if n)
            print(f"About to delete:\n{preview}")
            if not confirm("Commit deletes?"):
                raise _Cancelled(f"Delete cancelled: nothing was deleted from {table.full_table_name}")
        deleted = {}
        for name in reversed(list(restricted)):
            deleted[name] = tx.execute(restricted[name]._delete_statement()).rowcount
            if deleted[name]:
                log.info("delete %s: %d rows", name, deleted[name])
        _check_parts(deleted, restricted, part_integrity)  # raising rolls everything back
    return deleted[table.full_table_name]


def _check_parts(counts: dict[str, int], restricted: dict, part_integrity: str) -> None:
    """Part rows go only with their master's rows (unless told otherwise)."""
    if part_integrity != "enforce":
        return
    for name, n in counts.items():
        schema, table = catalog.split_name(name)
        master = naming.master_of(table)
        if n and master:
            master_full = f"{schema}.{master}"
            if master_full not in restricted or counts.get(master_full, 0) == 0:
                raise IntegrityError(
                    f"Cannot delete {n} row(s) from part table {name} without deleting from its master "
                    f"{master_full}; delete from the master, or pass part_integrity='ignore'")


class _Cancelled(DataJointError):
    pass


def drop_tables(connection, names: list[str]) -> None:
    """DROP the named tables (children first) and forget their catalog entries."""
    adapter = connection.adapter
    order = list(reversed(connection.dependencies.topo_sort(names)))
    with connection.transaction() as tx:
        for name in order:
            schema, table = catalog.split_name(name)
            for sql_name in (jobs_table_name(table), table):  # its jobs table, then the table
                tx.execute(sa.text(f"DROP TABLE IF EXISTS {adapter._qualified(tx, schema, sql_name)}"))
                adapter.drop_comments(tx, schema, sql_name)
            catalog.forget_lineage(tx, adapter, schema, table)
            connection.tables.pop(name, None)
            connection.__dict__.get("classes", {}).pop(name, None)
    connection.invalidate()


def drop_with_descendants(table, safemode: bool | None = None) -> None:
    if table._where:
        raise DataJointError("drop() applies to a whole table, not a restriction; use delete()")
    conn = table._connection
    names = conn.dependencies.descendants(table.full_table_name)
    safemode = config.safemode if safemode is None else safemode
    if safemode:
        print("About to drop:\n" + "\n".join(f"  {n}" for n in names))
        if not confirm("Proceed?"):
            print(f"Drop cancelled: {table.full_table_name} was not dropped")
            return
    drop_tables(conn, names)
