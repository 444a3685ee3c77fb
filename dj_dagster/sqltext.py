"""Translate DataJoint SQL text (MySQL dialect) to the SQL of the connected backend.

DataJoint users write restriction strings (``'home_state="UT"'``) and computed
attributes (``'round(avg(points), 2)'``) in MySQL's dialect.  :func:`translate`
parses such a fragment once with sqlglot (``read="mysql"``), rewrites it for the
target backend and renders it with every identifier quoted:

* double-quoted strings are string literals, backticks are identifiers;
* column names are lower-cased (MySQL column names are case-insensitive and
  DataJoint attribute names are lower case) and may be qualified with a table
  alias (``qualify={"a": "t1"}`` turns ``a`` into ``"t1"."a"``);
* MySQL functions missing from PostgreSQL or SQLite are rewritten
  (``year()``, ``if()``, ``concat()``, ``concat_ws()``, ``timestampdiff()``,
  ``date_add()``, ``greatest()`` null semantics, ``round(x, n)`` on doubles in
  PostgreSQL, ``like`` case-insensitivity in PostgreSQL, ...);
* in PostgreSQL, MySQL's integer/boolean interchangeability is emulated on a
  best-effort basis: a non-boolean operand used as a condition (``where flag``,
  ``not a``) becomes ``CAST(x AS INTEGER) <> 0`` and a comparison used as a value
  (``sum(a > 1)``) becomes ``CAST((a > 1) AS INTEGER)``.

Text that does not parse, is not a single expression (``a; drop table x``,
``1 from t``, ``x as y``), uses bind parameters or variables, or uses a function
the target is known to lack raises :class:`SQLTextError`.  For SQLite the
rendered SQL is additionally prepared (``EXPLAIN``) on a private in-memory
database, so any function SQLite does not know is reported at translation time.

SQLite lacks ``REGEXP`` and the standard-deviation/variance aggregates; call
:func:`register_sqlite_functions` on every new SQLite DBAPI connection (e.g. from
a SQLAlchemy ``"connect"`` event) to provide them.
"""

from __future__ import annotations

import functools
import math
import re
import sqlite3
import threading
from collections.abc import Callable, Mapping

import sqlglot
from sqlglot import exp
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import ErrorLevel, SqlglotError

__all__ = ["SQLTextError", "translate", "referenced_columns", "register_sqlite_functions"]


class SQLTextError(ValueError):
    """A SQL text fragment cannot be parsed or translated for the target backend."""

    def __init__(self, text: object, reason: str | None = None) -> None:
        self.text = text
        self.reason = reason
        if reason is None:
            super().__init__(str(text))
        else:
            super().__init__(f"SQL text {text!r}: {reason}")


# SQLAlchemy dialect name -> sqlglot dialect name
_DIALECTS = {
    "sqlite": "sqlite",
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgres",
    "postgres": "postgres",
}

_KINDS = ("condition", "expression")


def _first_line(error: Exception) -> str:
    message = str(error).strip().splitlines()
    return re.sub(r"\x1b\[[0-9;]*m", "", message[0]) if message else type(error).__name__


# --------------------------------------------------------------------------- parsing


_FORBIDDEN_NODES = tuple(
    cls
    for cls in (
        getattr(exp, "Command", None),
        getattr(exp, "Placeholder", None),
        getattr(exp, "Parameter", None),
        getattr(exp, "SessionParameter", None),
    )
    if cls is not None
)

_QUERY = getattr(exp, "Query", None) or (exp.Select, exp.Union)


def _top_level(node: exp.Expression) -> bool:
    """True unless ``node`` sits inside a subquery of the fragment."""
    return node.find_ancestor(_QUERY) is None


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> exp.Expression:
    if not isinstance(text, str):
        raise SQLTextError(text, "SQL text must be a string")
    if not text.strip():
        raise SQLTextError(text, "empty SQL text")
    try:
        statements = sqlglot.parse("SELECT " + text, read="mysql", error_level=ErrorLevel.RAISE)
    except SqlglotError as error:
        # positions refer to the "SELECT " prefix added above
        message = re.sub(
            r"Line 1, Col: (\d+)", lambda m: f"Line 1, Col: {max(int(m.group(1)) - 7, 1)}", _first_line(error)
        )
        raise SQLTextError(text, f"not valid MySQL syntax ({message})") from None
    statements = [s for s in statements if s is not None]
    if len(statements) != 1 or not isinstance(statements[0], exp.Select):
        raise SQLTextError(text, "must be a single SQL expression, not a statement")
    select = statements[0]
    extra = sorted(k for k, v in select.args.items() if k != "expressions" and v)
    if extra or len(select.expressions) != 1:
        raise SQLTextError(text, "must be a single SQL expression (found a list or SQL clauses)")
    node = select.expressions[0]
    if isinstance(node, exp.Alias):
        raise SQLTextError(text, "must be a single SQL expression (found an alias)")
    if isinstance(node, exp.Star) or (isinstance(node, exp.Column) and isinstance(node.this, exp.Star)):
        raise SQLTextError(text, "'*' is not an expression")
    for sub in node.walk():
        if isinstance(sub, _FORBIDDEN_NODES):
            raise SQLTextError(text, f"bind parameters, variables and commands are not allowed ({sub.sql('mysql')})")
    return node.copy()


def referenced_columns(text: str) -> set[str]:
    """Names of the columns ``text`` (MySQL syntax) refers to, lower-cased.

    Table qualifiers are dropped (``t.a`` gives ``"a"``); columns inside subqueries
    are not reported since they refer to the subquery's own tables.
    """
    return {
        col.name.lower()
        for col in _parse(text).find_all(exp.Column)
        if not isinstance(col.this, exp.Star) and _top_level(col)
    }


# --------------------------------------------------------------------------- node helpers

