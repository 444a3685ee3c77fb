"""The university registry loaded from CSV, queried with the algebra and checked
against hand-written SQL on every selected backend."""

from __future__ import annotations

import decimal
import warnings

import pandas as pd
import pytest
import sqlalchemy as sa

import dj_dagster as dj
from tests import university


@pytest.fixture
def uni(schema):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = university.declare(schema)
    university.load(tables)
    return tables


def sql_rows(table_or_conn, text: str, **tables) -> list[tuple]:
    """Run hand-written SQL with {Name} placeholders replaced by quoted table names."""
    conn = next(iter(tables.values()))._connection
    prep = conn.engine.dialect.identifier_preparer
    names = {k: prep.format_table(t.sa_table) for k, t in tables.items()}
    with conn.engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.text(text.format(**names)))]


def test_load_counts_match_csv(uni):
    for name in university.LOAD_ORDER:
        expected = len(pd.read_csv(university.DATA / f"{name}.csv"))
        assert len(uni[name]()) == expected, name
    assert len(uni["LetterGrade"]()) == 11


def test_string_restrictions(uni):
    Student = uni["Student"]
    got = {r["student_id"] for r in (Student & 'home_state="UT"').to_dicts()}
    want = {r[0] for r in sql_rows(None, "SELECT student_id FROM {S} WHERE home_state = 'UT'", S=Student())}
    assert got == want and got
    got = len(Student & 'date_of_birth between "1981-01-01" and "1996-12-31"')
    want = sql_rows(None, "SELECT count(*) FROM {S} WHERE date_of_birth BETWEEN '1981-01-01' AND '1996-12-31'",
                    S=Student())[0][0]
    assert got == want > 0


def test_dict_list_not_and_restrictions(uni):
    Student = uni["Student"]
    ut = Student & {"home_state": "UT"}
    ca_or_ut = Student & [{"home_state": "UT"}, {"home_state": "CA"}]
    assert len(ca_or_ut) == len(ut) + len(Student & {"home_state": "CA"})
    assert len(Student & dj.Not({"home_state": "UT"})) == len(Student) - len(ut)
    assert len(Student - {"home_state": "UT"}) == len(Student) - len(ut)
    both = Student & dj.AndList([{"home_state": "UT"}, {"sex": "F"}])
    assert len(both) == len(Student & 'home_state="UT" and sex="F"')
    assert len(Student & []) == 0
    assert len(Student & True) == len(Student) and len(Student & False) == 0
    assert len(Student & {"no_such_attribute": 3}) == len(Student)


def test_join_and_semijoin(uni):
    Student, StudentMajor, Enroll = uni["Student"], uni["StudentMajor"], uni["Enroll"]
    got = sorted((r["student_id"], r["last_name"]) for r in ((Student * StudentMajor) & {"dept": "CS"}).to_dicts())
    want = sorted(sql_rows(None, "SELECT s.student_id, s.last_name FROM {S} s JOIN {M} m "
                                 "ON s.student_id = m.student_id WHERE m.dept = 'CS'",
                           S=Student(), M=StudentMajor()))
    assert got == want and got
    not_enrolled = len(Student - Enroll)
    want = sql_rows(None, "SELECT count(*) FROM {S} s WHERE NOT EXISTS (SELECT 1 FROM {E} e "
                          "WHERE e.student_id = s.student_id)", S=Student(), E=Enroll())[0][0]
    assert not_enrolled == want
    assert len(Student & Enroll) == len(Student) - not_enrolled


def test_aggregation_keeps_all_rows(uni):
    Student, Enroll, Section = uni["Student"], uni["Enroll"], uni["Section"]
    counts = {r["student_id"]: r["n"] for r in Student.aggr(Enroll, n="count(*)").to_dicts()}
    want = dict(sql_rows(None, "SELECT s.student_id, count(e.student_id) FROM {S} s LEFT JOIN {E} e "
                               "ON s.student_id = e.student_id GROUP BY s.student_id", S=Student(), E=Enroll()))
    assert counts == want
    assert len(counts) == len(Student) and 0 in counts.values()
    matched = Section.aggr(Enroll, n="count(*)", exclude_nonmatching=True)
    assert len(matched) == len(dj.U("dept", "course", "term_year", "term", "section") & Enroll)
    assert min(r["n"] for r in matched.to_dicts()) >= 1


