"""Cascading delete and drop.

The restriction of the table being deleted propagates to every descendant as SQL
(semijoins on the foreign-key attributes, renamed ones included), the rows are
counted, and deleted leaves first in one transaction, so the database never holds a
result whose inputs are gone."""

from __future__ import annotations

import logging

import networkx as nx
import sqlalchemy as sa
from sqlalchemy.sql import visitors

from . import catalog, naming
from .errors import DataJointError, IntegrityError
from .jobs import forget_jobs_class, jobs_table_name
from .settings import config

log = logging.getLogger(__name__)


def confirm(question: str) -> bool:
    """Ask with ``input()`` (a terminal, Jupyter, anything that answers it) until the
    answer is yes or no; an empty answer means no, and so does having no input at all
    (stdin closed or captured). Used where ``config["safemode"]`` / ``prompt=`` asks;
    it asks through ``dj.utils.user_choice``, as datajoint does."""
    from . import utils

    try:
        return utils.user_choice(question, default="no") == "yes"
    except (EOFError, OSError, RuntimeError):  # nobody can answer: the safe answer
        print("\nno answer: taken as no")
        return False


PART_INTEGRITY = ("enforce", "ignore", "cascade")
# a restriction nests one subquery per level of the cascade; every this many levels the
# keys are read instead, so that a cascade of any depth stays within the SQL parsers'
# nesting limits (SQLite's overflows its parser stack at about ten levels)
MATERIALIZE_EVERY = 4
MATERIALIZE_MAX_VALUES = 20_000  # bound values of one materialized level (SQLite allows 32766)


def check_part_integrity(part_integrity: str, allowed: tuple = PART_INTEGRITY) -> None:
    """``part_integrity`` must be one of ``allowed`` (a ValueError, as in datajoint)."""
    if part_integrity not in allowed:
        raise ValueError(f"part_integrity must be {', '.join(repr(a) for a in allowed[:-1])} or {allowed[-1]!r}, "
                         f"got {part_integrity!r}")


def master_name(full_name: str) -> str | None:
    """The full name of a part table's master, or None."""
    schema, table = catalog.split_name(full_name)
    master = naming.master_of(table)
    return None if master is None else f"{schema}.{master}"


class CascadePlan:
    """The rows a cascade reaches: for each table, the restrictions (combined with OR)
    that select them, seeds first, then descendants parents before children. A table's
    restrictions are its own restricted table objects, so each one is deleted with one
    DELETE ... WHERE."""

    def __init__(self, connection, restricted: dict[str, list]):
        self.connection = connection
        self.restricted = restricted  # full name -> [restricted table], in topological order

    def names(self) -> list[str]:
        return list(self.restricted)

    def table(self, name: str):
        """The table ``name`` restricted to the reached rows (one query expression)."""
        exprs = self.restricted[name]
        if len(exprs) == 1:
            return exprs[0]
        return self.connection_table(name) & [e.proj() for e in exprs]

    def connection_table(self, name: str):
        from .schema import table_object

        return table_object(self.connection, name)

    def counts(self) -> dict[str, int]:
        return {name: len(self.table(name)) for name in self.restricted}


def plan_cascade(table, part_integrity: str = "enforce") -> CascadePlan:
    """The rows deleting ``table`` (a restricted table) reaches: its own and every row
    that refers to them, through any foreign key (renamed ones included; a NULL
    reference reaches nothing). With ``part_integrity="cascade"`` a part row reached
    brings its master's row, and so all the master's parts. Runs queries only to read
    the keys of deep levels and of lifted masters."""
    check_part_integrity(part_integrity)
    conn = table._connection
    seeds = {table.full_table_name: [_fixed_if_reading_descendants(_seed(table))]}
    lifted: set[str] = set()
    while True:
        restricted = _propagate(conn, seeds)
        if part_integrity != "cascade":
            break
        new = []
        for name in restricted:  # each part lifts the masters of its reached rows, once
            master = master_name(name)
            if master is None or name in lifted or master not in conn.dependencies.graph:
                continue
            lifted.add(name)
            new.append((master, _lift_to_master(conn, CascadePlan(conn, restricted).table(name), name, master)))
        if not new:
            break
        for master, expr in new:
            seeds.setdefault(master, []).append(expr)
    return CascadePlan(conn, restricted)


