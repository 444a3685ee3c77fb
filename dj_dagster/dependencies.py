"""The foreign-key graph across every schema of a database, on networkx.

Nodes are ``schema.table``; each foreign key is one edge parent -> child carrying its
attribute map, so a child with two renamed references to one parent has two edges."""

from __future__ import annotations

import re

import networkx as nx
import sqlalchemy as sa

from . import catalog
from .errors import MissingTableError


_PART = re.compile(r'^(?P<q>[`"]?)(?P<schema>[^`".]+)(?P=q)\.(?P=q)(?P<master>[_#]*[^_`"#][^`"]*?)__[^`"]+(?P=q)$')


def extract_master(part_table: str) -> str | None:
    """The full name of a part table's master (``schema.master__part`` ->
    ``schema.master``; quoted names stay quoted), or None for other tables."""
    m = _PART.match(part_table)
    if m is None:
        return None
    q = m["q"]
    return f"{q}{m['schema']}{q}.{q}{m['master']}{q}"


def topo_sort(graph: nx.DiGraph) -> list[str]:
    """The nodes of a dependency graph, parents before children, each part table right
    after its master (its master is placed after every other parent of its parts)."""
    g = nx.MultiDiGraph(graph)
    for part in list(g):
        master = extract_master(part)
        if master in g:
            for parent, _ in list(g.in_edges(part)):
                if master not in (parent, extract_master(parent)):
                    g.add_edge(parent, master)
    order = [n for n in nx.lexicographical_topological_sort(g) if extract_master(n) not in g]
    parts: dict[str, list[str]] = {}
    for n in nx.lexicographical_topological_sort(g):
        if extract_master(n) in g:
            parts.setdefault(extract_master(n), []).append(n)

    def with_parts(n):
        return [n] + [p for part in parts.get(n, []) for p in with_parts(part)]

    return [x for n in order for x in with_parts(n)]


class Dependencies:
    def __init__(self, connection):
        self._connection = connection
        self._graph: nx.MultiDiGraph | None = None

    def clear(self) -> None:
        self._graph = None

    def load(self, force: bool = True, schema_names=None) -> None:
        """Read the foreign keys of every schema now (again, unless ``force`` is False
        and they were read); the graph always spans all schemas, so ``schema_names`` is
        accepted for datajoint's signature and changes nothing."""
        if force or self._graph is None:
            self._graph = self._build()

    def load_all_downstream(self) -> None:
        """Make sure the graph covers every schema referring to the loaded ones (it
        spans all schemas: read once)."""
        self.load(force=False)

    def load_all_upstream(self) -> None:
        """Make sure the graph covers every schema the loaded ones refer to (it spans
        all schemas: read once)."""
        self.load(force=False)

    @property
    def graph(self) -> nx.MultiDiGraph:
        if self._graph is None:
            self._graph = self._build()
        return self._graph

    def _build(self) -> nx.MultiDiGraph:
        conn = self._connection
        g = nx.MultiDiGraph()
        with conn.reading() as c:
            schemas = conn.adapter.list_schemas(c)
            tables = {s: conn.adapter.list_tables(c, s) for s in schemas}
        for schema, names in tables.items():
            for name in names:
                if name.startswith("~"):
                    continue
                try:
                    info = catalog.load(conn, schema, name)
                except (MissingTableError, sa.exc.NoSuchTableError):
                    continue  # dropped by another process while we read the catalog
                g.add_node(info.full_name, primary_key=info.heading.primary_key)
                for fk in info.foreign_keys:
                    g.add_edge(fk.parent, info.full_name, attr_map=fk.attr_map, primary=fk.primary)
        return g

    def __contains__(self, name) -> bool:
        """Whether the table ``name`` (full name) is in the graph."""
        return name in self.graph

    def parents(self, name: str, primary: bool | None = None) -> list[tuple[str, dict]]:
        g = self.graph
        if name not in g:
            return []
        return [(p, d) for p, _, d in g.in_edges(name, data=True) if primary is None or d["primary"] == primary]

    def children(self, name: str, primary: bool | None = None) -> list[tuple[str, dict]]:
        g = self.graph
        if name not in g:
            return []
        return [(c, d) for _, c, d in g.out_edges(name, data=True) if primary is None or d["primary"] == primary]

    def descendants(self, name: str) -> list[str]:
        """``name`` and everything downstream, parents before children."""
        g = self.graph
        if name not in g:
            return [name]
        nodes = nx.descendants(g, name) | {name}
        return list(nx.lexicographical_topological_sort(g.subgraph(nodes)))

    def ancestors(self, name: str) -> list[str]:
        g = self.graph
        if name not in g:
            return [name]
        nodes = nx.ancestors(g, name) | {name}
        return list(nx.lexicographical_topological_sort(g.subgraph(nodes)))

    def topo_sort(self, names=None) -> list[str]:
        """``names`` (default: every table) parents before children, parts right after
        their masters; names unknown to the graph last."""
        g = self.graph
        if names is None:
            return topo_sort(g)
        names = set(names)
        known = [n for n in topo_sort(g) if n in names]
        return known + sorted(names - set(known))
