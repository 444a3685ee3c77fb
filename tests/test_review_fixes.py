"""Values are never changed silently: restrictions do not round, inserts round exact
values as the servers do, and alter() never truncates or rounds stored values."""

from __future__ import annotations

import decimal

import pytest

import dj_dagster as dj


@pytest.fixture
def priced(schema):
    @schema
    class Item(dj.Manual):
        definition = """
        item : int32
        ---
        price : decimal(5,2)
        count = 0 : int32
        """

    Item.insert([dict(item=1, price="1.00"), dict(item=2, price="2.50")])
    return Item


@pytest.mark.parametrize("value", [decimal.Decimal("1.004"), 1.004, "0.999", "1.001"])
def test_decimal_restriction_never_rounds(priced, value):
    """1.004 is no decimal(5,2) value: it matches no row, and a delete by it deletes none."""
    assert len(priced & {"price": value}) == 0
    assert len(priced - {"price": value}) == 2
    assert (priced & {"price": value}).delete(prompt=False) == 0
    assert len(priced) == 2


def test_decimal_restriction_by_exact_value(priced):
    assert (priced & {"price": decimal.Decimal("1.0")}).fetch1("item") == 1
    assert (priced & {"price": "2.5"}).fetch1("item") == 2


def test_exact_values_round_half_away_from_zero(priced):
    """As MySQL and PostgreSQL round an exact value into its column: 0.125 -> 0.13, 2.5 -> 3."""
    priced.insert([dict(item=3, price=decimal.Decimal("0.125"), count=decimal.Decimal("2.5")),
                   dict(item=4, price="-0.125", count=decimal.Decimal("-2.5"))])
    assert (priced & {"item": 3}).fetch1("price", "count") == (decimal.Decimal("0.13"), 3)
    assert (priced & {"item": 4}).fetch1("price", "count") == (decimal.Decimal("-0.13"), -3)


def test_alter_never_truncates_stored_values(schema):
    @schema
    class Note(dj.Manual):
        definition = """
        note_id : int32
        ---
        text : varchar(30)
        """

    Note.insert1((1, "a note longer than ten"))
    Note.definition = """
    note_id : int32
    ---
    text : varchar(10)
    """
    with pytest.raises(dj.DataJointError):
        Note.alter(prompt=False)
    assert Note.fetch1("text") == "a note longer than ten"
    assert Note.heading["text"].type.text == "varchar(30)"


def test_alter_keeps_values_that_fit(schema, backend):
    @schema
    class Note(dj.Manual):
        definition = """
        note_id : int32
        ---
        text : varchar(30)
        """

    Note.insert1((1, "short"))
    Note.definition = """
    note_id : int32
    ---
    text : varchar(10)
    """
    if backend == "sqlite":  # SQLite cannot change a column's type: refused, nothing changed
        with pytest.raises(dj.DataJointError):
            Note.alter(prompt=False)
        assert Note.fetch1("text") == "short"
        return
    Note.alter(prompt=False)
    assert Note.fetch1("text") == "short"
    assert Note.heading["text"].type.text == "varchar(10)"


def test_run_config_cannot_smuggle_a_password_url(monkeypatch):
    """A password URL is accepted only as the resolved value of the EnvVar written in code;
    given as run config (launchpad, run_config) it would be stored in run storage."""
    import dagster as dg

    from dj_dagster.orchestration.resources import DataJointResource

    url = "mysql+pymysql://user:hunter2@db.example/lab"
    monkeypatch.setenv("DJX_TEST_URL", url)
    from_env = DataJointResource(database_url=dg.EnvVar("DJX_TEST_URL"))
    assert from_env._with_updated_values({"database_url": url}) is not None
    with pytest.raises(dj.DataJointError, match="EnvVar"):
        DataJointResource()._with_updated_values({"database_url": url})
    with pytest.raises(dj.DataJointError, match="EnvVar"):
        from_env._with_updated_values({"database_url": "mysql+pymysql://user:other@db.example/lab"})


def test_auto_increment_not_leading_the_key(schema, backend):
    """(subject, trial auto_increment): numbered by the server, explicit values respected."""
    class Trial(dj.Manual):
        definition = """
        subject : int32
        trial : int32 auto_increment
        ---
        note = "" : varchar(8)
        """

    if backend == "sqlite":  # SQLite numbers only an INTEGER PRIMARY KEY of its own: refused, clearly
        with pytest.raises(dj.DeclarationError, match="trial.*auto_increment"):
            schema(Trial)
        return

    schema(Trial)

    Trial.insert([dict(subject=1, trial=5), dict(subject=1)])
    Trial.insert1(dict(subject=2))
    trials = sorted(Trial.fetch("trial"))
    assert len(trials) == 3 and len(set(trials)) == 3 and 5 in trials


def test_staged_insert1_on_the_class(schema):
    @schema
    class Thing(dj.Manual):
        definition = """
        thing : int32
        """

    assert hasattr(Thing.staged_insert1, "__enter__")


def test_original_type_is_the_declared_text(schema):
    @schema
    class Animal(dj.Manual):
        definition = """
        animal : uuid
        ---
        status : enum('active', 'retired')
        """

    assert Animal.heading["animal"].original_type == "uuid"
    assert Animal.heading["status"].original_type == "enum('active', 'retired')"


def test_diagram_svg_for_notebooks(schema):
    import shutil

    @schema
    class Parent(dj.Manual):
        definition = """
        parent : int32
        """

    @schema
    class Child(dj.Manual):
        definition = """
        -> Parent
        child : int32
        """

    diagram = dj.Diagram(schema)
    svg = diagram._repr_svg_()
    assert svg.startswith("<svg") and svg.endswith("svg>")
    assert "Parent" in svg and "Child" in svg
    if shutil.which("dot"):
        assert diagram.make_png().read(8) == b"\x89PNG\r\n\x1a\n"


def test_conn_with_a_url_refuses_use_tls(tmp_path):
    """TLS of a URL connection is set in the URL; use_tls beside one was ignored (and
    replaced the default connection on every call)."""
    from dj_dagster import connection as connection_module

    url = f"sqlite:///{tmp_path / 'x.sqlite'}"
    saved = connection_module._default
    try:
        first = dj.conn(url)
        assert dj.conn(url) is first
        with pytest.raises(dj.DataJointError, match="use_tls"):
            dj.conn(url, use_tls=True)
        assert dj.conn(url) is first
    finally:
        if connection_module._default is not saved and connection_module._default is not None:
            connection_module._default.close()
        connection_module._default = saved
