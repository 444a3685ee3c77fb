"""The definition language: text -> :class:`TableDef` (attributes, foreign keys,
indexes). Foreign-key references are Python expressions evaluated in the caller's
namespace (``-> Subject``, ``-> master``, ``-> Neuron.proj(pre='neuron_id')``)."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .errors import DeclarationError
from .heading import Attribute
from .types import parse_type

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_FK = re.compile(r"^->\s*(?:\[(?P<opts>[^\]]*)\])?\s*(?P<ref>.+)$")
_INDEX = re.compile(r"^(?P<unique>unique\s+)?index\s*\((?P<attrs>[^)]*)\)$", re.I)
_DIVIDER = re.compile(r"^-{3,}\s*$|^_{3,}\s*$")
SINGLETON = "_singleton"


@dataclass
class ForeignKey:
    parent: Any  # the parent Table instance
    attr_map: dict[str, str]  # child attribute -> parent attribute
    primary: bool
    nullable: bool = False
    unique: bool = False

    @property
    def renamed(self) -> bool:
        return any(c != p for c, p in self.attr_map.items())


@dataclass
class TableDef:
    comment: str = ""
    attributes: list[Attribute] = field(default_factory=list)
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    indexes: list[tuple[bool, tuple[str, ...]]] = field(default_factory=list)

    @property
    def primary_key(self) -> list[str]:
        return [a.name for a in self.attributes if a.in_key]


def _split_unquoted(text: str, sep: str) -> tuple[str, str | None]:
    """Split at the first ``sep`` outside quotes and parentheses."""
    depth, quote = 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            return text[:i], text[i + 1 :]
    return text, None


def job_metadata_attributes() -> list[Attribute]:
    """Hidden provenance columns of auto-populated tables (as datajoint 2.x adds them):
    when the row's make started, how long it took, and the code version that made it."""
    return [
        Attribute("_job_start_time", parse_type("datetime(3)"), nullable=True, comment="when computation began",
                  hidden=True),
        Attribute("_job_duration", parse_type("float32"), nullable=True, comment="computation duration in seconds",
                  hidden=True),
        Attribute("_job_version", parse_type("varchar(64)"), default='""', comment="code version", hidden=True),
    ]


def parse_attribute(line: str, in_key: bool, where: str) -> Attribute:
    head, rest = _split_unquoted(line, ":")
    if rest is None:
        raise DeclarationError(f"{where}cannot parse {line!r}: expected 'name [= default] : type [# comment]'")
    type_text, comment = _split_unquoted(rest, "#")
    name, default = (s.strip() for s in head.split("=", 1)) if "=" in head else (head.strip(), None)
    if not _NAME.match(name):
        raise DeclarationError(
            f"{where}attribute name {name!r} is invalid: use lower case letters, digits and _ starting with a letter"
        )
    spec = parse_type(type_text, where=f"{where}attribute {name!r}: ")
    if spec.kind == "native":
        warnings.warn(f"{where}attribute {name!r} uses native type {spec.text!r}; prefer a core type", stacklevel=4)
    nullable = default is not None and default.lower() == "null"
    if nullable:
        if in_key:
            raise DeclarationError(f"{where}primary-key attribute {name!r} cannot be nullable")
        default = None
    if default is not None and default.upper() in ("CURRENT_TIMESTAMP", "NOW()"):
        default = "CURRENT_TIMESTAMP"
    if in_key and spec.is_codec:
        raise DeclarationError(f"{where}primary-key attribute {name!r} cannot have codec type {spec.text}")
    return Attribute(name=name, type=spec, in_key=in_key, nullable=nullable, default=default,
                     comment=(comment or "").strip())


def _fk_options(text: str | None, where: str) -> tuple[bool, bool]:
    opts = {o.strip().lower() for o in (text or "").split(",") if o.strip()}
    unknown = opts - {"nullable", "unique"}
    if unknown:
        raise DeclarationError(f"{where}unknown foreign key option(s) {sorted(unknown)}")
    return "nullable" in opts, "unique" in opts


def parse_definition(text: str, context: Mapping[str, Any], table: str) -> TableDef:
    """Parse ``text`` for the table named ``table`` (used in messages)."""
    result = TableDef()
    in_key = True
    lines = text.strip().splitlines()
    if lines and lines[0].strip().startswith("#"):
        result.comment = lines.pop(0).strip().lstrip("#").strip()
    seen: dict[str, Attribute] = {}
    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        where = f"Table {table}, line {lineno}: "
        if not line or line.startswith("#"):
            continue
        if _DIVIDER.match(line):
            if not in_key:
                raise DeclarationError(f"{where}second '---' divider")
            in_key = False
            continue
        m = _FK.match(line)
        if m:
            nullable, unique = _fk_options(m.group("opts"), where)
            if nullable and in_key:
                raise DeclarationError(f"{where}a primary-key foreign key cannot be [nullable]")
            ref_text = m.group("ref").split("#")[0].strip()
            try:
                ref = eval(ref_text, dict(context))  # noqa: S307 - definitions are code
            except Exception as exc:
                raise DeclarationError(f"{where}cannot resolve foreign key reference {ref_text!r}: {exc}") from None
            parent, renames = _fk_target(ref, where)
            attr_map = {}
            for pattr in parent.heading.primary_key:
                child_name = renames.get(pattr, pattr)
                attr_map[child_name] = pattr
                if child_name in seen:
                    continue
                inherited = replace(parent.heading[pattr], name=child_name, in_key=in_key,
                                    nullable=nullable, default=None, hidden=False)
                seen[child_name] = inherited
                result.attributes.append(inherited)
            result.foreign_keys.append(ForeignKey(parent, attr_map, in_key, nullable, unique))
            if unique:
                result.indexes.append((True, tuple(attr_map)))
            continue
        m = _INDEX.match(line)
        if m:
            attrs = tuple(a.strip().strip("`") for a in m.group("attrs").split(",") if a.strip())
            result.indexes.append((bool(m.group("unique")), attrs))
            continue
        attr = parse_attribute(line, in_key, where)
        if attr.name in seen:
            raise DeclarationError(f"{where}attribute {attr.name!r} is declared twice")
        seen[attr.name] = attr
        result.attributes.append(attr)
    for unique, attrs in result.indexes:
        missing = [a for a in attrs if a not in seen]
        if missing:
            raise DeclarationError(f"Table {table}: index on unknown attribute(s) {missing}")
    if not any(a.in_key for a in result.attributes):
        result.attributes.insert(0, Attribute(SINGLETON, parse_type("bool"), in_key=True, default="1", hidden=True))
    # primary key first, in declaration order
    result.attributes.sort(key=lambda a: not a.in_key)
    return result


def _fk_target(ref: Any, where: str) -> tuple[Any, dict[str, str]]:
    """Resolve ``ref`` to (parent table instance, {parent_attr: child_name})."""
    if isinstance(ref, type):
        try:
            ref = ref()
        except Exception as exc:
            raise DeclarationError(f"{where}foreign key reference {ref.__name__}: {exc}") from None
    target = getattr(ref, "_fk_target", None)
    if target is None:
        raise DeclarationError(f"{where}foreign key reference {ref!r} is not a table")
    try:
        return target()
    except Exception as exc:
        raise DeclarationError(f"{where}{exc}") from None
