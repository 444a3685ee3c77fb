"""Query expressions: DataJoint's algebra as an immutable tree compiled to SQLAlchemy
Core. Each expression holds a FROM clause, the SQL expression of each attribute,
WHERE clauses, and optionally grouping, DISTINCT and an order/limit. An operator
extends the expression in place when SQL allows it and wraps it as a named subquery
only when it must (after grouping, limits or distinct, or when text refers to
computed attributes)."""

from __future__ import annotations

import itertools
import re
from dataclasses import replace
from typing import Any, Iterator

import sqlalchemy as sa

from .condition import AndList, Not, Top, make_condition, plain_key
from .errors import DataJointError, QueryError, SemanticJoinError, UnknownAttributeError
from .fetch import FetchMixin
from .heading import Attribute, Heading
from .types import parse_type

_IDENT = re.compile(r"^[a-z_][a-z0-9_]*$")
UNKNOWN_TYPE = parse_type("float64")


def next_alias(*exprs: "QueryExpression", taken: frozenset = frozenset()) -> str:
    """A subquery name used nowhere in ``exprs``. Chosen by position, not from a global
    counter, so that building the same query twice gives the same SQL: SQLAlchemy's
    compiled cache and the server's prepared statements then serve the repeats."""
    used = taken.union(*(e._used for e in exprs))
    for i in itertools.count():
        if f"_q{i}" not in used:
            return f"_q{i}"


