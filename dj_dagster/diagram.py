"""Schema diagrams: a view of the foreign-key graph, DataJoint's ``dj.Diagram``.

``Diagram(source)`` selects tables from ``connection.dependencies.graph``; the source is
a Schema (every table of it), a table class or instance (that table), a module-like
object with a ``schema`` attribute, another Diagram (a copy), or a list of those (their
union). The selection is then shaped with DataJoint's operators:

- ``d + n`` / ``d - n``: add ``n`` levels of children / parents (``n`` an int);
- ``d1 + d2`` union, ``d1 - d2`` difference, ``d1 * d2`` intersection;
- ``d + Table`` / ``d - Table``: add / remove one table.

Part tables are shown as selected by default; ``show_parts=True`` also shows the parts
of every shown master and ``show_parts=False`` hides all parts, attaching their foreign
keys to their master (edge attribute ``via``) so the picture stays connected.

Renamed foreign keys (``-> Parent.proj(other_id='parent_id')``) are drawn as a direct
edge parent -> child (no alias node, as in DataJoint 2.x), coloured amber and labelled
``other_id ← parent_id`` (only the renamed attributes). Two renamed references to the
same parent are two edges. Primary foreign keys are solid, secondary ones dashed; a
primary foreign key that is the child's whole primary key (1:1) is drawn thick.

Outputs: ``to_networkx()``, ``to_mermaid()``, ``to_dot()``, ``to_svg()`` (Graphviz
``dot`` when it is on PATH, else a built-in layered layout, so SVG always works),
``_repr_svg_()`` for notebooks, and ``save(path)`` by extension.
"""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
import types
from pathlib import Path
from typing import Any, Iterable
from xml.sax.saxutils import escape as _xml_escape

import networkx as nx

from . import catalog, naming
from .errors import DataJointError

log = logging.getLogger(__name__)

TIERS = ("Manual", "Lookup", "Imported", "Computed", "Part")

# (fill, stroke, text) per tier: DataJoint 2.x's light palette.
PALETTE = {
    "Manual": ("#E8F0E9", "#3E7A52", "#28513A"),  # green
    "Lookup": ("#F0F0F1", "#808285", "#5A5C5F"),  # gray
    "Imported": ("#E0F4FC", "#00A0DF", "#00537A"),  # blue
    "Computed": ("#FFEDE5", "#FF5113", "#B23200"),  # red
    "Part": ("#FFFFFF", "#B9BBBE", "#55585C"),  # small, neutral
}
EDGE_COLOR = "#171C39"
EDGE_ALPHA = "9E"
RENAMED_COLOR = "#C77D3A"
CLUSTER_COLOR = "#171D3A"

# Graphviz structure per tier: shape, rounded, font size, minimum height (inches).
_DOT_SHAPE = {
    "Manual": ("box", True, 12, 0.4),
    "Lookup": ("box", True, 12, 0.4),
    "Imported": ("ellipse", False, 12, 0.4),
    "Computed": ("ellipse", False, 12, 0.4),
    "Part": ("box", True, 10, 0.2),
}
# Mermaid node shapes: rectangles for Manual/Lookup/Part, stadiums (the rounded
# flowchart shape standing in for an ellipse) for Imported/Computed.
_MERMAID_SHAPE = {
    "Manual": ('["', '"]'),
    "Lookup": ('["', '"]'),
    "Part": ('["', '"]'),
    "Imported": ('(["', '"])'),
    "Computed": ('(["', '"])'),
}


def _pydot_importable() -> bool:
    try:
        import pydot  # noqa: F401
    except ImportError:
        return False
    return True


# datajoint's flag: whether make_dot() can build pydot graphs here
diagram_active = _pydot_importable()


def dot_available() -> bool:
    """Whether Graphviz's ``dot`` executable is on PATH."""
    return shutil.which("dot") is not None


# datajoint's flag for "diagrams can be drawn": always, here (the built-in SVG layout
# needs no Graphviz)
diagram_active = True


# --------------------------------------------------------------------------- sources
def _dependency_graph(connection, attempts: int = 3) -> nx.MultiDiGraph:
    """``connection.dependencies.graph``, rebuilt when a table vanished while it was being
    read (another process dropping tables in some other schema of the same database)."""
    for attempt in range(attempts):
        try:
            return connection.dependencies.graph
        except Exception:  # noqa: BLE001 - NoSuchTableError / MissingTableError mid-scan
            if attempt == attempts - 1:
                raise
            connection.dependencies.clear()
    raise AssertionError("unreachable")


def _resolve(source) -> tuple[Any, set[str]]:
    """(connection, full table names) of one diagram source."""
    from .schema import Schema
    from .table import Table

    if isinstance(source, Schema):
        if source.database is None:
            raise DataJointError(f"Cannot draw a Diagram of {source!r}: the schema is not activated")
        connection = source.connection
        graph = _dependency_graph(connection)
        nodes = {n for n in graph if catalog.split_name(n)[0] == source.database}
        try:
            nodes.update(f"{source.database}.{t}" for t in source.list_tables())
        except Exception:  # noqa: BLE001 - the graph already lists every table it could read
            pass
        return connection, nodes
    if isinstance(source, type) and issubclass(source, Table):
        schema = source._schema
        if schema is None or schema.database is None or source._table_name is None:
            raise DataJointError(f"Table class {source.__name__} is not bound to a schema")
        return schema.connection, {f"{schema.database}.{source._table_name}"}
    if isinstance(source, Table) or (hasattr(source, "full_table_name") and hasattr(source, "_connection")):
        return source._connection, {source.full_table_name}
    inner = getattr(source, "schema", None)
    if isinstance(inner, Schema):  # a (virtual) module
        return _resolve(inner)
    raise DataJointError(f"Cannot draw a Diagram of {source!r}: give a Schema, a table, or a list of them")


