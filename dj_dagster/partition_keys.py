"""Readable, exact partition keys for primary-key values: ``subject=m01/session=3``.

Characters that Dagster or this format reserve (``/ | , = [ ] . % *``, whitespace,
control characters, quotes and backslashes) are percent-encoded as UTF-8; everything
else, unicode letters included, stays readable. Decoding checks the attribute names and
converts each value by its declared type, so a key from the UI or a URL reaches SQL
only as typed, bound values."""

from __future__ import annotations

import datetime as dt
import re
import decimal
import uuid
from typing import Any, Sequence
from urllib.parse import unquote

from .errors import DataJointError

RESERVED = set("/|,=[].%*\"'\\?#&+")


class PartitionKeyError(DataJointError):
    """A partition key that does not decode to a primary key of its table."""


def _escape(text: str) -> str:
    out = []
    for ch in text:
        if ch in RESERVED or ch.isspace() or ord(ch) < 32 or ord(ch) == 127 or not ch.isprintable():
            out.append("".join(f"%{b:02X}" for b in ch.encode("utf-8")))
        else:
            out.append(ch)
    return "".join(out)


def format_value(attr, value: Any) -> str:
    name = attr.type.name
    if isinstance(value, bool) or name == "bool":
        return "1" if value else "0"
    if name.startswith(("int", "uint")):
        return str(int(value))
    if name.startswith("float"):
        return _escape(repr(float(value)))
    if name == "decimal":
        return _escape(str(value))
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return _escape(value.isoformat())
    if isinstance(value, uuid.UUID):
        return str(value)
    return _escape(str(value))


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


_INT = re.compile(r"-?[0-9]+", re.ASCII)


def parse_value(attr, text: str) -> Any:
    """The typed value of one percent-encoded part; ValueError when it is not a value
    the attribute's type can hold (checked as an insert would check it)."""
    from .insert_rows import _coercer

    name = attr.type.name
    if _BAD_ESCAPE.search(text):
        raise ValueError("invalid percent-encoding")
    try:
        raw = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("invalid percent-encoding") from None
    try:
        if name == "bool":
            if raw not in ("0", "1"):
                raise ValueError("expected 0 or 1")
            value: Any = raw == "1"
        elif name.startswith(("int", "uint")):
            if not _INT.fullmatch(raw) or len(raw) > 30:
                raise ValueError("expected an integer")
            value = int(raw)
        elif name.startswith("float"):
            value = float(raw)
        elif name == "decimal":
            value = decimal.Decimal(raw)
        elif name == "date":
            value = dt.date.fromisoformat(raw)
        elif name == "datetime":
            value = dt.datetime.fromisoformat(raw)
        elif name == "time":
            value = dt.time.fromisoformat(raw)
        elif name == "uuid":
            value = uuid.UUID(raw)
        else:
            value = raw
    except (ValueError, ArithmeticError, TypeError) as exc:
        raise ValueError(str(exc) or f"not a {attr.type.text}") from None
    if attr.type.is_codec:
        raise ValueError(f"a {attr.type.text} attribute cannot be part of a partition key")
    # NUL passes: no row holds it (inserts refuse it), but the key is well formed and round-trips
    probe = value.replace("\x00", " ") if isinstance(value, str) else value
    try:
        checked = _coercer(attr)(probe)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise ValueError(str(exc)) from None
    if isinstance(value, str) and checked == probe:
        checked = value
    if checked is None or checked != value:
        raise ValueError(f"not a value of {attr.type.text}")
    return checked


def encode_key(heading, key: dict, attrs: Sequence[str] | None = None) -> str:
    names = list(attrs) if attrs is not None else heading.primary_key
    return "/".join(f"{n}={format_value(heading[n], key[n])}" for n in names)


def decode_key(heading, text: str, attrs: Sequence[str] | None = None, table: str = "") -> dict:
    names = list(attrs) if attrs is not None else heading.primary_key
    where = f" for table {table}" if table else ""
    if not isinstance(text, str):
        raise PartitionKeyError(f"Partition key{where} must be a string, got {type(text).__name__}")
    parts = text.split("/") if names else []
    if len(parts) != len(names):
        raise PartitionKeyError(f"Partition key {text!r}{where} must name {names} as 'a=1/b=2'")
    unknown = [n for n in names if n not in heading]
    if unknown:
        raise PartitionKeyError(f"Partition key attributes {unknown}{where} are not attributes of the table")
    key = {}
    for name, part in zip(names, parts):
        attr_name, sep, value = part.partition("=")
        if not sep or attr_name != name:
            raise PartitionKeyError(f"Partition key {text!r}{where}: expected attribute {name!r} at {part!r}")
        try:
            key[name] = parse_value(heading[name], value)
        except ValueError as exc:
            raise PartitionKeyError(f"Partition key {text!r}{where}: attribute {name!r} value {value!r}: {exc}") \
                from None
    return key