class QueryExpression(FetchMixin):
    """Immutable: every operator returns a new expression."""

    _connection = None
    _heading: Heading | None = None
    _from = None
    _cols: dict[str, Any] | None = None
    _aliases: frozenset = frozenset()  # names of the FROM clause's own tables and subqueries
    _used: frozenset = frozenset()  # every alias name anywhere in the statement (nested ones too)
    _where_list: list = []  # never appended to: every expression assigns its own through _where
    _key: tuple | None = None  # a key restriction not yet in _where_list: (names, values), see restrict
    _group_by: list | None = None
    _distinct: bool = False
    _order_by: list | None = None
    _limit: int | None = None
    _offset: int = 0
    _top: Top | None = None  # the Top that set _order_by/_limit/_offset, merged with a next one

    # --- plumbing -------------------------------------------------------------
    @property
    def _where(self) -> list:
        """The WHERE clauses. A table restricted by one key (``Table & key`` in every make)
        holds the key's values until something needs clauses: a fetch then runs a statement
        cached per table and key names, with the values as its parameters."""
        key = self._key
        if key is not None:  # clauses first, then the key cleared: never seen unrestricted
            self.__dict__["_where_list"] = [make_condition(self, dict(zip(*key)))]
            self._key = None
        return self._where_list

    @_where.setter
    def _where(self, clauses: list) -> None:
        self._key = None
        self.__dict__["_where_list"] = clauses

    @property
    def connection(self):
        return self._connection

    @property
    def heading(self) -> Heading:
        return self._heading

    @property
    def primary_key(self) -> list[str]:
        return self.heading.primary_key

    @property
    def dialect(self) -> str:
        return self._connection.engine.dialect.name

    def _shallow(self) -> "QueryExpression":
        """copy.copy's result, without its generic protocol: attributes shared."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        return new

    def _copy(self) -> "QueryExpression":
        new = self._shallow()
        new._cols = dict(self._cols)
        new._where = list(self._where)
        return new

    def _as_plain(self) -> "QueryExpression":
        """A generic expression with the same content (tables become queries)."""
        new = QueryExpression.__new__(QueryExpression)
        new.__dict__.update({k: v for k, v in self.__dict__.items()
                             if k in ("_connection", "_heading", "_from", "_cols", "_aliases", "_used", "_where",
                                      "_group_by", "_distinct", "_order_by", "_limit", "_offset", "_top")})
        new._heading = self.heading
        new._cols = dict(self._cols)
        new._where = list(self._where)
        return new

    @property
    def _complex(self) -> bool:
        return self._group_by is not None or self._distinct or self._limit is not None or bool(self._offset)

    def make_sql(self, attrs: list[str] | None = None, distinct: bool | None = None) -> sa.Select:
        names = attrs if attrs is not None else list(self._cols)
        stmt = sa.select(*[self._cols[n].label(n) for n in names]).select_from(self._from)
        if self._where:
            stmt = stmt.where(*self._where)
        if self._group_by is not None:
            stmt = stmt.group_by(*self._group_by)
        if self._distinct if distinct is None else distinct:
            stmt = stmt.distinct()
        if self._order_by:
            stmt = stmt.order_by(*self._order_by)
        if self._limit is not None:
            stmt = stmt.limit(self._limit)
        if self._offset:
            stmt = stmt.offset(self._offset)
        return stmt

    def _wrapped(self, taken: frozenset = frozenset()) -> "QueryExpression":
        """This expression as a named subquery (a name not in ``taken``): a fresh, simple expression."""
        sub = self.make_sql().subquery(next_alias(self, taken=taken))
        new = QueryExpression.__new__(QueryExpression)
        new._connection = self._connection
        new._heading = self._heading
        new._from = sub
        new._cols = {n: sub.c[n] for n in self._cols}
        new._aliases = frozenset([sub.name])
        new._used = self._used | new._aliases
        new._where = []
        return new

    def _plain_columns(self) -> dict[str, str]:
        """Attributes that are same-named columns of a named FROM element: name -> alias."""
        out = {}
        for name, col in self._cols.items():
            table = getattr(col, "table", None)
            if isinstance(col, sa.Column) or (hasattr(col, "name") and table is not None and
                                               getattr(table, "name", None) in self._aliases):
                if getattr(col, "name", None) == name and getattr(table, "name", None) in self._aliases:
                    out[name] = table.name
        return out

    def _text(self, text: str, kind: str) -> tuple["QueryExpression", Any]:
        """Translate user SQL text; wrap first if it names a non-plain attribute."""
        from .sqltext import SQLTextError, referenced_columns, translate  # sqlglot loads at first use

        try:
            refs = referenced_columns(text)
        except SQLTextError as exc:
            raise QueryError(str(exc)) from None
        unknown = sorted(r for r in refs if r not in self._cols)
        if unknown:  # refused before any SQL is sent, alike on every backend
            raise UnknownAttributeError(f"Unknown attribute {unknown[0]!r} in {text!r}; the attributes of "
                                        f"{self._described()} are {self.heading.names}")
        expr = self
        plain = expr._plain_columns()
        if any(r in expr._cols and r not in plain for r in refs) or (kind == "condition" and expr._complex):
            expr = expr._wrapped()
            plain = expr._plain_columns()
        try:
            sql = translate(text, self.dialect, qualify=plain, kind=kind)
        except SQLTextError as exc:
            raise QueryError(str(exc)) from None
        return expr, sql

    def _text_condition(self, text: str):
        # Only called when self is already simple enough (see restrict).
        _, sql = self._text(text, "condition")
        return sa.text(f"({sql})")

    def _described(self) -> str:
        name = getattr(self, "full_table_name", None)
        return name if isinstance(name, str) else "the query"

    def _semijoin_clause(self, other: "QueryExpression", semantic_check: bool = True):
        common = [n for n in self.heading.names if n in other.heading.names]
        if semantic_check:
            _check_lineage(self, other, common)
        name = next_alias(self, other)
        self._used = self._used | other._used | {name}  # self is the restriction's fresh copy
        if not common:
            return sa.exists(other.make_sql([next(iter(other._cols))]).subquery(name).select())
        sub = other.make_sql(common).subquery(name)
        return sa.exists(sa.select(sa.literal(1)).select_from(sub).where(
            *[sub.c[n] == self._cols[n] for n in common]))

    # --- restriction ----------------------------------------------------------
    def restrict(self, cond: Any, semantic_check: bool = True, *, negate: bool = False) -> "QueryExpression":
        """The rows satisfying ``cond`` (``q & cond``; ``negate``: ``q - cond``). ``cond``
        takes every form :func:`condition.make_condition` accepts, and ``dj.Top(...)``.
        A query restricts by its rows on the namesake attributes, which must share their
        lineage unless ``semantic_check=False``."""
        if not negate and type(cond) is dict and self._keyable():
            key = plain_key(self.heading, cond, self._connection.adapter)
            if key is not None:  # held as values (see _where); columns shared, never changed in place
                expr = self._shallow()
                expr._key = key
                return expr
        cond = _operand(cond)
        if isinstance(cond, Top):
            if negate:
                raise QueryError("Top cannot be used with '-'")
            return self._top_restricted(cond)
        if isinstance(cond, U) and not negate:
            return self  # restricts nothing
        expr = self._wrapped() if self._complex else self._copy()
        if isinstance(cond, str):
            expr, sql = expr._text(cond, "condition")
            expr = expr._copy() if expr is not self else expr
            clause = sa.text(f"({sql})")
        else:
            clause = make_condition(expr, cond, semantic_check)
        expr._where.append(sa.not_(clause) if negate else clause)
        return expr

    def restrict_in_place(self, cond: Any) -> None:
        """Restrict this expression itself by ``cond`` (as :meth:`restrict`)."""
        self.__dict__.update(self.restrict(cond).__dict__)

    def _top_restricted(self, top: Top) -> "QueryExpression":
        """The rows ``top`` selects. A Top in the order of the Top already applied (or with
        ``order_by=None``) narrows that window; another order selects from the rows of the
        first as a subquery."""
        prev = self._top
        if prev is not None and top.order_by in (None, prev.order_by):
            offset = prev.offset + top.offset
            limits = [x for x in (top.limit, None if prev.limit is None else max(prev.limit - top.offset, 0))
                      if x is not None]
            top = Top(limit=min(limits) if limits else None, order_by=prev.order_by, offset=offset)
            expr = self._copy()
        else:
            expr = self._wrapped() if self._limit is not None or self._offset else self._copy()
            if top.order_by is None:
                top = Top(limit=top.limit, order_by="KEY", offset=top.offset)
        expr._top = top
        expr._order_by = expr._order_clauses(top.order_by)
        expr._limit, expr._offset = top.limit, top.offset
        return expr

    def _keyable(self) -> bool:
        """Whether a key restriction may be held as values (see ``_where``): base tables only."""
        return False

    def _keyed_statement(self, names: list[str], key: tuple):
        """(statement, parameters) fetching ``names`` of a table restricted by ``key`` (see
        ``_where``)."""
        raise NotImplementedError("only base tables hold a key restriction")

    def __and__(self, cond: Any) -> "QueryExpression":
        return self.restrict(cond)

    def __sub__(self, cond: Any) -> "QueryExpression":
        return self.restrict(cond, negate=True)

    def __xor__(self, cond: Any) -> "QueryExpression":
        raise DataJointError("The ^ operator has been removed in DataJoint 2.0: use "
                             ".restrict(other, semantic_check=False) to restrict without the lineage check")

    def __matmul__(self, other: Any) -> "QueryExpression":
        raise DataJointError("The @ operator has been removed in DataJoint 2.0: use "
                             ".join(other, semantic_check=False) to join without the lineage check")

    def __neg__(self) -> Not:
        return Not(self)

    def _order_clauses(self, order_by: list[str] | str | None) -> list:
        if order_by is None:
            return []
        items = [order_by] if isinstance(order_by, str) else list(order_by)
        out = []
        for item in items:
            for part in str(item).split(","):
                words = part.strip().split()
                if not words:
                    continue
                direction = words[1].lower() if len(words) > 1 else "asc"
                if len(words) > 2 or direction not in ("asc", "desc"):
                    raise QueryError(f"Cannot order by {part.strip()!r}: use 'attribute [asc|desc]' or 'KEY'")
                names = self.primary_key if words[0] == "KEY" else [words[0]]
                for name in names:
                    if name not in self._cols:
                        raise QueryError(f"Cannot order by unknown attribute {name!r}")
                    col = self._cols[name]
                    out.append(col.desc() if direction == "desc" else col.asc())
        return out

    # --- projection -----------------------------------------------------------
    def proj(self, *attributes: Any, **named: str) -> "QueryExpression":
        heading = self.heading
        names = [a for a in attributes if a is not Ellipsis]
        keep_all = Ellipsis in attributes
        excluded = {a[1:].strip() for a in names if isinstance(a, str) and a.startswith("-")}
        names = [a for a in names if not (isinstance(a, str) and a.startswith("-"))]
        for a in list(names) + list(excluded):
            if not isinstance(a, str) or a not in heading.attributes:
                raise QueryError(f"Cannot project unknown attribute {a!r}; attributes are {heading.names}")
        for a in excluded:
            if heading[a].in_key:
                raise QueryError(f"Cannot exclude primary-key attribute {a!r}")
        renamed_from = {}
        computed = {}
        for new, source in named.items():
            if not _IDENT.fullmatch(new):
                raise QueryError(f"Invalid attribute name {new!r} in proj")
            if isinstance(source, str) and source.strip() in heading.attributes:
                renamed_from[new] = source.strip()
            else:
                computed[new] = source
        expr = self
        if computed:
            from .sqltext import referenced_columns

            refs = set().union(*[referenced_columns(s) for s in computed.values()])
            plain = expr._plain_columns()
            if expr._complex or any(r in expr._cols and r not in plain for r in refs):
                expr = expr._wrapped()
        new = expr._as_plain()
        cols: dict[str, Any] = {}
        attrs: list[Attribute] = []
        renamed_sources = set(renamed_from.values())
        renamed_to = {}
        for newname, src in renamed_from.items():
            renamed_to.setdefault(src, []).append(newname)
        for a in heading:  # the primary key in its order, renamed where asked
            if a.in_key:
                for name in renamed_to.get(a.name, [a.name]):
                    cols[name] = expr._cols[a.name]
                    attrs.append(replace(a, name=name))
        for newname, src in renamed_from.items():
            if not heading[src].in_key:
                cols[newname] = expr._cols[src]
                attrs.append(replace(heading[src], name=newname))
        for a in heading:
            if a.in_key or a.name in cols or a.name in renamed_sources and a.name not in names:
                continue
            if (keep_all and a.name not in excluded and not a.hidden) or a.name in names:
                cols[a.name] = expr._cols[a.name]
                attrs.append(a)
        _add_computed(computed, self.dialect, expr._plain_columns(), cols, attrs, known=expr._cols)
        new._cols = cols
        new._heading = Heading.of(attrs)
        from .table import Table

        if isinstance(self, Table) and not self._where and not computed:
            new._fk_base = (self, {old: nw for nw, old in renamed_from.items()})
        return new

    def _fk_target(self):
        base = getattr(self, "_fk_base", None)
        if base is None:
            raise QueryError("a foreign key must reference a table or a renaming projection of one")
        return base

    # --- join -----------------------------------------------------------------
    def join(self, other: Any, semantic_check: bool = True, left: bool = False,
             allow_nullable_pk: bool = False) -> "QueryExpression":
        """The rows of both that agree on their namesake (visible) attributes: ``a * b``.
        Namesakes must share their lineage unless ``semantic_check=False``. ``left=True``
        keeps every row of ``self`` (NULLs where ``other`` has no match); ``self`` must
        then hold ``other``'s whole primary key, unless ``allow_nullable_pk``."""
        if isinstance(other, type):
            other = other()
        if isinstance(other, U):
            raise DataJointError("table * dj.U(...) is no longer supported in DataJoint 2.0: semantic matching "
                                 "makes it unnecessary (use dj.U(...) & table or dj.U(...).aggr(...))")
        if not isinstance(other, QueryExpression):
            raise QueryError(f"The argument of join must be a query expression, got {_shown(other)}")
        common = [n for n in self.heading.names if n in other.heading.names]
        if semantic_check:
            _check_lineage(self, other, common)
        if left and not allow_nullable_pk:
            undetermined = [n for n in other.primary_key if n not in self.heading.names]
            if undetermined:
                raise QueryError("Left join requires the left operand to determine the right operand (A -> B): "
                                 f"the right operand's primary-key attributes {undetermined} are not in the "
                                 "left operand. Use an inner join or restructure the query.")
        a = self._wrapped() if self._complex else self
        b = other._wrapped(a._used) if (other._complex or (left and other._where) or other._aliases & a._aliases) \
            else other
        onclause = sa.and_(sa.true(), *[a._cols[n] == b._cols[n] for n in common])
        new = a._as_plain()
        new._from = a._from.join(b._from, onclause, isouter=left)
        new._cols = {**a._cols, **{n: c for n, c in b._cols.items() if n not in a._cols}}
        new._aliases = a._aliases | b._aliases
        new._used = a._used | b._used
        new._where = list(a._where) + ([] if left else list(b._where))
        attrs = [a_ for a_ in self.heading]
        pk_b = set(other.primary_key)
        attrs = [replace(x, in_key=x.in_key or x.name in pk_b) for x in attrs]
        attrs += [replace(x, nullable=x.nullable or left) for x in other.heading if x.name not in self.heading]
        if left and not allow_nullable_pk:  # self determines other: self's key is the key
            attrs = [replace(x, in_key=x.in_key and x.name in self.primary_key) for x in attrs]
        attrs.sort(key=lambda x: not x.in_key)
        new._heading = Heading.of(attrs)
        return new

    def __mul__(self, other: Any) -> "QueryExpression":
        return self.join(other)

    def extend(self, other: Any, semantic_check: bool = True) -> "QueryExpression":
        """``self`` with ``other``'s attributes added (NULL where no row matches): a left
        join that keeps ``self``'s rows and primary key. ``self`` must hold ``other``'s
        whole primary key."""
        return self.join(other, semantic_check=semantic_check, left=True)

    # --- aggregation ----------------------------------------------------------
    def aggr(self, group: Any, *attributes: Any, exclude_nonmatching: bool = False, keep_all_rows=None,
             **named: str) -> "QueryExpression":
        if keep_all_rows is not None:
            exclude_nonmatching = not keep_all_rows
        if isinstance(group, type):
            group = group()
        if not isinstance(group, QueryExpression):
            raise QueryError(f"aggr needs a query expression to aggregate, got {_shown(group)}")
        a = self.proj(*attributes) if attributes else self
        a_sub = a.make_sql().subquery(next_alias(a, group))
        g_sub = group.make_sql().subquery(next_alias(a, group, taken=frozenset([a_sub.name])))
        common = [n for n in a.heading.all_names if n in group.heading.attributes]
        on = sa.and_(sa.true(), *[a_sub.c[n] == g_sub.c[n] for n in common])
        qualify = {n: g_sub.name for n in group._cols}
        qualify.update({n: a_sub.name for n in a._cols})
        new = a._as_plain()
        new._from = a_sub.join(g_sub, on, isouter=not exclude_nonmatching)
        new._cols = {n: a_sub.c[n] for n in a._cols}
        attrs = list(a.heading)
        named = {name: _count_star(str(text), g_sub, group.primary_key, exclude_nonmatching)
                 for name, text in named.items()}
        _add_computed(named, self.dialect, qualify, new._cols, attrs, known=qualify)
        new._aliases = frozenset([a_sub.name, g_sub.name])
        new._used = a._used | group._used | new._aliases
        new._where = []
        new._group_by = [a_sub.c[n] for n in a._cols]
        new._distinct, new._order_by, new._limit, new._offset, new._top = False, None, None, 0, None
        new._heading = Heading.of(attrs)
        return new

    def aggregate(self, *args, **kwargs) -> "QueryExpression":
        """Another name of :meth:`aggr`."""
        return self.aggr(*args, **kwargs)

    # --- union ----------------------------------------------------------------
    def __add__(self, other: Any) -> "QueryExpression":
        """The rows of either: ``a + b``. Both must have the same primary key and no
        secondary attribute in common; each row has the secondary attributes of both, NULL
        where its side has none (an outer union)."""
        if isinstance(other, type):
            other = other()
        if not isinstance(other, QueryExpression) or isinstance(other, U):
            raise QueryError(f"A query expression can only be unioned with another one, got {_shown(other)}")
        if set(self.primary_key) != set(other.primary_key):
            raise QueryError("The operands of a union must share the same primary key "
                             f"({self.primary_key} vs {other.primary_key})")
        shared = set(self.heading.secondary_attributes) & set(other.heading.secondary_attributes)
        if shared:
            raise QueryError(f"The operands of a union must not share any secondary attributes: {sorted(shared)}")
        pk = self.primary_key
        first, second = self.heading.secondary_attributes, other.heading.secondary_attributes
        names = pk + first + second
        if not first and not second:
            left, right = self.make_sql(pk), other.make_sql(pk)
        else:
            left = self.join(other, left=True).make_sql(names)
            rest = other - self
            sub = rest.make_sql(list(pk) + second).subquery(next_alias(self, other, rest))
            right = sa.select(*[sub.c[n] if n in sub.c else _typed_null(self._cols[n]).label(n) for n in names])
        u = sa.union(left, right).subquery(next_alias(self, other))
        new = self._as_plain()
        new._from = u
        new._cols = {n: u.c[n] for n in names}
        new._aliases = frozenset([u.name])
        new._used = self._used | other._used | new._aliases
        new._where, new._group_by, new._distinct, new._order_by, new._limit, new._offset = [], None, False, None, None, 0
        new._top = None
        new._heading = Heading.of([self.heading[n] for n in pk] +
                                  [replace(self.heading[n], nullable=True) for n in first] +
                                  [replace(other.heading[n], nullable=True) for n in second])
        return new

    # --- introspection -----------------------------------------------------------
    def __len__(self) -> int:
        info = None if self._where else getattr(self, "_info", None)
        if info is not None and not self._complex:  # a whole table: one statement, built once
            stmt = info.memo("count_all", lambda: sa.select(sa.func.count()).select_from(self._from))
        elif self._complex or self._distinct:
            stmt = sa.select(sa.func.count()).select_from(self.make_sql().subquery())
        else:
            stmt = sa.select(sa.func.count()).select_from(self._from).where(*self._where)
        return int(self._read(stmt)[0][0])

    def __bool__(self) -> bool:
        stmt = sa.select(sa.exists(self.make_sql([next(iter(self._cols))]).subquery().select()))
        return bool(self._read(stmt)[0][0])

    def __contains__(self, key: Any) -> bool:
        return bool(self & key)

    def __iter__(self) -> Iterator[dict]:
        yield from self.to_dicts()

    def __repr__(self) -> str:
        from .preview import text_preview

        try:
            return text_preview(self)
        except DataJointError as exc:
            return f"<{type(self).__name__}: {exc}>"

    def preview(self, limit: int | None = None, width: int | None = None) -> str:
        """The first ``limit`` rows (default ``display_limit``) as a text table, cells cut
        to ``width`` characters."""
        from .preview import text_preview

        return text_preview(self, limit, width)

    def _repr_html_(self) -> str:
        from .preview import html_preview

        return html_preview(self)

    @property
    def sql(self) -> str:
        return str(self.make_sql().compile(self._connection.engine, compile_kwargs={"literal_binds": False}))