_ATOMIC = (exp.Column, exp.Literal, exp.Func, exp.Paren, exp.Null, exp.Boolean, exp.Cast)


def _p(node: exp.Expression) -> exp.Expression:
    """Parenthesize ``node`` unless it is atomic."""
    return node if isinstance(node, _ATOMIC) else exp.Paren(this=node)


def _arith(cls: type, left: exp.Expression, right: exp.Expression) -> exp.Expression:
    """``(left op right)``; ``/`` keeps the operands' own semantics (no MySQL float division)."""
    node = cls(this=_p(left), expression=_p(right))
    if cls is exp.Div:
        node.set("typed", True)
    return exp.Paren(this=node)


def _cast(node: exp.Expression, to: str) -> exp.Expression:
    return exp.Cast(this=node, to=exp.DataType.build(to))


def _fn(name: str, *args: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this=name, expressions=list(args))


def _lit(value: int | float | str) -> exp.Expression:
    return exp.Literal.string(value) if isinstance(value, str) else exp.Literal.number(value)


def _is_string(node: exp.Expression | None) -> bool:
    return isinstance(node, exp.Literal) and node.is_string


def _int_literal(node: exp.Expression | None) -> int | None:
    """Value of an integer literal (possibly negated), else None."""
    if isinstance(node, exp.Neg):
        inner = _int_literal(node.this)
        return None if inner is None else -inner
    if isinstance(node, exp.Paren):
        return _int_literal(node.this)
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return int(node.this)
        except ValueError:
            return None
    return None


def _unit(node: exp.Expression) -> str:
    unit = node.args.get("unit")
    return (unit.name if unit is not None else "DAY").upper()


def _strip_date(node: exp.Expression) -> exp.Expression:
    """``year(x)`` parses as ``Year(TsOrDsToDate(x))``; get ``x`` back."""
    ts = getattr(exp, "TsOrDsToDate", None)
    while ts is not None and isinstance(node, ts) and not node.args.get("format"):
        node = node.this
    return node


def _postorder(node: exp.Expression, fn: Callable[[exp.Expression], exp.Expression]) -> exp.Expression:
    """Apply ``fn`` to every node, children first; ``fn`` returns the replacement."""
    for key, value in list(node.args.items()):
        if isinstance(value, exp.Expression):
            new = _postorder(value, fn)
            if new is not value:
                node.set(key, new)
        elif isinstance(value, list):
            changed = False
            items = []
            for item in value:
                if isinstance(item, exp.Expression):
                    new = _postorder(item, fn)
                    changed |= new is not item
                    items.append(new)
                else:
                    items.append(item)
            if changed:
                node.set(key, items)
    return fn(node)


# --------------------------------------------------------------------------- rewrites

_Rewrite = Callable[[exp.Expression, str], exp.Expression]
_PG: dict[type, _Rewrite] = {}
_SQLITE: dict[type, _Rewrite] = {}
_NON_MYSQL: dict[type, _Rewrite] = {}


def _rule(table: dict[type, _Rewrite] | tuple[dict[type, _Rewrite], ...], *names: str):
    tables = table if isinstance(table, tuple) else (table,)

    def register(fn: _Rewrite) -> _Rewrite:
        for name in names:
            cls = getattr(exp, name, None)
            if cls is not None:
                for t in tables:
                    t[cls] = fn
        return fn

    return register


def _unsupported(text: str, what: str, target: str) -> SQLTextError:
    return SQLTextError(text, f"{what} cannot be translated to {target}")


# ---- shared by PostgreSQL and SQLite


@_rule(_NON_MYSQL, "If")
def _if_to_case(node: exp.Expression, text: str) -> exp.Expression:
    if isinstance(node.parent, exp.Case):  # a WHEN branch of a CASE
        return node
    case = exp.Case(ifs=[exp.If(this=node.this, true=node.args["true"])])
    if node.args.get("false") is not None:
        case.set("default", node.args["false"])
    return case


# ---- PostgreSQL

_PG_EXTRACT = {
    "Year": "YEAR",
    "Month": "MONTH",
    "Day": "DAY",
    "DayOfMonth": "DAY",
    "Hour": "HOUR",
    "Minute": "MINUTE",
    "Quarter": "QUARTER",
    "DayOfYear": "DOY",
}


def _pg_temporal(node: exp.Expression) -> exp.Expression:
    """A date/time operand; string literals need a type in PostgreSQL."""
    node = _strip_date(node)
    return _cast(node, "TIMESTAMP") if _is_string(node) else node


def _pg_extract(field: str, node: exp.Expression) -> exp.Expression:
    return exp.Extract(this=exp.var(field), expression=_pg_temporal(node))


@_rule(_PG, *_PG_EXTRACT)
def _pg_date_part(node: exp.Expression, text: str) -> exp.Expression:
    return _cast(_pg_extract(_PG_EXTRACT[type(node).__name__], node.this), "INTEGER")


@_rule(_PG, "Second")
def _pg_second(node: exp.Expression, text: str) -> exp.Expression:
    return _cast(exp.Floor(this=_pg_extract("SECOND", node.this)), "INTEGER")


@_rule(_PG, "DayOfWeek")
def _pg_dayofweek(node: exp.Expression, text: str) -> exp.Expression:
    return _arith(exp.Add, _cast(_pg_extract("DOW", node.this), "INTEGER"), _lit(1))


@_rule(_PG, "Round")
def _pg_round(node: exp.Expression, text: str) -> exp.Expression:
    # PostgreSQL has round(numeric, int) but no round(double precision, int)
    if node.args.get("decimals") is not None:
        this = node.this
        if not (isinstance(this, exp.Cast) and this.to.this in (exp.DataType.Type.DECIMAL,)):
            node.set("this", _cast(this, "NUMERIC"))
    return node


