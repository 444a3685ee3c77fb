"""The definition language: text -> :class:`TableDef` (attributes, foreign keys,
indexes). Foreign-key references are Python expressions evaluated in the caller's
namespace (``-> Subject``, ``-> master``, ``-> Neuron.proj(pre='neuron_id')``)."""

from __future__ import annotations

import ast
import re
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from .errors import DeclarationError
from .heading import Attribute
from .types import check_declarable, parse_type

_NAME = re.compile(r"[a-z][a-z0-9_]*")
MAX_NAME = 63  # PostgreSQL silently truncates longer identifiers
MAX_COLUMN_COMMENT = 1024  # MySQL's limits, in characters
MAX_TABLE_COMMENT = 2048
MAX_KEY_VARCHAR = 768  # InnoDB: 3072 bytes per key, 4 bytes per utf8mb4 character
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


def _check_comment(text: str, limit: int, what: str, where: str) -> None:
    if "\x00" in text:
        raise DeclarationError(f"{where}{what} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise DeclarationError(f"{where}{what} is not valid unicode (lone surrogate)") from None
    if len(text) > limit:
        raise DeclarationError(f"{where}{what} is too long ({len(text)} > {limit} characters)")


def unquote_default(text: str) -> str | None:
    """The value of a quoted default as SQL reads it (``'it''s'`` is ``it's``: a doubled
    quote inside the quotes is one quote character); None if ``text`` is not one quoted
    value (unquoted, or a lone quote inside, as in ``'a'b'``)."""
    if len(text) < 2 or text[0] not in "'\"" or text[-1] != text[0]:
        return None
    quote, inner = text[0], text[1:-1]
    if inner.replace(quote * 2, "").count(quote):
        return None
    return inner.replace(quote * 2, quote)


def _check_default(attr: Attribute, where: str) -> None:
    """A declared default must be a value of the attribute's type (checked as an insert
    would check it), so the database never refuses the table for it."""
    from .insert_rows import _coercer

    text, spec, name = attr.default, attr.type, attr.name
    if text is None:
        return
    if spec.is_codec:
        raise DeclarationError(f"{where}attribute {name!r} of codec type {spec.text} can only default to null")
    if text == "CURRENT_TIMESTAMP":
        if spec.name != "datetime":
            raise DeclarationError(f"{where}attribute {name!r}: CURRENT_TIMESTAMP is a default for datetime only")
        return
    value = unquote_default(text)
    if value is None and text[:1] in "'\"":
        raise DeclarationError(f"{where}default {text!r} of attribute {name!r} is not one quoted value "
                               "(write a quote inside the quotes twice: 'it''s')")
    if value is None and not (spec.name == "bool" and text.lower() in ("0", "1", "true", "false")):
        try:
            float(text)
        except ValueError:
            raise DeclarationError(f"{where}default {text!r} of attribute {name!r} must be quoted") from None
    value = text if value is None else value
    if spec.name in ("json", "bytes"):
        _check_comment(value, 65535, f"default of attribute {name!r}", where)
        return
    try:
        converted = _coercer(attr)(value)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise DeclarationError(f"{where}default {text!r} of attribute {name!r} is not a {spec.text}: {exc}") \
            from None
    if converted is None:
        raise DeclarationError(f"{where}default {text!r} of attribute {name!r} is not a {spec.text}")


def _check_in_key(attr: Attribute, where: str) -> None:
    spec = attr.type
    if spec.is_codec:
        raise DeclarationError(f"{where}primary-key attribute {attr.name!r} cannot have codec type {spec.text}")
    if spec.name in ("json", "bytes", "text"):
        raise DeclarationError(f"{where}primary-key attribute {attr.name!r} cannot have type {spec.text}")
    if spec.name in ("char", "varchar") and spec.args and spec.args[0] > MAX_KEY_VARCHAR:
        raise DeclarationError(f"{where}primary-key attribute {attr.name!r}: {spec.text} is too long for a key "
                               f"(at most {MAX_KEY_VARCHAR} characters)")


def parse_attribute(line: str, in_key: bool, where: str) -> Attribute:
    head, rest = _split_unquoted(line, ":")
    if rest is None:
        raise DeclarationError(f"{where}cannot parse {line!r}: expected 'name [= default] : type [# comment]'")
    type_text, comment = _split_unquoted(rest, "#")
    name, default = (s.strip() for s in head.split("=", 1)) if "=" in head else (head.strip(), None)
    if not _NAME.fullmatch(name):
        raise DeclarationError(
            f"{where}attribute name {name!r} is invalid: use lower case letters, digits and _ starting with a letter"
        )
    if len(name) > MAX_NAME:
        raise DeclarationError(f"{where}attribute name {name!r} is longer than {MAX_NAME} characters")
    spec = parse_type(type_text, where=f"{where}attribute {name!r}: ")
    check_declarable(spec, where=f"{where}attribute {name!r}: ")
    if spec.is_codec:
        from .codecs import resolve_dtype
        from .errors import DataJointError

        try:
            resolve_dtype(f"<{spec.name}>", store_name=spec.store)  # a known codec, usable with(out) a store
        except DataJointError as exc:
            raise DeclarationError(f"{where}attribute {name!r}: {exc}") from None
    if spec.kind == "native":
        warnings.warn(f"{where}attribute {name!r} uses native type {spec.text!r}; prefer a core type", stacklevel=4)
    if default == "":
        raise DeclarationError(f"{where}attribute {name!r} has '=' but no default value")
    nullable = default is not None and default.lower() == "null"
    if nullable:
        if in_key:
            raise DeclarationError(f"{where}primary-key attribute {name!r} cannot be nullable")
        default = None
    if default is not None and default.upper() in ("CURRENT_TIMESTAMP", "NOW()"):
        default = "CURRENT_TIMESTAMP"
    attr = Attribute(name=name, type=spec, in_key=in_key, nullable=nullable, default=default,
                     comment=(comment or "").strip())
    if in_key:
        _check_in_key(attr, where)
    _check_default(attr, where)
    _check_comment(attr.sql_comment, MAX_COLUMN_COMMENT, f"the comment of attribute {name!r}", where)
    return attr


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
    if not isinstance(text, str):
        raise DeclarationError(f"Table {table}: the definition must be a string, got {type(text).__name__}")
    # line numbers count from the first non-blank line of the definition
    lines = text.strip().splitlines()
    first = 1
    if lines and lines[0].strip().startswith("#"):
        result.comment = lines.pop(0).strip().lstrip("#").strip()
        _check_comment(result.comment, MAX_TABLE_COMMENT, "the table comment", f"Table {table}, line 1: ")
        first = 2
    seen: dict[str, Attribute] = {}
    index_lines: list[str] = []
    for lineno, raw in enumerate(lines, start=first):
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
            ref_text = _split_unquoted(m.group("ref"), "#")[0].strip()
            ref = resolve_reference(ref_text, context, where)
            parent, renames = _fk_target(ref, where)
            attr_map = {}
            for pattr in parent.heading.primary_key:
                child_name = renames.get(pattr, pattr)
                if not isinstance(child_name, str) or not _NAME.fullmatch(child_name) or len(child_name) > MAX_NAME:
                    raise DeclarationError(f"{where}foreign key renames {pattr!r} to the invalid name {child_name!r}")
                attr_map[child_name] = pattr
                if child_name in seen:
                    ptype = parent.heading[pattr].type
                    if seen[child_name].type.name != ptype.name or seen[child_name].type.args != ptype.args:
                        raise DeclarationError(
                            f"{where}attribute {child_name!r} is already declared as {seen[child_name].type.text}, "
                            f"but the foreign key to {ref_text} needs {ptype.text}")
                    continue
                inherited = replace(parent.heading[pattr], name=child_name, in_key=in_key,
                                    nullable=nullable, default=None, hidden=False)
                seen[child_name] = inherited
                result.attributes.append(inherited)
            if any(fk.attr_map == attr_map and fk.parent.full_table_name == parent.full_table_name
                   for fk in result.foreign_keys):
                raise DeclarationError(f"{where}the foreign key {ref_text} repeats an earlier one")
            result.foreign_keys.append(ForeignKey(parent, attr_map, in_key, nullable, unique))
            if unique:
                result.indexes.append((True, tuple(attr_map)))
            continue
        m = _INDEX.match(line)
        if m:
            attrs = tuple(a.strip().strip("`") for a in m.group("attrs").split(",") if a.strip())
            if not attrs:
                raise DeclarationError(f"{where}index names no attributes")
            if len(set(attrs)) != len(attrs):
                raise DeclarationError(f"{where}index names an attribute twice: {list(attrs)}")
            if any(attrs == other for _, other in result.indexes):
                raise DeclarationError(f"{where}an index on {list(attrs)} is already declared")
            result.indexes.append((bool(m.group("unique")), attrs))
            index_lines.append(where)
            continue
        attr = parse_attribute(line, in_key, where)
        if attr.name in seen:
            raise DeclarationError(f"{where}attribute {attr.name!r} is declared twice")
        seen[attr.name] = attr
        result.attributes.append(attr)
    for (unique, attrs), where in zip(result.indexes, index_lines + [f"Table {table}: "] * len(result.indexes)):
        missing = [a for a in attrs if a not in seen]
        if missing:
            raise DeclarationError(f"{where}index on unknown attribute(s) {missing}")
        unindexable = [a for a in attrs if seen[a].type.is_codec or seen[a].type.name in ("json", "bytes", "text")]
        if unindexable:
            raise DeclarationError(f"{where}attribute(s) {unindexable} cannot be indexed")
    if not any(a.in_key for a in result.attributes):
        result.attributes.insert(0, Attribute(SINGLETON, parse_type("bool"), in_key=True, default="1", hidden=True))
    # primary key first, in declaration order
    result.attributes.sort(key=lambda a: not a.in_key)
    return result


_REF_HELP = "a foreign key reference names a table: Table, module.Table, master, or Table.proj(new='old')"


def resolve_reference(text: str, context: Mapping[str, Any], where: str) -> Any:
    """Evaluate a foreign-key reference without running arbitrary code: names, attribute
    access and ``.proj(...)`` with string arguments only."""
    if not text:
        raise DeclarationError(f"{where}foreign key reference is empty; {_REF_HELP}")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError):
        raise DeclarationError(f"{where}cannot parse foreign key reference {text!r}; {_REF_HELP}") from None

    def value(node: ast.AST) -> Any:
        if isinstance(node, ast.Name):
            if node.id not in context:
                raise DeclarationError(f"{where}foreign key reference {text!r}: {node.id!r} is not defined")
            return context[node.id]
        if isinstance(node, ast.Attribute) and not node.attr.startswith("_"):
            base = value(node.value)
            try:
                return getattr(base, node.attr)
            except Exception as exc:  # noqa: BLE001
                raise DeclarationError(f"{where}foreign key reference {text!r}: {type(exc).__name__}: {exc}") \
                    from None
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "proj"
                and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
                and all(k.arg is not None and isinstance(k.value, ast.Constant) and isinstance(k.value.value, str)
                        for k in node.keywords)):
            base = value(node.func.value)
            if isinstance(base, type):
                base = _instance(base, where)
            try:
                return base.proj(*[a.value for a in node.args], **{k.arg: k.value.value for k in node.keywords})
            except Exception as exc:  # noqa: BLE001
                raise DeclarationError(f"{where}foreign key reference {text!r}: {exc}") from None
        raise DeclarationError(f"{where}unsupported foreign key reference {text!r}; {_REF_HELP}")

    return value(tree.body)


