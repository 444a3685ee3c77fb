"""alter() as datajoint 2.x does it: renames keep values (or are refused where datajoint
refuses them), the declaration context resolves foreign keys, column order is kept."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

import dj_dagster as dj


@pytest.mark.parametrize("nullable", [False, True])
def test_rename_keeps_values(schema, backend, nullable):
    default = " = null" if nullable else ""

    @schema
    class Measurement(dj.Manual):
        definition = f"""
        measurement_id : int32
        ---
        value{default} : float32   # the value
        note = "" : varchar(16)
        """

    Measurement.insert([(1, 2.5, "a"), (2, 4.0, "b")])
    Measurement.definition = f"""
    measurement_id : int32
    ---
    reading{default} : float32   # {{value}} the reading
    note = "" : varchar(16)
    """
    if backend == "postgresql":  # datajoint refuses the rename there: nothing changes
        with pytest.raises(dj.DataJointError, match="Renaming attribute `value` to `reading`"):
            Measurement.alter(prompt=False)
        assert Measurement.heading.secondary_attributes == ["value", "note"]
        assert Measurement.fetch(order_by="measurement_id", as_dict=True)[0]["value"] == 2.5
        return
    changes = Measurement.alter(prompt=False)
    assert changes["renamed"] == {"reading": "value"} and changes["dropped"] == [] and changes["added"] == []
    assert Measurement.heading.secondary_attributes == ["reading", "note"]
    assert Measurement.heading["reading"].comment == "the reading"  # the mark is not kept
    assert Measurement.fetch(order_by="measurement_id", as_dict=True) == [
        {"measurement_id": 1, "reading": 2.5, "note": "a"},
        {"measurement_id": 2, "reading": 4.0, "note": "b"},
    ]
    fresh = dj.virtual_schema(schema.database, connection=schema.connection).Measurement
    assert fresh.heading["reading"].comment == "the reading"


def test_rename_errors_change_nothing(schema):
    @schema
    class Item(dj.Manual):
        definition = """
        item_id : int32
        ---
        a : int32
        b : int32
        """

    Item.insert1((1, 10, 20))
    bad = [
        ("item_id : int32\n---\nx : int32  # {a}\ny : int32  # {a}", "twice"),
        ("item_id : int32\n---\nx : int32  # {nope}\nb : int32", "does not exist"),
        ("item_id : int32\n---\na : int32\nx : int32  # {a}\nb : int32", "also declared"),
        ("item_id : int32\n---\nb : int32  # {a}", "already exists"),
    ]
    for definition, message in bad:
        with pytest.raises(dj.DataJointError, match=message):
            Item().alter(prompt=False, definition=definition)
        assert Item.heading.secondary_attributes == ["a", "b"]
        assert Item.fetch1() == {"item_id": 1, "a": 10, "b": 20}


def test_alter_refuses_inside_a_transaction(schema):
    @schema
    class Thing(dj.Manual):
        definition = """
        thing_id : int32
        ---
        label = "" : varchar(8)
        """

    with schema.connection.transaction:
        with pytest.raises(dj.DataJointError, match="inside a transaction"):
            Thing().alter(prompt=False, definition="thing_id : int32\n---\nlabel = '' : varchar(9)")


def test_alter_context(schema):
    @schema
    class Parent(dj.Manual):
        definition = """
        parent_id : int32
        """

    @schema
    class Child(dj.Manual):
        definition = """
        -> Parent
        ---
        value : float32
        """

        class Note(dj.Part):
            definition = """
            -> master
            ---
            note : varchar(64)
            """

    # the Part's declaration context knows `master`; an explicit context replaces it
    Child.Note.definition = """
    -> master
    ---
    note : varchar(64)
    author = "" : varchar(32)
    """
    Child.Note.alter(prompt=False)
    assert Child.Note.heading.secondary_attributes == ["note", "author"]
    Child.definition = """
    -> Other
    ---
    value : float32
    unit = "" : varchar(16)
    """
    Child.alter(prompt=False, context={"Other": Parent})
    assert Child.heading.secondary_attributes == ["value", "unit"]
    with pytest.raises(dj.DeclarationError, match="'Other' is not defined"):
        Child.alter(prompt=False)  # the declaration context has no `Other`


@pytest.mark.backends("mysql")  # only MySQL places columns
def test_alter_keeps_declared_order_on_mysql(schema):
    @schema
    class Ordered(dj.Manual):
        definition = """
        k : int32
        ---
        a : int32
        b : int32
        c : int32
        """

    def columns():
        with schema.connection.reading() as tx:
            insp = sa.inspect(tx)
            return [c["name"] for c in insp.get_columns(Ordered._table_name, schema=schema.database)]

    Ordered().alter(prompt=False, definition="k : int32\n---\nc : int32\nnew = 0 : int32\na : int32\nb : int32")
    assert columns() == ["k", "c", "new", "a", "b"]
    Ordered().alter(prompt=False, definition="k : int32\n---\na : int32\nb : int32\nc : int32")
    assert columns() == ["k", "a", "b", "c"]