@_rule(_PG, "Trunc")
def _pg_trunc(node: exp.Expression, text: str) -> exp.Expression:
    decimals = node.args.get("decimals")
    args = [_cast(node.this, "NUMERIC")] + ([decimals] if decimals is not None else [])
    return _fn("TRUNC", *args)


@_rule(_PG, "Concat")
def _pg_concat(node: exp.Expression, text: str) -> exp.Expression:
    # rendered as a || b || ...: NULL-propagating like MySQL, but needs text operands
    node.set("expressions", [a if _is_string(a) else _cast(a, "TEXT") for a in node.expressions])
    return node


@_rule(_PG, "GroupConcat")
def _pg_group_concat(node: exp.Expression, text: str) -> exp.Expression:
    this = node.this
    target = this.this if isinstance(this, exp.Order) else this
    if isinstance(target, exp.Distinct):
        target.set("expressions", [_cast(e, "TEXT") for e in target.expressions])
    elif isinstance(this, exp.Order):
        this.set("this", _cast(target, "TEXT"))
    else:
        node.set("this", _cast(target, "TEXT"))
    return node


@_rule(_PG, "Greatest", "Least")
def _pg_greatest(node: exp.Expression, text: str) -> exp.Expression:
    # MySQL returns NULL if any argument is NULL; PostgreSQL ignores NULLs
    args = [node.this, *node.expressions]
    if len(args) < 2:
        return node
    any_null = functools.reduce(
        lambda acc, a: exp.Or(this=acc, expression=exp.Is(this=_p(a.copy()), expression=exp.Null())),
        args[1:],
        exp.Is(this=_p(args[0].copy()), expression=exp.Null()),
    )
    fresh = type(node)(this=args[0], expressions=args[1:])
    return exp.Case(ifs=[exp.If(this=any_null, true=exp.Null())], default=fresh)


@_rule(_PG, "Cast")
def _pg_cast(node: exp.Expression, text: str) -> exp.Expression:
    to = node.to
    T = exp.DataType.Type
    if to.this in (T.CHAR, T.NCHAR) and not to.expressions:  # CHAR means char(1) in PostgreSQL
        node.set("to", exp.DataType.build("TEXT"))
    elif to.this in _UNSIGNED:
        node.set("to", exp.DataType.build("BIGINT"))  # unsigned integers
    elif to.this in (T.DATETIME,):
        node.set("to", exp.DataType.build("TIMESTAMP"))
    return node


_UNSIGNED = {
    getattr(exp.DataType.Type, n)
    for n in ("UBIGINT", "UINT", "UMEDIUMINT", "USMALLINT", "UTINYINT", "UINT128", "UINT256")
    if hasattr(exp.DataType.Type, n)
}


@_rule(_PG, "TimestampDiff")
def _pg_timestampdiff(node: exp.Expression, text: str) -> exp.Expression:
    # TimestampDiff(this=end, expression=start)
    unit = _unit(node)
    end = _cast(node.this, "TIMESTAMP")
    start = _cast(node.expression, "TIMESTAMP")
    if unit in ("YEAR", "MONTH", "QUARTER"):
        age = _fn("AGE", end, start)
        years = exp.Extract(this=exp.var("YEAR"), expression=age)
        if unit == "YEAR":
            return _cast(years, "INTEGER")
        months = _arith(
            exp.Add,
            _arith(exp.Mul, years, _lit(12)),
            exp.Extract(this=exp.var("MONTH"), expression=age.copy()),
        )
        months = _cast(months, "INTEGER")
        return months if unit == "MONTH" else _arith(exp.Div, months, _lit(3))
    seconds = {"WEEK": 604800, "DAY": 86400, "HOUR": 3600, "MINUTE": 60, "SECOND": 1}.get(unit)
    if seconds is None:
        raise _unsupported(text, f"TIMESTAMPDIFF unit {unit}", "PostgreSQL")
    epoch = exp.Extract(this=exp.var("EPOCH"), expression=_arith(exp.Sub, end, start))
    value = epoch if seconds == 1 else _arith(exp.Div, epoch, _lit(seconds))
    return _cast(_fn("TRUNC", value), "BIGINT")


@_rule(_PG, "DateDiff")
def _pg_datediff(node: exp.Expression, text: str) -> exp.Expression:
    return _arith(exp.Sub, _cast(node.this, "DATE"), _cast(node.expression, "DATE"))


@_rule(_PG, "DateAdd", "DateSub")
def _pg_date_add(node: exp.Expression, text: str) -> exp.Expression:
    if _is_string(node.this):
        node.set("this", _cast(node.this, "TIMESTAMP"))
    return node


@_rule(_PG, "Add", "Sub")
def _pg_add_interval(node: exp.Expression, text: str) -> exp.Expression:
    for key, other in (("this", "expression"), ("expression", "this")):
        if isinstance(node.args.get(other), exp.Interval) and _is_string(node.args.get(key)):
            node.set(key, _cast(node.args[key], "TIMESTAMP"))
    return node


@_rule(_PG, "RegexpLike")
def _pg_regexp(node: exp.Expression, text: str) -> exp.Expression:
    # MySQL's default collations are case-insensitive
    return exp.RegexpILike(this=node.this, expression=node.expression)


@_rule(_PG, "Like")
def _pg_like(node: exp.Expression, text: str) -> exp.Expression:
    # MySQL (default collations) and SQLite compare LIKE patterns case-insensitively
    return exp.ILike(**node.args)


@_rule(_PG, "Log")
def _pg_log(node: exp.Expression, text: str) -> exp.Expression:
    if node.expression is None:  # log(x) == ln(x) in MySQL
        return exp.Ln(this=node.this)
    base, value = node.this, node.expression
    if _int_literal(base) == 10:
        return _fn("LOG10", value)
    return _arith(exp.Div, exp.Ln(this=value), exp.Ln(this=base))


