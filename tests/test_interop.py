"""Interoperability with datajoint-python 2.3.5 on its own backends (PostgreSQL and
MySQL/MariaDB): a pipeline declared and partly populated by datajoint opens in
dj_dagster (tiers, parts, declared types, foreign keys, rows, Dagster assets) and
dj_dagster populates the rest, which datajoint reads back; and the other way round. A
second pipeline does the same with enum keys and every store codec datajoint 2.3.5
declares (``<blob@store>``, ``<attach@store>``, ``<hash@store>``, ``<object@store>``,
``<npy@store>``) in one local folder store configured in both libraries, and compares
the enum layout each library declares.

datajoint runs in a subprocess (configured through its ``DJ_*`` environment
variables), so its global configuration never reaches this process. SQLite is not a
datajoint backend: the tests run on PostgreSQL and MariaDB only (BACKENDS)."""

from __future__ import annotations

import datetime as dt
import inspect
import operator
import os
import pickle
import subprocess
import sys
import uuid
from decimal import Decimal

import numpy as np
import pytest
import sqlalchemy as sa

import dj_dagster as dj
from dj_dagster.settings import config
from dj_dagster.stores import clear_store_cache
from tests.conftest import backend_url

BACKENDS = {"postgresql", "mysql"}  # datajoint 2.3.5 has no SQLite backend

# The same text declares the pipeline in both libraries (``dj`` is either one).
PIPELINE = '''
@schema
class Animal(dj.Lookup):
    definition = """
    # animals of the lab
    animal_id : int32
    ---
    species : varchar(32)
    weight = 1.5 : float32    # grams
    """
    contents = [(1, "mouse", 0.02), (2, "rat", 0.3), (3, "vole", 0.04)]


@schema
class Session(dj.Manual):
    definition = """
    -> Animal
    session : int16
    ---
    -> Animal.proj(other='animal_id')
    note = "" : varchar(64)
    started : datetime
    stamp : datetime(3)
    day : date
    flag : bool
    rank : int8
    big : int64
    price : decimal(6,2)
    uid = null : uuid
    meta = null : json
    raw = null : bytes
    kind : enum('a','b')
    """


@schema
class Trace(dj.Computed):
    definition = """
    # a computed trace
    -> Session
    ---
    total : float64
    data : <blob>
    """

    class Point(dj.Part):
        definition = """
        -> master
        idx : int32
        ---
        value : float64
        """

    def make(self, key):
        if key["session"] == 9:
            raise ValueError("bad session")
        data = np.arange(4.0) * key["session"] + key["animal_id"]
        self.insert1(dict(key, total=float(data.sum()), data={"samples": data, "label": "s%d" % key["session"]}))
        self.Point.insert([dict(key, idx=i, value=float(v)) for i, v in enumerate(data)])
'''

# Enums in a key (inherited by the computed table's foreign key) and with a default, and the
# store codecs, all in the store named "shared". Not ``<blob@>``: datajoint 2.3.5 looks the
# default store up under the name "" and fails to insert.
STORE_PIPELINE = '''
@schema
class Recording(dj.Manual):
    definition = """
    # a recording
    rec_id : int32
    mode : enum('fast','slow','it''s')
    ---
    quality = 'good' : enum('good','bad')    # enum with a default
    grade = null : enum('slow','it''s','fast')   # mode's values in another order
    """


@schema
class Analysis(dj.Computed):
    definition = """
    # results kept in the object store
    -> Recording
    ---
    signal : <blob@shared>
    report : <attach@shared>
    digest : <hash@shared>
    payload : <object@shared>
    spectrum : <npy@shared>
    """

    def make(self, key):
        import os
        path = os.path.join(workdir, "report_%d.txt" % key["rec_id"])
        with open(path, "w") as f:
            f.write("recording %d in mode %s" % (key["rec_id"], key["mode"]))
        data = np.arange(6.0) * key["rec_id"]
        self.insert1(dict(key, signal={"trace": data, "mode": key["mode"]}, report=path,
                          digest=b"the same bytes in every row", payload=b"payload %d" % key["rec_id"],
                          spectrum=np.outer(data, [1.0, 2.0])))
'''

# How the subprocess and these tests find each pipeline's tables (name -> class path)
MAIN = {"text": PIPELINE, "tables": {"#animal": "Animal", "session": "Session", "__trace": "Trace",
                                     "__trace__point": "Trace.Point"},
        "source": "Session", "computed": "Trace", "joins": True}
