"""The foreign-key graph across every schema of a database, on networkx.

Nodes are ``schema.table``; each foreign key is one edge parent -> child carrying its
attribute map, so a child with two renamed references to one parent has two edges."""

from __future__ import annotations

import networkx as nx

import sqlalchemy as sa

from . import catalog
from .errors import MissingTableError


class Dependencies:
    def __init__(self, connection):
        self._connection = connection
        self._graph: nx.MultiDiGraph | None = None

    def clear(self) -> None:
        self._graph = None

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

    def topo_sort(self, names) -> list[str]:
        names = set(names)
        g = self.graph
        known = [n for n in nx.lexicographical_topological_sort(g) if n in names]
        return known + sorted(names - set(known))
