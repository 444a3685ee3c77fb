"""datajoint 2.x compatibility of populate, the jobs table, cascading deletes and
Diagram.cascade/trace, on every backend."""

from __future__ import annotations

import multiprocessing
import time

import pytest

import dj_dagster as dj
from dj_dagster.errors import DataJointError, IntegrityError
from dj_dagster.jobs import ERROR_MESSAGE_LENGTH, TRUNCATION_APPENDIX


@pytest.fixture
def pipeline(schema):
    calls = []

    @schema
    class Raw(dj.Manual):
        definition = """
        raw_id : int32
        ---
        v : float64
        """

    @schema
    class Proc(dj.Computed):
        definition = """
        -> Raw
        ---
        w : float64
        """

        def make(self, key):
            calls.append(key)
            self.insert1(dict(key, w=2 * (Raw & key).fetch1("v")))

    Raw.insert([(i, float(i)) for i in range(4)])
    return Raw, Proc, calls


def test_jobs_is_a_table(pipeline):
    """Table.jobs restricts, counts, fetches and deletes like a table; the status views
    are restrictions; reserve takes a pending job once; error() truncates its message."""
    Raw, Proc, _ = pipeline
    jobs = Proc.jobs
    assert jobs.refresh() == {"added": 4, "removed": 0, "orphaned": 0, "re_pended": 0}
    assert len(jobs) == len(jobs.pending) == 4 and len(jobs.reserved) == 0
    keys = jobs.pending.keys(limit=2)
    assert all(jobs.reserve(k) for k in keys) and not any(jobs.reserve(k) for k in keys)
    assert len(jobs.reserved) == 2
    jobs.error(keys[0], "x" * (ERROR_MESSAGE_LENGTH + 10), "stack")
    message, stack = jobs.errors.fetch1("error_message", "error_stack")
    assert len(message) == ERROR_MESSAGE_LENGTH and message.endswith(TRUNCATION_APPENDIX) and stack == "stack"
    assert not jobs.reserve(keys[0])  # an error job is not taken
    jobs.complete(keys[1])  # deleted: keep_completed is off
    assert len(jobs & keys[1]) == 0 and jobs.progress()["total"] == 3
    jobs.errors.delete()
    assert len(jobs) == 2 and set(jobs.to_dicts()[0]) >= {"raw_id", "status", "priority", "error_message"}


def test_reserve_refuses_a_key_without_a_pending_job(pipeline):
    """A worker with an older list never recomputes a finished key: reserve() refuses a
    key whose job row is gone, or whose result exists."""
    Raw, Proc, calls = pipeline
    jobs = Proc.jobs
    jobs.refresh()
    key = {"raw_id": 0}
    assert jobs.reserve(key)
    Proc.insert1(dict(key, w=0.0), allow_direct_insert=True)
    jobs.complete(key)
    assert not jobs.reserve(key)  # no job row any more
    jobs.refresh()
    Proc.insert1({"raw_id": 1, "w": 2.0}, allow_direct_insert=True)
    assert not jobs.reserve({"raw_id": 1})  # pending, but made
    assert jobs.refresh()["removed"] == 1  # the pending job of the made key goes


def test_keep_completed_and_refresh_options(pipeline):
    Raw, Proc, _ = pipeline
    with dj.config.override(jobs={"keep_completed": True}):
        Proc.populate(reserve_jobs=True)
        done = Proc.jobs.completed.to_dicts()
        assert len(done) == 4 and all(j["completed_time"] >= j["reserved_time"] for j in done)
        (Proc & {"raw_id": 0}).delete(safemode=False)
        assert Proc.jobs.refresh()["re_pended"] == 1
        (Raw & {"raw_id": 3}).delete(safemode=False)  # its success record goes at once
        assert Proc.jobs.refresh()["removed"] == 1
    Proc.jobs.delete()
    Proc.jobs.refresh(delay=3600, priority=2)
    assert len(Proc.jobs.pending) == 1 and Proc.jobs.pending.fetch1("priority") == 2
    assert Proc.populate(reserve_jobs=True, refresh=False)["success_count"] == 0  # not schedulable yet