STORED = {"text": STORE_PIPELINE, "tables": {"recording": "Recording", "__analysis": "Analysis"},
          "source": "Recording", "computed": "Analysis"}

# datajoint's view of the declared types, as written in PIPELINE
DECLARED = {
    "#animal": {"animal_id": "int32", "species": "varchar(32)", "weight": "float32"},
    "session": {"animal_id": "int32", "session": "int16", "other": "int32", "note": "varchar(64)",
                "started": "datetime", "stamp": "datetime(3)", "day": "date", "flag": "bool", "rank": "int8",
                "big": "int64", "price": "decimal(6,2)", "uid": "uuid", "meta": "json", "raw": "bytes",
                "kind": "enum('a','b')"},
    "__trace": {"animal_id": "int32", "session": "int16", "total": "float64", "data": "<blob>"},
    "__trace__point": {"animal_id": "int32", "session": "int16", "idx": "int32", "value": "float64"},
}
KEYS = {"#animal": ["animal_id"], "session": ["animal_id", "session"], "__trace": ["animal_id", "session"],
        "__trace__point": ["animal_id", "session", "idx"], "review": ["animal_id", "session", "reviewer"],
        "recording": ["rec_id", "mode"], "__analysis": ["rec_id", "mode"]}

# Runs in the datajoint subprocess: argv[1] holds a pickled job, argv[2] receives the result.
DJ_SCRIPT = r'''
import pickle, sys, warnings
warnings.simplefilter("ignore")
job = pickle.load(open(sys.argv[1], "rb"))
import numpy as np
import datajoint as dj

dj.config["stores"] = job["stores"]
dj.config["download_path"] = job["download"]
schema = dj.Schema(job["schema"])
ns = {"dj": dj, "schema": schema, "np": np, "workdir": job["workdir"], "__name__": "interop_pipeline"}
pipeline = job["pipeline"]
exec(pipeline["text"], ns)
tables = {name: eval(path, ns) for name, path in pipeline["tables"].items()}
source, computed = ns[pipeline["source"]], ns[pipeline["computed"]]
out = {}
for step, arg in job["steps"]:
    if step == "insert":
        source.insert(arg)
    elif step == "populate":
        restrictions = arg.pop("restrictions", [])
        computed.populate(*restrictions, **arg)
        out["populated"] = len(computed())
    elif step == "jobs":
        jobs = computed.jobs
        out["progress"] = jobs.progress()
        out["errors"] = jobs.errors.to_dicts()
    elif step == "dump":
        out["rows"] = {name: [plain(row) for row in t().to_dicts()] for name, t in tables.items()}
        out["types"] = {name: {a.name: (a.original_type or a.type) for a in t().heading.attributes.values()
                               if not a.name.startswith("_")} for name, t in tables.items()}
        if pipeline.get("joins"):
            out["joins"] = joins(ns)
    elif step == "virtual":  # tables declared by dj_dagster into datajoint's schema
        vm = dj.virtual_schema(job["schema"])
        out["review"] = {"rows": vm.Review().to_dicts(), "session*review": len(vm.Session * vm.Review),
                         "animal*review": len(vm.Animal * vm.Review)}
pickle.dump(out, open(sys.argv[2], "wb"))
'''

def plain(row: dict) -> dict:
    """A fetched row as plain data, made the same way by both libraries (the datajoint
    subprocess runs this function's source): an ``<object@>`` or ``<npy@>`` reference
    becomes its path and contents, an ``<attach@>`` download its file name and bytes, and
    psycopg2's memoryview (which does not pickle) bytes."""
    import os

    out = {}
    for name, value in row.items():
        if isinstance(value, memoryview):
            value = bytes(value)
        elif type(value).__name__ == "NpyRef":
            value = ("npy", str(value.path), value.load())
        elif type(value).__name__ == "ObjectRef":
            value = ("object", str(value.path), value.read())
        elif name == "report":
            with open(value, "rb") as f:
                value = ("attach", os.path.basename(value), f.read())
        out[name] = value
    return out


def joins(ns):
    """Semantic joins and restrictions, evaluated the same way by both libraries (the
    datajoint subprocess runs this function's source)."""
    A, S, T = ns["Animal"], ns["Session"], ns["Trace"]
    return {
        "animal*session": len(A * S),
        "session*trace": len(S * T),
        "point&rat": len(T.Point & (A & {"species": "rat"})),
        "session-trace": len(S - T),
    }


