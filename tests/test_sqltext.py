"""dj_dagster.sqltext: MySQL-dialect SQL text runs unchanged on SQLite, MariaDB/MySQL and PostgreSQL.

Every example is translated and executed against a real database of each backend; all
backends must return the same (MySQL-semantics) rows.
"""

from __future__ import annotations

import datetime
import decimal
import math
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.pool import StaticPool

from dj_dagster.sqltext import SQLTextError, referenced_columns, register_sqlite_functions, translate

BACKEND_URLS = {
    "sqlite": "sqlite://",
    "mysql": "mysql+pymysql://root@127.0.0.1:3306/test",
    "postgresql": "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
}

D = datetime.date
ROWS = [
    # id, first_name, last_name, home_state, date_of_birth, points, credits, a, b
    (1, "John", "Smith", "UT", D(1985, 3, 15), 3.75, 12, 1, 2),
    (2, "Jane", "Doe", "CA", D(1992, 7, 4), 2.25, 9, 3, 1),
    (3, "Alice", "Jones", "UT", D(1978, 12, 31), 10.25, 15, 0, 0),
    (4, "Bob", None, "NY", D(1996, 2, 29), 0.75, 6, None, 5),
    (5, "jake", "Lee", "TX", D(2000, 1, 1), 7.0, 3, 2, None),
]
COLUMNS = ["id", "first_name", "last_name", "home_state", "date_of_birth", "points", "credits", "a", "b"]


