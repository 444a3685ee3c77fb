"""Declarations and schemas as datajoint 2.x has them: names matched in full, enum values
and defaults read as SQL reads them, job metadata on request, tier aliases, activation
in a module's live namespace, inherited parts, VirtualModule and schema lookups."""

from __future__ import annotations

import sys
import types
import uuid
import warnings

import pytest

import dj_dagster as dj


# --- issue 17: names, enum values, quoted defaults ------------------------------------

def test_names_with_a_trailing_newline_are_refused(connection):
    with pytest.raises(dj.DataJointError, match="Invalid schema name"):
        dj.Schema("djt_newline\n", connection=connection)
    assert "djt_newline\n" not in dj.list_schemas(connection)
    schema = dj.Schema(connection=connection)
    with pytest.raises(dj.DataJointError, match="Invalid schema name"):
        schema.activate("djt_newline\n")
    from dj_dagster import naming

    with pytest.raises(dj.DeclarationError, match="CamelCase"):
        naming.table_name("Manual", "Thing\n")


def test_attribute_name_with_a_newline_is_refused(schema):
    class Thing(dj.Manual):
        definition = "thing_id : int32\n---\nvalue\n : int32"

    with pytest.raises(dj.DeclarationError):
        schema(Thing)


def test_enum_refuses_text_outside_its_quotes(schema):
    class Person(dj.Manual):
        definition = """
        person_id : int32
        ---
        kind : enum('x'); DROP TABLE person; --')
        """

    with pytest.raises(dj.DeclarationError, match="kind.*unexpected"):
        schema(Person)
    assert "person" not in schema.list_tables()
    for bad in ("enum(x)", "enum('a' 'b')", "enum('a',)", "enum('a)"):
        class Other(dj.Manual):
            definition = f"other_id : int32\n---\nkind : {bad}"

        with pytest.raises(dj.DeclarationError, match="kind"):
            schema(Other)


def test_quoted_values_read_as_sql_reads_them(schema):
    @schema
    class Phrase(dj.Manual):
        definition = """
        phrase_id : int32
        ---
        text = 'it''s' : varchar(16)
        mood = "it's" : enum('it''s', "that's")
        """

    Phrase.insert1({"phrase_id": 1})
    assert Phrase.fetch1() == {"phrase_id": 1, "text": "it's", "mood": "it's"}
    Phrase.insert1({"phrase_id": 2, "mood": "that's"})
    assert (Phrase & {"phrase_id": 2}).fetch1("mood") == "that's"

    class Broken(dj.Manual):
        definition = "broken_id : int32\n---\ntext = 'a' 'b' : varchar(16)"

    with pytest.raises(dj.DeclarationError, match="one quoted value"):
        schema(Broken)


# --- job metadata and the key of auto-populated tables ----------------------------------

def _declare_pipeline(schema):
    @schema
    class Source(dj.Manual):
        definition = "source_id : int32"

    @schema
    class Result(dj.Computed):
        definition = """
        -> Source
        ---
        value : int32
        """

        def make(self, key):
            self.insert1({**key, "value": key["source_id"] * 2})

    return Source, Result


def test_job_metadata_only_when_configured(schema, monkeypatch):
    monkeypatch.setitem(dj.config, "jobs.add_job_metadata", False)
    Source, Result = _declare_pipeline(schema)
    assert Result.heading.all_names == ["source_id", "value"]
    Source.insert([(1,), (2,)])
    Result.populate()  # no metadata columns to stamp
    assert sorted(Result.to_arrays("value")) == [2, 4]


def test_job_metadata_when_configured(schema, monkeypatch):
    monkeypatch.setitem(dj.config, "jobs.add_job_metadata", True)
    Source, Result = _declare_pipeline(schema)
    assert Result.heading.all_names == ["source_id", "value", "_job_start_time", "_job_duration", "_job_version"]
    assert Result.heading.names == ["source_id", "value"]
    Source.insert1((1,))
    Result.populate()
    assert Result.fetch1("_job_version") == Result().code_version