def _add_computed(named: dict, dialect: str, qualify: dict, cols: dict, attrs: list, known=None) -> None:
    """Add attributes defined by (MySQL-dialect) SQL expressions, translated for ``dialect``.
    ``known``: the attribute names the expressions may use; any other name is refused
    before SQL is sent (SQLite would read an unknown double-quoted name as a string)."""
    from .sqltext import SQLTextError, referenced_columns, translate

    for name, text in named.items():
        if not _IDENT.fullmatch(name):
            raise QueryError(f"Invalid attribute name {name!r}: use lower case letters, digits and _")
        try:
            unknown = sorted(r for r in referenced_columns(str(text)) if r not in known) if known is not None else []
        except SQLTextError as exc:
            raise QueryError(str(exc)) from None
        if unknown:
            raise UnknownAttributeError(f"Unknown attribute {unknown[0]!r} in {name}={str(text)!r}; the "
                                        f"attributes are {sorted(known)}")
        try:
            sql = translate(str(text), dialect, qualify=qualify, kind="expression")
        except SQLTextError as exc:
            raise QueryError(str(exc)) from None
        cols[name] = sa.literal_column(f"({sql})")
        attrs.append(Attribute(name, UNKNOWN_TYPE, computed=True))


def _check_lineage(a: "QueryExpression", b: "QueryExpression", names: list[str]) -> None:
    """Namesakes ``names`` of ``a`` and ``b`` must come from the same attribute (equal
    lineage, known on both sides): else SemanticJoinError."""
    for n in names:
        la, lb = a.heading[n].lineage, b.heading[n].lineage
        if la is None or lb is None:
            raise SemanticJoinError(
                f"Cannot join on attribute `{n}`: lineage missing on one side ({la} vs {lb}): it is not a "
                "primary-key attribute or one inherited through a foreign key. Rename one side with .proj(), or "
                "pass semantic_check=False.")
        if la != lb:
            raise SemanticJoinError(
                f"Cannot join on attribute `{n}`: different lineages ({la} vs {lb}). Use .proj() to rename one of "
                "the attributes, or pass semantic_check=False.")


