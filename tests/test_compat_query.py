"""DataJoint 2.x compatibility of the query algebra, fetch and insert (on every backend)."""

from __future__ import annotations


import numpy as np
import pandas as pd
import pytest

import dj_dagster as dj
from dj_dagster.errors import MissingAttributeError, UnknownAttributeError


@pytest.fixture
def tables(schema):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int32
        ---
        name : varchar(32)
        weight = null : float32
        age = 0 : int16
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int16
        ---
        note = "" : varchar(64)
        """

    @schema
    class Other(dj.Manual):
        definition = """
        subject_id : int32
        ---
        name : varchar(32)
        """

    @schema
    class Defaults(dj.Manual):
        definition = """
        id : int32 auto_increment
        ---
        note = null : varchar(20)
        """

    Subject.insert([{"subject_id": i, "name": f"s{i}", "weight": 10.5 * i, "age": i} for i in range(1, 5)])
    Session.insert([{"subject_id": 1, "session": s} for s in (1, 2)] + [{"subject_id": 2, "session": 1}])
    Other.insert([{"subject_id": 1, "name": "x"}])
    return Subject, Session, Other, Defaults


def test_fetch_forms(tables):
    Subject, Session, _, _ = tables
    with pytest.warns(DeprecationWarning, match="fetch"):
        keys = Subject.fetch("KEY", order_by="KEY")
    assert keys == [{"subject_id": i} for i in range(1, 5)]
    with pytest.warns(DeprecationWarning):
        k, names = Subject.fetch("KEY", "name", order_by="KEY")
    assert k[0] == {"subject_id": 1} and list(names) == ["s1", "s2", "s3", "s4"]
    with pytest.warns(DeprecationWarning):
        rows = Subject.fetch("name", as_dict=True, order_by="KEY")
    assert rows[0] == {"subject_id": 1, "name": "s1"}  # the primary key comes along, as in datajoint
    with pytest.warns(DeprecationWarning), pytest.raises(dj.DataJointError, match="format='frame'"):
        Subject.fetch("name", format="frame")
    one = Subject & {"subject_id": 2}
    assert one.fetch1("KEY") == {"subject_id": 2}
    assert one.fetch1("KEY", "name") == ({"subject_id": 2}, "s2")
    keys, names, ages = Subject.to_arrays("name", "age", include_key=True, order_by="KEY")
    assert keys == [{"subject_id": i} for i in range(1, 5)] and list(ages) == [1, 2, 3, 4]
    assert ages.dtype == np.int64 and Subject.to_arrays("weight").dtype == np.float64
    rec = Subject.to_arrays()
    assert rec.dtype["age"] == np.int64 and rec.dtype["weight"] == np.float64 and rec.dtype["name"] == object
    assert Subject.heading.as_dtype.names == ("subject_id", "name", "weight", "age")
    it = iter(Subject)
    assert next(it)["subject_id"] in range(1, 5)


def test_to_polars_and_arrow(tables):
    Subject = tables[0]
    import polars as pl  # in the dev extra: this test must run, not skip
    import pyarrow as pa
    frame = Subject.to_polars(order_by="KEY")
    assert isinstance(frame, pl.DataFrame) and frame["name"].to_list() == ["s1", "s2", "s3", "s4"]
    table = Subject.to_arrow(order_by="KEY")
    assert isinstance(table, pa.Table) and table.column("subject_id").to_pylist() == [1, 2, 3, 4]
    Subject.insert(pl.DataFrame({"subject_id": [10], "name": ["p"]}))
    Subject.insert(pa.table({"subject_id": [11], "name": ["a"]}))
    assert len(Subject & "subject_id >= 10") == 2


def test_insert_forms_and_validate(tables):
    Subject, _, _, Defaults = tables
    frame = Subject.to_pandas()  # indexed by the primary key
    frame = frame.assign(name=frame["name"] + "!")
    frame.index = frame.index + 100
    Subject.insert_dataframe(frame)
    assert len(Subject & "subject_id > 100") == 4
    with pytest.raises(dj.DataJointError, match="do not match"):
        Subject.insert_dataframe(pd.DataFrame({"name": ["x"]}, index=pd.Index([1], name="wrong")), index_as_pk=True)
    with pytest.raises(dj.DataJointError, match="requires a pandas DataFrame"):
        Subject.insert_dataframe([{"subject_id": 1}])
    series = pd.Series({"subject_id": 150, "name": "ser"})
    Subject.insert1(series)  # a named row: its labels name the attributes
    assert Subject.validate([series]) and (Subject & {"subject_id": 150}).fetch1("name") == "ser"
    with pytest.warns(DeprecationWarning, match="Positional inserts"):
        Subject.insert1((200, "pos", None, 3))
    Subject.insert1({"subject_id": 201, "name": "f", "age": 2.6})  # rounded into the integer column
    assert (Subject & {"subject_id": 201}).fetch1("age") == 3
    assert len(Subject & {"age": 2.6}) == 0  # a restriction never rounds
    Defaults.insert1({})
    Defaults.insert([{}, {}])
    assert sorted(Defaults.to_arrays("id")) == [1, 2, 3]
    with pytest.raises(MissingAttributeError, match="Cannot insert empty row"):
        Subject.insert1({})
    with pytest.raises(KeyError):
        Subject.insert1({"subject_id": 300, "name": "k", "spouse": "x"})
    with pytest.raises(dj.errors.DuplicateError):
        Subject.insert([{"subject_id": 301, "name": "a"}, {"subject_id": 301, "name": "b"}])
    copy = Subject & "subject_id > 100"
    tables[2].insert(copy.proj("name"), skip_duplicates=True)
    changed = copy.proj(..., name='concat(name, "?")')  # the same keys with other values: skipped
    tables[2].insert(changed.proj("name"), skip_duplicates=True)
    assert len(tables[2] & 'name like "%?"') == 0 and len(tables[2]) == 1 + len(copy)
    with pytest.raises(dj.DataJointError, match="chunk_size is not supported"):
        Subject.insert(Subject & "subject_id > 100", chunk_size=10)
    good = Subject.validate([{"subject_id": 400, "name": "v"}])
    assert good and good.rows_checked == 1 and "Validation passed" in good.summary()
    bad = Subject.validate([{"subject_id": 401}, (1, 2), {"subject_id": 402, "name": "n", "junk": 1}])
    assert not bad and isinstance(bad, dj.ValidationResult)
    assert [e[0] for e in bad.errors] == [0, 1, 2] and "Incorrect number of attributes" in bad.errors[1][2]
    assert "junk" in bad.errors[2][2] and "3 error(s)" in bad.summary()
    with pytest.raises(dj.DataJointError):
        bad.raise_if_invalid()


def test_update1_resets_defaults(tables):
    Subject = tables[0]
    Subject.update1({"subject_id": 1, "age": 7, "weight": 1.5})
    assert (Subject & {"subject_id": 1}).fetch1("age", "weight") == (7, 1.5)
    Subject.update1({"subject_id": 1, "age": None, "weight": None})
    assert (Subject & {"subject_id": 1}).fetch1("age", "weight") == (0, None)
    with pytest.raises(KeyError):
        Subject.update1({"subject_id": 1, "agee": 3})
    with pytest.raises(dj.DataJointError, match="restricted"):
        (Subject & "subject_id > 1").update1({"subject_id": 2, "age": 3})


def test_semantic_matching(tables):
    Subject, Session, Other, _ = tables
    with pytest.raises(dj.DataJointError, match="lineage"):
        Subject & Other  # subject_id of two different origins
    assert len(Subject.restrict(Other, semantic_check=False)) == 0  # subject_id and name both compared
    assert len(Subject.restrict(Other.proj(), semantic_check=False)) == 1
    assert len(Subject & Session) == 2 and len(Subject - Session) == 2
    with pytest.raises(dj.DataJointError, match="lineage"):
        Subject.proj("name") * Other.proj(sid="subject_id", name="name")  # name: a native secondary
    with pytest.raises(dj.DataJointError, match="removed"):
        Subject ^ Session
    with pytest.raises(dj.DataJointError, match="removed"):
        Subject() @ Session()
    with pytest.raises(dj.DataJointError, match="no longer supported"):
        dj.U("subject_id") * Subject
    with pytest.raises(dj.DataJointError, match="no longer supported"):
        Subject * dj.U("subject_id")
    with pytest.raises(dj.DataJointError, match="infinite"):
        dj.U("subject_id") - Subject
    assert len(Subject & dj.U("subject_id")) == len(Subject)
    rec = Subject.to_arrays(order_by="KEY")
    assert (Subject & rec[1]).fetch1("name") == "s2"  # restriction by a numpy record


def test_string_restriction_unknown_column(tables):
    Subject = tables[0]
    for text in ("wieght > 1", 'nme = "s1"', "subject_id > 1 and agee = 2"):
        with pytest.raises(UnknownAttributeError, match="Unknown attribute"):
            (Subject & text).to_dicts()
    assert len(Subject & 'name = "s1"') == 1
    with pytest.raises(UnknownAttributeError, match="nosuch"):
        Subject.proj(x="nosuch + 1")
    with pytest.raises(UnknownAttributeError, match="agee"):
        Subject.aggr(tables[1], n="max(agee)")
    with pytest.raises(dj.DataJointError):  # the server's refusal, as a DataJointError
        (Subject & "nosuchfn(subject_id) > 1").to_dicts()
    with pytest.raises(dj.DataJointError):
        len(Subject & "nosuchfn(subject_id) > 1")


def test_extend_union_top(tables):
    Subject, Session, Other, _ = tables
    ext = Session.extend(Subject)
    assert ext.primary_key == ["subject_id", "session"] and len(ext) == 3
    with pytest.raises(dj.DataJointError, match="determine"):
        Subject.extend(Session)
    a = (Subject & "subject_id < 3").proj("name")
    b = (Subject & "subject_id > 2").proj("age")
    u = a + b
    assert set(u.heading.names) == {"subject_id", "name", "age"} and len(u) == 4
    rows = {r["subject_id"]: (r["name"], r["age"]) for r in u.to_dicts()}
    assert rows[1] == ("s1", None) and rows[4] == (None, 4)
    with pytest.raises(dj.DataJointError, match="secondary"):
        Subject.proj("name") + Subject.proj("name")
    with pytest.raises(dj.DataJointError, match="primary key"):
        Subject + Session
    with pytest.raises(TypeError):
        dj.Top(limit="1")
    q = Subject & dj.Top(3, "subject_id desc") & dj.Top(2, order_by=None, offset=1)
    assert [r["subject_id"] for r in q.to_dicts()] == [3, 2]
    assert dj.Top(10, "a", 2).merge(dj.Top(3, None, 1)) == dj.Top(3, ["a"], 3)
    q = (Subject & dj.Top(None, "subject_id desc")).proj("name") & dj.Top(2, order_by=None)  # order inherited
    assert [r["subject_id"] for r in q.to_dicts()] == [4, 3]
    text = Subject.preview(limit=2)
    assert "   ..." in text and "(Total: 4)" in text


def test_lineage_table(tables, schema):
    from dj_dagster import lineage

    conn, db = schema.connection, schema.database
    schema.rebuild_lineage()
    assert schema.lineage_table_exists
    assert lineage.get_table_lineages(conn, db, "session") == {
        "subject_id": f"{db}.subject.subject_id", "session": f"{db}.session.session"}
    lineage.delete_table_lineages(conn, db, "session")
    assert lineage.get_lineage(conn, db, "session", "subject_id") is None
    lineage.insert_lineages(conn, db, [("session", "subject_id", "x.y.z")])
    assert lineage.get_lineage(conn, db, "session", "subject_id") == "x.y.z"
    schema.rebuild_lineage()
    assert lineage.get_lineage(conn, db, "session", "subject_id") == f"{db}.subject.subject_id"
    assert f"{db}.subject.subject_id" in lineage.get_schema_lineages(conn, db)
