"""Every core type round-trips with the Python type users expect, on every backend,
and a table reopened from the database alone has the same heading."""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import uuid
import warnings

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import dj_dagster as dj

ROW = {
    "id": 1, "i8": -128, "i16": -32768, "i32": 2**31 - 1, "i64": -(2**63), "u8": 255, "u16": 65535,
    "u32": 2**32 - 1, "f32": 1.5, "f64": 1 / 3, "flag": True, "uid": uuid.UUID(int=12345),
    "doc": {"a": [1, 2, {"b": None}]}, "raw": b"\x00\xffbytes", "day": dt.date(2024, 2, 29),
    "stamp": dt.datetime(2024, 2, 29, 23, 59, 58), "precise": dt.datetime(2024, 1, 1, 0, 0, 0, 123000),
    "code": "AB", "name": "Ünïcødé ✓", "color": "green", "price": decimal.Decimal("12.34"), "maybe": None,
}


@pytest.fixture
def everything(schema):
    @schema
    class Everything(dj.Manual):
        definition = """
        # one attribute of every core type
        id : int32
        ---
        i8 : int8
        i16 : int16
        i32 : int32
        i64 : int64
        u8 : uint8
        u16 : uint16
        u32 : uint32
        f32 : float32
        f64 : float64
        flag : bool
        uid : uuid
        doc : json
        raw : bytes
        day : date
        stamp : datetime
        precise : datetime(3)
        code : char(2)
        name : varchar(32)
        color : enum('red', 'green', 'blue')
        price : decimal(6,2)
        maybe = null : int32
        defaulted = 7 : int16
        note = "n/a" : varchar(10)
        """

    return Everything


def test_round_trip(everything):
    everything.insert1(ROW)
    got = everything.fetch1()
    for name, value in ROW.items():
        assert got[name] == value, name
        assert type(got[name]) is type(value) or value is None, (name, type(got[name]))
    assert got["defaulted"] == 7 and got["note"] == "n/a"


def test_reopened_heading_matches(everything, schema):
    module = dj.virtual_schema(schema.database, connection=schema.connection)
    reopened = module.Everything.heading
    for attr in everything.heading:
        other = reopened[attr.name]
        assert (other.type.text, other.in_key, other.nullable) == (attr.type.text, attr.in_key, attr.nullable)
    assert module.Everything().describe() == everything().describe()


def test_validation_names_attribute(everything):
    bad = [("u8", 256, "out of range"), ("i8", "1.5x", "not an integer"), ("color", "pink", "not one of"),
           ("code", "ABC", "longer"), ("day", "2024-02-30", "not a date"), ("uid", "nope", "UUID"),
           ("price", "12345.678", "too many digits"), ("f64", float("inf"), "infinite"),
           ("flag", "maybe", "boolean")]
    for name, value, why in bad:
        with pytest.raises(dj.DataError, match=why) as info:
            everything.insert1({**ROW, name: value})
        assert repr(name) in str(info.value)
    assert len(everything()) == 0


def test_nan_is_null_and_dataframes(everything):
    frame = pd.DataFrame([{**ROW, "id": i, "f64": np.nan if i == 2 else float(i)} for i in range(1, 4)])
    with pytest.raises(dj.DataError, match="not nullable"):
        everything.insert(frame)
    frame2 = frame.assign(maybe=[1.0, np.nan, 3.0], f64=1.0)
    everything.insert(frame2)
    assert everything.to_pandas()["maybe"].isna().sum() == 1
    assert (everything & {"id": 2}).fetch1("maybe") is None


def test_native_types_warn(schema):
    with pytest.warns(UserWarning, match="native type"):
        @schema
        class Legacy(dj.Manual):
            definition = """
            legacy_id : int unsigned
            ---
            score : double
            """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        Legacy.insert1((1, 2.5))
    assert Legacy.fetch1("score") == 2.5


def test_bulk_round_trip_and_duplicates(everything):
    rows = [{**ROW, "id": i, "doc": {"i": i}, "raw": bytes([i % 256]) * 3, "uid": uuid.UUID(int=i),
             "maybe": i if i % 2 else None} for i in range(1, 121)]
    everything.insert(rows)  # large enough for the bulk path (COPY on PostgreSQL)
    got = {r["id"]: r for r in everything.to_dicts()}
    assert len(got) == 120
    for row in rows:
        assert got[row["id"]] == {**row, "defaulted": 7, "note": "n/a"}
    fresh = [{**r, "id": r["id"] + 200} for r in rows[:59]] + [rows[4]]  # row 59 repeats id 5
    with pytest.raises(dj.DuplicateError, match=r"row 59 with key \{'id': 5\}"):
        everything.insert(fresh)
    assert len(everything()) == 120


def _enum_columns(schema) -> dict:
    """PostgreSQL: (table, column) -> the enum type of each enum column of the schema."""
    rows = schema.connection.query_all(sa.text(
        "SELECT table_name, column_name, udt_schema, udt_name FROM information_schema.columns "
        "WHERE table_schema = :s AND data_type = 'USER-DEFINED'"), {"s": schema.database})
    return {(t, c): (s, u) for t, c, s, u in rows}