def _make_engine(backend: str) -> sa.Engine:
    if backend == "sqlite":
        engine = sa.create_engine(
            BACKEND_URLS[backend], poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        sa.event.listen(engine, "connect", lambda dbapi_conn, _: register_sqlite_functions(dbapi_conn))
        return engine
    return sa.create_engine(BACKEND_URLS[backend], connect_args={"connect_timeout": 5})


class DB:
    def __init__(self, backend: str, engine: sa.Engine, table: str) -> None:
        self.backend = backend
        self.engine = engine
        self.dialect = engine.dialect.name
        self.table = table
        self.q = engine.dialect.identifier_preparer.quote_identifier

    def fetch(self, sql: str) -> list[tuple]:
        with self.engine.connect() as conn:
            return [tuple(_norm(v) for v in row) for row in conn.execute(sa.text(sql))]

    def where(self, condition: str, **kw) -> list[int]:
        sql = translate(condition, self.dialect, **kw)
        return [r[0] for r in self.fetch(f"SELECT {self.q('id')} FROM {self.q(self.table)} WHERE {sql} ORDER BY 1")]

    def per_row(self, expression: str) -> list:
        sql = translate(expression, self.dialect, kind="expression")
        return [r[1] for r in self.fetch(f"SELECT {self.q('id')}, {sql} FROM {self.q(self.table)} ORDER BY 1")]

    def aggregate(self, expression: str):
        sql = translate(expression, self.dialect, kind="expression")
        (row,) = self.fetch(f"SELECT {sql} FROM {self.q(self.table)}")
        return row[0]


def _norm(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return int(value) if value.is_integer() else round(value, 6)
    if isinstance(value, datetime.datetime):
        return value.date().isoformat() if value.time() == datetime.time() else value.isoformat(sep=" ")
    if isinstance(value, datetime.date):
        return value.isoformat()
    return value


@pytest.fixture(scope="module", params=list(BACKEND_URLS))
def db(request):
    backend = request.param
    engine = _make_engine(backend)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError as error:  # pragma: no cover - depends on the machine
        engine.dispose()
        pytest.skip(f"{backend} not reachable: {error}")
    table_name = f"sqltext_{uuid.uuid4().hex[:10]}"
    metadata = sa.MetaData()
    table = sa.Table(
        table_name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("first_name", sa.String(32)),
        sa.Column("last_name", sa.String(32)),
        sa.Column("home_state", sa.String(2)),
        sa.Column("date_of_birth", sa.Date),
        sa.Column("points", sa.Float),
        sa.Column("credits", sa.Integer),
        sa.Column("a", sa.Integer),
        sa.Column("b", sa.Integer),
    )
    metadata.create_all(engine)
    try:
        with engine.begin() as conn:
            conn.execute(table.insert(), [dict(zip(COLUMNS, row)) for row in ROWS])
        yield DB(backend, engine, table_name)
    finally:
        metadata.drop_all(engine)
        engine.dispose()


# --------------------------------------------------------------------------- restrictions

DAYS_TO_2000 = [(D(2000, 1, 1) - row[4]).days for row in ROWS]

CONDITIONS = [
    ('home_state="UT"', [1, 3]),
    ("home_state = 'UT'", [1, 3]),
    ("`home_state` = \"NY\"", [4]),
    ("home_state <> 'UT'", [2, 4, 5]),
    ('home_state != "UT" and credits > 5', [2, 4]),
    ('date_of_birth between "1981-01-01" and "1996-12-31"', [1, 2, 4]),
    ('date_of_birth > "1990-01-01"', [2, 4, 5]),
    ("year(date_of_birth) > 1990", [2, 4, 5]),
    ("month(date_of_birth) in (2, 3)", [1, 4]),
    ("day(date_of_birth) = 29", [4]),
    ("dayofweek(date_of_birth) = 7", [2, 5]),
    ("weekday(date_of_birth) = 6", [3]),
    ("quarter(date_of_birth) = 4", [3]),
    ('first_name like "J%"', [1, 2, 5]),  # case-insensitive, as with MySQL's default collations
    ('first_name not like "%o%"', [2, 3, 5]),
    ('last_name not like "%\\_%"', [1, 2, 3, 5]),
    ('first_name regexp "^j"', [1, 2, 5]),
    ('first_name <> "it\\\'s"', [1, 2, 3, 4, 5]),
    ("a in (1,2,3)", [1, 2, 5]),
    ("a not in (1, 2)", [2, 3]),
    ("a is null", [4]),
    ("a is not null", [1, 2, 3, 5]),
    ("last_name is null", [4]),
    ("isnull(b)", [5]),
    ("a", [1, 2, 5]),
    ("not a", [3]),
    ("a is true", [1, 2, 5]),
    ("a && b", [1, 2]),
    ("a + b > 3 || a = 0", [2, 3]),
    ("a xor (b > 1)", [2]),
    ("not (a > 1 or b)", [3]),
    ("(a > 1) = (b > 1)", [3]),
    ("a = true", [1]),
    ("if(a>1, 1, 0)", [2, 5]),
    ("ifnull(a, 0) = 0", [3, 4]),
    ("coalesce(b, a) = 2", [1, 5]),
    ("greatest(a, b) >= 2", [1, 2]),  # NULL if any argument is NULL, as in MySQL
    ("least(a, b) = 0", [3]),
    ("a <=> b", [3]),
    ('datediff("2000-01-01", date_of_birth) > 3000', [1, 3]),
    ('timestampdiff(year, date_of_birth, "2020-03-14") >= 35', [3]),
    ('timestampdiff(month, date_of_birth, "2020-03-14") % 12 = 11', [1]),
    ('date_of_birth > date_sub("2000-06-01", interval 6 month)', [5]),
    ('date_add(date_of_birth, interval 1 day) = "1979-01-01"', [3]),
    ('date_of_birth + interval 1 year > "2000-06-01"', [5]),
    ("date_of_birth < curdate() and year(now()) >= 2024", [1, 2, 3, 4, 5]),
    ("concat(first_name, ' ', last_name) = 'John Smith'", [1]),
    ('concat_ws("-", first_name, last_name) = "Bob"', [4]),
    ("lower(first_name) = 'jake' and char_length(last_name) = 3", [5]),
    ("round(points) = 4", [1]),
    ("points > 3 and not (credits < 10)", [1, 3]),
    ("credits div 4 = 3", [1, 3]),
    ("credits mod 4 = 0", [1]),
    ("case when points > 5 then 'high' else 'low' end = 'high'", [3, 5]),
    ("id in (select 2 union select 3)", [2, 3]),
]


@pytest.mark.parametrize("condition, expected", CONDITIONS, ids=[c for c, _ in CONDITIONS])
def test_condition(db, condition, expected):
    assert db.where(condition) == expected


# --------------------------------------------------------------------------- computed attributes

PER_ROW = [
    ("concat(first_name, ' ', last_name)", ["John Smith", "Jane Doe", "Alice Jones", None, "jake Lee"]),
    ("concat(first_name, a)", ["John1", "Jane3", "Alice0", None, "jake2"]),
    ('concat_ws(", ", last_name, first_name)', ["Smith, John", "Doe, Jane", "Jones, Alice", "Bob", "Lee, jake"]),
    ("year(date_of_birth)", [1985, 1992, 1978, 1996, 2000]),
    ("month(date_of_birth)", [3, 7, 12, 2, 1]),
    ("if(a>1, 1, 0)", [0, 1, 0, 0, 1]),
    ('if(a, "y", "n")', ["y", "y", "n", "n", "y"]),
    ("ifnull(a, 0)", [1, 3, 0, 0, 2]),
    ("greatest(a,b)", [2, 3, 0, None, None]),
    ("least(a, b, 1)", [1, 1, 0, None, None]),
    ('datediff("2000-01-01", date_of_birth)', DAYS_TO_2000),
    ('timestampdiff(year, date_of_birth, "2020-03-14")', [34, 27, 41, 24, 20]),
    (
        'timestampdiff(day, date_of_birth, "2020-03-14")',
        [(D(2020, 3, 14) - row[4]).days for row in ROWS],
    ),
    ('timestampdiff(month, "2020-03-14", date_of_birth)', [-419, -332, -494, -288, -242]),
    ("date_add(date_of_birth, interval 1 month)", ["1985-04-15", "1992-08-04", "1979-01-31", "1996-03-29", "2000-02-01"]),
    ("date_sub(date_of_birth, interval 2 day)", ["1985-03-13", "1992-07-02", "1978-12-29", "1996-02-27", "1999-12-30"]),
    ("a / b", [0.5, 3, None, None, None]),
    ("a div b", [0, 3, None, None, None]),
    ("a % b", [1, 0, None, None, None]),
    ("a > b", [0, 1, 0, None, None]),
    ("not a", [0, 0, 1, None, 0]),
    ("a xor b", [0, 0, 0, None, None]),
    ("a is null", [0, 0, 0, 1, 0]),
    ("round(points + 0.123, 1)", [3.9, 2.4, 10.4, 0.9, 7.1]),
    ("truncate(points + 0.123, 1)", [3.8, 2.3, 10.3, 0.8, 7.1]),
    ("floor(points)", [3, 2, 10, 0, 7]),
    ("ceil(points)", [4, 3, 11, 1, 7]),
    ("abs(a - b)", [1, 2, 0, None, None]),
    ("upper(first_name)", ["JOHN", "JANE", "ALICE", "BOB", "JAKE"]),
    ("char_length(first_name)", [4, 4, 5, 3, 4]),
    ("substring(first_name, 2, 3)", ["ohn", "ane", "lic", "ob", "ake"]),
    ("left(first_name, 2)", ["Jo", "Ja", "Al", "Bo", "ja"]),
    ("right(last_name, 3)", ["ith", "Doe", "nes", None, "Lee"]),
    ('coalesce(last_name, "?")', ["Smith", "Doe", "Jones", "?", "Lee"]),
    ("case when points > 5 then 'high' else 'low' end", ["low", "low", "high", "low", "high"]),
    ("cast(credits as char)", ["12", "9", "15", "6", "3"]),
    ("cast(points as signed)", [4, 2, 10, 1, 7]),
]


@pytest.mark.parametrize("expression, expected", PER_ROW, ids=[e for e, _ in PER_ROW])
def test_per_row_expression(db, expression, expected):
    assert db.per_row(expression) == expected


_POINTS = [row[5] for row in ROWS]
_MEAN = sum(_POINTS) / len(_POINTS)
_STD = math.sqrt(sum((p - _MEAN) ** 2 for p in _POINTS) / len(_POINTS))

AGGREGATES = [
    ("count(*)", 5),
    ("sum(credits)", 45),
    ("round(avg(points), 2)", 4.8),
    ("round(avg(credits) / 7, 2)", 1.29),
    ("sum(a > 1)", 2),
    ("count(distinct home_state)", 4),
    ("max(date_of_birth)", "2000-01-01"),
    ("min(a) + max(b)", 5),
    ("length(group_concat(first_name))", 24),
    ("round(std(points), 6)", round(_STD, 6)),
]


@pytest.mark.parametrize("expression, expected", AGGREGATES, ids=[e for e, _ in AGGREGATES])
def test_aggregate_expression(db, expression, expected):
    assert db.aggregate(expression) == expected


def test_boolean_typed_column(db):
    """TRUE/FALSE values (a boolean column in PostgreSQL, 1/0 elsewhere) used MySQL-style."""
    q = db.q
    source = (
        f"(SELECT 1 AS {q('id')}, TRUE AS {q('flag')} UNION ALL SELECT 2, FALSE UNION ALL SELECT 3, NULL) AS {q('f')}"
    )

    def ids(condition):
        return [r[0] for r in db.fetch(f"SELECT {q('id')} FROM {source} WHERE {translate(condition, db.dialect)} ORDER BY 1")]

    assert ids("flag") == [1]
    assert ids("not flag") == [2]
    assert ids("flag = true") == [1]
    assert ids("flag is true") == [1]
    assert ids("flag or id = 3") == [1, 3]
    assert ids("not flag and id > 1") == [2]
    label = translate('if(flag, "y", "n")', db.dialect, kind="expression")
    assert [r[0] for r in db.fetch(f"SELECT {label} FROM {source} ORDER BY {q('id')}")] == ["y", "n", "n"]


SCALARS = [
    ('hour("2020-01-01 13:45:30")', 13),
    ('minute("2020-01-01 13:45:30")', 45),
    ('second("2020-01-01 13:45:30")', 30),
    ('date("2020-01-01 13:45:30")', "2020-01-01"),
    ('timestampdiff(hour, "2020-01-01 00:00:00", "2020-01-02 01:30:00")', 25),
    ('timestampdiff(minute, "2020-01-02 01:30:00", "2020-01-01 00:00:00")', -1530),
    ('timestampdiff(year, "2000-02-29", "2021-02-28")', 20),
    ('date_add("2020-01-31 10:00:00", interval 90 minute)', "2020-01-31 11:30:00"),
    ('dayofyear("2020-12-31")', 366),
    ("log(2, 8)", 3),
    ("log10(1000)", 3),
    ("power(2, 10)", 1024),
    ("7 div 2", 3),
    ("-7 div 2", -3),
    ("1 / 0", None),
    ("round(-2.567, 2)", -2.57),
    ("truncate(-2.567, 2)", -2.56),
    ("replace('a-b-c', '-', '+')", "a+b+c"),
    ("trim('  x  ')", "x"),
    ("instr('hello', 'l')", 3),
    ("locate('l', 'hello')", 3),
    ("nullif(1, 1)", None),
    ("1 = 1", 1),
    ("'abc' like 'A%'", 1),
]


@pytest.mark.parametrize("expression, expected", SCALARS, ids=[e for e, _ in SCALARS])
def test_scalar_expression(db, expression, expected):
    (row,) = db.fetch(f"SELECT {translate(expression, db.dialect, kind='expression')}")
    assert row[0] == expected


# --------------------------------------------------------------------------- qualification


def test_qualify_in_join_of_aliased_subqueries(db):
    q, t = db.q, db.q(db.table)
    left, right = "L", "Rt"  # mixed case: aliases must be quoted
    sub = f"(SELECT {q('id')}, {q('first_name')}, {q('last_name')}, {q('a')}, {q('b')} FROM {t})"
    condition = translate(
        'a < b and first_name like "J%"', db.dialect, qualify={"a": left, "b": right, "first_name": left}
    )
    assert f"{q(left)}.{q('a')}" in condition and f"{q(right)}.{q('b')}" in condition
    label = translate(
        "concat(first_name, '/', last_name)", db.dialect, qualify={"first_name": left, "last_name": right},
        kind="expression",
    )
    sql = (
        f"SELECT {q(left)}.{q('id')}, {q(right)}.{q('id')}, {label} "
        f"FROM {sub} AS {q(left)} CROSS JOIN {sub} AS {q(right)} WHERE {condition} ORDER BY 1, 2"
    )
    by_id = {row[0]: row for row in ROWS}
    expected = []
    for lrow in ROWS:
        for rrow in ROWS:
            if lrow[7] is not None and rrow[8] is not None and lrow[7] < rrow[8] and lrow[1].lower().startswith("j"):
                last = by_id[rrow[0]][2]
                expected.append((lrow[0], rrow[0], None if last is None else f"{lrow[1]}/{last}"))
    assert expected  # the data must exercise the join
    assert db.fetch(sql) == expected
    # without qualification the same text is ambiguous in this join
    unqualified = translate('a < b and first_name like "J%"', db.dialect)
    with pytest.raises(sa.exc.DBAPIError):
        db.fetch(f"SELECT 1 FROM {sub} AS {q(left)} CROSS JOIN {sub} AS {q(right)} WHERE {unqualified}")


def test_qualify_leaves_qualified_and_unlisted_columns_alone():
    sql = translate("t.a = b and c = 1", "postgresql", qualify={"a": "x", "b": "y"})
    assert sql == '"t"."a" = "y"."b" AND "c" = 1'
    sql = translate("A > 1", "mysql", qualify={"a": "s"})
    assert sql == "`s`.`a` > 1"
    sql = translate("a in (select a from t)", "sqlite", qualify={"a": "s"})
    assert sql == '"s"."a" IN (SELECT "a" FROM "t")'


def test_rendering_per_dialect():
    assert translate('home_state="UT"', "mysql") == "`home_state` = 'UT'"
    assert translate('home_state="UT"', "mariadb") == "`home_state` = 'UT'"
    assert translate('home_state="UT"', "postgresql") == "\"home_state\" = 'UT'"
    assert translate('home_state="UT"', "sqlite") == "\"home_state\" = 'UT'"
    assert translate('x = "it\'s"', "postgresql") == "\"x\" = 'it''s'"
    assert "STRFTIME" in translate("year(d)", "sqlite")
    assert translate("round(avg(points), 2)", "postgresql", kind="expression").startswith("ROUND(CAST(")


# --------------------------------------------------------------------------- errors

BAD_TEXT = [
    "",
    "   ",
    "a = ",
    'home_state = "UT" and',
    "a; drop table x",
    "select 1",
    "1 from t",
    "a b",
    "a as b",
    "a, b",
    "*",
    "x = ?",
    "x = @v",
    "count(",
    "a = 'unterminated",
]


@pytest.mark.parametrize("dialect", ["sqlite", "mysql", "postgresql"])
@pytest.mark.parametrize("text", BAD_TEXT)
def test_bad_text_raises(text, dialect):
    with pytest.raises(SQLTextError) as info:
        translate(text, dialect)
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text, failing",
    [
        ("yearweek(date_of_birth)", {"sqlite", "postgresql"}),
        ('lpad(first_name, 5, "*")', {"sqlite"}),
        ("timestampdiff(microsecond, a, b)", {"sqlite", "postgresql"}),
        ("group_concat(first_name order by id)", {"sqlite"} if __import__("sqlite3").sqlite_version_info < (3, 44) else set()),
    ],
)
def test_untranslatable_text_raises(text, failing):
    for dialect in ("sqlite", "mysql", "postgresql"):
        if dialect in failing:
            with pytest.raises(SQLTextError, match="yearweek|lpad|timestampdiff|group_concat"):
                translate(text, dialect, kind="expression")
        else:
            assert translate(text, dialect, kind="expression")


def test_unknown_dialect_and_kind():
    with pytest.raises(SQLTextError, match="oracle"):
        translate("a = 1", "oracle")
    with pytest.raises(ValueError):
        translate("a = 1", "sqlite", kind="statement")


# --------------------------------------------------------------------------- referenced_columns


@pytest.mark.parametrize(
    "text, expected",
    [
        ('home_state="UT"', {"home_state"}),
        ('concat(First_Name, " ", `last_name`)', {"first_name", "last_name"}),
        ("count(*)", set()),
        ('"a" = b', {"b"}),
        ("t.a > b", {"a", "b"}),
        ("a in (select c from t where d)", {"a"}),
        ("timestampdiff(year, date_of_birth, curdate())", {"date_of_birth"}),
        ("date_add(d, interval n day) > now()", {"d", "n"}),
        ("`select` = 1", {"select"}),
    ],
)
def test_referenced_columns(text, expected):
    assert referenced_columns(text) == expected


def test_referenced_columns_rejects_bad_text():
    with pytest.raises(SQLTextError):
        referenced_columns("a = ")


def test_translation_is_cached():
    from dj_dagster import sqltext

    text = f"a = {uuid.uuid4().int % 1000}"
    before = sqltext._parse.cache_info()
    first = translate(text, "postgresql", qualify={"a": "t"})
    second = translate(text, "postgresql", qualify={"a": "t"})
    translate(text, "sqlite")
    assert first == second
    after = sqltext._parse.cache_info()
    assert after.misses - before.misses == 1