def _context_names(context: dict | None, depth: int = 2) -> dict[str, str]:
    """Full table name -> dotted class name as reachable from ``context`` (breadth first,
    into modules up to ``depth`` levels), like DataJoint's ``lookup_class_name``."""
    from .table import Table
    from .user_tables import Part

    found: dict[str, str] = {}
    if not context:
        return found
    queue: list[tuple[dict, str, int]] = [(dict(context), "", depth)]
    seen: set[int] = set()
    while queue:
        ctx, prefix, level = queue.pop(0)
        for name, member in ctx.items():
            if name.startswith("_"):
                continue
            if isinstance(member, type) and issubclass(member, Table):
                schema = member.__dict__.get("_schema", getattr(member, "_schema", None))
                table_name = getattr(member, "_table_name", None)
                if schema is None or getattr(schema, "database", None) is None or table_name is None:
                    continue
                found.setdefault(f"{schema.database}.{table_name}", prefix + name)
                for attr, part in vars(member).items():
                    if (isinstance(part, type) and issubclass(part, Part) and part is not Part
                            and getattr(part, "_table_name", None)):
                        found.setdefault(f"{schema.database}.{part._table_name}", f"{prefix}{name}.{attr}")
            elif level > 0 and isinstance(member, (types.ModuleType, types.SimpleNamespace)):
                mod_name = getattr(member, "__name__", "")
                if id(member) in seen or mod_name.split(".")[0] in ("dj_dagster", "datajoint"):
                    continue
                seen.add(id(member))
                queue.append((dict(vars(member)), f"{prefix}{name}.", level - 1))
    return found


def _derived_class_name(table_name: str) -> str:
    if naming.tier_of(table_name) == "Part":
        master = naming.master_of(table_name)
        return f"{naming.class_name_of(master)}.{naming.class_name_of(table_name)}"
    return naming.class_name_of(table_name)


def _renames(attr_map: dict) -> str:
    return ", ".join(f"{c} ← {p}" for c, p in attr_map.items() if c != p)