@_rule(_PG, "IntDiv")
def _pg_intdiv(node: exp.Expression, text: str) -> exp.Expression:
    # MySQL's DIV truncates toward zero and gives NULL on division by zero
    return _fn("DIV", _cast(node.this, "NUMERIC"), exp.Nullif(this=_cast(node.expression, "NUMERIC"), expression=_lit(0)))


@_rule(_PG, "Mod")
def _pg_mod(node: exp.Expression, text: str) -> exp.Expression:
    # PostgreSQL has no % for double precision and raises on modulo by zero
    return _fn("MOD", _cast(node.this, "NUMERIC"), exp.Nullif(this=_cast(node.expression, "NUMERIC"), expression=_lit(0)))


@_rule(_PG, "UtcTimestamp")
def _pg_utc_timestamp(node: exp.Expression, text: str) -> exp.Expression:
    return exp.Paren(this=exp.AtTimeZone(this=_fn("NOW"), zone=_lit("UTC")))


@_rule(_PG, "UtcDate")
def _pg_utc_date(node: exp.Expression, text: str) -> exp.Expression:
    return _cast(exp.AtTimeZone(this=_fn("NOW"), zone=_lit("UTC")), "DATE")


@_rule(_PG, "Anonymous")
def _pg_anonymous(node: exp.Expression, text: str) -> exp.Expression:
    name = node.name.upper()
    if name == "WEEKDAY" and len(node.expressions) == 1:  # 0 = Monday
        return _arith(exp.Sub, _cast(_pg_extract("ISODOW", node.expressions[0]), "INTEGER"), _lit(1))
    if name == "MID":
        return exp.Substring(
            this=node.expressions[0],
            start=_seq(node.expressions, 1),
            length=_seq(node.expressions, 2),
        )
    return node


def _seq(items: list, index: int) -> exp.Expression | None:
    return items[index] if len(items) > index else None


# ---- SQLite

_SQLITE_STRFTIME = {
    "Year": "%Y",
    "Month": "%m",
    "Day": "%d",
    "DayOfMonth": "%d",
    "Hour": "%H",
    "Minute": "%M",
    "Second": "%S",
    "DayOfYear": "%j",
}


def _strftime(fmt: str, node: exp.Expression) -> exp.Expression:
    return _cast(_fn("STRFTIME", _lit(fmt), _strip_date(node)), "INTEGER")


@_rule(_SQLITE, *_SQLITE_STRFTIME)
def _sqlite_date_part(node: exp.Expression, text: str) -> exp.Expression:
    return _strftime(_SQLITE_STRFTIME[type(node).__name__], node.this)


@_rule(_SQLITE, "DayOfWeek")
def _sqlite_dayofweek(node: exp.Expression, text: str) -> exp.Expression:
    return _arith(exp.Add, _strftime("%w", node.this), _lit(1))


@_rule(_SQLITE, "Quarter")
def _sqlite_quarter(node: exp.Expression, text: str) -> exp.Expression:
    month = _strftime("%m", node.this)
    return _arith(exp.Div, _arith(exp.Add, month, _lit(2)), _lit(3))


def _sqlite_now(fn: str, *modifiers: str) -> exp.Expression:
    return _fn(fn, _lit("now"), *(_lit(m) for m in modifiers))


@_rule(_SQLITE, "CurrentTimestamp")
def _sqlite_current_timestamp(node: exp.Expression, text: str) -> exp.Expression:
    return _sqlite_now("DATETIME", "localtime")


@_rule(_SQLITE, "CurrentDate")
def _sqlite_current_date(node: exp.Expression, text: str) -> exp.Expression:
    return _sqlite_now("DATE", "localtime")


@_rule(_SQLITE, "CurrentTime")
def _sqlite_current_time(node: exp.Expression, text: str) -> exp.Expression:
    return _sqlite_now("TIME", "localtime")


@_rule(_SQLITE, "UtcTimestamp")
def _sqlite_utc_timestamp(node: exp.Expression, text: str) -> exp.Expression:
    return _sqlite_now("DATETIME")


@_rule(_SQLITE, "UtcDate")
def _sqlite_utc_date(node: exp.Expression, text: str) -> exp.Expression:
    return _sqlite_now("DATE")


@_rule(_SQLITE, "Anonymous")
def _sqlite_anonymous(node: exp.Expression, text: str) -> exp.Expression:
    name = node.name.upper()
    args = node.expressions
    if name in ("NOW", "LOCALTIME", "LOCALTIMESTAMP") and not args:
        return _sqlite_now("DATETIME", "localtime")
    if name == "WEEKDAY" and len(args) == 1:  # 0 = Monday
        return _arith(exp.Mod, _arith(exp.Add, _strftime("%w", args[0]), _lit(6)), _lit(7))
    if name == "MID":
        return _fn("SUBSTR", *args)
    return node


@_rule(_SQLITE, "ConcatWs")
def _sqlite_concat_ws(node: exp.Expression, text: str) -> exp.Expression:
    # CONCAT_WS exists only from SQLite 3.44; MySQL skips NULL arguments
    sep, *args = node.expressions
    if not args:
        raise _unsupported(text, "CONCAT_WS without arguments", "SQLite")
    parts = [exp.Coalesce(this=exp.DPipe(this=_p(sep.copy()), expression=_p(a)), expressions=[_lit("")]) for a in args]
    joined = functools.reduce(lambda acc, part: exp.DPipe(this=acc, expression=part), parts[1:], parts[0])
    return _fn("SUBSTR", joined, _arith(exp.Add, exp.Length(this=sep), _lit(1)))