def _instance(ref: type, where: str) -> Any:
    try:
        return ref()
    except Exception as exc:  # noqa: BLE001
        raise DeclarationError(f"{where}foreign key reference {ref.__name__}: {exc}") from None


def _fk_target(ref: Any, where: str) -> tuple[Any, dict[str, str]]:
    """Resolve ``ref`` to (parent table instance, {parent_attr: child_name})."""
    if isinstance(ref, type):
        ref = _instance(ref, where)
    target = getattr(ref, "_fk_target", None)
    if target is None:
        raise DeclarationError(f"{where}foreign key reference {ref!r} is not a table")
    try:
        return target()
    except Exception as exc:
        raise DeclarationError(f"{where}{exc}") from None


def declare(full_table_name: str, definition: str, context: Mapping[str, Any], adapter) -> tuple:
    """Compile ``definition`` for the table ``full_table_name`` (``schema.table``, either
    name optionally in backquotes or double quotes) without creating it. ``context``
    resolves foreign-key names; ``adapter``: a connection's adapter (``conn.adapter``),
    which fixes the SQL dialect. Returns ``(sql, primary_key, foreign_keys)``: the CREATE
    TABLE statement (with the index statements the backend needs after it, one per
    line), the primary-key attribute names, and ``{attribute: (parent table, parent
    attribute)}`` for the foreign-key attributes."""
    import sqlalchemy as sa

    from . import catalog

    schema, _, table = full_table_name.replace("`", "").replace('"', "").partition(".")
    if not schema or not table:
        raise DeclarationError(f"declare(): {full_table_name!r} is not a full table name 'schema.table'")
    tdef = parse_definition(definition, context, f"{schema}.{table}")
    dialect = sa.dialects.registry.load(adapter.name)()
    sa_table = catalog.build_table(adapter, schema, table, tdef)
    statements = [str(sa.schema.CreateTable(sa_table).compile(dialect=dialect)).strip()]
    statements += [str(sa.schema.CreateIndex(i).compile(dialect=dialect)) for i in
                   sorted(sa_table.indexes, key=lambda i: i.name)]
    foreign_keys = {child: (fk.parent._info.full_name, parent) for fk in tdef.foreign_keys
                    for child, parent in fk.attr_map.items()}
    return "\n".join(statements), tdef.primary_key, foreign_keys