def test_gpa_with_round_avg(uni):
    Student, Grade, LetterGrade = uni["Student"], uni["Grade"], uni["LetterGrade"]
    gpa = Student.aggr(Grade * LetterGrade, gpa="round(avg(points), 2)", exclude_nonmatching=True)
    got = {r["student_id"]: decimal.Decimal(str(r["gpa"])).quantize(decimal.Decimal("0.01"))
           for r in gpa.to_dicts()}
    rows = sql_rows(None, "SELECT g.student_id, avg(l.points) FROM {G} g JOIN {L} l ON g.grade = l.grade "
                          "GROUP BY g.student_id", G=Grade(), L=LetterGrade())
    want = {sid: decimal.Decimal(str(avg)).quantize(decimal.Decimal("0.01"), rounding=decimal.ROUND_HALF_UP)
            for sid, avg in rows}
    assert set(got) == set(want)
    assert all(abs(got[k] - want[k]) <= decimal.Decimal("0.01") for k in got)


def test_union_universal_sets_and_top(uni):
    Student, Course = uni["Student"], uni["Course"]
    ut = (Student & {"home_state": "UT"}).proj()
    ca = (Student & {"home_state": "CA"}).proj()
    assert len(ut + ca) == len(ut) + len(ca)
    states = dj.U("home_state") & Student
    want = sql_rows(None, "SELECT count(DISTINCT home_state) FROM {S}", S=Student())[0][0]
    assert len(states) == want
    per_dept = {r["dept"]: r["n"] for r in dj.U("dept").aggr(Course, n="count(*)").to_dicts()}
    assert per_dept == dict(sql_rows(None, "SELECT dept, count(*) FROM {C} GROUP BY dept", C=Course()))
    top = (Student & dj.Top(3, "date_of_birth DESC")).to_dicts(order_by="date_of_birth DESC")
    youngest = sql_rows(None, "SELECT student_id FROM {S} ORDER BY date_of_birth DESC, student_id LIMIT 3",
                        S=Student())
    assert [r["student_id"] for r in top] == [r[0] for r in youngest]


def test_proj_rename_and_computed(uni):
    Student = uni["Student"]
    q = (Student & {"student_id": 100}).proj(full="concat(first_name, ' ', last_name)", st="home_state")
    row = q.fetch1()
    assert row["full"] == "Allison Hill" and row["st"] == "IN" and set(row) == {"student_id", "full", "st"}
    assert (Student & {"student_id": 100}).proj(..., "-home_phone").fetch1().keys() == \
        set(Student.heading.names) - {"home_phone"}
    assert q & 'full = "Allison Hill"'
    assert len(Student.proj(sid="student_id")) == len(Student)


def test_fetch_shapes(uni):
    Student = uni["Student"]
    frame = Student.to_pandas()
    assert frame.index.name == "student_id" and len(frame) == len(Student)
    ids, states = Student.to_arrays("student_id", "home_state", order_by="student_id")
    assert list(ids) == sorted(ids) and len(states) == len(ids)
    rec = Student.to_arrays()
    assert set(rec.dtype.names) == set(Student.heading.names)
    keys = Student.keys(limit=5)
    assert keys == [{"student_id": k} for k in sorted(ids)[:5]]
    assert Student.head(3) == Student.to_dicts(order_by="KEY", limit=3)
    assert {"student_id": 100} in Student and {"student_id": 99999} not in Student
    with pytest.raises(dj.DataJointError, match="exactly one row"):
        Student.fetch1()
    assert "Total: 300" in repr(Student()) and "<table>" in Student()._repr_html_()


def test_semantic_check_rejects_unrelated_namesakes(uni, schema):
    @schema
    class Other(dj.Manual):
        definition = """
        student_id : uint32
        ---
        note : varchar(10)
        """
    with pytest.raises(dj.SemanticJoinError, match="student_id"):
        uni["Student"] * Other
    assert len(uni["Student"].join(Other, semantic_check=False)) == 0