@_rule(_SQLITE, "Trunc")
def _sqlite_trunc(node: exp.Expression, text: str) -> exp.Expression:
    decimals = node.args.get("decimals")
    places = 0 if decimals is None else _int_literal(decimals)
    if places is None:
        raise _unsupported(text, "TRUNCATE with a non-constant number of places", "SQLite")
    if places == 0:
        return _cast(node.this, "INTEGER")
    if places > 0:
        scaled = _cast(_arith(exp.Mul, node.this, _lit(10**places)), "INTEGER")
        return _arith(exp.Div, scaled, _lit(float(10**places)))
    scaled = _cast(_arith(exp.Div, node.this, _lit(float(10**-places))), "INTEGER")
    return _arith(exp.Mul, scaled, _lit(10**-places))


@_rule(_SQLITE, "DateDiff")
def _sqlite_datediff(node: exp.Expression, text: str) -> exp.Expression:
    def day(x: exp.Expression) -> exp.Expression:
        return _fn("JULIANDAY", _fn("DATE", x))

    return _cast(_arith(exp.Sub, day(node.this), day(node.expression)), "INTEGER")


def _sqlite_seconds(x: exp.Expression) -> exp.Expression:
    return _cast(_fn("STRFTIME", _lit("%s"), x), "INTEGER")


def _sqlite_month_index(x: exp.Expression) -> exp.Expression:
    return _arith(exp.Add, _arith(exp.Mul, _strftime("%Y", x), _lit(12)), _strftime("%m", x.copy()))


@_rule(_SQLITE, "TimestampDiff")
def _sqlite_timestampdiff(node: exp.Expression, text: str) -> exp.Expression:
    unit = _unit(node)
    end, start = node.this, node.expression
    seconds = {"WEEK": 604800, "DAY": 86400, "HOUR": 3600, "MINUTE": 60, "SECOND": 1}.get(unit)
    if seconds is not None:
        diff = _arith(exp.Sub, _sqlite_seconds(end), _sqlite_seconds(start))
        # integer division truncates toward zero, like MySQL
        return diff if seconds == 1 else _arith(exp.Div, diff, _lit(seconds))
    if unit not in ("YEAR", "QUARTER", "MONTH"):
        raise _unsupported(text, f"TIMESTAMPDIFF unit {unit}", "SQLite")

    def rest(x: exp.Expression) -> exp.Expression:  # position within the month, comparable as text
        return _fn("STRFTIME", _lit("%d %H:%M:%f"), x)

    raw = _arith(exp.Sub, _sqlite_month_index(end.copy()), _sqlite_month_index(start.copy()))
    months = exp.Case(
        ifs=[
            exp.If(
                this=exp.And(
                    this=exp.GT(this=raw.copy(), expression=_lit(0)),
                    expression=exp.LT(this=rest(end.copy()), expression=rest(start.copy())),
                ),
                true=_arith(exp.Sub, raw.copy(), _lit(1)),
            ),
            exp.If(
                this=exp.And(
                    this=exp.LT(this=raw.copy(), expression=_lit(0)),
                    expression=exp.GT(this=rest(end.copy()), expression=rest(start.copy())),
                ),
                true=_arith(exp.Add, raw.copy(), _lit(1)),
            ),
        ],
        default=raw,
    )
    divisor = {"YEAR": 12, "QUARTER": 3, "MONTH": 1}[unit]
    return months if divisor == 1 else _arith(exp.Div, months, _lit(divisor))


_SQLITE_TIME_UNITS = {"HOUR", "MINUTE", "SECOND"}
_SQLITE_DATE_UNITS = {"DAY": "days", "WEEK": "days", "MONTH": "months", "YEAR": "years"}


def _sqlite_shift(text: str, value: exp.Expression, amount: exp.Expression, unit: str, sign: int) -> exp.Expression:
    unit = unit.upper()
    if unit not in _SQLITE_TIME_UNITS and unit not in _SQLITE_DATE_UNITS:
        raise _unsupported(text, f"date arithmetic in {unit}", "SQLite")
    n = _int_literal(amount)
    if n is None and _is_string(amount):
        try:
            n = int(amount.name)
        except ValueError:
            raise _unsupported(text, f"interval {amount.name!r}", "SQLite") from None
    word = _SQLITE_DATE_UNITS.get(unit, unit.lower() + "s")
    factor = 7 if unit == "WEEK" else 1
    if n is not None:
        modifier: exp.Expression = _lit(f"{sign * factor * n:+d} {word}")
    else:
        count = _arith(exp.Mul, amount, _lit(sign * factor))
        modifier = exp.DPipe(this=_cast(count, "TEXT"), expression=_lit(f" {word}"))
    if unit in _SQLITE_TIME_UNITS:
        return _fn("DATETIME", value, modifier)
    # MySQL returns a DATE for a DATE operand and a DATETIME otherwise
    return exp.Case(
        ifs=[exp.If(this=exp.GT(this=exp.Length(this=value.copy()), expression=_lit(10)), true=_fn("DATETIME", value.copy(), modifier.copy()))],
        default=_fn("DATE", value, modifier),
    )


def _interval_parts(interval: exp.Expression) -> tuple[exp.Expression, str]:
    unit = interval.args.get("unit")
    amount = interval.this
    if unit is None and _is_string(amount):  # INTERVAL '1 DAY'
        pieces = amount.name.split()
        if len(pieces) == 2:
            return _lit(pieces[0]), pieces[1].rstrip("sS").upper()
    return amount, (unit.name if unit is not None else "DAY").upper()


@_rule(_SQLITE, "DateAdd", "DateSub")
def _sqlite_date_add(node: exp.Expression, text: str) -> exp.Expression:
    amount = node.expression
    unit = _unit(node)
    if isinstance(amount, exp.Interval):
        amount, unit = _interval_parts(amount)
    sign = -1 if isinstance(node, exp.DateSub) else 1
    return _sqlite_shift(text, node.this, amount, unit, sign)


