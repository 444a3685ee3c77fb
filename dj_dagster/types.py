"""Declared attribute types: DataJoint core types, codec types ``<name@store>`` and
native SQL types. The backend adapters turn a :class:`TypeSpec` into a SQLAlchemy
type; the declared text survives in the column comment (``:type:comment``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import DeclarationError

CORE_SIMPLE = {
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "bool", "uuid", "json", "bytes", "date", "datetime", "time",
}
CORE_PARAM = {"char", "varchar", "enum", "decimal", "datetime"}
# native SQL types accepted with a warning, mapped to the nearest core type
NATIVE_ALIASES = {
    "tinyint": "int8", "smallint": "int16", "int": "int32", "integer": "int32",
    "bigint": "int64", "mediumint": "int32", "tinyint unsigned": "uint8",
    "smallint unsigned": "uint16", "int unsigned": "uint32", "integer unsigned": "uint32",
    "mediumint unsigned": "uint32", "bigint unsigned": "uint64", "float": "float32",
    "double": "float64", "real": "float64", "double precision": "float64", "boolean": "bool",
    "text": "text", "longtext": "text", "mediumtext": "text", "tinytext": "text",
    "blob": "bytes", "longblob": "bytes", "mediumblob": "bytes", "tinyblob": "bytes",
    "timestamp": "datetime", "year": "int16", "bytea": "bytes", "jsonb": "json",
    "numeric": "decimal", "serial": "int32",
}
_PARAM = re.compile(r"^(?P<name>[a-z][a-z ]*?)\s*\((?P<args>.*)\)\s*(?P<tail>unsigned)?$", re.S)
_CODEC = re.compile(r"^<\s*(?P<name>[a-z][a-z0-9_]*)\s*(?:@\s*(?P<store>[a-z0-9_\-]*))?\s*>$", re.I)


@dataclass(frozen=True)
class TypeSpec:
    """A parsed declared type. ``kind`` is core, codec or native."""

    text: str  # as declared, normalised spacing
    kind: str
    name: str  # core name (``varchar``), codec name (``blob``) or native alias target
    args: tuple = ()
    store: str | None = None  # codec store; '' means the default store
    auto_increment: bool = False  # an integer the server numbers (``int auto_increment``)

    @property
    def is_codec(self) -> bool:
        return self.kind == "codec"

    @property
    def external(self) -> bool:
        return self.store is not None

    @property
    def numeric(self) -> bool:
        return self.name.startswith(("int", "uint", "float", "decimal"))


def _split_args(args: str, where: str = "") -> tuple:
    """The values of ``enum(...)``: each one quoted (``'`` or ``"``), separated by commas;
    a doubled quote inside quotes is one quote character, as in SQL (``enum('it''s')``,
    which datajoint declares too). Anything else outside the quotes is refused (it
    would otherwise be read into a value, or into the DDL)."""
    values, i, n = [], 0, len(args)
    while True:
        while i < n and args[i].isspace():
            i += 1
        if i >= n or args[i] not in "'\"":
            raise DeclarationError(f"{where}enum({args}): every value must be quoted")
        quote, token, i = args[i], "", i + 1
        while True:
            if i >= n:
                raise DeclarationError(f"{where}enum({args}): a quote is not closed")
            if args[i] == quote and args[i + 1:i + 2] == quote:
                token, i = token + quote, i + 2
            elif args[i] == quote:
                i += 1
                break
            else:
                token, i = token + args[i], i + 1
        values.append(token)
        while i < n and args[i].isspace():
            i += 1
        if i >= n:
            return tuple(values)
        if args[i] != ",":
            raise DeclarationError(f"{where}enum({args}): unexpected {args[i:]!r} after the value {token!r}")
        i += 1


_INT_ARG = re.compile(r"\s*[+-]?[0-9]{1,9}\s*", re.ASCII)
MAX_CHAR = 255
MAX_VARCHAR = 16383  # MySQL's limit for utf8mb4 (4 bytes a character, 65535 bytes a row)
MAX_DECIMAL_DIGITS = 65  # MySQL's limit
MAX_DECIMAL_SCALE = 30
MAX_ENUM_VALUE = 255


def check_declarable(spec: TypeSpec, where: str = "") -> None:
    """Bounds every backend accepts, checked when a table is declared (a table read back
    from the database is taken as it is)."""
    raw, name, args = spec.text, spec.name, spec.args
    if spec.is_codec:
        return
    if name in ("char", "varchar"):
        hi = MAX_CHAR if name == "char" else MAX_VARCHAR
        if not 1 <= args[0] <= hi:
            raise DeclarationError(f"{where}type {raw!r}: the length must be between 1 and {hi}")
    elif name == "decimal":
        p, sc = args
        if not (1 <= p <= MAX_DECIMAL_DIGITS and 0 <= sc <= min(p, MAX_DECIMAL_SCALE)):
            raise DeclarationError(f"{where}type {raw!r}: precision must be 1..{MAX_DECIMAL_DIGITS} and scale "
                                   f"0..min(precision, {MAX_DECIMAL_SCALE})")
    elif name in ("datetime", "time") and args:
        if not 0 <= args[0] <= 6:
            raise DeclarationError(f"{where}type {raw!r}: fractional-second precision must be 0..6")
    elif name == "bytes" and args:
        if len(args) != 1 or not 1 <= args[0] <= 65535:
            raise DeclarationError(f"{where}type {raw!r}: the length must be between 1 and 65535")
    elif name == "enum":
        _check_enum(raw, args, where)


def _check_enum(raw: str, values: tuple, where: str) -> None:
    if len(set(values)) != len(values):
        raise DeclarationError(f"{where}enum type {raw!r} repeats a value")
    for v in values:
        if "\x00" in v or "\\" in v or v != v.rstrip(" ") or len(v) > MAX_ENUM_VALUE:
            raise DeclarationError(f"{where}enum value {v!r} is not allowed: no NUL, backslash or trailing spaces, "
                                   f"at most {MAX_ENUM_VALUE} characters")
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise DeclarationError(f"{where}enum value {v!r} is not valid unicode") from None


_AUTO_INCREMENT = re.compile(r"^(?P<type>.*?)\s+auto_increment$", re.I | re.S)


def parse_type(text: str, where: str = "") -> TypeSpec:
    """Parse a declared type; raise :class:`DeclarationError` naming ``where``.

    Accepts core types (``int32``, ``varchar(64)``), codec types (``<blob@store>``) and
    native SQL types (``int``, ``double``, ``longblob``; accepted with a warning), and
    datajoint's ``<integer type> auto_increment``."""
    raw = " ".join(text.strip().split())
    auto = _AUTO_INCREMENT.fullmatch(raw)
    if auto:
        base = parse_type(auto.group("type"), where)
        if base.is_codec or not base.name.startswith(("int", "uint")):
            raise DeclarationError(f"{where}auto_increment needs an integer type, got {auto.group('type')!r}")
        return replace(base, text=raw, auto_increment=True)
    low = raw.lower()
    m = _CODEC.fullmatch(raw)
    if m:
        store = m.group("store")
        if store is None and "@" in raw:
            store = ""
        return TypeSpec(raw, "codec", m.group("name").lower(), (), store)
    if low in CORE_SIMPLE:
        return TypeSpec(low, "core", low)
    m = _PARAM.fullmatch(raw)
    if m:
        name = m.group("name").strip().lower()
        args_text = m.group("args")
        if name == "enum":
            values = _split_args(args_text, where)
            if any(v == "" for v in values):
                raise DeclarationError(f"{where}enum type {raw!r} needs quoted, non-empty values")
            return TypeSpec(raw, "core", "enum", values)
        if not all(_INT_ARG.fullmatch(a) for a in args_text.split(",")):
            raise DeclarationError(f"{where}type {raw!r} has non-integer parameters")
        args = tuple(int(a) for a in args_text.split(","))
        if name in ("char", "varchar") and len(args) == 1:
            return TypeSpec(low, "core", name, args)
        if name in ("decimal", "numeric") and len(args) in (1, 2):
            return TypeSpec(low, "core" if name == "decimal" else "native", "decimal", args if len(args) == 2 else (args[0], 0))
        if name in ("datetime", "timestamp", "time") and len(args) == 1:
            return TypeSpec(low, "core" if name == "datetime" else "native", name if name != "timestamp" else "datetime", args)
        if name in ("varbinary", "binary"):
            return TypeSpec(low, "native", "bytes", args)
        if name in ("float", "double") :
            return TypeSpec(low, "native", "float64")
        if name in NATIVE_ALIASES and m.group("tail") is None:
            # int(11) style display widths
            return TypeSpec(low, "native", NATIVE_ALIASES[name])
        if name + " unsigned" in NATIVE_ALIASES and m.group("tail"):
            return TypeSpec(low, "native", NATIVE_ALIASES[name + " unsigned"])
    if low in NATIVE_ALIASES:
        return TypeSpec(low, "native", NATIVE_ALIASES[low])
    raise DeclarationError(f"{where}unknown type {raw!r}")
