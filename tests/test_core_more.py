"""Definition syntax, insert modes, joins and schema management beyond the registry."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import dj_dagster as dj


def test_indexes_unique_fk_and_singleton(schema):
    @schema
    class Person(dj.Manual):
        definition = """
        person_id : int32
        ---
        email : varchar(60)
        city : varchar(30)
        unique index(email)
        index(city)
        """

    @schema
    class Badge(dj.Manual):
        definition = """
        badge_id : int32
        ---
        -> [unique] Person
        """

    @schema
    class Settings(dj.Manual):
        definition = """
        # one row only
        ---
        mode : varchar(10)
        """

    Person.insert([(1, "a@x", "Oslo"), (2, "b@x", "Oslo")])
    with pytest.raises(dj.DuplicateError):
        Person.insert1((3, "a@x", "Rome"))
    Badge.insert1((10, 1))
    with pytest.raises(dj.DataJointError):
        Badge.insert1((11, 1))
    Settings.insert1({"mode": "fast"})
    with pytest.raises(dj.DuplicateError):
        Settings.insert1({"mode": "slow"})
    assert Settings.fetch1() == {"mode": "fast"}
    text = Person().describe()
    assert "unique index(email)" in text and "index(city)" in text
    assert "-> [unique] Person" in Badge().describe()


def test_insert_modes_and_query_insert(schema):
    @schema
    class A(dj.Manual):
        definition = """
        a_id : int32
        ---
        x : float64
        """

    @schema
    class B(dj.Manual):
        definition = """
        a_id : int32
        ---
        x : float64
        """

    A.insert([(1, 1.0), (2, 2.0)])
    A.insert([(2, 20.0), (3, 3.0)], skip_duplicates=True)
    assert (A & {"a_id": 2}).fetch1("x") == 2.0 and len(A()) == 3
    A.insert([(2, 22.0)], replace=True)
    assert (A & {"a_id": 2}).fetch1("x") == 22.0
    A.insert([{"a_id": 4, "x": 4.0, "junk": 1}], ignore_extra_fields=True)
    A.insert(np.array([(5, 5.0)], dtype=[("a_id", "i4"), ("x", "f8")]))
    A.insert(pd.DataFrame({"a_id": [6], "x": [6.0]}).set_index("a_id"))
    assert len(A()) == 6
    B.insert(A & "a_id > 3")  # server-side INSERT ... SELECT
    assert sorted(B.to_arrays("a_id")) == [4, 5, 6]
    B.insert(A, skip_duplicates=True)
    assert len(B()) == 6
    assert not A().validate([{"a_id": 9, "x": "nope"}]) and A().validate([{"a_id": 9, "x": 1}])


def test_left_join_and_cross_schema_cascade_with_renames(schema, make_schema):
    other = make_schema("djo")

    @schema
    class Neuron(dj.Manual):
        definition = """
        neuron : int32
        """

    @other
    class Synapse(dj.Manual):
        definition = """
        -> Neuron.proj(pre='neuron')
        -> Neuron.proj(post='neuron')
        ---
        weight : float64
        """

    Neuron.insert([(1,), (2,), (3,)])
    Synapse.insert([(1, 2, 0.5), (2, 3, 0.7), (3, 1, 0.1)])
    with pytest.raises(dj.DataJointError, match="determine the right operand"):
        Neuron.proj(pre="neuron").join(Synapse & {"post": 2}, left=True)  # 'post' is not in the left operand
    left = Neuron.proj(pre="neuron").join(Synapse & {"post": 2}, left=True, allow_nullable_pk=True)
    rows = {r["pre"]: r["weight"] for r in left.to_dicts()}
    assert rows == {1: 0.5, 2: None, 3: None}
    assert set(Neuron().children()) == {f"{other.database}.synapse"}
    assert (Neuron & {"neuron": 2}).delete(safemode=False) == 1
    assert [(r["pre"], r["post"]) for r in Synapse.to_dicts()] == [(3, 1)]


def test_deferred_activation_and_listing(connection):
    import uuid

    schema = dj.Schema()

    @schema
    class Later(dj.Manual):
        definition = """
        later_id : int32
        """

    name = f"djd_{uuid.uuid4().hex[:8]}"
    schema.activate(name, connection=connection)
    try:
        Later.insert1((1,))
        assert name in dj.list_schemas(connection)
        assert schema.list_tables() == ["later"]
        assert [t.table_name for t in schema] == ["later"]
    finally:
        schema.drop(force=True, safemode=False)
    assert name not in dj.list_schemas(connection)


def test_processes_run_in_parallel(schema):
    @schema
    class Seed(dj.Manual):
        definition = """
        seed : int32
        """

    @schema
    class Square(dj.Computed):
        definition = """
        -> Seed
        ---
        value : int64
        pid : int32
        """

        def make(self, key):
            import os

            self.insert1({**key, "value": key["seed"] ** 2, "pid": os.getpid()})

    Seed.insert([(i,) for i in range(20)])
    result = Square.populate(processes=2, reserve_jobs=True)
    assert result["success_count"] == 20 and len(Square()) == 20
    assert len(set(Square.to_arrays("pid"))) == 2


@pytest.mark.backends("mysql", "postgresql")
def test_drop_removes_lineage_rows(schema):
    """datajoint reads ``~lineage`` for its semantic checks: a dropped table's rows go with it."""
    import sqlalchemy as sa

    from dj_dagster import catalog

    @schema
    class Animal(dj.Manual):
        definition = """
        animal_id : int32
        """

    @schema
    class Visit(dj.Manual):
        definition = """
        -> Animal
        visit : int16
        """

    conn = schema.connection
    t = catalog.lineage_table(conn.adapter, schema.database)

    def lineage():
        with conn.reading() as c:
            return sorted(tuple(r) for r in c.execute(sa.select(t.c.table_name, t.c.attribute_name)))

    assert lineage() == [("animal", "animal_id"), ("visit", "animal_id"), ("visit", "visit")]
    Visit.drop_quick()
    assert lineage() == [("animal", "animal_id")]


def _wide(n_indexed: int) -> str:
    names = [f"a{i}" for i in range(33)]
    return "note : int32\n---\n" + "".join(f"{n} : int16\n" for n in names) + \
        f"index({', '.join(names[:n_indexed])})\n"


def test_a_failed_declaration_leaves_no_table(schema):
    """A CREATE TABLE whose index the server refuses (33 key parts: MySQL and PostgreSQL
    allow 32) is undone, also where each DDL statement commits by itself (MySQL), so that
    the corrected definition then declares under the same name."""

    class Note(dj.Manual):
        definition = _wide(33)

    if schema.connection.backend == "sqlite":  # no such limit
        schema(Note)
        Note.insert1({"note": 1, **{f"a{i}": i for i in range(33)}})
        assert len(Note & "a32 = 32") == 1
        return
    with pytest.raises(dj.DeclarationError, match=r"note"):
        schema(Note)
    assert "note" not in schema.list_tables()
    assert "note" not in sa.inspect(schema.connection.engine).get_table_names(schema=schema.database)

    class Note(dj.Manual):  # noqa: F811 - the corrected definition
        definition = _wide(32)

    schema(Note)
    Note.insert1({"note": 1, **{f"a{i}": i for i in range(33)}})
    assert (Note & "a32 = 32").fetch1("note") == 1