def _enum_types(schema) -> set:
    return {r[0] for r in schema.connection.query_all(sa.text(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = :s AND t.typtype = 'e'"), {"s": schema.database})}


def test_enum_attributes(schema, backend):
    """Enum values with a quote, in a key a foreign key inherits, restricted, updated and
    altered; on PostgreSQL, the enum types as datajoint 2.3.5 declares them: named by
    their values in the table's schema, shared, dropped with the last table using them."""
    @schema
    class Mode(dj.Lookup):
        definition = """
        mode : enum('fast', 'it''s')
        ---
        level = 'low' : enum('low', 'high')
        """
        contents = [("fast", "low"), ("it's", "high")]

    @schema
    class Run(dj.Manual):
        definition = """
        -> Mode
        run : int16
        ---
        speed = null : enum('it''s', 'fast')
        """

    Run.insert([("it's", 1, "fast"), ("fast", 2, None)])
    assert Mode().heading["mode"].type.args == ("fast", "it's")
    assert (Run & {"mode": "it's"}).fetch1("speed") == "fast"
    assert len(Mode * Run) == 2 and len(Run & (Mode & "level = 'high'")) == 1
    Run.update1({"mode": "it's", "run": 1, "speed": "it's"})
    assert (Run & "run = 1").fetch1("speed") == "it's"
    with pytest.raises(dj.DataError, match="not one of"):
        Run.insert1(("fast", 3, "slow"))
    level = ("low", "high")
    if backend != "sqlite":  # SQLite alters comments only
        level = ("low", "high", "top")
        Mode().alter("""
            mode : enum('fast', 'it''s')
            ---
            level = 'top' : enum('low', 'high', 'top')
            """)
        Mode.update1({"mode": "fast", "level": "top"})
        reopened = dj.virtual_schema(schema.database, connection=schema.connection).Mode
        assert sorted(reopened.to_dicts(), key=lambda r: r["mode"]) == [
            {"mode": "fast", "level": "top"}, {"mode": "it's", "level": "high"}]
    if backend == "postgresql":
        from dj_dagster.adapters.postgresql import enum_type_name

        mode_type = (schema.database, enum_type_name(["it's", "fast"]))
        assert mode_type[1] == "enum_" + hashlib.md5(b"fast_it''s").hexdigest()[:8]
        assert _enum_columns(schema) == {
            ("#mode", "mode"): mode_type, ("run", "mode"): mode_type, ("run", "speed"): mode_type,
            ("#mode", "level"): (schema.database, enum_type_name(level))}
        Run.drop_quick()  # drops the types no table uses: here the one alter() replaced
        assert _enum_types(schema) == {mode_type[1], enum_type_name(level)}
        Mode.drop_quick()
        assert _enum_types(schema) == set()


@pytest.mark.backends("postgresql")
def test_postgresql_enum_columns_declared_before(schema, backend, monkeypatch):
    """Enum columns dj_dagster declared before it matched datajoint on PostgreSQL (VARCHAR
    with a CHECK constraint) keep working: a new table referencing one gets a VARCHAR
    column too, and alter() turns one into datajoint's enum type."""
    from dj_dagster.adapters.base import Adapter
    from dj_dagster.adapters.postgresql import PostgreSQLAdapter, enum_type_name

    with monkeypatch.context() as m:
        m.setattr(PostgreSQLAdapter, "ddl_type", Adapter.ddl_type)  # the former layout

        @schema
        class Color(dj.Manual):
            definition = """
            color : enum('red', 'green')
            ---
            shade = null : enum('dark', 'pale')
            """

    @schema
    class Paint(dj.Manual):
        definition = """
        -> Color
        paint : int16
        ---
        finish : enum('matt', 'gloss')
        """

    assert _enum_columns(schema) == {("paint", "finish"): (schema.database, enum_type_name(["matt", "gloss"]))}
    Color.insert([("red", "dark"), ("green", None)])
    Paint.insert([("red", 1, "matt"), ("green", 2, "gloss")])
    assert len(Color * Paint) == 2 and (Paint & {"color": "green"}).fetch1("finish") == "gloss"
    Color().alter("""
        color : enum('red', 'green')
        ---
        shade = null : enum('dark', 'pale', 'bright')
        """)
    Color.update1({"color": "green", "shade": "bright"})
    assert (Color & {"color": "green"}).fetch1("shade") == "bright"
    assert _enum_columns(schema)[("color", "shade")] == (schema.database, enum_type_name(["dark", "pale", "bright"]))


def test_char_reads_without_padding_on_every_backend(schema):
    """char(n) values come back as stored, without PostgreSQL's blank padding, through
    every fetch path, and restrictions match them."""

    @schema
    class Coded(dj.Manual):
        definition = """
        code : char(4)
        ---
        label : char(6)
        note = null : char(3)
        """

    Coded.insert([{"code": "ab", "label": "x"}, {"code": "abcd", "label": "yz", "note": "n"}])
    assert (Coded & {"code": "ab"}).fetch1() == {"code": "ab", "label": "x", "note": None}
    assert Coded.to_dicts(order_by="code") == [{"code": "ab", "label": "x", "note": None},
                                               {"code": "abcd", "label": "yz", "note": "n"}]
    assert list(Coded.to_pandas(order_by="code")["label"]) == ["x", "yz"]
    assert list(Coded.to_arrays("label", order_by="code")) == ["x", "yz"]
    assert Coded.keys(order_by="code") == [{"code": "ab"}, {"code": "abcd"}]
    assert len(Coded & "label = 'x'") == 1 and len(Coded & {"label": "yz"}) == 1
    assert (Coded * Coded.proj(other="label") & {"code": "ab"}).fetch1("other") == "x"
