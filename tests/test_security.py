"""Values reach SQL as bound parameters; names are validated; secrets stay hidden."""

from __future__ import annotations

import pytest

import dj_dagster as dj


@pytest.fixture
def people(schema):
    @schema
    class Person(dj.Manual):
        definition = """
        person_id : int32
        ---
        name : varchar(40)
        """

    Person.insert([(1, "Ann"), (2, "Bob")])
    return Person


@pytest.mark.parametrize("value", ["Ann' OR '1'='1", 'Ann" OR "1"="1', "x'; DROP TABLE person; --", "%", "Ann\\"])
def test_dict_values_are_bound(people, value):
    assert len(people & {"name": value}) == 0
    people.insert1((3, value))
    assert (people & {"person_id": 3}).fetch1("name") == value
    assert len(people & {"name": value}) == 1
    assert len(people()) == 3


def test_names_are_validated(people):
    with pytest.raises(dj.QueryError):
        people.to_dicts(order_by="name; DROP TABLE person")
    with pytest.raises(dj.QueryError):
        people.proj(**{"x; drop": "name"})
    with pytest.raises(dj.DataError, match="unknown attribute"):
        people.insert1({"person_id": 9, "name": "x", "evil; --": 1})
    assert len(people()) == 2


def test_bad_rows_name_table_row_and_attribute(people):
    with pytest.raises(dj.DataError) as info:
        people.insert([(5, "ok"), (6, "x" * 41)])
    message = str(info.value)
    assert "person" in message and "row 1" in message and "'name'" in message and "varchar(40)" in message
    with pytest.raises(dj.DataError, match="row 0.*'person_id'.*out of range"):
        people.insert1((2**40, "big"))
    with pytest.raises(dj.DuplicateError, match=r"row 0 with key \{'person_id': 1\}"):
        people.insert1((1, "again"))
    assert len(people()) == 2  # nothing from a failed batch


def test_password_never_shown():
    secret = "s3cr3t-pa55"
    url = f"postgresql+psycopg://user:{secret}@127.0.0.1:1/db"
    c = dj.Connection(url)
    assert secret not in repr(c)
    with pytest.raises(dj.DataJointError) as info:
        dj.Schema("anything", connection=c)
    assert secret not in str(info.value) and secret not in repr(info.value)
    c.close()