def test_computed_table_with_its_own_key_attributes(schema, monkeypatch):
    @schema
    class Topic(dj.Manual):
        definition = "topic_id : int32"

    class Item(dj.Computed):
        definition = """
        -> Topic
        item : int32
        ---
        word : varchar(16)
        """

        def make(self, key):
            self.insert([{**key, "item": i, "word": w} for i, w in enumerate(("a", "b"))])

    with pytest.warns(UserWarning, match="primary-key attribute.*item"):
        schema(Item)
    Topic.insert1((1,))
    Item.populate()
    assert len(Item()) == 2

    monkeypatch.setitem(dj.config, "jobs.allow_new_pk_fields_in_computed_tables", True)

    class Other(dj.Computed):
        definition = """
        -> Topic
        other : int32
        """

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        schema(Other)


# --- tiers, contexts, inherited parts ----------------------------------------------------

def test_tier_aliases_are_the_same_classes():
    assert dj.Entry is dj.Manual and dj.Ingest is dj.Imported and dj.Compute is dj.Computed
    assert {"Entry", "Ingest", "Compute"} <= set(dj.__all__)
    from dj_dagster.user_tables import UserTable

    assert all(issubclass(t, UserTable) for t in (dj.Manual, dj.Lookup, dj.Imported, dj.Computed, dj.Part))


def test_activation_resolves_names_in_the_live_module_namespace(connection):
    """A module declares its tables unactivated and sets the names they reference in its
    activate(); the schema is activated there."""
    module = types.ModuleType(f"djt_pipeline_{uuid.uuid4().hex[:6]}")
    sys.modules[module.__name__] = module
    name = f"djt_{uuid.uuid4().hex[:10]}"
    upstream = dj.Schema(name + "_up", connection=connection)
    try:
        @upstream
        class Subject(dj.Manual):
            definition = "subject_id : int32"

        code = '''
import dj_dagster as dj

schema = dj.Schema()
Upstream = None  # set by activate()


@schema
class Session(dj.Manual):
    definition = """
    -> Upstream
    session : int16
    """


def activate(name, upstream, connection):
    global Upstream
    Upstream = upstream
    schema.activate(name, connection=connection)
'''
        exec(compile(code, module.__name__, "exec"), module.__dict__)
        module.activate(name, Subject, connection)
        assert module.Session.heading.primary_key == ["subject_id", "session"]
        assert module.Session.parents() == [Subject.full_table_name]
        module.schema.drop(prompt=False)
    finally:
        sys.modules.pop(module.__name__, None)
        upstream.drop(prompt=False)


def test_activate_with_add_objects(connection):
    upstream = dj.Schema(f"djt_{uuid.uuid4().hex[:10]}", connection=connection)
    schema = dj.Schema()
    try:
        @upstream
        class Animal(dj.Manual):
            definition = "animal_id : int32"

        @schema
        class Weighing(dj.Manual):
            definition = """
            -> Parent
            day : int16
            """

        schema.activate(f"djt_{uuid.uuid4().hex[:10]}", connection=connection, add_objects={"Parent": Animal})
        assert Weighing.heading.primary_key == ["animal_id", "day"]
        schema.drop(prompt=False)
    finally:
        upstream.drop(prompt=False)


def test_inherited_part_tables(schema):
    class A(dj.Manual):
        definition = "a_id : int32"

    class B(dj.Manual):
        source = None
        definition = """
        -> self.source
        b_id : int32
        """

        class H(dj.Part):
            definition = """
            -> master
            name : varchar(16)
            """

        class C(dj.Part):
            definition = """
            -> master
            -> master.H
            """

    class D(B):
        source = A

    schema(A)
    schema(D)
    assert D.heading.primary_key == ["a_id", "b_id"]
    assert D.C.heading.primary_key == ["a_id", "b_id", "name"]
    assert D.C.full_table_name.endswith(".d__c")


# --- unbound tables, virtual modules, lookups by name --------------------------------------

def test_unbound_table_errors_on_first_use():
    class Loose(dj.Manual):
        definition = "x : int32"

    table = Loose()  # no error yet
    with pytest.raises(dj.DataJointError, match="not properly configured"):
        table.full_table_name
    unactivated = dj.Schema()

    @unactivated
    class Waiting(dj.Manual):
        definition = "x : int32"

    with pytest.raises(dj.DataJointError, match="not properly configured"):
        Waiting().heading


