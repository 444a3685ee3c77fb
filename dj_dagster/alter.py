"""alter(): change a table's secondary attributes and comment in place. Primary keys
and foreign keys define the pipeline's structure and never change this way: declare a
new table instead."""

from __future__ import annotations

from . import catalog
from .declare import parse_definition
from .errors import DeclarationError


def _signature(attr) -> tuple:
    return attr.type.text, attr.nullable, attr.default, attr.comment


def alter(table, definition: str) -> dict[str, list[str]]:
    """Apply ``definition`` to ``table``; returns the attributes added, dropped and changed."""
    cls = type(table)
    info = table._info
    schema = cls._schema
    where = info.full_name
    new = parse_definition(definition, schema._context_for(cls, {}), where)
    old = info.heading
    new_pk = [(a.name, a.type.text) for a in new.attributes if a.in_key and not a.hidden]
    old_pk = [(a.name, a.type.text) for a in old if a.in_key and not a.hidden]
    if new_pk != old_pk:
        raise DeclarationError(f"alter() cannot change the primary key of {where}: {old_pk} -> {new_pk}")
    old_fks = {(fk.parent, tuple(sorted(fk.attr_map.items()))) for fk in info.foreign_keys}
    new_fks = {(fk.parent._info.full_name, tuple(sorted(fk.attr_map.items()))) for fk in new.foreign_keys}
    if old_fks != new_fks:
        raise DeclarationError(f"alter() cannot change the foreign keys of {where}")
    old_sec = {a.name: a for a in old if not a.in_key and not a.hidden}
    new_sec = {a.name: a for a in new.attributes if not a.in_key}
    dropped = [n for n in old_sec if n not in new_sec]
    added = [n for n in new_sec if n not in old_sec]
    changed = [n for n in new_sec if n in old_sec and _signature(new_sec[n]) != _signature(old_sec[n])]
    conn = table._connection
    adapter = conn.adapter
    with conn.transaction() as tx:
        for name in dropped:
            adapter.drop_column(tx, info.schema, info.name, name)
        for name in added:
            a = new_sec[name]
            if not a.nullable and a.default is None and len(table) > 0:
                raise DeclarationError(f"alter() cannot add required attribute {name!r} to non-empty {where}: "
                                       "give it a default or make it nullable")
            adapter.add_column(tx, info.schema, info.name, catalog.build_column(adapter, a, info.schema, info.name))
        for name in changed:
            a, before = new_sec[name], old_sec[name]
            column = catalog.build_column(adapter, a, info.schema, info.name)
            if _signature(a)[:3] == _signature(before)[:3]:
                adapter.change_comment(tx, info.schema, info.name, column)
            else:
                adapter.modify_column(tx, info.schema, info.name, column)
        if new.comment != info.comment:
            adapter.set_table_comment(tx, info.schema, info.name, new.comment)
    catalog.forget(conn, info.schema, info.name)
    return {"added": added, "dropped": dropped, "changed": changed}