@_rule(_SQLITE, "Add", "Sub")
def _sqlite_add_interval(node: exp.Expression, text: str) -> exp.Expression:
    left, right = node.this, node.expression
    if isinstance(right, exp.Interval):
        amount, unit = _interval_parts(right)
        return _sqlite_shift(text, left, amount, unit, -1 if isinstance(node, exp.Sub) else 1)
    if isinstance(left, exp.Interval) and isinstance(node, exp.Add):
        amount, unit = _interval_parts(left)
        return _sqlite_shift(text, right, amount, unit, 1)
    return node


@_rule(_SQLITE, "Xor")
def _sqlite_xor(node: exp.Expression, text: str) -> exp.Expression:
    def truth(x: exp.Expression) -> exp.Expression:
        return exp.Paren(this=exp.NEQ(this=_p(x), expression=_lit(0)))

    return exp.Paren(this=exp.NEQ(this=truth(node.this), expression=truth(node.expression)))


@_rule(_SQLITE, "Like")
def _sqlite_like(node: exp.Expression, text: str) -> exp.Expression:
    # backslash is LIKE's default escape character in MySQL, SQLite has none
    if isinstance(node.parent, exp.Escape):
        return node
    return exp.Escape(this=node, expression=_lit("\\"))


@_rule(_SQLITE, "Left")
def _sqlite_left(node: exp.Expression, text: str) -> exp.Expression:
    return _fn("SUBSTR", node.this, _lit(1), node.expression)


@_rule(_SQLITE, "Right")
def _sqlite_right(node: exp.Expression, text: str) -> exp.Expression:
    n = node.expression
    count = _int_literal(n)
    if count is not None:
        return _fn("SUBSTR", node.this, _lit(-count)) if count > 0 else _lit("")
    return exp.Case(
        ifs=[exp.If(this=exp.LTE(this=_p(n.copy()), expression=_lit(0)), true=_lit(""))],
        default=_fn("SUBSTR", node.this, exp.Neg(this=_p(n))),
    )


_INTEGER_TYPES = {
    getattr(exp.DataType.Type, n)
    for n in ("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "UTINYINT", "USMALLINT", "UMEDIUMINT", "UINT", "UBIGINT")
    if hasattr(exp.DataType.Type, n)
}


@_rule(_SQLITE, "Cast")
def _sqlite_cast(node: exp.Expression, text: str) -> exp.Expression:
    # MySQL rounds when casting a number to an integer type, SQLite truncates
    if node.to.this in _INTEGER_TYPES and not _is_string(node.this):
        node.set("this", exp.Round(this=node.this))
    return node


@_rule(_SQLITE, "VariancePop")
def _sqlite_var_pop(node: exp.Expression, text: str) -> exp.Expression:
    return _fn("VAR_POP", node.this)


@_rule(_SQLITE, "Variance")
def _sqlite_var_samp(node: exp.Expression, text: str) -> exp.Expression:
    return _fn("VAR_SAMP", node.this)


@_rule(_SQLITE, "StddevPop")
def _sqlite_stddev_pop(node: exp.Expression, text: str) -> exp.Expression:
    return _fn("STDDEV_POP", node.this)


@_rule(_SQLITE, "StddevSamp", "Stddev")
def _sqlite_stddev_samp(node: exp.Expression, text: str) -> exp.Expression:
    return _fn("STDDEV_SAMP", node.this)


# --------------------------------------------------------------------------- PostgreSQL booleans

_BOOL, _VALUE, _ANY = "bool", "value", "any"
_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.NullSafeEQ, exp.NullSafeNEQ)


def _is_bool(node: exp.Expression | None) -> bool:
    if isinstance(node, exp.Paren):
        return _is_bool(node.this)
    if isinstance(node, (exp.Predicate, exp.Connector, exp.Not, exp.Boolean)):
        return True
    if isinstance(node, exp.Escape):
        return _is_bool(node.this)
    if isinstance(node, exp.Case):
        branches = [i.args.get("true") for i in node.args.get("ifs") or []] + [node.args.get("default")]
        branches = [b for b in branches if b is not None and not isinstance(b, exp.Null)]
        return bool(branches) and all(_is_bool(b) for b in branches)
    if isinstance(node, exp.Cast):
        return node.to.this == exp.DataType.Type.BOOLEAN
    return False


def _truthy(node: exp.Expression) -> exp.Expression:
    """MySQL truth value of a non-boolean ``node`` as a PostgreSQL boolean."""
    if isinstance(node, exp.Null):
        return node
    if isinstance(node, exp.Literal) and not node.is_string:
        try:
            return exp.Boolean(this=float(node.this) != 0)
        except ValueError:
            pass
    if isinstance(node, exp.Column):  # may be an integer or a boolean column
        node = _cast(node, "INTEGER")
    return exp.Paren(this=exp.NEQ(this=_p(node), expression=_lit(0)))


def _as_value(node: exp.Expression) -> exp.Expression:
    """A PostgreSQL boolean used where MySQL expects a number becomes 0/1."""
    if isinstance(node, exp.Boolean):
        return _lit(1 if node.this else 0)
    if isinstance(node, exp.Paren):
        node = node.this
    return _cast(exp.Paren(this=node), "INTEGER")