def _seed(table):
    """The seed's restriction; a seed limited by Top (an ORDER BY ... LIMIT, no WHERE)
    by the keys it selects, so that the cascade starts from those rows only."""
    from .schema import table_object

    if table._limit is None and not table._order_by and not table._offset:
        return table
    keys = table.keys()
    base = table_object(table._connection, table.full_table_name)._own_alias()
    return base & keys if keys else base & False


def _propagate(conn, seeds: dict[str, list]) -> dict[str, list]:
    """Seeds and every descendant, each restricted by OR over its restricted parents'
    keys (and its own seeds)."""
    from .schema import table_object

    graph = conn.dependencies
    names = set()
    for s in seeds:
        names |= set(graph.descendants(s))
    restricted: dict[str, list] = {}
    depth: dict[str, int] = {}
    for name in graph.topo_sort(names):
        conds, level = [], 0
        for parent, data in graph.parents(name):
            for pexpr in restricted.get(parent, []):
                renames = {c: p for c, p in data["attr_map"].items() if c != p}
                conds.append(pexpr.proj(**renames) if renames else pexpr.proj())
                level = max(level, depth[parent] + 1)
        exprs = list(seeds.get(name, []))
        if conds:
            child = table_object(conn, name)._own_alias() & conds
            if level >= MATERIALIZE_EVERY:
                child, level = _materialized(child, level)
            exprs.append(child)
        if exprs:
            restricted[name] = exprs
            depth[name] = level
    return restricted


def _materialized(expr, level: int):
    """``expr`` restricted by the keys it selects now (no nested subqueries), unless
    they are too many to bind."""
    key = expr.primary_key
    keys = expr.keys()
    if len(keys) * len(key) > MATERIALIZE_MAX_VALUES:
        return expr, level
    from .schema import table_object

    base = table_object(expr._connection, expr.full_table_name)._own_alias()
    return (base & keys if keys else base & False), 0


def _lift_to_master(conn, part, part_name: str, master: str):
    """The master's rows of the reached rows of one of its parts, as read now (the part
    rows are deleted before the master's)."""
    from .expression import U
    from .schema import table_object

    graph = conn.dependencies.graph
    master_table = table_object(conn, master)
    # follow the foreign keys from the master down to the part: where each master key
    # attribute is in the part (renamed or not)
    try:
        path = nx.shortest_path(graph, master, part_name)
    except nx.NetworkXNoPath:
        path = None
    columns = {a: a for a in master_table.primary_key}
    if path is not None:
        for parent, child in zip(path, path[1:]):
            data = next(iter(graph.get_edge_data(parent, child).values()))
            back = {p: c for c, p in data["attr_map"].items()}
            columns = {a: back.get(col, col) for a, col in columns.items()}
    rows = (U(*columns.values()) & part).to_dicts()
    keys = [{a: r[c] for a, c in columns.items()} for r in rows]
    base = master_table._own_alias()
    return base & keys if keys else base & False


def plan_trace(table) -> CascadePlan:
    """The rows ``table`` (a restricted table) comes from: the table itself and each
    ancestor restricted to the rows that any reached row refers to, through any foreign
    key (renamed ones included), parents before children. A seed restricted by one key
    (as in make) passes its values up as keys while they determine the parent's, so the
    trace does not depend on the seed's rows existing yet."""
    from .expression import U
    from .schema import table_object

    conn = table._connection
    graph = conn.dependencies
    seed_name = table.full_table_name
    order = graph.ancestors(seed_name)  # parents first, the seed last
    restricted: dict[str, list] = {seed_name: [_seed(table)]}
    keyed: dict[str, list[dict]] = {}  # tables restricted by known key values
    key = _plain_key(table)
    if key is not None:
        keyed[seed_name] = [key]
    for name in reversed(order):
        if name == seed_name:
            continue
        conds, values, by_values = [], [], True
        for child, data in graph.children(name):
            if child not in restricted:
                continue
            attr_map = data["attr_map"]  # child attribute -> parent attribute
            known = keyed.get(child)
            if known is not None and all(c in k for k in known for c in attr_map):
                values += [{p: k[c] for c, p in attr_map.items()} for k in known]
                continue
            by_values = False
            renames = {p: c for c, p in attr_map.items() if c != p}
            for cexpr in restricted[child]:
                conds.append(U(*attr_map.values()) & (cexpr.proj(**renames) if renames else cexpr))
        if not conds and not values:
            continue
        values = [dict(t) for t in dict.fromkeys(tuple(sorted(v.items())) for v in values)]
        restricted[name] = [table_object(conn, name) & (values + conds)]
        if by_values:
            keyed[name] = values
    return CascadePlan(conn, {n: restricted[n] for n in order if n in restricted})


