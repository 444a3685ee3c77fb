"""Restrictions -> SQLAlchemy boolean clauses over an expression's columns.

Values always reach SQL as bound parameters; only user-written SQL strings are
passed through as text (after translation to the backend's dialect)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
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


class Top:
    """``Top(limit, order_by, offset)``: the first rows in an order, as a restriction."""

    def __init__(self, limit: int | None = 1, order_by: str | list[str] | None = "KEY", offset: int = 0):
        if limit is not None and (not isinstance(limit, (int, np.integer)) or limit < 0):
            raise QueryError(f"Top limit must be a non-negative integer, got {limit!r}")
        if not isinstance(offset, (int, np.integer)) or offset < 0:
            raise QueryError(f"Top offset must be a non-negative integer, got {offset!r}")
        self.limit, self.offset = limit, int(offset)
        self.order_by = [order_by] if isinstance(order_by, str) else list(order_by or ["KEY"])

    def __repr__(self) -> str:
        return f"Top(limit={self.limit}, order_by={self.order_by!r}, offset={self.offset})"


TRUE, FALSE = sa.true(), sa.false()


def _value(attr, value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


def _equalities(expr: "QueryExpression", row: Mapping) -> list:
    clauses = []
    for name, value in row.items():
        if name not in expr.heading.attributes:
            continue
        attr = expr.heading[name]
        if attr.codec:
            raise QueryError(f"Cannot restrict by attribute {name!r}: its type {attr.type.text} is not comparable")
        col = expr._cols[name]
        if value is None or (isinstance(value, float) and np.isnan(value)):
            clauses.append(col.is_(None))
        else:
            clauses.append(col == sa.bindparam(None, _value(attr, value), type_=col.type))
    return clauses


def _records(expr: "QueryExpression", rows: list[Mapping]):
    if not rows:
        return FALSE
    names = [n for n in rows[0] if n in expr.heading.attributes]
    same = all(list(r.keys()) == list(rows[0].keys()) for r in rows)
    nulls = any(v is None for r in rows for v in r.values())
    if same and names and len(rows) > 1 and not nulls and not any(expr.heading[n].codec for n in names):
        cols = [expr._cols[n] for n in names]
        values = [tuple(_value(None, r[n]) for n in names) for r in rows]
        if len(cols) == 1:
            return cols[0].in_([v[0] for v in values])
        return sa.tuple_(*cols).in_(values)
    return sa.or_(*[sa.and_(*c) if (c := _equalities(expr, r)) else TRUE for r in rows])


def make_condition(expr: "QueryExpression", cond: Any) -> Any:
    """The clause selecting rows of ``expr`` that satisfy ``cond``."""
    from .expression import QueryExpression

    if isinstance(cond, bool):
        return TRUE if cond else FALSE
    if isinstance(cond, (np.bool_,)):
        return TRUE if bool(cond) else FALSE
    if isinstance(cond, Not):
        return sa.not_(make_condition(expr, cond.restriction))
    if isinstance(cond, AndList):
        return sa.and_(TRUE, *[make_condition(expr, c) for c in cond])
    if isinstance(cond, str):
        return expr._text_condition(cond)
    if isinstance(cond, Mapping):
        clauses = _equalities(expr, cond)
        return sa.and_(*clauses) if clauses else TRUE
    if isinstance(cond, QueryExpression):
        return expr._semijoin_clause(cond)
    if isinstance(cond, pd.DataFrame):
        frame = cond.reset_index() if cond.index.names[0] is not None else cond
        return _records(expr, frame.to_dict("records"))
    if isinstance(cond, np.ndarray) and cond.dtype.names:
        return _records(expr, [dict(zip(cond.dtype.names, r)) for r in cond.tolist()])
    if isinstance(cond, sa.ColumnElement):
        return cond
    if isinstance(cond, (list, tuple, set, frozenset)):
        items = list(cond)
        if items and all(isinstance(c, Mapping) for c in items):
            return _records(expr, items)
        if not items:
            return FALSE
        return sa.or_(*[make_condition(expr, c) for c in items])
    if isinstance(cond, type) and hasattr(cond, "_fk_target"):
        return expr._semijoin_clause(cond())
    raise QueryError(f"Unsupported restriction {cond!r} of type {type(cond).__name__}")