def test_populate_records_errors_and_upstream_in_make(schema):
    @schema
    class Subject(dj.Lookup):
        definition = """
        subject_id : int32
        ---
        name : varchar(32)
        """
        contents = [(1, "alice"), (2, "bob")]

    @schema
    class Greeting(dj.Computed):
        definition = """
        -> Subject
        ---
        text : varchar(64)
        """

        def make(self, key):
            name = self.upstream[Subject].fetch1("name")
            if name == "bob":
                raise ValueError("no bob")
            self.insert1(dict(key, text=f"hello {name}"))

    result = Greeting.populate(reserve_jobs=True, suppress_errors=True)
    assert result["success_count"] == 1 and Greeting.fetch1("text") == "hello alice"
    assert Greeting.jobs.errors.fetch1("error_message") == "ValueError: no bob"
    assert result["error_list"] == [({"subject_id": 2}, "ValueError: no bob")]  # datajoint's wording
    again = Greeting.populate(suppress_errors=True, return_exception_objects=True)
    assert [type(e) for _, e in again["error_list"]] == [ValueError]
    with pytest.raises(DataJointError, match="only available inside make"):
        Greeting().upstream


def test_cascade_and_trace_diagrams(schema):
    @schema
    class Parent(dj.Manual):
        definition = """
        parent_id : int32
        """

    @schema
    class Child(dj.Manual):
        definition = """
        -> Parent
        child_id : int32
        """

    @schema
    class Note(dj.Manual):
        definition = """
        note_id : int32
        ---
        -> Parent.proj(about='parent_id')
        """

    Parent.insert([(1,), (2,)])
    Child.insert([(1, 1), (1, 2), (2, 1)])
    Note.insert([(10, 1), (20, 2)])
    counts = dj.Diagram.cascade(Parent & {"parent_id": 1}).counts()
    assert counts == {Parent.full_table_name: 1, Child.full_table_name: 2, Note.full_table_name: 1}
    trace = dj.Diagram.trace(Note & {"note_id": 20})
    assert trace[Parent].fetch1("parent_id") == 2 and len(trace[Note]) == 1
    with pytest.raises(DataJointError, match="not in this trace"):
        trace[Child]
    with pytest.raises(ValueError, match="part_integrity must be"):
        dj.Diagram.cascade(Parent, part_integrity="casade")


def test_part_integrity(schema):
    @schema
    class Ext(dj.Manual):
        definition = """
        ext_id : int32
        """

    @schema
    class Master(dj.Manual):
        definition = """
        master_id : int32
        """

        class Part(dj.Part):
            definition = """
            -> master
            -> Ext
            """

    Ext.insert([(1,), (2,)])
    Master.insert([(1,), (2,), (3,)])
    Master.Part.insert([(1, 1), (2, 1), (3, 2)])
    with pytest.raises(IntegrityError, match="before its master"):
        (Ext & {"ext_id": 1}).delete(safemode=False)
    assert len(Ext()) == 2 and len(Master.Part()) == 3  # rolled back
    assert dj.Diagram.cascade(Ext & {"ext_id": 1}, part_integrity="cascade").counts()[Master.full_table_name] == 2
    (Ext & {"ext_id": 1}).delete(safemode=False, part_integrity="cascade")
    assert Master.to_arrays("master_id").tolist() == [3] and len(Master.Part()) == 1
    with pytest.raises(DataJointError, match="before its master"):
        Master.Part.drop(safemode=False)
    with pytest.raises(ValueError, match="part_integrity must be"):
        Master.drop(part_integrity="cascade")


def test_cascade_of_twelve_levels(schema):
    """A cascading delete through 12 levels works on every backend (SQLite's parser
    refused the nested restriction at about ten)."""
    tables = []
    for level in range(12):
        parent = f"-> {tables[-1].__name__}\n" if tables else ""
        cls = type(f"Level{level}", (dj.Manual,), {"definition": f"{parent}id{level} : int32\n"})
        tables.append(schema(cls, context={t.__name__: t for t in tables}))
    for level, table in enumerate(tables):
        table.insert([{f"id{i}": k for i in range(level + 1)} for k in (1, 2)])
    counts = dj.Diagram.cascade(tables[0] & {"id0": 1}).counts()
    assert list(counts.values()) == [1] * 12
    assert (tables[0] & {"id0": 1}).delete(safemode=False) == 1
    assert all(len(t()) == 1 for t in tables)