@pytest.fixture
def peer(backend, tmp_path_factory, tmp_path):
    """(dj_dagster connection, schema name, run datajoint steps) on a datajoint backend."""
    url = sa.make_url(backend_url(backend, tmp_path_factory))
    env = dict(os.environ, DJ_BACKEND="postgresql" if backend == "postgresql" else "mysql",
               DJ_HOST=url.host or "127.0.0.1", DJ_PORT=str(url.port or (5432 if backend == "postgresql" else 3306)),
               DJ_USER=url.username or "", DJ_PASS=url.password or "", DJ_USE_TLS="false",
               DJ_IGNORE_CONFIG_FILE="true", DJ_LOG_LEVEL="ERROR", PYTHONWARNINGS="ignore")
    if backend == "postgresql":
        env["DJ_DATABASE_NAME"] = url.database or "postgres"
    name = f"djinterop_{uuid.uuid4().hex[:8]}"
    connection = dj.Connection(url.render_as_string(hide_password=False))
    calls = iter(range(100))
    # datajoint's configuration of the store "shared" (see the shared_store fixture)
    stores = {"default": "shared", "shared": {"protocol": "file", "location": str(tmp_path / "store")}}
    source = inspect.getsource(plain) + inspect.getsource(joins) + DJ_SCRIPT

    def run_datajoint(*steps, pipeline: dict = MAIN) -> dict:
        n = next(calls)
        job_file, out_file = tmp_path / f"job{n}.pkl", tmp_path / f"out{n}.pkl"
        job_file.write_bytes(pickle.dumps({
            "schema": name, "pipeline": pipeline, "steps": list(steps), "stores": stores,
            "download": str(tmp_path / "downloads_datajoint"), "workdir": str(tmp_path)}))
        proc = subprocess.run([sys.executable, "-c", source, str(job_file), str(out_file)],
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"datajoint failed:\n{proc.stdout}\n{proc.stderr}"
        return pickle.loads(out_file.read_bytes())

    yield connection, name, run_datajoint
    connection.close()
    cleanup = dj.Connection(url.render_as_string(hide_password=False))
    try:
        dj.Schema(name, connection=cleanup, create_schema=False, create_tables=False).drop(force=True, safemode=False)
    finally:
        cleanup.close()


def sessions(backend: str, which) -> list[dict]:
    """Session rows; uuid values only on MySQL, null on PostgreSQL: there datajoint 2.3.5's
    uuid is broken on its own tables. It binds a uuid as bytes, which the native uuid column
    it declares refuses ("column is of type uuid but expression is of type bytea"), and it
    fails to read a stored one ("bytes is not a 16-char string")."""
    rows = []
    for animal, session in which:
        rows.append(dict(
            animal_id=animal, session=session, other=3 - animal if animal < 3 else 1,
            note="" if session % 2 else f"note {animal}/{session}",
            started=dt.datetime(2024, animal, session, 9, 30), stamp=dt.datetime(2024, 5, 6, 7, 8, 9, 123000),
            day=dt.date(2023, 12, session), flag=bool(session % 2), rank=-session, big=2**40 + session,
            price=Decimal(f"{animal}{session}.25"), meta={"a": animal, "list": [session, None]},
            raw=bytes([animal, session, 0, 255]) if session % 2 else None, kind="ab"[session % 2],
            uid=uuid.UUID(int=animal * 100 + session) if backend == "mysql" else None))
    return rows


def norm(value):
    if isinstance(value, np.ndarray):
        return ("ndarray", str(value.dtype), value.shape, norm(value.tolist()))
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: norm(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [norm(v) for v in value]
    if isinstance(value, memoryview):
        return bytes(value)
    return value


def canonical(rows_by_table: dict) -> dict:
    return {name: sorted((norm(r) for r in rows), key=lambda r: tuple(r[k] for k in KEYS[name]))
            for name, rows in rows_by_table.items()}


def our_rows(module, pipeline: dict = MAIN) -> dict:
    return {name: [plain(row) for row in operator.attrgetter(path)(module)().to_dicts()]
            for name, path in pipeline["tables"].items()}


def our_pipeline(connection, name: str, pipeline: dict = MAIN, workdir: str = ""):
    schema = dj.Schema(name, connection=connection)
    ns = {"dj": dj, "schema": schema, "np": np, "workdir": workdir, "__name__": "interop_pipeline"}
    exec(pipeline["text"], ns)
    classes = {path.split(".")[0] for path in pipeline["tables"].values()}
    return type("Module", (), {"schema": schema, **{k: ns[k] for k in classes}})


def catalog_snapshot(connection, name: str) -> dict:
    """Everything a declaration could change: tables, columns, keys, indexes, lineage."""
    with connection.reading() as conn:
        insp = sa.inspect(conn)
        snap = {}
        for t in sorted(insp.get_table_names(schema=name)):
            snap[t] = (
                [(c["name"], str(c["type"]), c["nullable"], str(c.get("default")), c.get("comment"))
                 for c in insp.get_columns(t, schema=name)],
                insp.get_pk_constraint(t, schema=name)["constrained_columns"],
                sorted(str(sorted(fk.items())) for fk in insp.get_foreign_keys(t, schema=name)),
                sorted(str(sorted(i.items())) for i in insp.get_indexes(t, schema=name)),
            )
        lineage = sa.table("~lineage", sa.column("table_name"), sa.column("attribute_name"), sa.column("lineage"),
                           schema=name)
        snap["~lineage rows"] = sorted(tuple(r) for r in conn.execute(sa.select(lineage)))
    return snap


def check_structure(module, name: str) -> None:
    """Tiers, parts, declared types and foreign keys as declared in PIPELINE."""
    assert issubclass(module.Animal, dj.Lookup) and issubclass(module.Session, dj.Manual)
    assert issubclass(module.Trace, dj.Computed) and issubclass(module.Trace.Point, dj.Part)
    assert module.Trace.Point.master is module.Trace
    tables = {"#animal": module.Animal, "session": module.Session, "__trace": module.Trace,
              "__trace__point": module.Trace.Point}
    for table_name, cls in tables.items():
        t = cls()
        assert t.table_name == table_name
        visible = {a.name: a.type.text for a in t.heading if not a.hidden}
        assert visible == DECLARED[table_name], table_name
        assert t.heading.primary_key == KEYS[table_name]
    assert module.Animal()._info.comment == "animals of the lab"
    assert module.Animal().heading["weight"].comment == "grams"
    assert module.Animal().heading["weight"].default == "1.5"
    fks = {t: {(fk.parent, tuple(sorted(fk.attr_map.items())), fk.primary) for fk in cls()._info.foreign_keys}
           for t, cls in tables.items()}
    assert fks == {
        "#animal": set(),
        "session": {(f"{name}.#animal", (("animal_id", "animal_id"),), True),
                    (f"{name}.#animal", (("other", "animal_id"),), False)},
        "__trace": {(f"{name}.session", (("animal_id", "animal_id"), ("session", "session")), True)},
        "__trace__point": {(f"{name}.__trace", (("animal_id", "animal_id"), ("session", "session")), True)},
    }
    # lineage follows the renamed foreign key to its origin
    assert module.Session().heading["other"].lineage == f"{name}.#animal.animal_id"


def check_assets(module, name: str) -> None:
    import dagster as dg

    from dj_dagster.orchestration import build_definitions
    from dj_dagster.orchestration.translator import safe_name

    graph = build_definitions(module.schema).resolve_asset_graph()

    def key(t):
        return dg.AssetKey([safe_name(name), t])

    expected = {key("animal"): set(), key("session"): {key("animal")}, key("trace"): {key("session")},
                key("trace__point"): {key("trace")}}
    assert set(graph.get_all_asset_keys()) == set(expected)
    for asset_key, parents in expected.items():
        assert set(graph.get(asset_key).parent_keys) == parents, asset_key


GOOD = [(1, 1), (1, 2), (2, 1), (2, 2)]
BAD = (3, 9)  # make raises for it


def check_error_job(row: dict) -> None:
    assert "bad session" in row["error_message"]
    assert isinstance(row["error_stack"], str) and "ValueError" in row["error_stack"]


def test_datajoint_pipeline_opens_in_dj_dagster(backend, peer):
    connection, name, run_datajoint = peer
    first = sessions(backend, GOOD + [BAD])
    declared = run_datajoint(
        ("insert", first),
        ("populate", {"restrictions": ["session != 9"], "max_calls": 2, "reserve_jobs": True}),
        ("populate", {"restrictions": [{"session": 9}], "reserve_jobs": True, "suppress_errors": True}),
        ("dump", None))
    assert declared["populated"] == 2

    # a virtual module rebuilt from the database alone
    virtual = dj.virtual_schema(name, connection=dj.Connection(connection.url))
    check_structure(virtual, name)
    assert canonical(our_rows(virtual)) == canonical(declared["rows"])
    assert joins(vars(virtual)) == declared["joins"]
    check_assets(virtual, name)
    # datajoint's jobs table: its pending keys and its error
    jobs = virtual.Trace().jobs
    assert len(jobs.pending) == 2
    [error] = jobs.errors
    check_error_job(error)
    virtual.schema.connection.close()

    # the same classes declared by dj_dagster bind to the existing tables, untouched
    before = catalog_snapshot(connection, name)
    ours = our_pipeline(connection, name)
    assert catalog_snapshot(connection, name) == before
    check_structure(ours, name)
    ours.Session.insert(sessions(backend, [(3, 1)]))
    # dj_dagster works through datajoint's job queue: the errored key stays an error
    assert ours.Trace.populate(reserve_jobs=True, suppress_errors=True)["success_count"] == 3
    assert len(ours.Trace()) == 5 and len(ours.Trace.Point()) == 20
    assert catalog_snapshot(connection, name).keys() == before.keys()

    # a table added by dj_dagster joins datajoint's tables in datajoint (its ~lineage)
    Session, Animal = ours.Session, ours.Animal  # noqa: F841 - the definition's context

    @ours.schema
    class Review(dj.Manual):
        definition = """
        -> Session
        reviewer : varchar(16)
        ---
        -> [nullable] Animal.proj(favorite='animal_id')
        score : float32
        """

    Review.insert([(1, 1, "ann", 3, 0.5), (2, 2, "bob", None, 0.25)])

    # datajoint reads everything back as dj_dagster does
    back = run_datajoint(("dump", None), ("virtual", None), ("jobs", None))
    assert canonical(back["rows"]) == canonical(our_rows(ours))
    assert joins(vars(ours)) == back["joins"]
    expected_sessions = canonical({"session": first + sessions(backend, [(3, 1)])})["session"]
    assert canonical(back["rows"])["session"] == expected_sessions
    assert back["review"]["session*review"] == len(ours.Session * Review) == 2
    assert back["review"]["animal*review"] == len(ours.Animal * Review) == 2
    assert canonical({"review": back["review"]["rows"]}) == canonical({"review": Review().to_dicts()})
    # finished jobs are deleted, as datajoint does by default
    assert (back["progress"]["success"], back["progress"]["error"], back["progress"]["pending"]) == (0, 1, 0)
    [error] = back["errors"]
    check_error_job(error)


def test_dj_dagster_pipeline_opens_in_datajoint(backend, peer):
    connection, name, run_datajoint = peer
    ours = our_pipeline(connection, name)
    ours.Session.insert(sessions(backend, GOOD + [BAD]))
    assert ours.Trace.populate("session != 9", max_calls=2, reserve_jobs=True)["success_count"] == 2
    result = ours.Trace.populate({"session": 9}, reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 0 and len(result["error_list"]) == 1
    before = catalog_snapshot(connection, name)

    # datajoint declares the same classes (a no-op), reads them and dj_dagster's job queue
    seen = run_datajoint(("dump", None), ("jobs", None))
    assert seen["types"] == DECLARED
    assert canonical(seen["rows"]) == canonical(our_rows(ours))
    assert seen["joins"] == joins(vars(ours))
    assert (seen["progress"]["pending"], seen["progress"]["error"]) == (2, 1)
    [error] = seen["errors"]
    check_error_job(error)
    assert catalog_snapshot(connection, name) == before

    # datajoint adds a session and populates the rest through dj_dagster's job queue
    done = run_datajoint(("insert", sessions(backend, [(3, 1)])),
                         ("populate", {"reserve_jobs": True, "suppress_errors": True}), ("dump", None))
    assert done["populated"] == 5

    # dj_dagster reads datajoint's rows, also through a virtual module
    connection.invalidate()
    assert canonical(our_rows(ours)) == canonical(done["rows"])
    assert joins(vars(ours)) == done["joins"]
    jobs = ours.Trace().jobs
    assert len(jobs.pending) == 0 and len(jobs.reserved) == 0 and len(jobs.errors) == 1
    virtual = dj.virtual_schema(name, connection=dj.Connection(connection.url))
    check_structure(virtual, name)
    assert canonical(our_rows(virtual)) == canonical(done["rows"])
    check_assets(virtual, name)
    virtual.schema.connection.close()


# --- enums and store codecs ------------------------------------------------------------
# datajoint's view of the declared types, as written in STORE_PIPELINE
STORED_DECLARED = {
    "recording": {"rec_id": "int32", "mode": "enum('fast','slow','it''s')", "quality": "enum('good','bad')",
                  "grade": "enum('slow','it''s','fast')"},
    "__analysis": {"rec_id": "int32", "mode": "enum('fast','slow','it''s')", "signal": "<blob@shared>",
                   "report": "<attach@shared>", "digest": "<hash@shared>", "payload": "<object@shared>",
                   "spectrum": "<npy@shared>"},
}
RECORDINGS = [(1, "fast", "good", None), (2, "slow", "bad", "fast"), (3, "it's", "good", "it's"),
              (4, "fast", "bad", "slow")]


def recordings(which) -> list[dict]:
    return [dict(rec_id=r, mode=m, quality=q, grade=g) for r, m, q, g in which]


@pytest.fixture
def shared_store(peer, tmp_path):
    """dj_dagster's configuration of the folder store "shared" that the datajoint
    subprocess is given (``stores`` in the peer fixture); restored afterwards. The folder
    exists first: datajoint refuses a missing one."""
    (tmp_path / "store").mkdir()
    saved = {k: config.get(k) for k in ("stores", "default_store", "download_path")}
    config["stores"] = {"shared": {"protocol": "file", "location": str(tmp_path / "store")}}
    config["default_store"] = "shared"
    config["download_path"] = str(tmp_path / "downloads_dj_dagster")
    clear_store_cache()
    yield tmp_path / "store"
    for k, v in saved.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    clear_store_cache()


def datajoint_writes_stores(connection) -> bool:
    """datajoint 2.3.5 cannot insert into store-codec columns on MariaDB: MariaDB reports
    JSON columns as longtext, so datajoint does not serialize the codec's JSON metadata
    and the driver refuses the dict ("dict can not be used as parameter"). It reads them."""
    return connection.backend != "mysql" or "mariadb" not in connection.scalar(sa.text("SELECT VERSION()")).lower()


def enum_layout(connection, name: str) -> tuple:
    """The enum columns of STORE_PIPELINE's tables as the catalog has them and, on
    PostgreSQL, the enum types they use with their values in order ("{schema}" stands
    for the schema name)."""
    with connection.reading() as conn:
        if connection.backend == "postgresql":
            columns = conn.execute(sa.text(
                "SELECT table_name, column_name, udt_schema, udt_name, column_default FROM information_schema.columns "
                "WHERE table_schema = :s AND data_type = 'USER-DEFINED' AND table_name IN ('recording', '__analysis')"),
                {"s": name}).all()
            types = dict(conn.execute(sa.text(
                "SELECT t.typname, array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_type t "
                "JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid "
                "WHERE n.nspname = :s GROUP BY t.typname"), {"s": name}).all())
            types = {t: list(types[t]) for t in {c[3] for c in columns}}
        else:
            columns = conn.execute(sa.text(
                "SELECT table_name, column_name, column_type, column_default FROM information_schema.columns "
                "WHERE table_schema = :s AND data_type = 'enum' AND table_name IN ('recording', '__analysis')"),
                {"s": name}).all()
            types = {}
    columns = sorted(tuple(v.replace(name, "{schema}") if isinstance(v, str) else v for v in c) for c in columns)
    return columns, types


def enum_types(connection, name: str) -> set[str]:
    return {r[0] for r in connection.query_all(sa.text(
        "SELECT t.typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = :s AND t.typtype = 'e'"), {"s": name})}


def check_store(folder, name: str, rows: list[dict]) -> None:
    """Both libraries wrote one layout: one content-addressed object per distinct content
    (``digest``, the same bytes in every row, is one object whichever library wrote it)
    and schema-addressed objects under the key's path."""
    hashed = [p for p in (folder / "_hash" / name).rglob("*") if p.is_file()]
    assert len(hashed) == 2 * len(rows) + 1  # signal and report of each row, one digest
    for row in rows:
        for attr in ("payload", "spectrum"):
            path = row[attr][1]
            assert path.startswith(f"_schema/{name}/__analysis/rec_id={row['rec_id']}/mode={row['mode']}/{attr}_")
            assert (folder / path).is_file()


def test_store_pipeline_from_datajoint(backend, peer, shared_store, tmp_path):
    connection, name, run_datajoint = peer
    dj_writes = datajoint_writes_stores(connection)
    steps = [("insert", recordings(RECORDINGS))]
    if dj_writes:
        # no reserve_jobs: datajoint 2.3.5 leaves PostgreSQL foreign-key columns without the
        # ``:type:`` comment, then cannot declare its jobs table for an enum in the key
        steps.append(("populate", {"max_calls": 2}))
    declared = run_datajoint(*steps, ("dump", None), pipeline=STORED)
    assert declared.get("populated", 0) == (2 if dj_writes else 0)
    datajoint_layout = enum_layout(connection, name)

    # dj_dagster binds to datajoint's tables untouched, reads its values, populates the rest
    before = catalog_snapshot(connection, name)
    ours = our_pipeline(connection, name, STORED, workdir=str(tmp_path))
    assert catalog_snapshot(connection, name) == before
    for table_name, path in STORED["tables"].items():
        heading = operator.attrgetter(path)(ours)().heading
        assert {a.name: a.type.text for a in heading if not a.hidden} == STORED_DECLARED[table_name]
    assert canonical(our_rows(ours, STORED)) == canonical(declared["rows"])
    assert len(ours.Recording & {"mode": "it's"}) == 1 and len(ours.Analysis * ours.Recording) == len(ours.Analysis)
    assert ours.Analysis.populate(reserve_jobs=True)["success_count"] == (2 if dj_writes else 4)

    back = run_datajoint(("dump", None), pipeline=STORED)
    assert len(back["rows"]["__analysis"]) == 4
    assert canonical(back["rows"]) == canonical(our_rows(ours, STORED))
    check_store(shared_store, name, back["rows"]["__analysis"])

    # dj_dagster declares the same pipeline with datajoint's enum layout; on PostgreSQL
    # dropping a table drops the enum types no other table uses, as datajoint does
    scratch = f"{name}_dd"
    try:
        mine = our_pipeline(connection, scratch, STORED)
        assert enum_layout(connection, scratch) == datajoint_layout
        if backend == "postgresql":
            mode_type, quality_type = (dict(((c[1]), c[3]) for c in datajoint_layout[0] if c[0] == "recording")[k]
                                       for k in ("mode", "quality"))
            assert mode_type.startswith("enum_") and quality_type != mode_type
            mine.Analysis.drop(safemode=False)
            assert enum_types(connection, scratch) == {mode_type, quality_type}
            mine.Recording.drop(safemode=False)
            assert enum_types(connection, scratch) == set()
    finally:
        dj.Schema(scratch, connection=connection, create_schema=False, create_tables=False).drop(
            force=True, safemode=False)


def test_store_pipeline_from_dj_dagster(backend, peer, shared_store, tmp_path):
    connection, name, run_datajoint = peer
    ours = our_pipeline(connection, name, STORED, workdir=str(tmp_path))
    ours.Recording.insert(recordings(RECORDINGS[:3]))
    assert ours.Analysis.populate(max_calls=2, reserve_jobs=True)["success_count"] == 2
    before = catalog_snapshot(connection, name)

    # datajoint declares the same classes (a no-op), adds a recording and, but on MariaDB,
    # populates the rest through dj_dagster's job queue (its key columns carry the type)
    if datajoint_writes_stores(connection):
        done = run_datajoint(("insert", recordings(RECORDINGS[3:])), ("populate", {"reserve_jobs": True}),
                             ("dump", None), pipeline=STORED)
        assert done["populated"] == 4
    else:
        run_datajoint(("insert", recordings(RECORDINGS[3:])), pipeline=STORED)
        assert ours.Analysis.populate(reserve_jobs=True)["success_count"] == 2
        done = run_datajoint(("dump", None), pipeline=STORED)
    assert done["types"] == STORED_DECLARED
    assert catalog_snapshot(connection, name) == before
    connection.invalidate()
    assert len(done["rows"]["__analysis"]) == 4
    assert canonical(our_rows(ours, STORED)) == canonical(done["rows"])
    check_store(shared_store, name, done["rows"]["__analysis"])
    virtual = dj.virtual_schema(name, connection=dj.Connection(connection.url))
    assert canonical(our_rows(virtual, STORED)) == canonical(done["rows"])
    virtual.schema.connection.close()
