"""Restrictions -> SQLAlchemy boolean clauses over an expression's columns.

Values always reach SQL as bound parameters; only user-written SQL strings are
passed through as text (after translation to the backend's dialect)."""

from __future__ import annotations

import datetime as dt
import decimal
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from .errors import QueryError

if TYPE_CHECKING:
    from .expression import QueryExpression


class AndList(list):
    """Restrictions combined with AND (a plain list means OR)."""


class Not:
    """The negation of a restriction: ``T & Not(cond)`` equals ``T - cond``."""

    def __init__(self, restriction: Any):
        self.restriction = restriction

    def __repr__(self) -> str:
        return f"Not({self.restriction!r})"


@dataclass
class Top:
    """``Top(limit=1, order_by='KEY', offset=0)``: the first ``limit`` rows (all with
    None) in an order, after skipping ``offset``, as a restriction. ``order_by``: an
    attribute name, ``'name DESC'``, ``'KEY'``, or a list of them; None inherits the
    order of a Top already applied (else primary-key order). Wrong types raise TypeError,
    as in datajoint."""

    limit: int | None = 1
    order_by: str | list[str] | None = "KEY"
    offset: int = 0

    def __post_init__(self) -> None:
        self.offset = self.offset or 0
        if self.limit is not None and (isinstance(self.limit, (bool, np.bool_)) or
                                       not isinstance(self.limit, (int, np.integer))):
            raise TypeError("Top limit must be an integer")
        if self.order_by is not None:
            if isinstance(self.order_by, str):
                self.order_by = [self.order_by]
            elif not isinstance(self.order_by, (list, tuple)) or not all(isinstance(o, str) for o in self.order_by):
                raise TypeError("Top order_by attributes must all be strings")
            else:
                self.order_by = list(self.order_by)
        if isinstance(self.offset, (bool, np.bool_)) or not isinstance(self.offset, (int, np.integer)):
            raise TypeError("The offset argument must be an integer")
        if self.limit is not None and not 0 <= self.limit < 2**63:
            raise QueryError(f"Top limit must be a non-negative integer, got {self.limit!r}")
        if not 0 <= self.offset < 2**63:
            raise QueryError(f"Top offset must be a non-negative integer, got {self.offset!r}")
        self.limit = None if self.limit is None else int(self.limit)
        self.offset = int(self.offset)

    def merge(self, other: "Top") -> "Top":
        """``other`` applied after this Top in the same order (``other.order_by`` None or
        equal): this order, the smaller of the limits, the offsets added."""
        limits = [x for x in (self.limit, other.limit) if x is not None]
        return Top(limit=min(limits) if limits else None, order_by=self.order_by, offset=self.offset + other.offset)


TRUE, FALSE = sa.true(), sa.false()


_SCALARS = (str, int, float, decimal.Decimal, dt.date, dt.time, dt.timedelta, uuid.UUID, bytes, bytearray)
_STRINGS = ("char", "varchar", "text")
IMPOSSIBLE = object()  # a value no stored row can equal


