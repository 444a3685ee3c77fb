"""alter(): change a table's secondary attributes and comment in place. Primary keys
and foreign keys define the pipeline's structure and never change this way: declare a
new table instead.

An attribute whose comment opens with ``{old_name}`` renames ``old_name``: the column
is renamed in place and keeps its values (on backends that cannot rename a column the
alter is refused, never turned into a drop and an add)."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace

import sqlalchemy as sa

from . import catalog
from .declare import parse_definition, unquote_default
from .errors import DataError, DataJointError, DeclarationError, translate_driver_error

log = logging.getLogger(__name__)

_RENAME_MARK = re.compile(r"\{\s*(?P<name>[a-z][a-z0-9_]*)\s*\}\s*")


@dataclass
class AlterStep:
    """One change to one column. ``kind``: ``drop``, ``add``, ``modify`` (type, default,
    nullability or position), ``comment`` (the comment alone) or ``rename`` (from
    ``old``, possibly changed too: ``retype``). ``after``: the column it follows, where
    the backend places columns (MySQL); None keeps the position."""

    kind: str
    name: str
    column: object = None  # the new sa.Column (not for drop)
    old: str | None = None
    after: str | None = None
    retype: bool = False

    def describe(self) -> str:
        where = f" after {self.after}" if self.after else ""
        if self.kind == "rename":
            return f"rename {self.old} to {self.name}{where}"
        return f"{self.kind} {self.name}{where}"


def _unquoted(default: str | None) -> str | None:
    value = None if default is None else unquote_default(default)
    return default if value is None else value


def _signature(attr) -> tuple:
    return attr.type.text, attr.nullable, _unquoted(attr.default)


def _take_renames(attributes, where: str) -> tuple[list, dict[str, str]]:
    """Strip ``{old_name}`` marks from the secondary attributes' comments: (attributes,
    {new name: old name})."""
    renames, out = {}, []
    for a in attributes:
        m = None if a.in_key else _RENAME_MARK.match(a.comment)
        if m:
            old = m.group("name")
            if old in renames.values():
                raise DataJointError(f"{where}alter() renames attribute {old!r} twice")
            a = replace(a, comment=a.comment[m.end():])
            if old != a.name:
                renames[a.name] = old
        out.append(a)
    return out, renames


def _foreign_key_parents(adapter, new) -> dict:
    """Foreign-key attribute -> (reflected type, schema) of the parent column, as at declaration."""
    parents = {}
    for fk in new.foreign_keys:
        pinfo = fk.parent._info
        for child, p in fk.attr_map.items():
            if p in pinfo.column_types:
                parents.setdefault(child, (pinfo.column_types[p], adapter.table_address(pinfo.schema, pinfo.name)[0]))
    return parents


def plan(table, definition: str, context) -> tuple[list[AlterStep], str | None, dict]:
    """Work out the changes without touching the database: (steps, the new table
    comment or None, a summary {added, dropped, changed, renamed}). Raises
    DataJointError for anything alter() cannot do, before any change is made."""
    info = table._info
    where = f"Table {info.full_name}: "
    new = parse_definition(definition, context, info.full_name)
    old = info.heading
    new_pk = [(a.name, a.type.text) for a in new.attributes if a.in_key and not a.hidden]
    old_pk = [(a.name, a.type.text) for a in old if a.in_key and not a.hidden]
    if new_pk != old_pk:
        raise DeclarationError(f"alter() cannot change the primary key of {info.full_name}: {old_pk} -> {new_pk}")
    old_fks = {(fk.parent, tuple(sorted(fk.attr_map.items()))) for fk in info.foreign_keys}
    new_fks = {(fk.parent._info.full_name, tuple(sorted(fk.attr_map.items()))) for fk in new.foreign_keys}
    if old_fks != new_fks:
        raise DeclarationError(f"alter() cannot change the foreign keys of {info.full_name}")
    attributes, renames = _take_renames(new.attributes, where)
    old_sec = {a.name: a for a in old if not a.in_key and not a.hidden}
    new_sec = {a.name: a for a in attributes if not a.in_key}
    for name, source in renames.items():
        if source not in old_sec:
            raise DataJointError(f"{where}attribute {source!r}, renamed to {name!r}, does not exist in the table "
                                 "(or is part of its primary key)")
        if source in new_sec:
            raise DataJointError(f"{where}attribute {source!r} is renamed to {name!r} but also declared again")
        if name in old_sec:
            raise DataJointError(f"{where}attribute {source!r} cannot be renamed to {name!r}: "
                                 f"{name!r} already exists")
    conn = table._connection
    adapter = conn.adapter
    if renames and not adapter.renames_columns:
        new_name, old_name = next(iter(renames.items()))
        raise DataJointError(f"{where}Renaming attribute `{old_name}` to `{new_name}` with alter() is not supported "
                             f"on {adapter.name}. No change was made.")
    sources = {name: renames.get(name, name) for name in new_sec}
    dropped = [n for n in old_sec if n not in sources.values()]
    added = [n for n in new_sec if sources[n] not in old_sec]
    required = [n for n in added if not new_sec[n].nullable and new_sec[n].default is None]
    if required and len(table) > 0:
        raise DeclarationError(f"alter() cannot add required attribute {required[0]!r} to non-empty "
                               f"{info.full_name}: give it a default or make it nullable")
    parents = _foreign_key_parents(adapter, new)

    def column(a):
        return catalog.build_column(adapter, a, info.schema, info.name, parents.get(a.name))

    steps = [AlterStep("drop", n) for n in dropped]
    # MySQL places columns: the new order is reached with AFTER, for each column whose
    # predecessor differs from the one it had
    order = [a.name for a in old if (a.in_key or not a.hidden) and a.name not in dropped]
    previous = None  # (name, old name) of the attribute before this one in the new definition
    for a in attributes:
        source = sources.get(a.name, a.name)
        if not a.in_key:
            after = None
            if previous is not None and adapter.places_columns:
                if source not in order:
                    after = previous[0]
                else:
                    idx = order.index(source)
                    if idx >= 1 and order[idx - 1] != previous[1]:
                        after = previous[0]
            if a.name in added:
                steps.append(AlterStep("add", a.name, column(a), after=after))
            else:
                before = old_sec[source]
                retype = _signature(a) != _signature(before)
                if source != a.name:
                    steps.append(AlterStep("rename", a.name, column(a), old=source, after=after, retype=retype))
                elif retype or after:
                    steps.append(AlterStep("modify", a.name, column(a), after=after, retype=retype))
                elif a.comment != before.comment:
                    steps.append(AlterStep("comment", a.name, column(a)))
        previous = (a.name, source)
    comment = new.comment if new.comment != info.comment else None
    changed = [s.name for s in steps if s.kind in ("comment", "rename") or (s.kind == "modify" and s.retype)]
    summary = {"added": added, "dropped": dropped, "changed": changed,
               "renamed": {new_name: old_name for new_name, old_name in renames.items()}}
    return steps, comment, summary


def alter(table, definition: str, context=None, prompt: bool = False) -> dict:
    """Apply ``definition`` to ``table``; returns the attributes added, dropped, changed
    (renamed ones count as changed) and ``renamed`` ({new: old}). ``context`` resolves
    foreign-key names (default: the table's declaration context). ``prompt``: show the
    changes and ask before making them."""
    cls = type(table)
    info = table._info
    conn = table._connection
    if conn.in_transaction:
        raise DataJointError(f"Cannot alter {info.full_name} inside a transaction (e.g. from a make() call)")
    if context is None:
        context = getattr(cls, "declaration_context", None) or cls._schema._context_for(cls, {})
    steps, comment, summary = plan(table, definition, context)
    if not steps and comment is None:
        log.info("alter(): nothing to change in %s", info.full_name)
        return summary
    if prompt:
        from .cascade import confirm

        changes = [s.describe() for s in steps] + (["change the table comment"] if comment is not None else [])
        if not confirm(f"Alter {info.full_name}: " + "; ".join(changes) + ". Proceed?"):
            log.warning("alter() of %s not confirmed: nothing changed", info.full_name)
            return {"added": [], "dropped": [], "changed": [], "renamed": {}}
    adapter = conn.adapter
    try:
        with conn.transaction() as tx:
            if steps:
                adapter.alter_columns(tx, info.schema, info.name, steps)
            if comment is not None:
                adapter.set_table_comment(tx, info.schema, info.name, comment)
    except sa.exc.DBAPIError as exc:  # e.g. MySQL refusing to truncate stored values
        raise DataError(f"Cannot alter {info.full_name}: {translate_driver_error(exc)}") from None
    finally:
        catalog.forget(conn, info.schema, info.name)
    return summary