def _shown(x: Any) -> str:
    text = repr(x) if not isinstance(x, QueryExpression) else type(x).__name__
    return text if len(text) < 80 else text[:77] + "..."


def _typed_null(col):
    """NULL of ``col``'s SQL type (a bare NULL in a UNION can be refused by PostgreSQL)."""
    kind = getattr(col, "type", None)
    if kind is None or isinstance(kind, sa.types.NullType):
        return sa.null()
    return sa.cast(sa.null(), kind)


def _operand(x: Any) -> Any:
    """Table classes stand for their tables."""
    if isinstance(x, type) and issubclass(x, QueryExpression):
        return x()
    return x


def _fail(msg: str):
    raise QueryError(msg)


_COUNT_STAR = re.compile(r"count\s*\(\s*\*\s*\)", re.I)


def _count_star(text: str, g_sub, group_pk: list[str], exclude: bool) -> str:
    """With a left join, ``count(*)`` counts matching rows of the group (0 for none)."""
    if exclude or not group_pk:
        return text
    return _COUNT_STAR.sub(f"count(`{g_sub.name}`.`{group_pk[0]}`)", text)


class U(QueryExpression):
    """The universal set over named attributes: distinct values and grouping."""

    def __init__(self, *attributes: str):
        for a in attributes:
            if not isinstance(a, str) or not _IDENT.fullmatch(a):
                raise QueryError(f"U() takes attribute names, got {a!r}")
        self._attributes = list(attributes)

    def __sub__(self, other: Any):
        raise DataJointError("dj.U(...) - table produces an infinite set and is not supported")

    def __mul__(self, other: Any):
        return self.join(other)

    def __rmul__(self, other: Any):
        return self.join(other)

    @property
    def primary_key(self) -> list[str]:
        return list(self._attributes)

    def restrict(self, cond: Any, semantic_check: bool = True, *, negate: bool = False) -> QueryExpression:
        cond = _operand(cond)
        if negate or not isinstance(cond, QueryExpression):
            raise QueryError("U(...) can only be restricted by a query: U('a') & Table")
        missing = [a for a in self._attributes if a not in cond.heading.attributes]
        if missing:
            raise QueryError(f"U{tuple(self._attributes)} & query: query lacks {missing}")
        expr = cond.proj(*[a for a in self._attributes if not cond.heading[a].in_key])
        expr._cols = {a: expr._cols[a] for a in self._attributes}
        expr._heading = Heading.of(replace(cond.heading[a], in_key=True) for a in self._attributes)
        expr._distinct = True
        return expr

    def join(self, other: Any, semantic_check: bool = True, left: bool = False,
             allow_nullable_pk: bool = False) -> QueryExpression:
        raise DataJointError("dj.U(...) * table is no longer supported in DataJoint 2.0: semantic matching makes it "
                             "unnecessary (use dj.U(...) & table or dj.U(...).aggr(...))")

    def aggr(self, group: Any, *attributes: Any, exclude_nonmatching: bool = False, keep_all_rows=None,
             **named: str) -> QueryExpression:
        if isinstance(group, type):
            group = group()
        if not isinstance(group, QueryExpression):
            raise QueryError(f"dj.U(...).aggr needs a query expression to aggregate, got {_shown(group)}")
        if exclude_nonmatching is False and keep_all_rows:
            raise QueryError("Cannot keep all rows when aggregating on a universal set (dj.U)")
        missing = [a for a in self._attributes if a not in group.heading.names]
        if missing:
            raise QueryError(f"Attributes {missing} not found in the group expression")
        g = group._wrapped() if group._complex else group
        new = g._as_plain()
        plain = g._plain_columns()
        cols = {a: g._cols[a] for a in self._attributes}
        attrs = [replace(g.heading[a], in_key=True) for a in self._attributes]
        _add_computed(named, g.dialect, plain, cols, attrs)
        new._cols = cols
        new._group_by = [g._cols[a] for a in self._attributes]
        new._heading = Heading.of(attrs)
        return new

    def __repr__(self) -> str:
        return f"U{tuple(self._attributes)}"


__all__ = ["QueryExpression", "U", "AndList", "Not", "Top"]