def test_virtual_module_and_schema_lookups(schema):
    @schema
    class Experiment(dj.Manual):
        definition = """
        experiment_id : int32
        ---
        note = "" : varchar(16)
        """

    Experiment.insert1((1, "x"))
    module = dj.VirtualModule("lab", schema.database, connection=schema.connection)
    assert isinstance(module, types.ModuleType) and module.__name__ == "lab"
    assert module.schema.database == schema.database
    assert module.Experiment.fetch(as_dict=True) == [{"experiment_id": 1, "note": "x"}]
    other = dj.virtual_schema(schema.database, connection=schema.connection, add_objects={"extra": 1})
    assert isinstance(other, dj.VirtualModule) and other.extra == 1
    assert "Experiment" in schema and "experiment" in schema and "Nothing" not in schema
    table = schema.get_table("Experiment")
    assert table.full_table_name == Experiment.full_table_name and len(table) == 1
    assert schema["experiment"].fetch1("note") == "x"
    with pytest.raises(dj.DataJointError, match="does not exist"):
        schema.get_table("Nothing")
    with pytest.raises(dj.DataJointError, match="does not exist"):
        dj.VirtualModule("lab", f"djt_missing_{uuid.uuid4().hex[:8]}", connection=schema.connection)


def test_make_classes_into_the_callers_namespace(schema):
    @schema
    class Gadget(dj.Manual):
        definition = "gadget_id : int32"

    fresh = dj.Schema(schema.database, connection=schema.connection, create_tables=False)
    fresh.context = None
    namespace = {}
    fresh.make_classes(into=namespace)
    assert namespace["Gadget"].full_table_name == Gadget.full_table_name


def test_int_auto_increment(schema):
    @schema
    class Event(dj.Manual):
        definition = """
        event_id : int auto_increment
        ---
        label : varchar(16)
        """

    Event.insert1({"label": "a"})
    Event.insert([{"label": "b"}, {"label": "c"}])
    Event.insert1({"event_id": 10, "label": "d"})
    Event.insert1({"label": "e"})
    rows = Event.fetch(order_by="event_id", as_dict=True)
    assert [r["label"] for r in rows] == ["a", "b", "c", "d", "e"]
    ids = [r["event_id"] for r in rows]
    assert ids[:4] == [1, 2, 3, 10] and ids[4] > 10
    Event.insert1({"event_id": ids[4] + 1, "label": "f"})  # the value the counter would give next
    Event.insert1({"label": "g"})  # is not given again
    assert (Event & {"label": "g"}).fetch1("event_id") > ids[4] + 1
    assert Event.heading["event_id"].type.auto_increment


def test_declaration_docstring_and_underscored_class_names(schema):
    @schema
    class Documented(dj.Manual):
        """A documented table."""
        definition = """
        doc_id : int32
        """

    assert Documented.__doc__.startswith("A documented table.") and Documented.definition in Documented.__doc__

    class Old_Style(dj.Manual):
        definition = "old_id : int32"

    with pytest.warns(UserWarning, match="contains underscores"):
        schema(Old_Style)
    assert Old_Style.full_table_name.endswith(".old_style")
    assert Old_Style.is_declared


def test_numeric_attributes(schema):
    @schema
    class Proportion(dj.Manual):
        definition = """
        prop_id : int32
        ---
        share : decimal(2, 2) unsigned
        scale : decimal(5)
        label : varchar(8)
        """

    heading = Proportion.heading
    assert heading["share"].numeric and heading["scale"].numeric and heading["prop_id"].numeric
    assert not heading["label"].numeric
    assert not any(a.is_blob for a in heading)


def test_blob_attributes(schema):
    @schema
    class Recording(dj.Manual):
        definition = """
        rec_id : int32
        ---
        trace : <blob>
        raw = null : bytes
        label = "" : varchar(8)
        """

    heading = Recording.heading
    assert heading["trace"].is_blob and heading["raw"].is_blob
    assert not heading["label"].is_blob and not heading["rec_id"].is_blob
