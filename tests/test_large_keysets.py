"""Restriction by large key sets (issue 21): past condition.LARGE_KEY_SET keys, a list of
keys is bound as one value per attribute (PostgreSQL arrays, a SQLite JSON document)
instead of one parameter per value, on every backend, and matches exactly what the
small-list path matches (same coercions, NULLs, impossible values)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import numpy as np
import pytest

import dj_dagster as dj
from dj_dagster import condition


def _as_set(rows, names):
    return {tuple(r[n] for n in names) for r in rows}


def test_200k_one_attribute_keys_restrict_anti_restrict_and_delete(schema):
    @schema
    class Item(dj.Manual):
        definition = """
        item_id : int32
        ---
        v : int32
        """

    n = 250_000
    Item.insert(np.rec.fromarrays([np.arange(n, dtype=np.int32), np.arange(n, dtype=np.int32) % 7],
                                  names="item_id,v"))
    keys = [{"item_id": int(i)} for i in range(0, 400_000, 2)]  # 200,000 keys, 125,000 present
    assert len(keys) == 200_000
    assert len(Item & keys) == 125_000
    assert len(Item - keys) == n - 125_000
    assert len((Item & keys) & "v = 0") == len([i for i in range(0, n, 2) if i % 7 == 0])
    (Item & keys).delete_quick()
    assert len(Item) == n - 125_000 and len(Item & keys) == 0
    assert len(Item - keys) == n - 125_000


def test_50k_two_attribute_keys_restrict_anti_restrict_and_delete(schema):
    @schema
    class Pair(dj.Manual):
        definition = """
        name : varchar(8)
        num : int32
        ---
        w : float64
        """

    names = [f"s{i}" for i in range(100)]
    Pair.insert([(s, j, 0.5) for s in names for j in range(700)])  # 70,000 rows
    keys = [{"name": s, "num": j} for s in names for j in range(200, 700)]  # 50,000 keys, all present
    keys += [{"name": "s1 ", "num": 300},  # trailing space: no match on any backend (PAD SPACE on MySQL)
             {"name": "x" * 20, "num": 1},  # longer than varchar(8): matches nothing
             {"name": "s1", "num": 2**40},  # beyond int32: matches nothing
             {"name": None, "num": 5}]  # NULL matches nothing in a key attribute
    assert len(Pair & keys) == 50_000
    assert len(Pair - keys) == 20_000
    assert _as_set((Pair - keys).to_dicts(), ("name", "num")) == {(s, j) for s in names for j in range(200)}
    (Pair & keys).delete(safemode=False)
    assert len(Pair) == 20_000 and len(Pair & keys) == 0


@pytest.fixture
def typed(schema):
    @schema
    class Typed(dj.Manual):
        definition = """
        tid : int32
        ---
        day : date
        at : datetime
        ident : uuid
        amount : decimal(8,2)
        big : uint64
        kind : enum('alpha', 'beta', 'gamma')
        code : char(4)
        label : varchar(12)
        raw = null : bytes
        maybe = null : int32
        precise : decimal(20,10)
        """

    rows = []
    for i in range(3000):
        rows.append(dict(
            tid=i, day=dt.date(2020, 1, 1) + dt.timedelta(days=i % 50),
            at=dt.datetime(2021, 5, 1, 12, 0, 0) + dt.timedelta(seconds=i % 40),
            ident=uuid.UUID(int=i % 60), amount=decimal.Decimal(i % 30) / 4, big=2**40 + i % 20,
            kind=("alpha", "beta", "gamma")[i % 3], code=f"c{i % 9}", label=f"l{i % 11}",
            raw=None if i % 4 == 0 else bytes([i % 5, 7]), maybe=None if i % 3 == 0 else i % 13,
            # 16+ significant digits: values json_array would print alike
            precise=decimal.Decimal("1234567.1234567891") + decimal.Decimal(i % 7) / 10**10))
    Typed.insert(rows)
    return Typed


def _chunked(table, keys, size=500):
    """The keys of ``table & keys`` through the small-list path, a chunk at a time."""
    size = min(size, condition.LARGE_KEY_SET)
    found = set()
    for start in range(0, len(keys), size):
        found |= {r["tid"] for r in (table & keys[start:start + size]).keys()}
    return found


@pytest.mark.parametrize("attrs", [
    ("day",), ("at",), ("ident",), ("amount",), ("big",), ("kind",), ("code",), ("label",), ("raw",), ("maybe",),
    ("day", "kind"), ("ident", "code", "maybe"), ("raw", "label"), ("at", "amount"), ("precise", "kind"),
])
def test_large_key_sets_match_the_small_list_path_for_every_type(typed, attrs, monkeypatch):
    # the fixture's values repeat: after de-duplication a set holds tens of keys, so the
    # threshold is lowered for the set to take the key-set path at all
    monkeypatch.setattr(condition, "LARGE_KEY_SET", 8)
    sources = typed.to_dicts(order_by="tid")
    keys = [{a: r[a] for a in attrs} for r in sources[::2]]
    # values of other forms and beyond the types: coerced as the small path coerces them
    keys += [{a: {"day": "2020-01-03", "at": "2021-05-01 12:00:07", "ident": str(uuid.UUID(int=61)),
                  "amount": 7.25, "big": 2**64 + 5, "kind": "delta", "code": "c1  ", "label": "l3 ",
                  "raw": b"\x09\x07", "maybe": None, "precise": decimal.Decimal("1234567.1234567899")}[a]
              for a in attrs}]
    keys = keys * 2  # duplicates change nothing
    assert len(keys) > condition.LARGE_KEY_SET
    large = {r["tid"] for r in (typed & keys).keys()}
    assert large == _chunked(typed, keys)
    assert large  # the test means something
    anti = {r["tid"] for r in (typed - keys).keys()}
    assert anti == set(range(3000)) - large


def test_populate_and_partition_style_restrictions_take_the_key_set_path(schema):
    @schema
    class Root(dj.Manual):
        definition = """
        subject : varchar(10)
        session : int16
        """

    @schema
    class Result(dj.Computed):
        definition = """
        -> Root
        ---
        total : int32
        """

        def make(self, key):
            self.insert1(dict(key, total=key["session"] * 2))

    Root.insert([(f"m{i}", j) for i in range(30) for j in range(100)])  # 3,000 roots
    keys = [{"subject": f"m{i}", "session": j} for i in range(30) for j in range(0, 100, 2)]  # 1,500
    assert len(keys) > condition.LARGE_KEY_SET
    assert Result.progress(keys) == (1500, 1500)
    Result.populate(keys)
    assert len(Result) == 1500 and len(Result & keys) == 1500 and len(Root - Result) == 1500
    assert Result.progress(keys) == (0, 1500)