def _pg_booleans(node: exp.Expression, ctx: str) -> exp.Expression:
    if isinstance(node, exp.Paren):
        node.set("this", _pg_booleans(node.this, ctx))
        return node
    if isinstance(node, _QUERY) or isinstance(node, exp.Subquery):
        return node  # subqueries are left as written
    if isinstance(node, exp.Connector):
        node.set("this", _pg_booleans(node.this, _BOOL))
        node.set("expression", _pg_booleans(node.expression, _BOOL))
    elif isinstance(node, exp.Not):
        node.set("this", _pg_booleans(node.this, _BOOL))
    elif isinstance(node, exp.Case):
        if node.this is not None:  # CASE x WHEN v ...
            node.set("this", _pg_booleans(node.this, _VALUE))
        branches = [i.args.get("true") for i in node.args["ifs"]] + [node.args.get("default")]
        present = [b for b in branches if b is not None and not isinstance(b, exp.Null)]
        branch_ctx = ctx if ctx != _ANY else (_BOOL if present and all(map(_is_bool, present)) else _VALUE)
        for when in node.args["ifs"]:
            when.set("this", _pg_booleans(when.this, _VALUE if node.this is not None else _BOOL))
            when.set("true", _pg_booleans(when.args["true"], branch_ctx))
        if node.args.get("default") is not None:
            node.set("default", _pg_booleans(node.args["default"], branch_ctx))
    elif isinstance(node, _COMPARISONS):
        left, right = node.this, node.expression
        lb, rb = _is_bool(left), _is_bool(right)
        if lb and rb:
            node.set("this", _pg_booleans(left, _ANY))
            node.set("expression", _pg_booleans(right, _ANY))
        else:
            for key, operand, other_bool in (("this", left, rb), ("expression", right, lb)):
                new = _pg_booleans(operand, _VALUE)
                if other_bool and isinstance(new, exp.Column):
                    new = _cast(new, "INTEGER")  # could be a boolean column
                node.set(key, new)
    elif isinstance(node, exp.Is):
        operand_ctx = _BOOL if isinstance(node.expression, exp.Boolean) else _ANY
        node.set("this", _pg_booleans(node.this, operand_ctx))
    elif isinstance(node, exp.Escape):
        node.set("this", _pg_booleans(node.this, ctx))
        return node
    else:
        for key, value in list(node.args.items()):
            if isinstance(value, exp.Expression):
                node.set(key, _pg_booleans(value, _VALUE))
            elif isinstance(value, list) and any(isinstance(v, exp.Expression) for v in value):
                node.set(key, [_pg_booleans(v, _VALUE) if isinstance(v, exp.Expression) else v for v in value])
    if ctx == _BOOL and not _is_bool(node):
        return _truthy(node)
    if ctx == _VALUE and _is_bool(node):
        return _as_value(node)
    return node


# --------------------------------------------------------------------------- generation


def _mysql_generator_class() -> type:
    dialect = Dialect.get_or_raise("mysql")
    base = dialect.generator_class

    class _MySQLGenerator(base):  # type: ignore[misc, valid-type]
        # MariaDB has no REGEXP_LIKE(); the REGEXP operator works on MySQL and MariaDB
        TRANSFORMS = {**base.TRANSFORMS, exp.RegexpLike: lambda self, e: self.binary(e, "REGEXP")}

    return _MySQLGenerator


_MYSQL_GENERATOR = _mysql_generator_class()


def _generate(tree: exp.Expression, target: str) -> str:
    options = dict(identify=True, unsupported_level=ErrorLevel.RAISE, comments=False)
    dialect = Dialect.get_or_raise(target)
    if target == "mysql":
        return _MYSQL_GENERATOR(dialect=dialect, **options).generate(tree, copy=False)
    return dialect.generate(tree, copy=False, **options)


# functions that sqlglot passes through unchanged but PostgreSQL does not have
_PG_MISSING = frozenset(
    """
    DAY_OF_WEEK DAY_OF_YEAR DAYOFWEEK DAYOFYEAR DAYOFMONTH WEEK WEEKOFYEAR YEARWEEK WEEKDAY
    DAYNAME MONTHNAME HOUR MINUTE SECOND YEAR MONTH DAY QUARTER TIMESTAMPDIFF DATEDIFF
    UNIX_TIMESTAMP FROM_UNIXTIME SYSDATE TIME_TO_SEC SEC_TO_TIME TO_DAYS FROM_DAYS MAKEDATE
    MAKETIME PERIOD_ADD PERIOD_DIFF ADDTIME SUBTIME CONVERT_TZ TIMESTAMPADD DATE_FORMAT
    NUMBER_TO_STR HEX UNHEX CONV BIN OCT CRC32 ELT FIELD FIND_IN_SET MAKE_SET EXPORT_SET
    INSTR LOCATE MID IFNULL ISNULL IF IIF DATABASE SCHEMA LAST_INSERT_ID UUID_SHORT
    INET_ATON INET_NTOA STRCMP SOUNDEX TRUNCATE RAND GROUP_CONCAT VARIANCE_POP
    """.split()
)

