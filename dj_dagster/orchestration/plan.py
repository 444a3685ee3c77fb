"""Which tables a pipeline has and how they are partitioned (no Dagster here).

Dagster cannot say "the parent's key is a prefix of the child's key", so one table is
the partition root (``Session``, say). Every table at or below the root whose primary
key holds the root's key attributes with the root's lineage shares one dynamic
partitions definition keyed by the root's primary key: lineage between them is an
identity mapping, exact per partition. Tables above the root (subjects, lookups) and
tables that aggregate across roots are unpartitioned; their dependencies on
partitioned tables use Dagster's default all-partitions mapping."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataJointError


@dataclass
class TableNode:
    cls: type
    full_name: str
    tier: str
    master: str | None  # full name of the master for part tables
    parents: list[str] = field(default_factory=list)  # full names, every foreign key, in order

    @property
    def table(self):
        return self.cls()


@dataclass
class PipelinePlan:
    nodes: dict[str, TableNode]
    root: str | None
    partitioned: set[str]

    @property
    def root_node(self) -> TableNode | None:
        return self.nodes.get(self.root) if self.root else None

    def groups(self) -> list[list[TableNode]]:
        """Masters with their parts (a multi-asset each), in dependency order."""
        order = list(self.nodes)
        out = []
        for name in order:
            node = self.nodes[name]
            if node.master is None:
                parts = [self.nodes[n] for n in order if self.nodes[n].master == name]
                out.append([node] + parts)
        return out


def collect_tables(sources) -> list[type]:
    """Table classes from schemas, modules, classes or lists of them."""
    from ..schema import Schema
    from ..table import Table

    found: dict[str, type] = {}

    def add(obj):
        if isinstance(obj, Schema):
            for cls in obj.classes.values():
                found.setdefault(f"{obj.database}.{cls._table_name}", cls)
        elif isinstance(obj, type) and issubclass(obj, Table) and obj._schema is not None:
            found.setdefault(f"{obj._schema.database}.{obj._table_name}", obj)
            for member in vars(obj).values():
                if isinstance(member, type) and issubclass(member, Table) and member._schema is not None \
                        and member is not obj and getattr(member, "master", None) is obj:
                    add(member)
        elif isinstance(obj, (list, tuple, set)):
            for o in obj:
                add(o)
        elif hasattr(obj, "__dict__"):  # a module or namespace
            for value in list(vars(obj).values()):
                if isinstance(value, Schema) or (isinstance(value, type) and issubclass(value, Table)):
                    add(value)
        else:
            raise DataJointError(f"Cannot take tables from {obj!r}")

    for s in sources:
        add(s)
    if not found:
        raise DataJointError("No bound table classes found in the given sources")
    return list(found.values())


def make_plan(classes: list[type], partition_root: type | str | None = None) -> PipelinePlan:
    if not classes:
        raise DataJointError("A pipeline needs at least one table")
    conn = classes[0]._schema.connection
    graph = conn.dependencies
    by_name = {f"{c._schema.database}.{c._table_name}": c for c in classes}
    order = graph.topo_sort(by_name)
    nodes = {}
    for name in order:
        cls = by_name[name]
        master = getattr(cls, "master", None)
        master_name = f"{master._schema.database}.{master._table_name}" if master is not None else None
        parents = list(dict.fromkeys(p for p, _ in graph.parents(name)))
        nodes[name] = TableNode(cls, name, cls.tier, master_name, parents)
    root = _root_name(partition_root, nodes, graph)
    partitioned = set()
    if root is not None:
        root_heading = nodes[root].table.heading
        root_pk = root_heading.primary_key
        below = set(graph.descendants(root))
        for name, node in nodes.items():
            if name not in below:
                continue
            heading = node.table.heading
            if all(a in heading.primary_key and heading[a].lineage == root_heading[a].lineage for a in root_pk):
                partitioned.add(name)
        # parts follow their master
        for name, node in nodes.items():
            if node.master in partitioned:
                partitioned.add(name)
    return PipelinePlan(nodes, root, partitioned)


def _root_name(partition_root, nodes: dict[str, TableNode], graph) -> str | None:
    if partition_root is False:
        return None
    if partition_root is not None:
        if isinstance(partition_root, str):
            matches = [n for n, node in nodes.items() if partition_root in (n, node.cls.__name__)]
        else:
            matches = [n for n, node in nodes.items() if node.cls is partition_root]
        if len(matches) != 1:
            raise DataJointError(f"Partition root {partition_root!r} is not one table of the pipeline")
        return matches[0]
    # infer: the Manual table whose key is part of the most computed tables' keys
    computed = [n for n, node in nodes.items() if node.tier in ("Imported", "Computed")]
    best, best_score = None, (0, 0)
    for name, node in nodes.items():
        if node.tier != "Manual" or node.master is not None:
            continue
        below = set(graph.descendants(name))
        heading = node.table.heading
        pk = heading.primary_key
        score = 0
        for c in computed:
            if c in below:
                h = nodes[c].table.heading
                if all(a in h.primary_key and h[a].lineage == heading[a].lineage for a in pk):
                    score += 1
        if score and (score, len(pk)) > best_score:
            best, best_score = name, (score, len(pk))
    return best
