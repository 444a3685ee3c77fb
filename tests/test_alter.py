"""alter() changes secondary attributes and comments, never keys."""

from __future__ import annotations

import pytest

import dj_dagster as dj


def test_alter_secondary_attributes_and_comment(schema, backend):
    @schema
    class Animal(dj.Manual):
        definition = """
        # animals
        animal_id : int32
        ---
        name : varchar(20)   # given name
        weight : float64
        """

    Animal.insert([(1, "Rex", 3.5)])
    new_definition = """
    # animals in the colony
    animal_id : int32
    ---
    name : varchar(20)   # name on the cage card
    color = "brown" : varchar(12)
    """
    if backend != "sqlite":
        new_definition = new_definition.replace("name : varchar(20)", "name : varchar(40)")
    changes = Animal().alter(new_definition)
    assert changes["added"] == ["color"] and changes["dropped"] == ["weight"] and changes["changed"] == ["name"]
    table = dj.virtual_schema(schema.database, connection=schema.connection).Animal
    heading = table.heading
    assert heading.secondary_attributes == ["name", "color"]
    assert heading["name"].comment == "name on the cage card"
    assert table().describe().startswith("# animals in the colony")
    assert table.fetch1() == {"animal_id": 1, "name": "Rex", "color": "brown"}
    if backend != "sqlite":
        assert heading["name"].type.text == "varchar(40)"


def test_alter_refuses_key_changes(schema):
    @schema
    class Thing(dj.Manual):
        definition = """
        thing_id : int32
        ---
        label : varchar(8)
        """

    with pytest.raises(dj.DeclarationError, match="primary key"):
        Thing().alter("thing_id : int64\n---\nlabel : varchar(8)")
    Thing.insert1((1, "x"))
    with pytest.raises(dj.DeclarationError, match="required attribute"):
        Thing().alter("thing_id : int32\n---\nlabel : varchar(8)\nsize : int32")
    assert Thing.fetch1() == {"thing_id": 1, "label": "x"}