def plan_restrict(connection, graph, shown: set, current: dict, table_expr) -> dict:
    """``current`` (full name -> restricted table) further restricted by ``table_expr``
    and downstream of it: each shown descendant keeps the rows referring to kept rows
    of every restricted parent (AND where paths meet)."""
    from .schema import table_object

    result = dict(current)
    seed = table_expr.full_table_name
    result[seed] = (result[seed] & table_expr.proj()) if seed in result else table_expr
    below = nx.descendants(graph, seed) & set(shown)
    for name in connection.dependencies.topo_sort(below):
        expr = result.get(name, table_object(connection, name))
        for parent, _, data in graph.in_edges(name, data=True):
            if parent in result:
                renames = {c: p for c, p in data["attr_map"].items() if c != p}
                expr = expr & (result[parent].proj(**renames) if renames else result[parent].proj())
        result[name] = expr
    return result


def _plain_key(table) -> dict | None:
    """The key values a table is restricted by, when one plain key is its only
    restriction (``Table & key``)."""
    held = getattr(table, "_key", None)
    if held is None or table.__dict__.get("_where_list"):
        return None
    names, values = held
    return dict(zip(names, values))


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
    """Delete the restricted rows of ``table`` and every row that depends on them, leaves
    first, in one transaction (see plan_cascade); returns the number of rows deleted
    from ``table``. A part row deleted without its master's row is refused with
    ``part_integrity="enforce"`` (everything rolled back)."""
    check_part_integrity(part_integrity)
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
        plan = plan_cascade(table, part_integrity)
        if safemode or dry_run:  # a preview needs counts; otherwise DELETE reports them
            counts = plan.counts()
            if dry_run:
                _check_parts(counts, plan.restricted, part_integrity)
                return counts[table.full_table_name]
            preview = "\n".join(f"  {name}: {n}" for name, n in counts.items() if n)
            print(f"About to delete:\n{preview}")
            if not confirm("Commit deletes?"):
                raise _Cancelled(f"Delete cancelled: nothing was deleted from {table.full_table_name}")
        deleted = {}
        for name in reversed(plan.names()):
            deleted[name] = sum(tx.execute(e._delete_statement()).rowcount for e in plan.restricted[name])
            if deleted[name]:
                log.info("delete %s: %d rows", name, deleted[name])
        _check_parts(deleted, plan.restricted, part_integrity)  # raising rolls everything back
    return deleted[table.full_table_name]


def _check_parts(counts: dict[str, int], restricted: dict, part_integrity: str) -> None:
    """Part rows go only with their master's rows (unless told otherwise)."""
    if part_integrity != "enforce":
        return
    for name, n in counts.items():
        master = master_name(name)
        if n and master:
            if master not in restricted or counts.get(master, 0) == 0:
                raise IntegrityError(
                    f"Cannot delete {n} row(s) from part table {name} before its master {master}: delete "
                    "from the master, or pass part_integrity='cascade' (delete the masters too) or 'ignore'")


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
            forget_jobs_class(connection, f"{schema}.{jobs_table_name(table)}")
            catalog.forget_lineage(tx, adapter, schema, table)
            connection.tables.pop(name, None)
            connection.__dict__.get("classes", {}).pop(name, None)
    connection.invalidate()


def drop_with_descendants(table, safemode: bool | None = None, part_integrity: str = "enforce") -> None:
    """Drop the table and every table below it. A part table goes only with its master
    (``part_integrity="enforce"``; ``"ignore"`` drops it alone)."""
    check_part_integrity(part_integrity, ("enforce", "ignore"))
    if table._where:
        raise DataJointError("drop() applies to a whole table, not a restriction; use delete()")
    conn = table._connection
    names = conn.dependencies.descendants(table.full_table_name)
    if part_integrity == "enforce":
        for name in names:
            master = master_name(name)
            if master is not None and master not in names:
                raise DataJointError(f"Cannot drop part table {name} before its master {master}: drop the "
                                     "master, or pass part_integrity='ignore'")
    safemode = config.safemode if safemode is None else safemode
    if safemode:
        print("About to drop:\n" + "\n".join(f"  {n}" for n in names))
        if not confirm("Proceed?"):
            print(f"Drop cancelled: {table.full_table_name} was not dropped")
            return
    drop_tables(conn, names)
