"""Rows with byte-string values (<blob>, bytes) in every insert path, and PostgreSQL's
handling of them: bytea columns stored uncompressed out of line, large values inserted
as binary parameters instead of text COPY, results fetched in binary format when every
selected column loads alike in both formats."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pytest
import sqlalchemy as sa

import dj_dagster as dj


def _row(i: int, size: int) -> dict:
    rng = np.random.default_rng(i)
    return {
        "id": i, "data": rng.integers(0, 256, size, dtype=np.uint8), "raw": rng.bytes(size) if i % 3 else None,
        "color": ("red", "green", "it's")[i % 3], "uid": uuid.UUID(int=i), "doc": {"i": i, "s": "ü"},
        "day": dt.date(2024, 2, 1 + i % 28), "stamp": dt.datetime(2024, 1, 1, 12, 0, i % 60),
        "price": decimal.Decimal(f"{i}.25"), "f32": 0.1, "f64": 1 / 3, "flag": bool(i % 2),
        "note": None if i % 4 else f"note {i}",
    }


THING = """
id : int32
---
data = null : <blob>
raw = null : bytes
color : enum('red', 'green', 'it''s')
uid : uuid
doc : json
day : date
stamp : datetime
price : decimal(8,2)
f32 : float32
f64 : float64
flag : bool
note = null : varchar(16)
"""


@pytest.fixture
def things(schema):
    @schema
    class Thing(dj.Manual):
        definition = THING

    return Thing


def _check(table, rows: list[dict]) -> None:
    got = {r["id"]: r for r in table.to_dicts()}
    assert sorted(got) == sorted(r["id"] for r in rows)
    for row in rows:
        back = got[row["id"]]
        for name, value in row.items():
            if name == "data":
                assert np.array_equal(back[name], value) and back[name].dtype == value.dtype
            else:
                assert back[name] == value and type(back[name]) is type(value), (name, back[name], value)


@pytest.mark.parametrize("count, size", [(10, 100_000), (60, 8_000), (60, 100)])
def test_rows_with_bytes_round_trip(things, count, size):
    """Few or many rows, large or small byte strings (INSERT or COPY on PostgreSQL), NULLs
    and every other kind of value next to them; then skip_duplicates and replace."""
    rows = [_row(i, size) for i in range(count)]
    things.insert(rows)
    _check(things, rows)
    more = [_row(i, size) for i in range(count // 2, count + 5)]
    things.insert(more, skip_duplicates=True)
    _check(things, rows + more[count - count // 2:])
    replaced = [{**_row(i, size + 1), "color": "green", "data": np.arange(i + 1.0)} for i in range(0, count + 5, 2)]
    things.insert(replaced, replace=True)
    expect = {r["id"]: r for r in rows + more}
    expect.update((r["id"], r) for r in replaced)
    _check(things, list(expect.values()))


# --------------------------------------------------------------------------- PostgreSQL
def _storage(schema, table) -> dict:
    return dict(schema.connection.query_all(sa.text(
        "SELECT a.attname, a.attstorage FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = :s AND c.relname = :t AND a.attnum > 0 "
        "AND NOT a.attisdropped"), {"s": schema.database, "t": table.table_name}))


@pytest.mark.backends("postgresql")
def test_bytea_columns_are_stored_external(schema, things, backend):
    """No server-side compression of bytea (the codecs compress): STORAGE EXTERNAL at
    CREATE TABLE, ADD COLUMN and a change of type; other columns keep their default."""
    storage = _storage(schema, things)
    assert storage["data"] == storage["raw"] == "e"
    assert storage["note"] == storage["doc"] == "x" and storage["id"] == "p"
    things().alter(things.definition.replace("note = null : varchar(16)", "note = null : bytes")
                   + "extra = null : <blob>\n")
    storage = _storage(schema, things)
    assert storage["note"] == storage["extra"] == "e" and storage["doc"] == "x"


@pytest.mark.backends("postgresql")
def test_large_bytes_bypass_copy_in_sized_statements(schema, things, backend, monkeypatch):
    """Many rows with large byte strings are INSERTed (binary parameters, a few MiB per
    statement), not COPied as hex text; many rows with small ones still use COPY."""
    adapter = schema.connection.adapter
    copies, inserts = [], []
    copy = adapter._copy

    def spy(conn, table, rows):
        copies.append(len(rows))
        return copy(conn, table, rows)

    monkeypatch.setattr(adapter, "_copy", spy)

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("INSERT"):
            inserts.append(statement)

    for engine in schema.connection.engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        things.insert([_row(i, 1 << 20) for i in range(8)])
        assert not copies and len(inserts) >= 4
        things.insert([_row(i, 100) for i in range(100, 160)])
        assert copies == [60]
    finally:
        for engine in schema.connection.engines:
            sa.event.remove(engine, "before_cursor_execute", count)


@pytest.mark.backends("postgresql")
def test_binary_results_only_when_types_load_alike(schema, backend):
    """A SELECT of bytea columns comes in binary format when every column loads to the
    same Python value from both formats; enums and float32 keep it in text (an enum would
    arrive as bytes, a float32 widened)."""

    @schema
    class Plain(dj.Manual):
        definition = """
        id : int32
        ---
        data : <blob>
        raw = null : bytes
        uid : uuid
        doc : json
        day : date
        stamp : datetime(3)
        price : decimal(8,2)
        f64 : float64
        flag : bool
        name : varchar(16)
        """

    formats = []

    def record(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().startswith("SELECT") and "data" in statement:
            formats.append(int(cursor.format))

    row = {"id": 1, "data": np.arange(5.0), "raw": b"\x00\xff\\x", "uid": uuid.UUID(int=7), "doc": [1, {"a": None}],
           "day": dt.date(2024, 2, 29), "stamp": dt.datetime(2024, 1, 1, 1, 2, 3, 456000),
           "price": decimal.Decimal("-1.50"), "f64": 0.1, "flag": True, "name": "Ünï"}
    Plain.insert1(row)
    engines = schema.connection.engines  # fetches outside a transaction use the reader's engine
    for engine in engines:
        sa.event.listen(engine, "after_cursor_execute", record)
    try:
        got = Plain.fetch1()
        frame = Plain.to_pandas()  # streamed through a server-side cursor
        assert formats == [1, 1]
        assert np.array_equal(frame.loc[1, "data"], row["data"])
        for name, value in row.items():
            if name == "data":
                assert np.array_equal(got[name], value)
            else:
                assert got[name] == value and type(got[name]) is type(value), name
        formats.clear()

        @schema
        class Thing(dj.Manual):
            definition = THING

        thing = _row(2, 10)
        Thing.insert1(thing)
        back = Thing.fetch1()
        assert formats == [0]
        assert back["color"] == "it's" and back["f32"] == 0.1 and np.array_equal(back["data"], thing["data"])
    finally:
        for engine in engines:
            sa.event.remove(engine, "after_cursor_execute", record)

