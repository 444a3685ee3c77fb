"""Regenerate a table's definition text from the database."""

from __future__ import annotations

from . import catalog, naming


def describe(table) -> str:
    info = table._info
    lines = []
    if info.comment:
        lines.append(f"# {info.comment}")
    covered: set[str] = set()
    master = naming.master_of(info.name)
    body = {True: [], False: []}
    fk_by_first = {}
    for fk in info.foreign_keys:
        first = next(iter(fk.attr_map))
        fk_by_first.setdefault(first, []).append(fk)
    for attr in info.heading:
        if attr.hidden:
            continue
        for fk in fk_by_first.pop(attr.name, []):
            p_schema, p_table = catalog.split_name(fk.parent)
            if master and p_table == master and p_schema == info.schema:
                ref = "master"
            else:
                ref = naming.class_name_of(p_table)
                if naming.tier_of(p_table) == "Part":
                    ref = f"{naming.class_name_of(naming.master_of(p_table))}.{ref}"
                if p_schema != info.schema:
                    ref = f"{p_schema}.{ref}"
            renames = {c: p for c, p in fk.attr_map.items() if c != p}
            if renames:
                ref += ".proj(" + ", ".join(f"{c}='{p}'" for c, p in renames.items()) + ")"
            opts = []
            if not fk.primary and any(info.heading[c].nullable for c in fk.attr_map):
                opts.append("nullable")
            if any(u and set(cols) == set(fk.attr_map) for u, cols in info.indexes):
                opts.append("unique")
            body[fk.primary].append(f"-> {'[' + ', '.join(opts) + '] ' if opts else ''}{ref}")
            covered.update(fk.attr_map)
        if attr.name not in covered:
            body[attr.in_key].append(attr.definition_line())
    lines += body[True]
    lines.append("---")
    lines += body[False]
    for unique, cols in info.indexes:
        if unique and any(set(cols) == set(fk.attr_map) for fk in info.foreign_keys):
            continue
        lines.append(f"{'unique ' if unique else ''}index({', '.join(cols)})")
    return "\n".join(lines) + "\n"
