"""Rows in: accept every shape users pass (dicts, sequences, numpy records, DataFrames,
CSV paths), check each value against its declared type, and encode codec values.
Every problem names the table, the row and the attribute."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
import os
import re
import sys
import uuid
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

import numpy as np

from .errors import DataError, DuplicateError, MissingValueError, UnknownFieldError

INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1), "int16": (-(2**15), 2**15 - 1), "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint8": (0, 2**8 - 1), "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1), "uint64": (0, 2**64 - 1),
}


def _pandas():
    """pandas if the program has loaded it (only then can a value be a pandas one); so
    importing dj_dagster does not load pandas."""
    return sys.modules.get("pandas")


def _is_frame(rows: Any) -> bool:
    pd = _pandas()
    return pd is not None and isinstance(rows, pd.DataFrame)


def _to_rows(table, rows: Any) -> list[Mapping]:
    if type(rows) is list and all(type(r) is dict for r in rows):  # the common case, checked cheaply
        return rows
    if isinstance(rows, (str, os.PathLike)):
        path = os.fspath(rows)
        if not os.path.exists(path):
            raise DataError(f"Cannot insert into {table.full_table_name}: file {path!r} does not exist")
        import pandas as pd

        rows = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    rows = _from_columnar(rows)
    if _is_frame(rows):
        frame = rows.reset_index() if any(n is not None for n in rows.index.names) else rows
        # column by column to Python values (NaN, NaT and NA are read as NULL later)
        names = list(frame.columns)
        return [dict(zip(names, values)) for values in zip(*(frame[n].tolist() for n in names))]
    if isinstance(rows, np.ndarray) and rows.dtype.names:
        names = rows.dtype.names
        return [dict(zip(names, r)) for r in rows.tolist()]
    if isinstance(rows, Mapping):
        raise DataError(f"insert into {table.full_table_name} takes a list of rows; use insert1 for one dict")
    out = []
    names = table.heading.all_names
    visible = table.heading.names
    try:
        rows = iter(rows)
    except TypeError:
        raise DataError(f"Cannot insert into {table.full_table_name}: expected rows (a list of dicts, a DataFrame, "
                        f"a numpy record array or a CSV path), got a {type(rows).__name__}") from None
    warned = False
    for i, row in enumerate(rows):
        if isinstance(row, Mapping):
            out.append(row)
        elif isinstance(row, np.void) and row.dtype.names:
            out.append(dict(zip(row.dtype.names, row.tolist())))
        elif isinstance(row, (list, tuple, np.ndarray)):
            if not warned:
                warnings.warn("Positional inserts (tuples/lists) are deprecated and will be removed in a future "
                              "version: pass dicts naming the attributes, e.g. table.insert1({'attr': value})",
                              DeprecationWarning, stacklevel=4)
                warned = True
            row = list(row)
            target = visible if len(row) == len(visible) else names
            if len(row) != len(target):
                raise DataError(f"Cannot insert into {table.full_table_name}: row {i} has {len(row)} values, the "
                                f"table has {len(visible)} attributes {visible}")
            out.append(dict(zip(target, row)))
        elif (pd := _pandas()) is not None and isinstance(row, pd.Series):
            out.append(row.to_dict())  # a named row (df.iterrows(), df.loc[i]): its labels name the attributes
        else:
            raise DataError(f"Cannot insert into {table.full_table_name}: row {i} is a {type(row).__name__}, "
                            "expected a dict, a sequence or a numpy record")
    return out


def _from_columnar(rows: Any) -> Any:
    """A polars DataFrame or a pyarrow Table as a list of dicts (recognized by their type's
    module, so neither library is imported unless the caller already uses it); anything
    else unchanged."""
    kind = type(rows)
    module = kind.__module__.split(".")[0]
    if module == "polars" and kind.__name__ == "DataFrame":
        return rows.to_dicts()
    if module == "pyarrow" and kind.__name__ in ("Table", "RecordBatch"):
        return rows.to_pylist()
    return rows


def _fail(table, i: int, attr: str, value: Any, why: str, kind: type = DataError) -> DataError:
    try:
        shown = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not hide the real problem
        shown = f"<{type(value).__name__}>"
    shown = shown if len(shown) < 80 else shown[:77] + "..."
    err = kind(f"Cannot insert into {table.full_table_name}: row {i}, attribute {attr!r}, value {shown}: {why}")
    err.attribute = attr
    return err


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, np.floating) and np.isnan(v)) or (
        (pd := _pandas()) is not None and (v is pd.NaT or v is pd.NA))


FLOAT32_MAX = float(np.finfo(np.float32).max)
_INT_TEXT = re.compile(r"[+-]?[0-9]+", re.ASCII)
_NOT_SCALAR = (bytes, bytearray, memoryview, list, tuple, dict, set, frozenset, Mapping)


def _check_text(s: str) -> str:
    """Strings the databases can hold: no NUL, valid unicode (no lone surrogates)."""
    if "\x00" in s:
        raise ValueError("contains a NUL character")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("is not valid unicode (lone surrogate)") from None
    return s


def _int_value(v: Any, text: str, rounding: bool = False) -> int:
    """An integer from an int, integer text, or an integral finite float/Decimal (or its
    text); with ``rounding`` (inserts), a fractional float or Decimal (never text) is
    rounded to the nearest integer (ties to even), as the servers round a number stored
    into an integer column. Restrictions and declared defaults never round."""
    if isinstance(v, (bool, np.bool_)):
        return int(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    if isinstance(v, str):
        s = v.strip()
        if _INT_TEXT.fullmatch(s) and len(s) < 100:
            return int(s)
        try:
            v = decimal.Decimal(s)
        except (decimal.InvalidOperation, ValueError):
            raise ValueError(f"not an integer ({text})") from None
        rounding = False  # text is never rounded: '1.5' names no integer
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(v) or not (rounding or float(v).is_integer()):
            raise ValueError(f"not an integer ({text})")
        return round(float(v))
    if isinstance(v, decimal.Decimal):
        if not v.is_finite() or not (rounding or v == v.to_integral_value()):
            raise ValueError(f"not an integer ({text})")
        if v.adjusted() > 40:
            raise ValueError(f"out of range for {text}")
        return int(v.to_integral_value(decimal.ROUND_HALF_UP))  # as the servers round exact values
    raise ValueError(f"not an integer ({text}): a {type(v).__name__}")


@lru_cache(maxsize=4096)  # attributes are frozen; a make builds the same ones for every key
def _coercer(attr, rounding: bool = False) -> Callable[[Any], Any]:
    """A function that returns the value to bind, or raises ValueError(why); ``rounding``:
    a fractional number for an integer attribute is rounded (inserts), not refused."""
    spec = attr.type
    name = spec.name
    if spec.is_codec:
        return lambda v: v
    if name in INT_RANGES:
        lo, hi = INT_RANGES[name]

        def to_int(v):
            f = _int_value(v, spec.text, rounding)
            if not lo <= f <= hi:
                raise ValueError(f"out of range for {spec.text} [{lo}, {hi}]")
            return f
        return to_int
    if name in ("float32", "float64"):
        limit = FLOAT32_MAX if name == "float32" else math.inf

        def to_float(v):
            if isinstance(v, _NOT_SCALAR) or not isinstance(v, (str, int, float, decimal.Decimal, np.number)):
                raise ValueError(f"not a number ({spec.text}): a {type(v).__name__}")
            try:
                f = float(v)
            except OverflowError:
                raise ValueError(f"out of range for {spec.text}") from None
            except (TypeError, ValueError):
                raise ValueError(f"not a number ({spec.text})") from None
            if math.isnan(f):
                return None
            if math.isinf(f):
                raise ValueError("infinite values cannot be stored")
            if abs(f) > limit:
                raise ValueError(f"out of range for {spec.text} (|value| > {limit:.6g})")
            return f
        return to_float
    if name == "decimal":
        p, s = spec.args
        step = decimal.Decimal(1).scaleb(-s)

        def to_dec(v):
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (str, int, float, decimal.Decimal, np.number)):
                raise ValueError(f"not a decimal ({spec.text}): a {type(v).__name__}")
            try:
                d = decimal.Decimal(str(v).strip()) if not isinstance(v, decimal.Decimal) else v
            except (decimal.InvalidOperation, ValueError):
                raise ValueError(f"not a decimal ({spec.text})") from None
            if not d.is_finite():
                raise ValueError("not a finite decimal")
            if d and d.adjusted() >= p - s:
                raise ValueError(f"too many digits for {spec.text}")
            try:
                # exact inputs (Decimal, text, int) round half away from zero, as the servers
                # do; a float is already binary and rounds to its nearest representation
                mode = decimal.ROUND_HALF_EVEN if isinstance(v, (float, np.floating)) else decimal.ROUND_HALF_UP
                q = d.quantize(step, rounding=mode, context=decimal.Context(prec=p + 2))
            except decimal.InvalidOperation:
                raise ValueError(f"too many digits for {spec.text}") from None
            if len(q.as_tuple().digits) > p:
                raise ValueError(f"too many digits for {spec.text}")
            if not rounding and q != d:  # a restriction by 1.004 names no decimal(5,2) value
                raise ValueError(f"more decimal places than {spec.text} holds")
            return q
        return to_dec
    if name == "bool":
        def to_bool(v):
            if isinstance(v, str):
                low = v.strip().lower()
                if low in ("1", "true", "t", "yes", "y"):
                    return True
                if low in ("0", "false", "f", "no", "n"):
                    return False
                raise ValueError("not a boolean")
            if isinstance(v, (bool, np.bool_, int, np.integer)) and int(v) in (0, 1):
                return bool(v)
            raise ValueError("not a boolean")
        return to_bool
    if name in ("char", "varchar", "text"):
        limit = spec.args[0] if spec.args else None

        def to_str(v):
            if isinstance(v, (bytes, bytearray, memoryview)):
                raise ValueError("bytes given for a string attribute")
            if isinstance(v, str):
                s = v
            elif isinstance(v, (int, float, decimal.Decimal, uuid.UUID, dt.date, dt.time)) and not isinstance(v, bool):
                s = str(v)
            else:
                raise ValueError(f"not a string: a {type(v).__name__}")
            if limit is not None and len(s) > limit:
                raise ValueError(f"longer than {spec.text} allows ({len(s)} > {limit})")
            return _check_text(s)
        return to_str
    if name == "enum":
        allowed = set(spec.args)

        def to_enum(v):
            if not isinstance(v, str) or v not in allowed:
                raise ValueError(f"not one of {list(spec.args)}")
            return v
        return to_enum
    if name == "date":
        def to_date(v):
            if isinstance(v, dt.datetime):
                return v.date()
            if isinstance(v, dt.date):
                return v
            if isinstance(v, np.datetime64):  # (a pandas Timestamp is a datetime: handled above)
                import pandas as pd

                return pd.Timestamp(v).date()
            if isinstance(v, str):
                try:
                    return dt.date.fromisoformat(v.strip())
                except ValueError:
                    pass
            raise ValueError("not a date (YYYY-MM-DD)")
        return to_date
    if name == "datetime":
        def to_datetime(v):
            pd = _pandas()
            if pd is not None and isinstance(v, pd.Timestamp):
                v = v.to_pydatetime()
            elif isinstance(v, np.datetime64):
                import pandas as pd

                v = pd.Timestamp(v).to_pydatetime()
            elif isinstance(v, str):
                try:
                    v = dt.datetime.fromisoformat(v.strip())
                except ValueError:
                    raise ValueError("not a datetime (ISO 8601)") from None
            elif isinstance(v, dt.date) and not isinstance(v, dt.datetime):
                v = dt.datetime(v.year, v.month, v.day)
            if not isinstance(v, dt.datetime):
                raise ValueError("not a datetime (ISO 8601)")
            if v.tzinfo is not None:
                raise ValueError("a timezone-aware datetime; convert it to a naive one (e.g. UTC) first")
            return v
        return to_datetime
    if name == "time":
        def to_time(v):
            if isinstance(v, np.timedelta64):
                import pandas as pd

                v = pd.Timedelta(v).to_pytimedelta()
            if isinstance(v, dt.timedelta):
                if not dt.timedelta(0) <= v < dt.timedelta(days=1):
                    raise ValueError("a time must be within one day [00:00:00, 24:00:00)")
                v = (dt.datetime.min + v).time()
            elif isinstance(v, str):
                try:
                    v = dt.time.fromisoformat(v.strip())
                except ValueError:
                    raise ValueError("not a time (HH:MM:SS)") from None
            if not isinstance(v, dt.time):
                raise ValueError("not a time (HH:MM:SS)")
            if v.tzinfo is not None:
                raise ValueError("a timezone-aware time cannot be stored")
            return v
        return to_time
    if name == "uuid":
        def to_uuid(v):
            if isinstance(v, uuid.UUID):
                return v
            try:
                if isinstance(v, bytes) and len(v) == 16:
                    return uuid.UUID(bytes=v)
                if isinstance(v, str):
                    return uuid.UUID(v)
            except ValueError:
                pass
            raise ValueError("not a UUID")
        return to_uuid
    if name == "json":
        def to_json(v):
            try:
                json.dumps(v, allow_nan=False)
            except (TypeError, ValueError, RecursionError) as exc:
                raise ValueError(f"not JSON-serializable: {exc}") from None
            _check_json_text(v)
            return v
        return to_json
    if name == "bytes":
        def to_bytes(v):
            if isinstance(v, (bytes, bytearray, memoryview)):
                return bytes(v)
            raise ValueError("not bytes")
        return to_bytes
    return lambda v: v


def _check_json_text(v: Any) -> None:
    stack = [v]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            _check_text(item)
        elif isinstance(item, Mapping):
            stack.extend(k for k in item.keys() if isinstance(k, str))
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)


def _int_check(lo: int, hi: int):
    return lambda v: lo <= v <= hi


# declared type -> (exact Python type that needs no conversion, check)
_FAST = {name: (int, _int_check(lo, hi)) for name, (lo, hi) in INT_RANGES.items()}
_FAST["float64"] = (float, math.isfinite)
_FAST["float32"] = (float, lambda v: abs(v) <= FLOAT32_MAX)


@lru_cache(maxsize=4096)
def _fast_check(spec):
    """(exact Python type, check) for values that bind as they are, or None."""
    if spec.name in ("char", "varchar") and spec.args:
        limit = spec.args[0]
        # ASCII without NUL is valid in every backend; anything else takes the full check
        return str, lambda s: len(s) <= limit and s.isascii() and "\x00" not in s
    if spec.name == "text":
        return str, lambda s: s.isascii() and "\x00" not in s
    return _FAST.get(spec.name)


def stored_fast_check(attr, adapter):
    """:func:`_fast_check` of a stored attribute, within the range the backend stores for
    its type (``adapter.narrower_ints``: SQLite's uint64); None for a codec attribute."""
    if attr.codec:
        return None
    narrower = adapter.narrower_ints.get(attr.type.name)
    if narrower is None:
        return _fast_check(attr.type)
    (lo, hi), _ = narrower
    return int, _int_check(lo, hi)


def _attribute_plan(heading, adapter) -> list[tuple]:
    """Per attribute, what preparing a row needs: (name, in_key, nullable, has_default,
    hidden, codec, coerce, fast type). Made once per heading and backend: a make inserts one
    row at a time. Integers the backend would store rounded are refused
    (``adapter.int_refusal``)."""
    def entry(a):
        coerce = _coercer(a, rounding=True)
        if not a.codec and a.type.name in adapter.narrower_ints:
            coerce = _narrowed(coerce, a.type.name, adapter)
        has_default = a.default is not None or a.type.auto_increment  # the server fills it
        return (a.name, a.in_key, a.nullable, has_default, a.hidden, bool(a.codec), coerce,
                stored_fast_check(a, adapter))

    return heading.memo(("insert_plan", adapter.name), lambda: [entry(a) for a in heading])


def _narrowed(coerce: Callable[[Any], Any], type_name: str, adapter) -> Callable[[Any], Any]:
    def check(v):
        value = coerce(v)
        why = None if value is None else adapter.int_refusal(type_name, value)
        if why is not None:
            raise ValueError(why)
        return value
    return check


def prepare_rows(table, rows: Any, ignore_extra_fields: bool, check_duplicates: bool, encode: bool = True,
                 partial: bool = False, start: int = 0) -> list[dict]:
    """``rows`` (any form :func:`_to_rows` accepts) as dicts of values ready to bind, each
    checked against its attribute; raises :class:`DataError` naming the table, row (counted
    from ``start``) and attribute of the first problem."""
    heading = table.heading
    raw = _to_rows(table, rows)
    encoders = {}
    if encode and heading.codecs:
        from .codecs import encoder_for

        encoders = {a.name: encoder_for(table, a) for a in heading if a.codec}
    key = heading.memo("primary_key", lambda: tuple(heading.primary_key))
    check_duplicates = check_duplicates and len(raw) > 1
    known = heading.attributes
    plan = _attribute_plan(heading, table._connection.adapter)
    known_names = known.keys()
    seen: dict[tuple, int] = {}
    out = []
    for i, row in enumerate(raw, start):
        if not ignore_extra_fields and not row.keys() <= known_names:
            extra = [n for n in row if n not in known]
            raise UnknownFieldError(f"Cannot insert into {table.full_table_name}: row {i} has unknown attribute(s) {extra}"
                            f"; the table has {heading.names} (pass ignore_extra_fields=True to drop them)")
        if not row and not partial:
            required = [a[0] for a in plan if not (a[2] or a[3] or a[4])]
            if required:
                raise MissingValueError(f"Cannot insert empty row into {table.full_table_name}: the following attributes "
                                f"require values: {required}")
        clean = {}
        for name, in_key, nullable, has_default, hidden, codec, coerce, fast in plan:
            if name not in row:
                if partial:
                    continue
                if in_key and not hidden and not has_default:
                    raise _fail(table, i, name, None, "primary-key attribute is missing", MissingValueError)
                if not nullable and not has_default and not hidden:
                    raise _fail(table, i, name, None, "required attribute is missing (it has no default)",
                                MissingValueError)
                continue
            v = row[name]
            if fast is not None and type(v) is fast[0] and fast[1](v):
                clean[name] = v  # the common case: already the right Python type, in range
                continue
            if isinstance(v, np.generic) and not isinstance(v, (np.void, np.datetime64, np.timedelta64)):
                v = v.item()
            if v is None or (not codec and _is_missing(v)):
                if in_key:
                    raise _fail(table, i, name, v, "primary-key attribute cannot be NULL")
                if not nullable:
                    if has_default and not codec:
                        continue
                    raise _fail(table, i, name, v, "attribute is not nullable")
                clean[name] = None
                continue
            try:
                value = coerce(v)
            except ValueError as exc:
                raise _fail(table, i, name, v, str(exc)) from None
            if value is None and not nullable and not codec:
                raise _fail(table, i, name, v, "NaN is stored as NULL, but the attribute is not nullable")
            clean[name] = value
        if check_duplicates and key:
            k = tuple(clean.get(n) for n in key)
            if None in k:  # left to auto_increment: the server makes each key
                out.append(clean)
                continue
            try:
                first = seen.get(k)
            except TypeError:  # an unhashable key value (json): the database checks it
                first = None
            else:
                seen.setdefault(k, i)
            if first is not None and first != i:
                raise DuplicateError(f"Cannot insert into {table.full_table_name}: row {i} repeats the primary key "
                                f"{dict(zip(key, k))} of row {first}")
        out.append(clean)
    if encoders:
        from .external import upload_batch

        # object-store uploads made by the encoders are collected and written together,
        # concurrently, when the block ends: before any row reaches the database
        with upload_batch():
            for i, row in enumerate(out):
                for name, enc in encoders.items():
                    if row.get(name) is not None:
                        try:
                            row[name] = enc(row[name], {k: row.get(k) for k in key})
                        except DataError:
                            raise
                        except Exception as exc:
                            raise _fail(table, i, name, row[name], f"cannot encode: {exc}") from None
    return out


@dataclass
class ValidationResult:
    """What :meth:`Table.validate` found: ``is_valid``, ``errors`` as ``(row_index,
    attribute or None, message)`` tuples, and ``rows_checked``. True when valid."""

    is_valid: bool
    errors: list = field(default_factory=list)
    rows_checked: int = 0

    def __bool__(self) -> bool:
        return self.is_valid

    def raise_if_invalid(self) -> None:
        """Raise :class:`DataError` with :meth:`summary` when any row is invalid."""
        if not self.is_valid:
            raise DataError(self.summary())

    def summary(self, limit: int = 10) -> str:
        """A readable report: the first ``limit`` problems, and how many more there are."""
        if self.is_valid:
            return f"Validation passed: {self.rows_checked} rows checked"
        lines = [f"Validation failed: {len(self.errors)} error(s) in {self.rows_checked} rows"]
        for row, attr, message in self.errors[:limit]:
            where = f" in field '{attr}'" if attr else ""
            lines.append(f"  Row {row}{where}: {message}")
        if len(self.errors) > limit:
            lines.append(f"  ... and {len(self.errors) - limit} more errors")
        return "\n".join(lines)


def validate_rows(table, rows: Any, ignore_extra_fields: bool = False) -> ValidationResult:
    """Check ``rows`` (every form insert accepts) against ``table`` without writing or
    encoding anything: each row is checked as insert would check it, and every row's
    problems are collected (unknown attributes, a wrong number of positional values,
    missing required values, values that do not fit their type, repeated keys)."""
    rows = _from_columnar(rows)
    if isinstance(rows, (str, os.PathLike)) or _is_frame(rows) or (isinstance(rows, np.ndarray) and rows.dtype.names):
        rows = _to_rows(table, rows)
    elif isinstance(rows, Mapping):
        rows = [rows]
    visible = table.heading.names
    known = table.heading.attributes
    key = table.heading.primary_key
    errors: list = []
    seen: dict = {}
    count = 0
    for i, row in enumerate(rows):
        count += 1
        if isinstance(row, np.void) and row.dtype.names:
            row = dict(zip(row.dtype.names, row.tolist()))
        elif isinstance(row, (list, tuple, np.ndarray)):
            if len(row) != len(visible):
                errors.append((i, None, f"Incorrect number of attributes: {len(row)} given, {len(visible)} expected"))
                continue
            row = dict(zip(visible, row))
        elif (pd := _pandas()) is not None and isinstance(row, pd.Series):
            row = row.to_dict()
        elif not isinstance(row, Mapping):
            errors.append((i, None, f"Invalid row type: {type(row).__name__}"))
            continue
        if not ignore_extra_fields:
            unknown = [n for n in row if n not in known]
            errors += [(i, n, f"Field '{n}' not in table heading") for n in unknown]
            row = {n: v for n, v in row.items() if n in known}
        try:
            clean = prepare_rows(table, [row], True, check_duplicates=False, encode=False, start=i)[0]
        except DataError as exc:
            errors.append((i, getattr(exc, "attribute", None), str(exc)))
            continue
        k = tuple(clean.get(n) for n in key)
        if key and None not in k:
            try:
                first = seen.setdefault(k, i)
            except TypeError:
                first = i
            if first != i:
                errors.append((i, None, f"Repeats the primary key {dict(zip(key, k))} of row {first}"))
    return ValidationResult(is_valid=not errors, errors=errors, rows_checked=count)
