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


def parse_value(attr, text: str) -> Any:
    name = attr.type.name
    if _BAD_ESCAPE.search(text):
        raise ValueError("invalid percent-encoding")
    try:
        raw = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise ValueError("invalid percent-encoding") from None
    if name == "bool":
        if raw not in ("0", "1"):
            raise ValueError("expected 0 or 1")
        return raw == "1"
    if name.startswith(("int", "uint")):
        if not raw.lstrip("-").isdigit():
            raise ValueError("expected an integer")
        return int(raw)
    if name.startswith("float"):
        return float(raw)
    if name == "decimal":
        return decimal.Decimal(raw)
    if name == "date":
        return dt.date.fromisoformat(raw)
    if name == "datetime":
        return dt.datetime.fromisoformat(raw)
    if name == "time":
        return dt.time.fromisoformat(raw)
    if name == "uuid":
        return uuid.UUID(raw)
    if name == "enum" and raw not in attr.type.args:
        raise ValueError(f"not one of {list(attr.type.args)}")
    return raw


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