def _populate_worker(url: str, database: str, log: str) -> None:
    connection = dj.Connection(url)
    schema = dj.Schema(database, connection=connection, create_tables=False)
    classes = schema.make_classes()
    Slow = classes["Slow"]

    class Worker(Slow):  # the make of the pipeline, on the table of the other process
        def make_fetch(self, key):
            return ((Source & key).fetch1("v"),)

        def make_compute(self, key, v):
            with open(log, "a") as f:
                f.write(f"{key['src_id']}\n")
            time.sleep(0.02)
            return (v * 2,)

        def make_insert(self, key, w):
            self.insert1(dict(key, w=w))

    Source = classes["Source"]
    Worker.populate(reserve_jobs=True)
    connection.close()


def test_three_part_make_computes_each_key_once_with_two_workers(schema, tmp_path):
    """Two workers sharing the jobs table: every key computed exactly once (a worker
    never reserves a key another finished after it read its list)."""
    @schema
    class Source(dj.Manual):
        definition = """
        src_id : int32
        ---
        v : float64
        """

    @schema
    class Slow(dj.Computed):
        definition = """
        -> Source
        ---
        w : float64
        """

        def make_fetch(self, key):
            return ((Source & key).fetch1("v"),)

        def make_compute(self, key, v):
            return (v * 2,)

        def make_insert(self, key, w):
            self.insert1(dict(key, w=w))

    Source.insert([(i, float(i)) for i in range(30)])
    Slow.jobs.refresh()
    log = tmp_path / "computed.log"
    url = schema.connection.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_populate_worker, args=(url, schema.database, str(log))) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert [w.exitcode for w in workers] == [0, 0]
    computed = log.read_text().split()
    assert len(Slow()) == 30 and sorted(map(int, computed)) == list(range(30))


def test_diagram_restrict_prune_collapse_and_make_dot(schema, make_schema):
    @schema
    class Root(dj.Manual):
        definition = """
        root_id : int32
        """

    @schema
    class Branch(dj.Manual):
        definition = """
        -> Root
        branch_id : int32
        """

    @schema
    class Empty(dj.Manual):
        definition = """
        -> Root
        """

    downstream = make_schema("djdown")

    @downstream
    class Multi(dj.Manual):
        definition = """
        -> Root
        sub_id : int32
        """

    Root.insert([(1,), (2,)])
    Branch.insert([(1, 1), (1, 2), (2, 1)])
    whole = dj.Diagram(schema)
    assert Empty.full_table_name not in whole.prune().nodes_to_show
    restricted = whole.restrict(Root & {"root_id": 1})
    assert restricted.counts() == {Root.full_table_name: 1, Branch.full_table_name: 2, Empty.full_table_name: 0}
    assert set(restricted.prune().counts()) == {Root.full_table_name, Branch.full_table_name}
    assert restricted.restrict(Branch & {"branch_id": 2}).counts()[Branch.full_table_name] == 1
    with pytest.raises(DataJointError, match="prune"):
        dj.Diagram.cascade(Root & {"root_id": 1}).prune()
    widths = {e.get_destination().strip('"'): float(e.get_penwidth()) for e in whole.make_dot().get_edges()}
    assert widths == {"Branch": 0.75, "Empty": 2.0}
    collapsed = (dj.Diagram(schema) + dj.Diagram(downstream)).collapse()
    edges = [(e.get_source().strip('"'), e.get_destination().strip('"'), float(e.get_penwidth()))
             for e in collapsed.make_dot().get_edges()]
    assert edges == [(schema.database, downstream.database, 2.0)]
    expanded = collapsed + dj.Diagram(Multi)
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"')): float(e.get_penwidth())
             for e in expanded.make_dot().get_edges()}
    assert edges == {(schema.database, "Multi"): 0.75}