# --------------------------------------------------------------------------- Diagram
class Diagram:
    """A selection of tables from the foreign-key graph, drawable as Mermaid, DOT or SVG.

    ``Diagram(schema)``, ``Diagram(Table)``, ``Diagram([T1, T2])``; ``+ n`` / ``- n``
    expand ``n`` levels down / up; ``+``, ``-``, ``*`` between diagrams are union,
    difference and intersection. ``context`` (a namespace dict) names tables after the
    classes found in it (``module.Table``); without it names come from the table names.
    ``show_parts``: None shows parts as selected, True adds the parts of every shown
    master, False hides parts. ``direction``: ``"TB"`` (default, or
    ``dj.config["diagram_direction"]``) or ``"LR"``.
    """

    def __init__(self, source, context: dict | None = None, *, show_parts: bool | None = None,
                 direction: str | None = None) -> None:
        if isinstance(source, Diagram):
            self._graph = source._graph
            self._connection = source._connection
            if getattr(source, "_restrict_conditions", None):
                self._restrict_conditions = dict(source._restrict_conditions)
                self._mode = "restrict"
            self.nodes_to_show = set(source.nodes_to_show)
            self.context = dict(source.context) if context is None else dict(context)
            self.show_parts = source.show_parts if show_parts is None else show_parts
            self.direction = _check_direction(direction or source.direction)
            self._collapsed = set(source._collapsed)
            return
        sources = list(source) if isinstance(source, (list, tuple, set, frozenset)) else [source]
        if not sources:
            raise DataJointError("Diagram needs at least one schema or table")
        connection = None
        graph = None
        nodes: set[str] = set()
        for item in sources:
            if isinstance(item, Diagram):
                conn, found = item._connection, set(item.nodes_to_show)
                item_graph = item._graph
            else:
                conn, found = _resolve(item)
                item_graph = _dependency_graph(conn)
            if connection is None:
                connection = conn
            if graph is None:
                graph = item_graph
            elif item_graph is not graph:
                graph = nx.compose(graph, item_graph)
            nodes |= found
        # A snapshot: later DDL rebuilds the connection's graph, not this one.
        self._graph: nx.MultiDiGraph = nx.MultiDiGraph(graph)
        for n in nodes - set(self._graph):
            self._graph.add_node(n)
        self._connection = connection
        self.nodes_to_show: set[str] = nodes
        self.context: dict = dict(context or {})
        self.show_parts = show_parts
        self.direction = _check_direction(direction or _config_direction())

    _plan = None  # a cascade or trace: the restricted table of each node (cascade.CascadePlan)
    _collapsed: frozenset | set = frozenset()  # tables drawn as one node per schema
    _mode = None  # "cascade" or "trace"

    @classmethod
    def cascade(cls, table_expr, part_integrity: str = "enforce") -> "Diagram":
        """The tables and rows deleting ``table_expr`` (a restricted table or its class)
        would reach: the table and every descendant with rows referring to the deleted
        ones (OR over all foreign-key paths). ``part_integrity="cascade"`` adds the
        masters of reached part rows, and their parts. ``counts()`` previews the rows,
        iteration yields the restricted tables (parents first)."""
        from .cascade import plan_cascade

        table_expr = table_expr() if isinstance(table_expr, type) else table_expr
        return cls._of_plan(table_expr, plan_cascade(table_expr, part_integrity), "cascade")

    @classmethod
    def trace(cls, table_expr) -> "Diagram":
        """The rows ``table_expr`` (a restricted table or its class) comes from: the
        table and each ancestor restricted to the rows reached rows refer to (OR over
        all foreign-key paths). ``diagram[T]`` is ancestor ``T`` (class, table, full
        name or class name) so restricted; ``counts()`` gives the rows per table."""
        from .cascade import plan_trace

        table_expr = table_expr() if isinstance(table_expr, type) else table_expr
        return cls._of_plan(table_expr, plan_trace(table_expr), "trace")

    @classmethod
    def _of_plan(cls, table_expr, plan, mode: str) -> "Diagram":
        result = cls(type(table_expr))
        graph = table_expr._connection.dependencies.graph
        result._graph = nx.MultiDiGraph(graph.subgraph(plan.names()))
        result.nodes_to_show = set(plan.names())
        result._plan, result._mode = plan, mode
        return result

    def restrict(self, table_expr) -> "Diagram":
        """A copy restricted for export: ``table_expr`` (a restricted table of the
        diagram) and, downstream of it, each shown table restricted to the rows that
        refer to rows kept in ALL its restricted parents (AND where paths meet, where
        cascade() takes any). Chainable; not on a cascade."""
        from .cascade import plan_restrict

        if self._mode == "cascade":
            raise DataJointError("restrict() cannot be applied to a Diagram made by Diagram.cascade(): cascade and "
                                 "restrict are different modes")
        table_expr = table_expr() if isinstance(table_expr, type) else table_expr
        result = self._copy()
        result._restrict_conditions = plan_restrict(self._connection, self._graph, self.nodes_to_show,
                                                    getattr(self, "_restrict_conditions", None) or {}, table_expr)
        result._mode = "restrict"
        return result

    def prune(self) -> "Diagram":
        """A copy without the tables that have no rows: no rows at all, or, after
        restrict(), none under its restrictions. Not on a cascade (a delete must keep
        every table it may reach)."""
        from .schema import table_object

        if self._mode == "cascade":
            raise DataJointError("prune() cannot be used on a Diagram made by Diagram.cascade(): a cascade keeps "
                                 "every table it may delete from")
        result = self._copy()
        conditions = getattr(self, "_restrict_conditions", None)
        if conditions:
            result._mode = "restrict"
            result._restrict_conditions = {n: e for n, e in conditions.items() if len(e)}
            result.nodes_to_show -= set(conditions) - set(result._restrict_conditions)
        else:
            result.nodes_to_show = {n for n in result.nodes_to_show if len(table_object(self._connection, n))}
        return result

    def counts(self) -> dict[str, int]:
        """The number of rows of each table of a cascade, a trace or a restricted
        diagram (no data changes)."""
        conditions = getattr(self, "_restrict_conditions", None)
        if conditions:
            return {n: len(conditions[n]) for n in self.topo_sort() if n in conditions}
        if self._plan is None:
            raise DataJointError("counts() needs restrictions: use Diagram.cascade(table_expr), "
                                 "Diagram.trace(table_expr) or diagram.restrict(table_expr)")
        return self._plan.counts()

    def __getitem__(self, key):
        """In a trace: the table ``key`` (a class, a table, a full name or a class name)
        restricted to the traced rows; DataJointError for a table not in the trace."""
        if self._mode != "trace":
            raise DataJointError("diagram[table] is defined for Diagram.trace(...) only")
        names = self._plan.names()
        if isinstance(key, str):
            name = key
            if name not in names:
                tail = naming.to_snake(key) if key[:1].isupper() and key.isalnum() else key
                found = [n for n in names if catalog.split_name(n)[1].lstrip("_#") == tail]
                if len(found) > 1:
                    raise DataJointError(f"{key!r} names several tables of this trace: {found}; use a full name")
                name = found[0] if found else key
        else:
            name = key.full_table_name
        if name not in names:
            raise DataJointError(f"Table {name} is not in this trace: it is not an ancestor of the traced table")
        if isinstance(key, str):  # no class at hand: a FreeTable
            from .table import FreeTable

            return FreeTable(self._connection, name) & self._plan.table(name).proj()
        return self._plan.table(name)

    @classmethod
    def from_sequence(cls, sequence: Iterable) -> "Diagram":
        """``Diagram(a) + Diagram(b) + ...``"""
        return functools.reduce(lambda x, y: x + y, map(cls, sequence))

    # --- selection algebra ---------------------------------------------------------
    def _copy(self) -> "Diagram":
        return Diagram(self)

    def _merge_graph(self, other: "Diagram") -> None:
        if other._graph is not self._graph:
            self._graph = nx.compose(self._graph, other._graph)

    def __add__(self, arg) -> "Diagram":
        result = self._copy()
        if isinstance(arg, Diagram):
            result._merge_graph(arg)
            result.nodes_to_show |= arg.nodes_to_show
            result.context = {**result.context, **arg.context}
            result._collapsed = (set(result._collapsed) - (arg.nodes_to_show - set(arg._collapsed))) | \
                set(arg._collapsed)
        elif isinstance(arg, int) and not isinstance(arg, bool):
            if arg < 0:
                return self - (-arg)
            for _ in range(arg):
                new = nx.node_boundary(result._graph, result.nodes_to_show)
                if not new:
                    break
                result.nodes_to_show |= new
        else:
            other = Diagram(arg, self.context)
            result._merge_graph(other)
            result.nodes_to_show |= other.nodes_to_show
            result._collapsed = set(result._collapsed) - other.nodes_to_show
        return result

    def __radd__(self, arg) -> "Diagram":
        if arg == 0:  # sum(diagrams)
            return self._copy()
        return Diagram(arg, self.context) + self

    def __sub__(self, arg) -> "Diagram":
        result = self._copy()
        if isinstance(arg, Diagram):
            result.nodes_to_show -= arg.nodes_to_show
        elif isinstance(arg, int) and not isinstance(arg, bool):
            if arg < 0:
                return self + (-arg)
            reverse = result._graph.reverse(copy=False)
            for _ in range(arg):
                new = nx.node_boundary(reverse, result.nodes_to_show)
                if not new:
                    break
                result.nodes_to_show |= new
        else:
            result.nodes_to_show -= _resolve(arg)[1]
        return result

    def __mul__(self, arg) -> "Diagram":
        result = self._copy()
        other = arg if isinstance(arg, Diagram) else Diagram(arg, self.context)
        result.nodes_to_show &= other.nodes_to_show
        return result

    def collapse(self) -> "Diagram":
        """A copy drawn compactly: its tables as one node per schema, foreign keys
        between two such nodes as one uniform edge. Adding another diagram to it
        (``collapsed + Diagram(T)``) draws that diagram's tables expanded again."""
        result = self._copy()
        result._collapsed = set(result.nodes_to_show)
        return result

    def add_parts(self) -> "Diagram":
        """A copy that also selects the part tables of every selected master."""
        result = self._copy()
        result.nodes_to_show |= {n for n in result._graph if self._master(n) in result.nodes_to_show}
        return result

    def __contains__(self, item) -> bool:
        name = item if isinstance(item, str) else next(iter(_resolve(item)[1]))
        return name in self.visible_nodes()

    def __repr__(self) -> str:
        return f"Diagram({', '.join(self.topo_sort())})"

    # --- what is shown --------------------------------------------------------------
    @staticmethod
    def _master(full_name: str) -> str | None:
        schema, table = catalog.split_name(full_name)
        master = naming.master_of(table)
        return None if master is None else f"{schema}.{master}"

    @staticmethod
    def _is_part(full_name: str) -> bool:
        return naming.tier_of(catalog.split_name(full_name)[1]) == "Part"

    def visible_nodes(self) -> set[str]:
        """The full names of the tables drawn, after ``show_parts``."""
        nodes = self.nodes_to_show & set(self._graph)
        if self.show_parts is True:
            nodes |= {n for n in self._graph if self._master(n) in nodes}
        elif self.show_parts is False:
            nodes = {n for n in nodes if not self._is_part(n)}
        return nodes

    def topo_sort(self) -> list[str]:
        """The shown tables, parents before children (ties alphabetical)."""
        nodes = self.visible_nodes()
        return [n for n in nx.lexicographical_topological_sort(self._graph.subgraph(nodes))]

    def __iter__(self):
        """Table objects of the shown tables, parents first (DataJoint's iteration order)."""
        from .schema import table_object

        for name in self.topo_sort():
            conditions = getattr(self, "_restrict_conditions", None)
            if conditions and name in conditions:
                yield conditions[name]
            else:
                yield self._plan.table(name) if self._plan is not None else table_object(self._connection, name)

    def __reversed__(self):
        """The tables of ``iter(diagram)``, leaves first (the order of a cascading delete)."""
        return reversed(list(self))

    def _labels(self, nodes: Iterable[str]) -> dict[str, str]:
        by_context = _context_names(self.context)
        labels = {n: by_context.get(n) or _derived_class_name(catalog.split_name(n)[1]) for n in nodes}
        counts: dict[str, int] = {}
        for label in labels.values():
            counts[label] = counts.get(label, 0) + 1
        return {n: (f"{catalog.split_name(n)[0]}.{lab}" if counts[lab] > 1 else lab) for n, lab in labels.items()}

    def _view(self) -> nx.MultiDiGraph:
        """The drawn graph: one edge per foreign key, nodes and edges with display data."""
        g = self._graph
        nodes = self.visible_nodes()
        labels = self._labels(nodes)
        view = nx.MultiDiGraph()
        for n in sorted(nodes):
            schema, table = catalog.split_name(n)
            tier = naming.tier_of(table)
            pk = list(g.nodes[n].get("primary_key") or [])
            inherited = {a for _, _, d in g.in_edges(n, data=True) if d.get("primary") for a in d.get("attr_map", {})}
            view.add_node(n, tier=tier, class_name=labels[n], label=labels[n], schema=schema, table_name=table,
                          master=self._master(n), primary_key=pk,
                          introduces_dimension=bool(pk) and not set(pk) <= inherited)

        def add_edge(parent, child, data, via=None):
            attr_map = dict(data.get("attr_map") or {})
            pk = set(g.nodes[child].get("primary_key") or []) if child in g else set()
            primary = bool(data.get("primary"))
            attrs = dict(attr_map=attr_map, primary=primary, renamed=any(c != p for c, p in attr_map.items()),
                         multi=set(attr_map) != pk, label=_renames(attr_map))
            if via is not None:
                attrs["via"] = via
            view.add_edge(parent, child, **attrs)

        for parent, child, data in g.edges(data=True):
            if parent in nodes and child in nodes:
                add_edge(parent, child, data)
        if self.show_parts is False:
            # Hidden parts: their foreign keys attach to their master, when it is drawn.
            for part in sorted(n for n in self.nodes_to_show & set(g) if self._is_part(n)):
                master = self._master(part)
                if master not in nodes:
                    continue
                rerouted = [(p, master, d) for p, _, d in g.in_edges(part, data=True) if p in nodes]
                rerouted += [(master, c, d) for _, c, d in g.out_edges(part, data=True) if c in nodes]
                for u, v, d in rerouted:
                    if u != v and not nx.has_path(view, v, u):
                        add_edge(u, v, d, via=part)
        return _collapsed_view(view, self._collapsed) if self._collapsed else view

    @staticmethod
    def _sorted_edges(view: nx.MultiDiGraph) -> list[tuple[str, str, dict]]:
        return sorted(view.edges(data=True),
                      key=lambda e: (view.nodes[e[0]]["label"], view.nodes[e[1]]["label"], e[2]["label"],
                                     sorted(e[2]["attr_map"].items()), e[2].get("via") or ""))

    # --- outputs --------------------------------------------------------------------
    def to_networkx(self, multigraph: bool = False) -> nx.DiGraph:
        """The shown graph over full table names ("schema.table").

        Node attributes: ``tier``, ``class_name``, ``label``, ``schema``, ``table_name``,
        ``master`` (parts), ``primary_key``, ``introduces_dimension``. Edge attributes
        (parent -> child): ``attr_map`` (child -> parent attribute), ``primary``,
        ``renamed``, ``multi`` (one-to-many), ``label``, ``via`` (a hidden part). A
        DiGraph merges parallel foreign keys into one edge (``count``, ``attr_maps``);
        ``multigraph=True`` gives a MultiDiGraph with one edge per foreign key.
        """
        view = self._view()
        if multigraph:
            return view
        out = nx.DiGraph()
        out.add_nodes_from(view.nodes(data=True))
        for u, v, d in self._sorted_edges(view):
            if out.has_edge(u, v):
                e = out.edges[u, v]
                e["attr_maps"].append(d["attr_map"])
                e["attr_map"] = {**e["attr_map"], **d["attr_map"]}
                e["primary"] = e["primary"] or d["primary"]
                e["renamed"] = e["renamed"] or d["renamed"]
                e["multi"] = e["multi"] and d["multi"]
                e["label"] = "; ".join(x for x in (e["label"], d["label"]) if x)
                e["count"] += 1
            else:
                out.add_edge(u, v, **dict(d, attr_maps=[d["attr_map"]], count=1))
        return out

    def to_mermaid(self) -> str:
        """Mermaid flowchart text, deterministic: schemas, nodes and edges sorted by name.

        One ``subgraph`` per schema, a master and its parts in a nested ``entity_``
        subgraph; tiers are classes (``classDef manual`` ...); Manual/Lookup/Part are
        rectangles, Imported/Computed stadiums. Edges, as datajoint draws them: ``==>``
        and a 2px line for a 1:1 dependency, ``-->`` and 1px for one-to-many, in
        navy; renamed foreign keys carry an ``"a ← b"`` label and are amber.
        """
        view = self._view()
        ids = _mermaid_ids(view)
        lines = [f"flowchart {self.direction}"]
        for tier in TIERS:
            fill, stroke, text = PALETTE[tier]
            extra = ",font-size:11px" if tier == "Part" else ""
            lines.append(f"    classDef {tier.lower()} fill:{fill},stroke:{stroke},color:{text}{extra}")
        by_schema: dict[str, list[str]] = {}
        for n, d in view.nodes(data=True):
            by_schema.setdefault(d["schema"], []).append(n)
        def node_line(n, indent):
            d = view.nodes[n]
            left, right = _MERMAID_SHAPE[d["tier"]]
            return f"{indent}{ids[n]}{left}{_mermaid_text(d['label'])}{right}:::{d['tier'].lower()}"

        for schema in sorted(by_schema):
            lines.append(f'    subgraph {_mermaid_safe("schema_" + schema)}["{_mermaid_text(schema)}"]')
            members = set(by_schema[schema])
            parts: dict[str, list[str]] = {}
            for n in members:
                master = view.nodes[n].get("master")
                if master in members:
                    parts.setdefault(master, []).append(n)
            for n in sorted(members, key=lambda n: ids[n]):
                if view.nodes[n].get("master") in parts:
                    continue  # drawn inside its master's entity
                if n in parts:  # a master and its parts: one entity
                    lines.append(f'        subgraph entity_{ids[n]}[" "]')
                    lines.append(node_line(n, "            "))
                    lines += [node_line(p, "            ") for p in sorted(parts[n], key=lambda p: ids[p])]
                    lines.append("        end")
                else:
                    lines.append(node_line(n, "        "))
            lines.append("    end")
        styles: dict[str, list[str]] = {}
        for i, (u, v, d) in enumerate(self._sorted_edges(view)):
            # the line weight says cardinality (thick 1:1, thin one-to-many), the colour a rename
            arrow = "-->" if d["multi"] else "==>"
            label = f'|"{_mermaid_text(d["label"])}"|' if d["label"] else ""
            lines.append(f"    {ids[u]} {arrow}{label} {ids[v]}")
            color = RENAMED_COLOR if d["renamed"] else EDGE_COLOR
            style = f"stroke:{color},stroke-width:{1 if d['multi'] else 2}px"
            if d["renamed"]:
                style += f",color:{RENAMED_COLOR}"
            styles.setdefault(style, []).append(str(i))
        for style, indexes in sorted(styles.items(), key=lambda item: int(item[1][0])):
            lines.append(f"    linkStyle {','.join(indexes)} {style}")
        return "\n".join(lines) + "\n"

    make_mermaid = to_mermaid  # DataJoint's name

    def to_dot(self) -> str:
        """Graphviz DOT source: one cluster per schema, tier shapes and colours; nodes
        are named by full table name."""
        return self._dot_source(by_label=False)

    def make_dot(self):
        """The diagram as a ``pydot.Dot`` graph (datajoint's form: nodes named by their
        class names; edge ``penwidth`` 2 for a 1:1 dependency, 0.75 for one-to-many).
        Needs pydot."""
        try:
            import pydot
        except ImportError:  # pragma: no cover - pydot is a dependency of the diagram extra
            raise DataJointError("make_dot() needs pydot (pip install pydot)") from None
        return pydot.graph_from_dot_data(self._dot_source(by_label=True))[0]

    def _dot_source(self, by_label: bool) -> str:
        view = self._view()
        out = [
            "digraph dj_diagram {",
            f'    graph [rankdir={self.direction}, fontname="Helvetica", nodesep=0.3, ranksep=0.45];',
            '    node [fontname="Helvetica", margin="0.11,0.06"];',
            '    edge [arrowhead=none, fontname="Helvetica", fontsize=9];',
        ]
        by_schema: dict[str, list[str]] = {}
        for n, d in view.nodes(data=True):
            by_schema.setdefault(d["schema"], []).append(n)
        clusters = []
        for i, schema in enumerate(sorted(by_schema)):
            clusters.append(f"    subgraph cluster_{i} {{")
            clusters.append(f'        label={_dot_quote(schema)}; labeljust=r; labelloc=t; style="rounded,dashed"; '
                            f'color="{CLUSTER_COLOR}"; fontcolor="{CLUSTER_COLOR}"; fontsize=10;')
            for n in sorted(by_schema[schema]):
                d = view.nodes[n]
                shape, rounded, size, height = _DOT_SHAPE[d["tier"]]
                if d.get("collapsed"):
                    shape, rounded = "box3d", False
                fill, stroke, text = PALETTE[d["tier"]]
                label = (f"<<u>{_xml_escape(d['label'])}</u>>" if d["introduces_dimension"]
                         else _dot_quote(d["label"]))
                node = (f"{_dot_quote(d['label'] if by_label else n)} [label={label}, shape={shape}, "
                        f'style="{"rounded,filled" if rounded else "filled"}", fillcolor="{fill}", '
                        f'color="{stroke}", fontcolor="{text}", fontsize={size}, height={height}, '
                        f"tooltip={_dot_quote(n)}];")
                if by_label:  # pydot lists only top-level nodes: declared there, placed in the cluster
                    out.append(f"    {node}")
                    clusters.append(f"        {_dot_quote(d['label'])};")
                else:
                    clusters.append(f"        {node}")
            clusters.append("    }")
        out += clusters
        for u, v, d in self._sorted_edges(view):
            color = (RENAMED_COLOR if d["renamed"] else EDGE_COLOR) + EDGE_ALPHA
            attrs = [f'color="{color}"', f"style={'solid' if d['primary'] else 'dashed'}",
                     f"penwidth={0.75 if d['multi'] else 2}", f"weight={1 if d['multi'] else 3}"]
            if d["label"]:
                attrs += [f"label={_dot_quote(d['label'])}", f'fontcolor="{RENAMED_COLOR}"']
            ends = (view.nodes[u]["label"], view.nodes[v]["label"]) if by_label else (u, v)
            out.append(f"    {_dot_quote(ends[0])} -> {_dot_quote(ends[1])} [{', '.join(attrs)}];")
        out.append("}")
        return "\n".join(out) + "\n"

    def to_svg(self, engine: str | None = None) -> str:
        """SVG text. ``engine``: ``"graphviz"`` (needs ``dot``), ``"builtin"`` (a layered
        layout, no dependencies), or None: Graphviz when installed, else built in."""
        if engine not in (None, "graphviz", "builtin"):
            raise DataJointError(f"Unknown diagram engine {engine!r}: use 'graphviz' or 'builtin'")
        if engine == "builtin" or (engine is None and not dot_available()):
            return self._builtin_svg()
        try:
            return self._run_dot("svg").decode("utf-8")
        except DataJointError:
            if engine == "graphviz":
                raise
            log.warning("Graphviz dot failed; drawing the diagram with the built-in layout", exc_info=True)
            return self._builtin_svg()

    def _run_dot(self, fmt: str) -> bytes:
        exe = shutil.which("dot")
        if exe is None:
            raise DataJointError("Graphviz is not installed (the `dot` program is needed): apt-get install graphviz")
        try:
            done = subprocess.run([exe, f"-T{fmt}"], input=self.to_dot().encode("utf-8"), capture_output=True,
                                  timeout=120, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise DataJointError(f"Graphviz dot failed: {exc}") from None
        if done.returncode != 0:
            raise DataJointError(f"Graphviz dot failed: {done.stderr.decode('utf-8', 'replace').strip()}")
        return done.stdout

    def _repr_svg_(self) -> str:
        """The SVG element alone (no XML prolog or DOCTYPE), for notebooks to inline."""
        svg = self.to_svg()
        return svg[svg.find("<svg"):].rstrip() if "<svg" in svg else svg

    def make_svg(self) -> str:
        """The diagram as SVG text (datajoint's name)."""
        return self._repr_svg_()

    def make_png(self):
        """The diagram as PNG bytes in a file-like object (needs Graphviz), as datajoint's."""
        import io

        return io.BytesIO(self._run_dot("png"))

    def make_image(self):
        """The diagram as an image array (needs Graphviz and matplotlib), as datajoint's."""
        try:
            import matplotlib.image as mpimg
        except ImportError:
            raise DataJointError("make_image() needs matplotlib: pip install matplotlib") from None
        return mpimg.imread(self.make_png(), format="png")

    def save(self, filename: str | Path, format: str | None = None) -> None:
        """Write the diagram; the format comes from the extension unless given:
        ``.svg``; ``.mmd``/``.mermaid`` (Mermaid text); ``.md`` (a fenced mermaid block);
        ``.dot``/``.gv`` (DOT source); ``.png`` (needs Graphviz)."""
        path = Path(filename)
        fmt = (format or {".svg": "svg", ".mmd": "mermaid", ".mermaid": "mermaid", ".md": "markdown",
                          ".dot": "dot", ".gv": "dot", ".png": "png"}.get(path.suffix.lower(), "")).lower()
        if fmt == "svg":
            path.write_text(self.to_svg(), encoding="utf-8")
        elif fmt == "mermaid":
            path.write_text(self.to_mermaid(), encoding="utf-8")
        elif fmt in ("markdown", "md"):
            path.write_text("```mermaid\n" + self.to_mermaid() + "```\n", encoding="utf-8")
        elif fmt == "dot":
            path.write_text(self.to_dot(), encoding="utf-8")
        elif fmt == "png":
            path.write_bytes(self._run_dot("png"))
        else:
            raise DataJointError(f"Cannot tell the diagram format of {str(filename)!r}: "
                                 "use .svg, .mmd, .md, .dot or .png, or pass format=")

    # --- built-in SVG ---------------------------------------------------------------
    def _builtin_svg(self) -> str:
        """A dependency-free drawing: layers by longest path from a root, straight edges,
        rename labels in the gap below (or beside) the parent's layer."""
        view = self._view()
        horizontal = self.direction in ("LR", "RL")
        edges = self._sorted_edges(view)
        label_lines = {i: d["label"].split(", ") for i, (_, _, d) in enumerate(edges) if d["label"]}
        line_h, label_font = 11.0, 9
        if horizontal:
            widest = max((_text_width(line, label_font) for ls in label_lines.values() for line in ls), default=0.0)
            gap = max(70.0, widest + 24.0)
        else:
            tallest = max((len(ls) for ls in label_lines.values()), default=0)
            gap = max(56.0, tallest * line_h + 26.0)
        layout = _layered_layout(view, horizontal=horizontal, reverse=self.direction in ("BT", "RL"), gap=gap)
        pos, sizes, thick = layout["pos"], layout["sizes"], layout["thickness"]
        boxes = [(x - sizes[n][0] / 2, y - sizes[n][1] / 2, x + sizes[n][0] / 2, y + sizes[n][1] / 2)
                 for n, (x, y) in pos.items()]

        edge_svg, label_svg = [], []
        multiplicity: dict[tuple[str, str], int] = {}
        for u, v, _ in edges:
            multiplicity[u, v] = multiplicity.get((u, v), 0) + 1
        seen: dict[tuple[str, str], int] = {}
        for i, (u, v, d) in enumerate(edges):
            (x1, y1), (x2, y2) = pos[u], pos[v]
            k = seen[u, v] = seen.get((u, v), -1) + 1
            shift = (k - (multiplicity[u, v] - 1) / 2) * 6.0  # parallel foreign keys side by side
            if shift:
                length = max(((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5, 1e-9)
                dx, dy = -(y2 - y1) / length * shift, (x2 - x1) / length * shift
                x1, y1, x2, y2 = x1 + dx, y1 + dy, x2 + dx, y2 + dy
            color = RENAMED_COLOR if d["renamed"] else EDGE_COLOR
            dash = "" if d["primary"] else ' stroke-dasharray="5,3"'
            edge_svg.append(f'<g class="edge"><title>{_xml_escape(u)} -&gt; {_xml_escape(v)}</title>'
                            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{color}" '
                            f'stroke-opacity="0.62" stroke-width="{0.75 if d["multi"] else 2}"{dash}/></g>')
            if i not in label_lines:
                continue
            # the label sits where the edge crosses the middle of the gap after the parent's layer
            if horizontal:
                sign = 1.0 if x2 >= x1 else -1.0
                lx = x1 + sign * (thick[u] / 2 + gap / 2)
                t = (lx - x1) / (x2 - x1) if x2 != x1 else 0.5
                ly = y1 + t * (y2 - y1)
            else:
                sign = 1.0 if y2 >= y1 else -1.0
                ly = y1 + sign * (thick[u] / 2 + gap / 2)
                t = (ly - y1) / (y2 - y1) if y2 != y1 else 0.5
                lx = x1 + t * (x2 - x1)
            lines = label_lines[i]
            width = max(_text_width(line, label_font) for line in lines)
            top = ly - len(lines) * line_h / 2
            boxes.append((lx - width / 2, top, lx + width / 2, top + len(lines) * line_h))
            spans = "".join(f'<tspan x="{lx:.1f}" y="{top + (j + 0.8) * line_h:.1f}">{_xml_escape(line)}</tspan>'
                            for j, line in enumerate(lines))
            label_svg.append(f'<text font-size="{label_font}" text-anchor="middle" fill="{RENAMED_COLOR}" '
                             f'stroke="#FFFFFF" stroke-width="3" paint-order="stroke">{spans}</text>')

        node_svg = []
        for n in sorted(view):
            d = view.nodes[n]
            (x, y), (w, h) = pos[n], sizes[n]
            fill, stroke, text = PALETTE[d["tier"]]
            if d["tier"] in ("Imported", "Computed"):
                shape = (f'<ellipse cx="{x:.1f}" cy="{y:.1f}" rx="{w / 2:.1f}" ry="{h / 2:.1f}" '
                         f'fill="{fill}" stroke="{stroke}"/>')
            else:
                shape = (f'<rect x="{x - w / 2:.1f}" y="{y - h / 2:.1f}" width="{w:.1f}" height="{h:.1f}" '
                         f'rx="5" ry="5" fill="{fill}" stroke="{stroke}"/>')
            font = _font_size(d["tier"])
            underline = ' text-decoration="underline"' if d["introduces_dimension"] else ""
            node_svg.append(f'<g class="node {d["tier"].lower()}"><title>{_xml_escape(n)}</title>{shape}'
                            f'<text x="{x:.1f}" y="{y + font * 0.35:.1f}" font-size="{font}" text-anchor="middle" '
                            f'fill="{text}"{underline}>{_xml_escape(d["label"])}</text></g>')

        margin = 16.0
        if boxes:
            x0 = min(b[0] for b in boxes) - margin
            y0 = min(b[1] for b in boxes) - margin
            x1_ = max(b[2] for b in boxes) + margin
            y1_ = max(b[3] for b in boxes) + margin
        else:
            x0, y0, x1_, y1_ = 0.0, 0.0, 2 * margin, 2 * margin
        width, height = x1_ - x0, y1_ - y0
        schemas = ", ".join(sorted({d["schema"] for _, d in view.nodes(data=True)}))
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
            f'viewBox="{x0:.1f} {y0:.1f} {width:.1f} {height:.1f}" font-family="Helvetica, Arial, sans-serif">',
            f"<title>{_xml_escape(schemas)}</title>",
            '<g class="edges">', *edge_svg, "</g>",
            '<g class="nodes">', *node_svg, "</g>",
        ]
        if label_svg:
            out += ['<g class="edge-labels">', *label_svg, "</g>"]
        out.append("</svg>")
        return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- helpers
def _collapsed_view(view: nx.MultiDiGraph, collapsed) -> nx.MultiDiGraph:
    """``view`` with its ``collapsed`` tables merged into one node per schema: edges
    inside a schema node are dropped, an edge between two schema nodes stands for all
    the foreign keys between them (drawn uniform: solid, thick, unlabelled), an edge
    with one real table keeps the style of its foreign key."""
    group = {n: view.nodes[n]["schema"] for n in view if n in collapsed}
    out = nx.MultiDiGraph()
    for n, d in view.nodes(data=True):
        if n not in group:
            out.add_node(n, **d)
    for schema in sorted(set(group.values())):
        out.add_node(schema, tier="Manual", class_name=schema, label=schema, schema=schema, table_name=schema,
                     master=None, primary_key=[], introduces_dimension=False, collapsed=True)
    bundles = set()
    for u, v, d in view.edges(data=True):
        a, b = group.get(u, u), group.get(v, v)
        if a == b:
            continue
        if u in group and v in group:
            if (a, b) not in bundles:
                bundles.add((a, b))
                out.add_edge(a, b, attr_map={}, primary=True, renamed=False, multi=False, label="")
        else:
            out.add_edge(a, b, **d)
    return out


def _config_direction() -> str:
    from .settings import config

    return str(config.get("diagram_direction") or "TB")


def _check_direction(direction: str) -> str:
    value = str(direction).upper()
    if value not in ("TB", "LR", "BT", "RL"):
        raise DataJointError(f"Diagram direction must be TB, LR, BT or RL, not {direction!r}")
    return value


def _dot_quote(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _mermaid_safe(text: str) -> str:
    out = "".join(ch if ch.isascii() and (ch.isalnum() or ch == "_") else "_" for ch in text)
    return out if out and out != "end" else f"n_{out}"


def _mermaid_text(text: str) -> str:
    return str(text).replace('"', "#quot;")


def _mermaid_ids(view: nx.MultiDiGraph) -> dict[str, str]:
    """Node ids from labels (``Master.Part`` -> ``Master_Part``), unique and stable."""
    ids: dict[str, str] = {}
    used: set[str] = set()
    for n in sorted(view, key=lambda n: (view.nodes[n]["label"], n)):
        base = _mermaid_safe(view.nodes[n]["label"])
        candidate, k = base, 2
        while candidate in used:
            candidate, k = f"{base}_{k}", k + 1
        used.add(candidate)
        ids[n] = candidate
    return ids


def _font_size(tier: str) -> int:
    return 10 if tier == "Part" else 12


def _text_width(text: str, font: float) -> float:
    """A rough width of Helvetica text (no font metrics without a renderer)."""
    return 0.6 * font * len(text)


def _layered_layout(view: nx.MultiDiGraph, horizontal: bool = False, reverse: bool = False,
                    gap: float = 56.0) -> dict:
    """Nodes in layers by longest path from a root; within a layer ordered by the mean
    position of their parents (then by label). ``gap`` separates layers. Returns node
    centres, node sizes and each node's layer thickness."""
    gap_in_layer = 24.0
    sizes = {}
    for n, d in view.nodes(data=True):
        font = _font_size(d["tier"])
        w = max(48.0, _text_width(d["label"], font) + (34 if d["tier"] in ("Imported", "Computed") else 20))
        sizes[n] = (w, 22.0 if d["tier"] == "Part" else 34.0)
    simple = nx.DiGraph(view)
    level: dict[str, int] = {}
    for n in nx.lexicographical_topological_sort(simple, key=lambda n: view.nodes[n]["label"]):
        level[n] = max((level[p] + 1 for p in simple.predecessors(n)), default=0)
    layers: dict[int, list[str]] = {}
    for n, lev in level.items():
        layers.setdefault(lev, []).append(n)
    order: dict[str, float] = {}
    for lev in sorted(layers):
        def key(n):
            parents = [order[p] for p in simple.predecessors(n) if p in order]
            return (sum(parents) / len(parents) if parents else -1.0, view.nodes[n]["label"], n)
        layers[lev].sort(key=key)
        for i, n in enumerate(layers[lev]):
            order[n] = float(i)
    along = 0 if not horizontal else 1  # the axis along a layer: x for TB, y for LR
    extents = {lev: sum(sizes[n][along] for n in ns) + gap_in_layer * (len(ns) - 1) for lev, ns in layers.items()}
    thickness = {lev: max(sizes[n][1 - along] for n in ns) for lev, ns in layers.items()}
    span = max(extents.values(), default=0.0)
    pos, thick = {}, {}
    offset = 0.0
    for lev in sorted(layers, reverse=reverse):
        centre_across = offset + thickness[lev] / 2
        cursor = (span - extents[lev]) / 2
        for n in layers[lev]:
            size_along = sizes[n][along]
            centre_along = cursor + size_along / 2
            cursor += size_along + gap_in_layer
            pos[n] = (centre_along, centre_across) if not horizontal else (centre_across, centre_along)
            thick[n] = thickness[lev]
        offset += thickness[lev] + gap
    return {"pos": pos, "sizes": sizes, "thickness": thick}