def _value(attr, value: Any) -> Any:
    if isinstance(value, (np.datetime64, np.timedelta64)):
        import pandas as pd  # loaded where needed: import dj_dagster stays light

        return pd.Timestamp(value) if isinstance(value, np.datetime64) else pd.Timedelta(value).to_pytimedelta()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _shown(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        text = f"<{type(value).__name__}>"
    return text if len(text) < 80 else text[:77] + "..."


def restriction_value(attr, value: Any) -> Any:
    """``value`` converted to ``attr``'s type as an insert would convert it: None for
    NULL, :data:`IMPOSSIBLE` when no stored value can equal it (out of range, too long,
    not a member of the enum...). Values that are not single values (lists, dicts,
    objects) raise :class:`QueryError`: they reach SQL only as typed, bound values."""
    from .insert_rows import _coercer, _is_missing

    if attr.codec:
        raise QueryError(f"Cannot restrict by attribute {attr.name!r}: its type {attr.type.text} is not comparable")
    value = _value(attr, value)
    if _is_missing(value):
        return None
    if attr.computed or attr.type.name == "json":
        if not isinstance(value, _SCALARS) and not isinstance(value, bool):
            raise QueryError(f"Cannot restrict by attribute {attr.name!r} with {_shown(value)}: "
                             f"a {type(value).__name__} is not a single value")
        return value
    if not isinstance(value, _SCALARS):
        raise QueryError(f"Cannot restrict by attribute {attr.name!r} ({attr.type.text}) with {_shown(value)}: "
                         f"a {type(value).__name__} is not a single value")
    try:
        converted = _coercer(attr)(value)
    except (ValueError, TypeError, ArithmeticError):
        return IMPOSSIBLE
    return converted


def plain_key(heading, row: dict, adapter) -> tuple | None:
    """``row``'s (names, values) restricting ``heading``, when each value already has its
    attribute's plain Python type and range (an int for an integer, ASCII text within a
    varchar's length...), so that the equality clauses :func:`_equalities` would build
    bind the values unchanged; None otherwise. Attributes not in the heading are
    ignored, as in every restriction. Strings on a backend that compares them with PAD
    SPACE need a length clause too, and integers beyond what the backend stores match no
    row: both are left to :func:`_equalities`."""
    checks = heading.memo(("plain_key", adapter.name), lambda: _plain_checks(heading, adapter))
    names, values = [], []
    for name, value in row.items():
        if name not in checks:  # not an attribute (or not a string): ignored
            continue
        fast = checks[name]
        if fast is None or type(value) is not fast[0] or not fast[1](value):
            return None
        names.append(name)
        values.append(value)
    return (tuple(names), tuple(values)) if names else None


def _plain_checks(heading, adapter) -> dict:
    """Per attribute, (Python type, check) of the values a key restriction binds unchanged,
    or None: the attribute always takes the general path."""
    from .insert_rows import stored_fast_check

    def check(attr):
        general = attr.nullable or attr.computed or (adapter.pads_strings and attr.type.name in _STRINGS)
        # beyond the stored range a value fails the check: the general path (no row matches)
        return None if general else stored_fast_check(attr, adapter)
    return {a.name: check(a) for a in heading}


def _stored_value(expr: "QueryExpression", attr, value: Any) -> Any:
    """:func:`restriction_value`, and :data:`IMPOSSIBLE` for an integer beyond what the
    backend stores for the attribute's type (no row holds it; SQLite cannot even bind it)."""
    value = restriction_value(attr, value)
    if isinstance(value, int) and not attr.computed and \
            expr._connection.adapter.int_refusal(attr.type.name, value) is not None:
        return IMPOSSIBLE
    return value


def _value_check(expr: "QueryExpression", attr):
    """(Python type, check) of the values :func:`_stored_value` returns unchanged for
    ``attr`` (a plain int in range, ASCII text within the length...), or None."""
    from .insert_rows import stored_fast_check

    if attr.computed or attr.codec or attr.type.name == "json":
        return None
    adapter = expr._connection.adapter
    return expr.heading.memo(("value_check", adapter.name, attr.name), lambda: stored_fast_check(attr, adapter))


def _padded(expr: "QueryExpression", attr) -> bool:
    """MySQL/MariaDB collations compare strings with PAD SPACE ('a' = 'a  '): the
    length must match too."""
    return attr.type.name in _STRINGS and not attr.computed and expr._connection.adapter.pads_strings


def _equalities(expr: "QueryExpression", row: Mapping) -> list:
    clauses = []
    for name, value in row.items():
        if not isinstance(name, str) or name not in expr.heading.attributes:
            continue
        attr = expr.heading[name]
        col = expr._cols[name]
        value = _stored_value(expr, attr, value)
        if value is IMPOSSIBLE:
            clauses.append(FALSE)
        elif value is None:
            clauses.append(col.is_(None))
        else:
            if attr.nullable or attr.computed:
                # two-valued, so that negation (T - cond) keeps the rows where the attribute is NULL
                clauses.append(col.is_not(None))
            clauses.append(col == sa.bindparam(None, value, type_=col.type))
            if _padded(expr, attr):
                clauses.append(sa.func.char_length(col) == sa.bindparam(None, len(value), type_=sa.Integer()))
    return clauses


# past this many keys a key set is bound as one value (an array, a JSON document) through
# the backend's Adapter.key_set, not one parameter or OR-term per value
LARGE_KEY_SET = 1000


def _records(expr: "QueryExpression", rows: list[Mapping]):
    """Rows of ``expr`` matching any of ``rows`` (mappings of attribute values; names
    not in the heading are ignored). Rows naming the same attributes are matched as one
    key set (the bound values coerced as :func:`_equalities` coerces them); within a set,
    keys holding NULLs match by ``IS NULL`` on those attributes, and keys no row can equal
    are dropped."""
    if not rows:
        return FALSE
    if len(rows) == 1:
        clauses = _equalities(expr, rows[0])
        return sa.and_(*clauses) if clauses else TRUE
    groups: dict[tuple, list[Mapping]] = {}
    attributes = expr.heading.attributes
    names_of: dict[tuple, tuple] = {}  # a row's keys -> the attributes it names, sorted
    for row in rows:
        keys = tuple(row)
        names = names_of.get(keys)
        if names is None:
            names = names_of[keys] = tuple(sorted(n for n in keys if isinstance(n, str) and n in attributes))
        groups.setdefault(names, []).append(row)
    if () in groups:  # a row naming no attribute of the table matches every row
        return TRUE
    return sa.or_(*[_key_set(expr, names, group) for names, group in groups.items()])


def _key_set(expr: "QueryExpression", names: tuple, rows: list[Mapping]):
    attrs = [expr.heading[n] for n in names]
    if len(rows) == 1 or any(a.codec for a in attrs):  # codecs: restriction_value refuses them
        return sa.or_(*[sa.and_(*c) if (c := _equalities(expr, r)) else TRUE for r in rows])
    by_nulls: dict[tuple, dict] = {}  # positions holding NULL -> distinct keys
    checks = [_value_check(expr, a) for a in attrs]
    for row in rows:
        values = tuple(v if (c is not None and type(v := row[a.name]) is c[0] and c[1](v))
                       else _stored_value(expr, a, row[a.name]) for a, c in zip(attrs, checks))
        if any(v is IMPOSSIBLE for v in values):
            continue
        nulls = tuple(i for i, v in enumerate(values) if v is None)
        by_nulls.setdefault(nulls, {})[values] = None
    clauses = []
    for nulls, keys in by_nulls.items():
        parts = [expr._cols[names[i]].is_(None) for i in nulls]
        kept = [i for i in range(len(attrs)) if i not in nulls]
        if kept:
            parts.append(_members(expr, [attrs[i] for i in kept], [tuple(k[i] for i in kept) for k in keys]))
        clauses.append(sa.and_(*parts))
    return sa.or_(*clauses) if clauses else FALSE


def _members(expr: "QueryExpression", attrs: list, keys: list[tuple]):
    """``attrs`` equal to one of ``keys`` (distinct tuples of coerced values, no NULLs)."""
    cols = [expr._cols[a.name] for a in attrs]
    padded = [i for i, a in enumerate(attrs) if _padded(expr, a)]
    if padded:
        cols += [sa.func.char_length(cols[i]) for i in padded]
        keys = [k + tuple(len(k[i]) for i in padded) for k in keys]
    not_null = [expr._cols[a.name].is_not(None) for a in attrs if a.nullable or a.computed]
    if len(keys) > LARGE_KEY_SET and not any(a.computed or a.type.name == "json" for a in attrs):
        return sa.and_(*not_null, expr._connection.adapter.key_set(cols, keys))
    if len(cols) == 1:
        return sa.and_(*not_null, cols[0].in_([k[0] for k in keys]))
    return sa.and_(*not_null, sa.tuple_(*cols).in_(keys))


def make_condition(expr: "QueryExpression", cond: Any, semantic_check: bool = True) -> Any:
    """The clause selecting rows of ``expr`` that satisfy ``cond``: a bool, a SQL string,
    a dict (or numpy record) of attribute values, another query (rows matching one of
    its rows on the namesake attributes, of the same lineage unless ``semantic_check``
    is False), a DataFrame or record array (any row), ``Not(c)``, ``AndList([...])``
    (all), or any other list, tuple or set (any). ``U(...)`` restricts nothing."""
    from .expression import QueryExpression, U

    if isinstance(cond, bool):
        return TRUE if cond else FALSE
    if cond is None:
        return FALSE
    if isinstance(cond, (np.bool_,)):
        return TRUE if bool(cond) else FALSE
    if isinstance(cond, Not):
        return sa.not_(make_condition(expr, cond.restriction, semantic_check))
    if isinstance(cond, AndList):
        return sa.and_(TRUE, *[make_condition(expr, c, semantic_check) for c in cond])
    if isinstance(cond, str):
        return expr._text_condition(cond)
    if isinstance(cond, Mapping):
        clauses = _equalities(expr, cond)
        return sa.and_(*clauses) if clauses else TRUE
    if isinstance(cond, np.void) and cond.dtype.names:
        clauses = _equalities(expr, dict(zip(cond.dtype.names, cond.tolist())))
        return sa.and_(*clauses) if clauses else TRUE
    if isinstance(cond, U):
        return TRUE
    if isinstance(cond, QueryExpression):
        return expr._semijoin_clause(cond, semantic_check)
    pd = sys.modules.get("pandas")  # a DataFrame exists only if the program loaded pandas
    if pd is not None and isinstance(cond, pd.DataFrame):
        frame = cond.reset_index() if cond.index.names[0] is not None else cond
        return _records(expr, frame.to_dict("records"))
    if isinstance(cond, np.ndarray) and cond.dtype.names:
        return _records(expr, [dict(zip(cond.dtype.names, r)) for r in cond.tolist()])
    if isinstance(cond, sa.ColumnElement):
        return cond
    if isinstance(cond, Top):
        raise QueryError(f"Invalid restriction type {cond!r}: a Top restricts a query on its own (q & dj.Top(...)), "
                         "not inside a list or AndList")
    if isinstance(cond, (list, tuple, set, frozenset)):
        items = list(cond)
        if items and all(type(c) is dict or isinstance(c, Mapping) for c in items):
            return _records(expr, items)
        if not items:
            return FALSE
        return sa.or_(*[make_condition(expr, c, semantic_check) for c in items])
    if isinstance(cond, type) and hasattr(cond, "_fk_target"):
        return expr._semijoin_clause(cond(), semantic_check)
    raise QueryError(f"Invalid restriction type {type(cond).__name__}: {_shown(cond)}")