_STRINGS_AND_IDENTIFIERS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`(?:[^`]|``)*`")
_FUNCTION_CALL = re.compile(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(")


def _called_functions(sql: str) -> set[str]:
    return {m.upper() for m in _FUNCTION_CALL.findall(_STRINGS_AND_IDENTIFIERS.sub(" ", sql))}


_sqlite_probe_lock = threading.Lock()
_sqlite_probe: sqlite3.Connection | None = None


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _check_sqlite(sql: str, tree: exp.Expression, text: str) -> None:
    """Prepare ``sql`` on an in-memory database to catch functions SQLite lacks."""
    global _sqlite_probe
    sources: dict[str, set[str]] = {}
    for col in tree.find_all(exp.Column):
        if isinstance(col.this, exp.Star) or not _top_level(col):
            continue
        sources.setdefault(col.table or "", set()).add(col.name)
    froms = []
    for i, (table, names) in enumerate(sorted(sources.items())):
        columns = ", ".join(f"NULL AS {_sqlite_quote(n)}" for n in sorted(names))
        froms.append(f"(SELECT {columns}) AS {_sqlite_quote(table or f'_dj_probe_{i}')}")
    probe = f"EXPLAIN SELECT {sql}" + (f" FROM {', '.join(froms)}" if froms else "")
    with _sqlite_probe_lock:
        if _sqlite_probe is None:
            _sqlite_probe = sqlite3.connect(":memory:", check_same_thread=False)
            register_sqlite_functions(_sqlite_probe)
        try:
            _sqlite_probe.execute(probe).fetchall()
        except sqlite3.OperationalError as error:
            message = str(error)
            if message.startswith(("no such function", "wrong number of arguments", "unknown function")) or (
                "syntax error" in message
            ):
                raise SQLTextError(text, f"not supported by SQLite ({message})") from None
        except sqlite3.Error:
            pass


def _check_postgres(sql: str, text: str) -> None:
    missing = sorted(_called_functions(sql) & _PG_MISSING)
    if missing:
        raise SQLTextError(text, f"function(s) {', '.join(missing)} not available in PostgreSQL")


def _apply_columns(tree: exp.Expression, qualify: Mapping[str, str]) -> None:
    for col in tree.find_all(exp.Column):
        ident = col.this
        if not isinstance(ident, exp.Identifier):
            continue
        name = ident.name.lower()
        col.set("this", exp.Identifier(this=name, quoted=True))
        for part in ("table", "db", "catalog"):
            value = col.args.get(part)
            if isinstance(value, exp.Identifier):
                col.set(part, exp.Identifier(this=value.name, quoted=True))
        if not col.args.get("table") and name in qualify and _top_level(col):
            col.set("table", exp.Identifier(this=qualify[name], quoted=True))


def translate(
    text: str,
    dialect: str,
    *,
    qualify: Mapping[str, str] | None = None,
    kind: str = "condition",
) -> str:
    """Return ``text`` (MySQL syntax) as SQL for the SQLAlchemy dialect name ``dialect``.

    ``dialect`` is ``'sqlite'``, ``'mysql'``, ``'mariadb'`` or ``'postgresql'``.
    ``qualify`` maps column names to a table alias: every unqualified column
    reference whose (lower-cased) name is in ``qualify`` is rendered as
    ``alias.column``.  Identifiers are always quoted.  ``kind='condition'`` for
    WHERE/HAVING text, ``kind='expression'`` for a select-list expression.

    Raises :class:`SQLTextError` when the text cannot be parsed or translated.
    The result is plain SQL: when handing it to ``sqlalchemy.text()`` remember
    that ``:name`` sequences are taken as bind parameters.
    """
    # Aliases of subqueries are numbered per query; the translation is cached with
    # placeholders for them, so that the same text over the same shape is translated once.
    aliases: dict[str, str] = {}
    items = tuple((column, aliases.setdefault(alias, f"__dj_alias{len(aliases)}__"))
                  for column, alias in sorted((str(k).lower(), str(v)) for k, v in (qualify or {}).items()))
    sql = _translate(text, dialect, items, kind)
    for alias, token in aliases.items():
        sql = sql.replace(token, alias)
    return sql


@functools.lru_cache(maxsize=8192)
def _translate(text: str, dialect: str, qualify: tuple[tuple[str, str], ...], kind: str) -> str:
    target = _DIALECTS.get(str(dialect).lower())
    if target is None:
        raise SQLTextError(text, f"unknown SQL dialect {dialect!r}")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    tree = _parse(text).copy()
    _apply_columns(tree, dict(qualify))
    rules: dict[type, _Rewrite] = {}
    if target != "mysql":
        rules.update(_NON_MYSQL)
    rules.update({"postgres": _PG, "sqlite": _SQLITE}.get(target, {}))
    try:
        if rules:
            tree = _postorder(tree, lambda node: rules[type(node)](node, text) if type(node) in rules else node)
        if target == "postgres":
            tree = _pg_booleans(tree, _BOOL if kind == "condition" else _VALUE)
        sql = _generate(tree, target)
    except SQLTextError:
        raise
    except (SqlglotError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SQLTextError(text, f"cannot be translated to {dialect} ({_first_line(error)})") from None
    if target == "postgres":
        _check_postgres(sql, text)
    elif target == "sqlite":
        _check_sqlite(sql, tree, text)
    return sql


# --------------------------------------------------------------------------- SQLite functions


def _regexp(pattern: str | None, value: object) -> int | None:
    if pattern is None or value is None:
        return None
    return int(re.search(pattern, str(value), re.IGNORECASE) is not None)


class _Moments:
    """Welford accumulator behind the variance / standard deviation aggregates."""

    sample = False
    root = False

    def __init__(self) -> None:
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def step(self, value: object) -> None:
        if value is None:
            return
        x = float(value)  # type: ignore[arg-type]
        self.n += 1
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def finalize(self) -> float | None:
        denominator = self.n - 1 if self.sample else self.n
        if denominator <= 0:
            return None
        variance = self.m2 / denominator
        return math.sqrt(variance) if self.root else variance


class _VarPop(_Moments):
    pass


class _VarSamp(_Moments):
    sample = True


class _StdPop(_Moments):
    root = True


class _StdSamp(_Moments):
    sample = True
    root = True


def register_sqlite_functions(dbapi_connection: sqlite3.Connection) -> None:
    """Give a SQLite connection the MySQL functions translated SQL may call.

    ``REGEXP`` (case-insensitive, like MySQL's default collations), ``VAR_POP``,
    ``VAR_SAMP``, ``STDDEV_POP`` and ``STDDEV_SAMP``.  Use from a SQLAlchemy
    ``"connect"`` event listener.
    """
    dbapi_connection.create_function("REGEXP", 2, _regexp, deterministic=True)
    for name, cls in (
        ("VAR_POP", _VarPop),
        ("VAR_SAMP", _VarSamp),
        ("STDDEV_POP", _StdPop),
        ("STDDEV_SAMP", _StdSamp),
    ):
        dbapi_connection.create_aggregate(name, 1, cls)
