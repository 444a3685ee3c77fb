"""Fetch methods shared by every query expression: rows out of the database into
dicts, pandas, numpy, with codec values decoded."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np

import sqlalchemy as sa

from .errors import DataJointError, QueryError, translate_driver_error

if TYPE_CHECKING:  # pandas is imported where a frame is built
    import pandas as pd


FETCH_CHUNK = 50_000  # rows per chunk when a fetch streams (to_pandas)


class FetchMixin:
    def _fetch_rows(self, attrs: list[str] | None, order_by=None, limit=None, offset=None) -> tuple[list[str], list]:
        key = self._key
        if key is not None and order_by is None and limit is None and not offset:
            names = self._fetch_names(attrs)
            stmt, params = self._keyed_statement(names, key)
            return names, self._decode(names, self._read(stmt, params))
        names, stmt = self._fetch_statement(attrs, order_by, limit, offset)
        return names, self._decode(names, self._read(stmt))

    def _read(self, stmt, params=None) -> list:
        """The statement's rows; a driver's error (text the server refuses, a lost
        connection) raised as the DataJointError subclass for it."""
        try:
            return self._connection.query_all(stmt, params)
        except sa.exc.DBAPIError as exc:
            raise translate_driver_error(exc) from exc

    def _fetch_chunks(self, attrs: list[str] | None, order_by=None, limit=None, offset=None):
        """``names`` and an iterator of decoded row chunks, streamed from the server so
        that a large result is never held as rows all at once."""
        names, stmt = self._fetch_statement(attrs, order_by, limit, offset)

        connection = self._connection

        def chunks():
            try:
                yield from streamed()
            except sa.exc.DBAPIError as exc:
                raise translate_driver_error(exc) from exc

        def streamed():
            # a server-side cursor lives in a transaction (PostgreSQL refuses one in autocommit)
            with connection.transaction(write=False) as conn:
                direct = connection.direct.stream(conn, stmt, connection.adapter.server_cursor, FETCH_CHUNK)
                if direct is None:
                    result = conn.execute(stmt, execution_options={"stream_results": True, "yield_per": FETCH_CHUNK})
                    direct = result.partitions()
                for rows in direct:
                    yield self._decode(names, rows)

        return names, chunks()

    def _fetch_statement(self, attrs: list[str] | None, order_by=None, limit=None, offset=None):
        expr = self
        limit, offset = _count("limit", limit), _count("offset", offset)
        names = self._fetch_names(attrs)
        if order_by is not None or limit is not None or offset:
            if expr._limit is not None or expr._offset:
                expr = expr._wrapped()
            stmt = expr.make_sql(names)
            if order_by is not None:
                stmt = stmt.order_by(None).order_by(*expr._order_clauses(order_by))
            elif limit is not None and not expr._order_by:
                stmt = stmt.order_by(*expr._order_clauses("KEY")) if expr.primary_key else stmt
            if limit is not None:
                stmt = stmt.limit(int(limit))
            if offset:
                stmt = stmt.offset(int(offset))
        else:
            stmt = expr.make_sql(names)
        return names, stmt

    def _fetch_names(self, attrs: list[str] | None) -> list[str]:
        names = list(attrs) if attrs is not None else self.heading.names
        for n in names:
            if not isinstance(n, str) or n not in self._cols:
                raise QueryError(f"Unknown attribute {n!r}; attributes are {self.heading.names}")
        return names

    def _decode(self, names: list[str], rows: list) -> list:
        """Codec values decoded a column at a time: a store-backed column reads its objects
        concurrently (``Codec.decode_many``) instead of one row after another."""
        from .codecs import column_decoder_for

        if not self.heading.codecs.intersection(names):
            return rows
        decoders = [(i, column_decoder_for(self, self.heading[n])) for i, n in enumerate(names) if n in self.heading]
        decoders = [(i, d) for i, d in decoders if d is not None]
        if not decoders:
            return rows
        out = [list(row) for row in rows]
        for i, decode in decoders:
            at = [k for k, row in enumerate(out) if row[i] is not None]
            if not at:
                continue
            for k, value in zip(at, decode([out[k][i] for k in at]), strict=True):
                out[k][i] = value
        return out

    # --- 2.x fetch API --------------------------------------------------------
    def to_dicts(self, order_by=None, limit=None, offset=None, squeeze: bool = False) -> list[dict]:
        """Every row as a dict of its visible attributes. ``order_by``: an attribute name,
        ``'name DESC'``, ``'KEY'`` or a list of them; ``limit``/``offset``: non-negative
        integers; ``squeeze``: drop length-1 dimensions of fetched arrays."""
        names, rows = self._fetch_rows(None, order_by, limit, offset)
        if squeeze:
            rows = _squeezed(rows)
        return [dict(zip(names, r)) for r in rows]

    def to_pandas(self, order_by=None, limit=None, offset=None, squeeze: bool = False) -> pd.DataFrame:
        """A DataFrame indexed by the primary key (arguments as :meth:`to_dicts`)."""
        import pandas as pd  # loaded where needed: import dj_dagster stays light

        names, chunks = self._fetch_chunks(None, order_by, limit, offset)
        if squeeze:
            chunks = map(_squeezed, chunks)
        kinds = [_PANDAS.get(self.heading[n].type.name) for n in names] if self._all_stored(names) else None
        frames = [_frame(names, rows, kinds) for rows in chunks]
        if not frames:
            frame = pd.DataFrame(columns=names)
        elif len(frames) == 1:
            frame = frames[0]
        else:
            mixed = len({tuple(f.dtypes) for f in frames}) > 1
            frame = pd.concat(frames, ignore_index=True)
            del frames
            if mixed:  # a chunk whose values were all NULL made object columns: infer them again
                frame = frame.infer_objects()
        pk = [n for n in self.primary_key if n in names]
        return frame.set_index(pk) if pk else frame

    def to_polars(self, order_by=None, limit=None, offset=None, squeeze: bool = False):
        """A polars DataFrame of every row (arguments as :meth:`to_dicts`). Needs the
        optional ``polars`` package (``pip install dj_dagster[polars]``)."""
        try:
            import polars
        except ImportError:
            raise ImportError("to_polars() needs polars: pip install dj_dagster[polars]") from None
        names, rows = self._fetch_rows(None, order_by, limit, offset)
        if squeeze:
            rows = _squeezed(rows)
        columns = list(zip(*rows)) if rows else [() for _ in names]
        return polars.DataFrame({n: list(c) for n, c in zip(names, columns)})

    def to_arrow(self, order_by=None, limit=None, offset=None, squeeze: bool = False):
        """A pyarrow Table of every row (arguments as :meth:`to_dicts`). Needs the optional
        ``pyarrow`` package (``pip install dj_dagster[arrow]``)."""
        try:
            import pyarrow
        except ImportError:
            raise ImportError("to_arrow() needs pyarrow: pip install dj_dagster[arrow]") from None
        names, rows = self._fetch_rows(None, order_by, limit, offset)
        if squeeze:
            rows = _squeezed(rows)
        if not rows:
            return pyarrow.table({})
        columns = list(zip(*rows))
        return pyarrow.table({n: list(c) for n, c in zip(names, columns)})

    def to_arrays(self, *attrs: str, include_key: bool = False, order_by=None, limit=None, offset=None,
                  squeeze: bool = False):
        """Without ``attrs``: a numpy record array of every row (integers int64, floats
        float64 unless NULL-able, other values Python objects). With ``attrs``: one array
        per attribute (numpy's own dtype for the values), a single array for one name;
        ``include_key=True`` puts the primary keys first, as a list of dicts:
        ``keys, a, b = q.to_arrays('a', 'b', include_key=True)``."""
        if attrs:
            pk = self.primary_key
            names = list(pk) + [a for a in attrs if a not in pk] if include_key else list(attrs)
            names, rows = self._fetch_rows(names, order_by, limit, offset)
            if squeeze:
                rows = _squeezed(rows)
            columns = dict(zip(names, zip(*rows))) if rows else {n: () for n in names}
            heading = self.heading
            arrays = [_inferred_array(columns[a], numpy_dtype(heading[a]) if a in heading.attributes else None)
                      for a in attrs]
            if include_key:
                keys = [dict(zip(pk, values)) for values in zip(*(columns[k] for k in pk))] if rows else []
                return (keys, *arrays)
            return arrays[0] if len(arrays) == 1 else tuple(arrays)
        names, rows = self._fetch_rows(None, order_by, limit, offset)
        if squeeze:
            rows = _squeezed(rows)
        heading = self.heading
        dtypes = [numpy_dtype(heading[n]) if n in heading.attributes else None for n in names]
        return _records(names, rows, dtypes, stored=self._all_stored(names))

    def _all_stored(self, names: list[str]) -> bool:
        """Every column is a stored attribute, whose type the heading fixes."""
        heading = self.heading
        return all(n in heading.attributes and not heading[n].computed for n in names)

    def keys(self, order_by=None, limit=None, offset=None) -> list[dict]:
        """The primary-key values of every row, as dicts."""
        names, rows = self._fetch_rows(self.primary_key, order_by, limit, offset)
        return [dict(zip(names, r)) for r in rows]

    def fetch1(self, *attrs: str, squeeze: bool = False):
        """The one row of the query: a dict of its visible attributes without ``attrs``;
        the value of the one attribute named; a tuple for several. ``'KEY'`` stands for the
        primary key as a dict. Raises DataJointError unless there is exactly one row."""
        names = []
        for a in attrs:
            names += self.primary_key if a == "KEY" else [a]
        names, rows = self._fetch_rows(list(dict.fromkeys(names)) if attrs else None)
        if len(rows) != 1:
            raise DataJointError(f"fetch1 requires exactly one row, the query has {len(rows)}")
        if squeeze:
            rows = _squeezed(rows)
        row = dict(zip(names, rows[0]))
        if not attrs:
            return row
        values = [{k: row[k] for k in self.primary_key} if a == "KEY" else row[a] for a in attrs]
        return values[0] if len(values) == 1 else tuple(values)

    def head(self, limit: int = 25, **kwargs) -> list[dict]:
        """The first ``limit`` rows in primary-key order, as dicts."""
        return self.to_dicts(order_by=kwargs.pop("order_by", "KEY"), limit=limit)

    def tail(self, limit: int = 25, **kwargs) -> list[dict]:
        """The last ``limit`` rows in primary-key order, as dicts."""
        order = kwargs.pop("order_by", "KEY")
        desc = [f"{o} DESC" if "desc" not in o.lower() else o.replace("DESC", "").replace("desc", "")
                for o in ([order] if isinstance(order, str) else order)]
        return list(reversed(self.to_dicts(order_by=desc, limit=limit)))

    def fetch(self, *attrs: str, offset=None, limit=None, order_by=None, format: str | None = None,
              as_dict: bool | None = None, squeeze: bool = False):
        """The 1.x fetch, kept so old code runs (deprecated: use to_dicts, to_pandas,
        to_arrays or keys). No ``attrs``: a record array, dicts with ``as_dict=True``, a
        DataFrame with ``format='frame'``. With ``attrs``: one array per attribute, or
        dicts of the attributes and the primary key with ``as_dict=True``; ``'KEY'``
        stands for the primary key (a list of dicts)."""
        warnings.warn("fetch() is deprecated in DataJoint 2.0: use to_dicts(), to_pandas(), to_arrays() or keys()",
                      DeprecationWarning, stacklevel=2)
        window = dict(order_by=order_by, limit=limit, offset=offset)
        if format == "frame":
            if attrs or as_dict is not None:
                raise DataJointError("fetch: format='frame' cannot be combined with attrs or as_dict")
            return self.to_pandas(**window, squeeze=squeeze)
        if format not in (None, "array"):
            raise DataJointError(f"fetch: format must be 'array' or 'frame', got {format!r}")
        if not attrs:
            if as_dict:
                return self.to_dicts(**window, squeeze=squeeze)
            return self.to_arrays(**window, squeeze=squeeze)
        if attrs == ("KEY",):
            return self.keys(**window)
        if as_dict or "KEY" in attrs:
            names = []
            for a in attrs:
                names += self.primary_key if a == "KEY" else [a]
            dicts = self.proj(*dict.fromkeys(names)).to_dicts(**window, squeeze=squeeze)
            if as_dict:
                return dicts
            out = [[{k: d[k] for k in self.primary_key} for d in dicts] if a == "KEY" else
                   _inferred_array([d[a] for d in dicts]) for a in attrs]
            return out[0] if len(out) == 1 else tuple(out)
        return self.to_arrays(*attrs, **window, squeeze=squeeze)


def _count(what: str, value):
    """A limit or offset: None or a non-negative integer (never text that reaches SQL)."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**63:
        raise QueryError(f"{what} must be a non-negative 64-bit integer, got {value!r}")
    return int(value)


# numeric core types -> numpy dtype of their record-array field (strings, dates and codecs
# stay Python objects, as in datajoint; so do NULL-able integers)
_NUMPY = {**{t: "i8" for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32")}, "uint64": "u8",
          "float32": "f8", "float64": "f8"}
_INTEGERS = frozenset(t for t in _NUMPY if not t.startswith("float"))


def numpy_dtype(attr) -> str | None:
    """The numpy dtype of ``attr``'s field in a record array, or None (Python objects)."""
    if attr.computed or attr.codec or (attr.nullable and attr.type.name in _INTEGERS):
        return None
    return _NUMPY.get(attr.type.name)


def _inferred_array(values, dtype: str | None = None) -> np.ndarray:
    """One attribute's values in the ``dtype`` its type fixes (int64, uint64, float64)
    when given and every value fits it; else as numpy makes them (``np.array``), or an
    object array when they do not stack (arrays of different shapes)."""
    if dtype is not None:
        try:
            return np.array(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            pass  # NULLs among them
    try:
        return np.array(values)
    except (ValueError, OverflowError):
        arr = np.empty(len(values), dtype=object)
        for i, v in enumerate(values):
            arr[i] = v
        return arr


def _squeezed(rows: list) -> list:
    """Rows with every numpy array value squeezed (length-1 dimensions dropped)."""
    return [tuple(np.squeeze(v) if isinstance(v, np.ndarray) else v for v in row) for row in rows]


# numeric core types -> the dtype pandas infers for their Python values (int64, float64)
_PANDAS = {**{t: "i8" for t in ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")},
           "float32": "f8", "float64": "f8"}


def _frame(names: list[str], rows: list, kinds: list | None) -> pd.DataFrame:
    """One chunk as a DataFrame, column by column (a frame built from rows keeps views of
    one object array, which holds every boxed value of the chunk alive). ``kinds``: the
    numeric dtype of each stored attribute, or None: numpy then converts the rows in one
    call, unless a NULL in an integer column or a uint64 beyond int64 is in the way."""
    import pandas as pd

    records = _structured(names, rows, kinds) if kinds is not None else None
    if records is not None:
        return pd.DataFrame({n: records[n].copy() for n in names})  # no view keeps the records alive
    return pd.DataFrame(dict(zip(names, map(list, zip(*rows)))))


def _structured(names: list[str], rows: list, dtypes: list) -> np.ndarray | None:
    """The rows as a record array made by numpy in one call (None stands for object), or
    None when a value does not fit its dtype (a NULL in an integer column, say) or there
    are no rows."""
    if not rows:
        return None
    try:
        return np.array(rows if type(rows[0]) is tuple else list(map(tuple, rows)),
                        dtype=[(n, d or object) for n, d in zip(names, dtypes)])
    except (TypeError, ValueError, OverflowError):
        return None


def _column_array(values, dtype: str | None = None) -> np.ndarray:
    """One column: the heading's numeric dtype when every value fits it (no NULL), numpy's
    own for numbers of computed attributes, else Python objects (strings, dates, blobs)."""
    if dtype is not None:
        try:
            return np.array(values, dtype=dtype)
        except (TypeError, ValueError, OverflowError):
            pass  # NULLs among them
    elif values and all(type(v) in (int, float) for v in values):
        try:
            return np.array(values)
        except OverflowError:
            pass
    arr = np.empty(len(values), dtype=object)
    arr[:] = list(values)
    return arr


def _records(names: list[str], rows: list, dtypes: list, stored: bool = False) -> np.ndarray:
    """A record array; ``stored``: every column is a stored attribute, whose numpy type the
    heading fixes, so numpy converts the rows in one call unless a NULL or a codec value
    is in the way (then column by column, as below)."""
    records = _structured(names, rows, dtypes) if stored else None
    if records is not None:
        return records
    columns = list(zip(*rows)) if rows else [[] for _ in names]
    arrays = [_column_array(c, d) for c, d in zip(columns, dtypes)]
    out = np.empty(len(rows), dtype=[(n, a.dtype) for n, a in zip(names, arrays)])
    for n, a in zip(names, arrays):
        out[n] = a
    return out
