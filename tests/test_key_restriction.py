"""``Table & key`` with a plain key is held as values until a statement needs clauses
(expression._where); a fetch then runs a cached statement with the values as parameters.
Every other use of such an expression must behave as the general restriction does."""

from __future__ import annotations

import numpy as np
import pytest

import dj_dagster as dj


@pytest.fixture
def tables(schema):
    @schema
    class Animal(dj.Manual):
        definition = """
        species : varchar(20)
        animal_id : int32
        ---
        weight : float64
        note = null : varchar(40)
        """

    @schema
    class Visit(dj.Manual):
        definition = """
        -> Animal
        visit : int16
        ---
        vet : varchar(20)
        """

    Animal.insert([("cat", 1, 4.5, None), ("cat", 2, 5.0, "old"), ("dog", 1, 20.0, None), ("dog", 7, 31.5, "big")])
    Visit.insert([("cat", 1, 1, "ann"), ("cat", 1, 2, "bo"), ("dog", 7, 1, "ann")])
    return Animal, Visit


def _general(table, key):
    """The same restriction through the general path (an AndList is never held as values)."""
    return table & dj.AndList([key])


def test_a_plain_key_is_held_as_values_and_fetched_by_a_cached_statement(tables):
    Animal, _ = tables
    q = Animal & {"species": "cat", "animal_id": 2}
    if Animal().connection.adapter.pads_strings:
        # MySQL compares strings with PAD SPACE: a string key needs a length clause too, so
        # it takes the general path (same rows, checked below)
        assert q._key is None and q.fetch1("weight") == 5.0
        q = Animal & {"animal_id": 2, "weight": 5.0}
        assert q._key == (("animal_id", "weight"), (2, 5.0))
        assert q.fetch1("species") == "cat"
        assert q._key is not None
        return
    assert q._key == (("species", "animal_id"), ("cat", 2))
    assert q.fetch1("weight") == 5.0
    assert q.fetch1() == {"species": "cat", "animal_id": 2, "weight": 5.0, "note": "old"}
    assert q._key is not None  # fetching did not need clauses
    memos = [k for k in Animal()._info.__dict__.get("_memos", {}) if isinstance(k, tuple) and k[0] == "fetch_by_key"]
    assert (("fetch_by_key", ("species", "animal_id"), ("weight",)) in memos)
    # the next key reuses that statement and gets its own row
    assert (Animal & {"species": "dog", "animal_id": 7}).fetch1("weight") == 31.5
    assert (Animal & {"species": "dog", "animal_id": 2}).to_dicts() == []


@pytest.mark.parametrize("key", [
    {"species": "cat", "animal_id": 1},
    {"species": "cat"},  # part of the key
    {"animal_id": 1},
    {"species": "dog", "animal_id": 7, "unknown": 3},  # attributes not in the table are ignored
    {"weight": 20.0},  # a secondary attribute
])
def test_every_operation_on_a_held_key_matches_the_general_restriction(tables, key):
    Animal, Visit = tables
    held, general = Animal & key, _general(Animal, key)
    strings = Animal().connection.adapter.pads_strings and "species" in key
    assert (held._key is None) == strings and general._key is None
    assert held.to_dicts(order_by="KEY") == general.to_dicts(order_by="KEY")
    assert held.keys(order_by="KEY") == general.keys(order_by="KEY")
    assert len(held) == len(general) and bool(held) == bool(general)
    assert held.to_pandas().sort_index().equals(general.to_pandas().sort_index())
    assert sorted(map(str, (held * Visit).to_dicts())) == sorted(map(str, (general * Visit).to_dicts()))
    assert sorted(map(str, (Visit & held).to_dicts())) == sorted(map(str, (Visit & general).to_dicts()))
    assert (held.proj("weight").to_dicts(order_by="KEY") == general.proj("weight").to_dicts(order_by="KEY"))
    assert (held & "weight > 4.9").to_dicts(order_by="KEY") == (general & "weight > 4.9").to_dicts(order_by="KEY")
    assert (held - {"animal_id": 2}).to_dicts(order_by="KEY") == (general - {"animal_id": 2}).to_dicts(order_by="KEY")
    assert held.to_dicts(order_by="weight desc", limit=1) == general.to_dicts(order_by="weight desc", limit=1)
    assert (held & dj.Top(1, "weight")).to_dicts() == (general & dj.Top(1, "weight")).to_dicts()
    assert {"species": "cat", "animal_id": 1} in Animal
    assert {"species": "cat", "animal_id": 3} not in Animal


def test_values_that_are_not_plain_take_the_general_path(tables):
    Animal, _ = tables
    for key, expected in [
        ({"species": "cat", "animal_id": np.int64(2)}, 1),  # numpy integer
        ({"species": "cat", "animal_id": 2**40}, 0),  # out of int32's range: no row can match
        ({"species": "cat", "animal_id": True}, 1),  # a bool is not taken for an int
        ({"species": "x" * 30}, 0),  # longer than varchar(20)
        ({"note": None}, 2),  # NULL
        ({"note": "old"}, 1),  # a nullable attribute
        ({"species": "cät"}, 0),  # not ASCII
    ]:
        q = Animal & key
        assert q._key is None, key
        assert len(q) == expected, key
        assert len(q.to_dicts()) == expected, key


def test_a_held_key_deletes_only_its_rows_and_cascades(tables):
    Animal, Visit = tables
    (Animal & {"species": "cat", "animal_id": 1}).delete(safemode=False)
    assert sorted((a["species"], a["animal_id"]) for a in Animal.keys()) == [("cat", 2), ("dog", 1), ("dog", 7)]
    assert [(v["species"], v["animal_id"]) for v in Visit.keys()] == [("dog", 7)]
    (Visit & {"species": "dog", "animal_id": 7, "visit": 1}).delete_quick()
    assert len(Visit) == 0 and len(Animal) == 3


def test_a_held_key_is_not_shared_between_expressions(tables):
    Animal, _ = tables
    q = Animal & {"species": "cat"}
    narrower = q & {"animal_id": 2}  # built on the held key: clauses now, for both
    assert narrower._key is None
    assert [r["animal_id"] for r in q.to_dicts(order_by="KEY")] == [1, 2]
    assert [r["animal_id"] for r in narrower.to_dicts()] == [2]
    assert [r["animal_id"] for r in (q & {"animal_id": 1}).to_dicts()] == [1]


def test_a_key_after_top_restricts_the_top_rows(tables):
    """``T & Top(...)`` is still a table object, but a key then restricts its top rows,
    never the whole table (nor deletes outside them)."""
    Animal, _ = tables
    top = Animal & dj.Top(1, "weight")  # the lightest: cat 1
    q = top & {"animal_id": 7}
    assert q._key is None
    assert q.to_dicts() == [] and len(q) == 0
    assert (top & {"animal_id": 1}).to_dicts() == [{"species": "cat", "animal_id": 1, "weight": 4.5, "note": None}]
    ordered = Animal & dj.Top(None, "weight desc")
    assert sorted(r["weight"] for r in (ordered & {"animal_id": 1}).to_dicts()) == [4.5, 20.0]
