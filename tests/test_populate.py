"""make / populate / jobs / cascading delete on every selected backend."""

from __future__ import annotations

import time

import pytest

import dj_dagster as dj


@pytest.fixture
def pipeline(schema, monkeypatch):
    monkeypatch.setitem(dj.config, "jobs.add_job_metadata", True)  # provenance columns, tested below
    calls = []

    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int32
        ---
        species : varchar(30)
        """

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int16
        ---
        duration : float64
        """

    @schema
    class Method(dj.Lookup):
        definition = """
        method : varchar(12)
        ---
        factor : float64
        """
        contents = [("double", 2.0), ("triple", 3.0)]

    @schema
    class Score(dj.Computed):
        definition = """
        -> Session
        -> Method
        ---
        score : float64
        """

        class Detail(dj.Part):
            definition = """
            -> master
            item : int16
            ---
            value : float64
            """

        def make(self, key):
            calls.append(dict(key))
            duration = (Session & key).fetch1("duration")
            if duration < 0:
                raise ValueError(f"negative duration for {key}")
            factor = (Method & key).fetch1("factor")
            self.insert1({**key, "score": duration * factor})
            self.Detail.insert([{**key, "item": i, "value": i * factor} for i in range(3)])

    @schema
    class Summary(dj.Computed):
        definition = """
        -> Subject
        ---
        total : float64
        n : int32
        """

        def make(self, key):
            scores = (Score & key).to_arrays("score")
            self.insert1({**key, "total": float(sum(scores)), "n": len(scores)})

    Subject.insert([(1, "mouse"), (2, "rat")])
    Session.insert([(1, 1, 10.0), (1, 2, 20.0), (2, 1, 5.0)])
    return dict(Subject=Subject, Session=Session, Method=Method, Score=Score, Summary=Summary, calls=calls)


def test_populate_computes_missing_keys_with_parts(pipeline):
    Score, Summary = pipeline["Score"], pipeline["Summary"]
    assert Score.progress() == (6, 6)
    result = Score.populate()
    assert result == {"success_count": 6, "error_list": []}
    assert len(Score()) == 6 and len(Score.Detail()) == 18
    assert (Score & {"subject_id": 1, "session": 2, "method": "triple"}).fetch1("score") == 60.0
    assert Score.populate()["success_count"] == 0  # nothing left
    Summary.populate()
    assert (Summary & {"subject_id": 1}).fetch1("total") == pytest.approx(10 * 5 + 20 * 5)


def test_restrictions_and_max_calls(pipeline):
    Score = pipeline["Score"]
    assert Score.populate({"subject_id": 2})["success_count"] == 2
    assert len(Score()) == 2
    assert Score.populate(max_calls=1)["success_count"] == 1
    assert Score.progress() == (3, 6)


def test_failing_make_leaves_nothing_and_errors_are_recorded(pipeline):
    Session, Score = pipeline["Session"], pipeline["Score"]
    Session.insert1((2, 2, -1.0))
    with pytest.raises(ValueError, match="negative duration"):
        Score.populate({"subject_id": 2, "session": 2})
    assert len(Score & {"subject_id": 2, "session": 2}) == 0
    assert len(Score.Detail & {"subject_id": 2, "session": 2}) == 0
    result = Score.populate(suppress_errors=True, reserve_jobs=True)
    assert result["success_count"] == 6
    assert len(result["error_list"]) == 2
    errors = Score.jobs.errors
    assert len(errors) == 2 and all("negative duration" in e["error_message"] for e in errors)
    assert len(Score.jobs.reserved) == 0
    # errored keys are not retried until the errors are cleared
    assert Score.populate(reserve_jobs=True, suppress_errors=True)["success_count"] == 0



def _job_keys(jobs, status):
    return sorted((j["subject_id"], j["session"], j["method"]) for j in jobs.to_dicts() if j["status"] == status)


def test_refresh_drops_jobs_done_or_gone(pipeline):
    """refresh() adds a pending job per key to do and drops pending jobs whose result
    exists; as datajoint does, jobs whose key left the key source go once older than
    stale_timeout, and success or error records at once when their row is gone too."""
    Session, Score = pipeline["Session"], pipeline["Score"]
    jobs = Score.jobs
    assert jobs.refresh()["added"] == 6
    Score.insert1({"subject_id": 1, "session": 1, "method": "double", "score": 0.0}, allow_direct_insert=True)
    (Session & {"subject_id": 2}).delete(safemode=False)  # two keys gone from the key source
    out = jobs.refresh()
    assert (out["added"], out["removed"]) == (0, 1)  # the done key's job; the gone ones are fresh
    assert len(jobs.pending) == 5
    time.sleep(0.05)
    assert jobs.refresh(stale_timeout=0.01)["removed"] == 2
    assert _job_keys(jobs, "pending") == [(1, 1, "triple"), (1, 2, "double"), (1, 2, "triple")]
    # an error job stays while its key is in the key source, done or not
    jobs.error({"subject_id": 1, "session": 2, "method": "double"}, "bad")
    Score.insert1({"subject_id": 1, "session": 2, "method": "double", "score": 0.0}, allow_direct_insert=True)
    assert jobs.refresh()["removed"] == 0
    assert _job_keys(jobs, "error") == [(1, 2, "double")]
    # restricted: jobs outside the restriction are checked against the database too
    Score.insert1({"subject_id": 1, "session": 1, "method": "triple", "score": 0.0}, allow_direct_insert=True)
    (Session & {"subject_id": 1, "session": 2}).delete(safemode=False)
    out = jobs.refresh({"subject_id": 1, "session": 1})
    assert (out["added"], out["removed"]) == (0, 2)  # (1,1,triple) done; the error record of a gone row
    assert _job_keys(jobs, "pending") == [(1, 2, "triple")] and _job_keys(jobs, "error") == []


@pytest.mark.parametrize("keep", [False, True])
def test_reserved_populate_recomputes_deleted_results(pipeline, keep, monkeypatch):
    """A deleted result is computed again with reserve_jobs, whether or not finished jobs are kept."""
    monkeypatch.setitem(dj.config, "jobs_keep_completed", keep)
    Score, calls = pipeline["Score"], pipeline["calls"]
    assert Score.populate(reserve_jobs=True)["success_count"] == 6
    assert [j["status"] for j in Score.jobs.to_dicts()] == (["success"] * 6 if keep else [])
    (Score & {"subject_id": 1, "session": 2}).delete(safemode=False)
    calls.clear()
    assert Score.populate(reserve_jobs=True)["success_count"] == 2
    assert sorted(c["method"] for c in calls) == ["double", "triple"]
    assert len(Score()) == 6 and len(Score.Detail()) == 18 and len(Score.jobs.pending) == 0


def test_key_made_elsewhere_during_populate_is_skipped(schema):
    """A key another process makes after populate() read its list ends in a duplicate
    insert: that key is rolled back and skipped, not reported as an error."""
    calls = []

    @schema
    class Item(dj.Manual):
        definition = """
        item : int32
        """

    @schema
    class Made(dj.Computed):
        definition = """
        -> Item
        ---
        by : varchar(8)
        """

        def make(self, key):
            calls.append(key["item"])
            if key["item"] == 1:  # stands in for another process, one key ahead
                self.insert1({"item": 2, "by": "other"}, allow_direct_insert=True)
            self.insert1({**key, "by": "populate"})

    Item.insert([(1,), (2,), (3,)])
    assert Made.populate(order="original") == {"success_count": 2, "error_list": []}
    assert calls == [1, 2, 3]
    assert dict(zip(*Made.to_arrays("item", "by"))) == {1: "populate", 2: "other", 3: "populate"}


def test_provenance_is_written_with_the_rows(pipeline):
    """The make's own insert carries start time, duration and code version."""
    Score = pipeline["Score"]
    Score.populate({"subject_id": 1, "session": 1, "method": "double"})
    row = (Score & {"subject_id": 1, "session": 1, "method": "double"}).fetch1(
        "_job_start_time", "_job_duration", "_job_version")
    assert row[0] is not None and 0 <= row[1] < 60 and row[2] == Score().code_version


def test_direct_insert_refused(pipeline):
    Score = pipeline["Score"]
    with pytest.raises(dj.DataJointError, match="Direct insert"):
        Score.insert1({"subject_id": 1, "session": 1, "method": "double", "score": 1.0})
    Score.insert1({"subject_id": 1, "session": 1, "method": "double", "score": 1.0}, allow_direct_insert=True)
    assert len(Score()) == 1


def test_cascading_delete(pipeline):
    Subject, Session, Score, Summary = (pipeline[k] for k in ("Subject", "Session", "Score", "Summary"))
    Score.populate()
    Summary.populate()
    deleted = (Subject & {"subject_id": 1}).delete(safemode=False)
    assert deleted == 1
    assert len(Session()) == 1 and len(Score()) == 2 and len(Score.Detail()) == 6 and len(Summary()) == 1
    assert {r["subject_id"] for r in Score.to_dicts()} == {2}


def test_cascade_restricted_by_its_own_descendant(pipeline):
    """A restriction that names a descendant (here Score, with SQL text) stays correct
    when that descendant's rows are deleted by DELETE ... WHERE <semijoin>."""
    Session, Score, Summary = pipeline["Session"], pipeline["Score"], pipeline["Summary"]
    Score.populate()
    Summary.populate()
    high = {(r["subject_id"], r["session"]) for r in (Score & "score >= 60").to_dicts()}
    assert high == {(1, 2)}
    before = {k: len(Score & {"subject_id": k[0], "session": k[1]}) for k in [(1, 1), (1, 2), (2, 1)]}
    assert (Session & (Score & "score >= 60").proj()).delete(safemode=False) == 1
    assert {(r["subject_id"], r["session"]) for r in Session.to_dicts()} == {(1, 1), (2, 1)}
    assert len(Score()) == before[(1, 1)] + before[(2, 1)] and len(Score.Detail()) == 3 * len(Score())
    assert len(Summary()) == 2  # Summary depends on Subject only


def test_part_integrity(pipeline):
    Score = pipeline["Score"]
    Score.populate()
    with pytest.raises(dj.IntegrityError, match="master"):
        (Score.Detail & {"item": 0}).delete(safemode=False)
    assert len(Score.Detail()) == 18
    (Score.Detail & {"item": 0}).delete(safemode=False, part_integrity="ignore")
    assert len(Score.Detail()) == 12


def test_delete_quick_refuses_with_children(pipeline):
    Subject = pipeline["Subject"]
    with pytest.raises(dj.IntegrityError):
        (Subject & {"subject_id": 1}).delete_quick()
    assert len(Subject()) == 2


def test_three_part_make(schema):
    @schema
    class Source(dj.Manual):
        definition = """
        sid : int32
        ---
        x : float64
        """

    @schema
    class Squared(dj.Computed):
        definition = """
        -> Source
        ---
        y : float64
        """
        sneaky = None

        def make_fetch(self, key):
            return ((Source & key).fetch1("x"),)

        def make_compute(self, key, x):
            if Squared.sneaky is not None:
                Source.update1({**key, "x": Squared.sneaky})
            return (x * x,)

        def make_insert(self, key, y):
            self.insert1({**key, "y": y})

    Source.insert([(1, 2.0), (2, 3.0)])
    assert Squared.populate({"sid": 1})["success_count"] == 1
    assert (Squared & {"sid": 1}).fetch1("y") == 4.0
    Squared.sneaky = 10.0  # upstream changes between fetch and insert
    result = Squared.populate(suppress_errors=True)
    assert result["success_count"] == 0 and len(result["error_list"]) == 1
    assert "changed" in str(result["error_list"][0][1])
    Squared.sneaky = None
    assert Squared.populate()["success_count"] == 1
    assert (Squared & {"sid": 2}).fetch1("y") == 100.0


def test_describe_and_virtual_schema(pipeline, schema, connection):
    Score = pipeline["Score"]
    text = Score.describe()
    assert "-> Session" in text and "-> Method" in text and "score : float64" in text
    module = dj.virtual_schema(schema.database, connection=connection)
    assert module.Score.heading.names == Score.heading.names
    assert module.Score.Detail.heading.primary_key == Score.Detail.heading.primary_key
    assert module.Score.tier == "Computed" and module.Method.tier == "Lookup"
    assert len(module.Method()) == 2
    assert set(Score.parents()) == {f"{schema.database}.session", f"{schema.database}.#method"}


def test_provenance_finds_results_of_old_code(pipeline):
    Score = pipeline["Score"]
    Score.populate()
    version = Score().code_version
    assert set(Score.to_arrays("_job_version")) == {version}
    assert all(d is not None and d >= 0 for d in Score.to_arrays("_job_duration"))
    assert len(Score().outdated()) == 0
    original = Score.make

    def make(self, key):  # new code
        original(self, key)

    Score.make = make
    try:
        assert Score().code_version != version
        assert len(Score().outdated()) == 6
        (Score().outdated() & {"subject_id": 2}).delete(safemode=False)
        Score.populate()
        assert len(Score().outdated()) == 4
    finally:
        Score.make = original


def test_generator_make(schema):
    @schema
    class Base(dj.Manual):
        definition = """
        base_id : int32
        ---
        x : float64
        """

    @schema
    class Cubed(dj.Computed):
        definition = """
        -> Base
        ---
        y : float64
        """

        def make(self, key):  # datajoint 2.x's generator protocol
            fetched = ((Base & key).fetch1("x"),)
            computed = yield fetched
            if computed is None:  # first pass: compute outside the transaction
                computed = (fetched[0] ** 3,)
                yield computed
            self.insert1({**key, "y": computed[0]})  # second pass, inside the transaction
            yield

    Base.insert([(1, 2.0), (2, 3.0)])
    assert Cubed.populate()["success_count"] == 2
    assert sorted(Cubed.to_arrays("y")) == [8.0, 27.0]


def test_duplicate_inside_a_transaction_names_the_key(pipeline):
    """PostgreSQL refuses queries after a failed statement until rollback: the error is
    still a DuplicateError naming the table and key, and the transaction rolls back."""
    Subject = pipeline["Subject"]
    with pytest.raises(dj.DuplicateError, match=r"subject.*'subject_id': 1.*already exists"):
        with Subject.connection.transaction():
            Subject.insert1((3, "vole"))
            Subject.insert1((1, "mouse"))
    assert sorted(Subject.to_arrays("subject_id")) == [1, 2]


@pytest.mark.backends("mysql", "postgresql")  # SQLite: one writer at a time
def test_keys_made_by_another_connection_meanwhile_are_skipped(schema, connection, monkeypatch):
    """Without reserve_jobs, populate checks its list against the table now and then
    (_MadeElsewhere): a key another process made since the list was read is not made again."""
    from dj_dagster import autopopulate

    monkeypatch.setattr(autopopulate._MadeElsewhere, "PERIOD", 0.0)
    monkeypatch.setattr(autopopulate._MadeElsewhere, "SHARE", 0)
    other = dj.Connection(str(connection.url.render_as_string(hide_password=False)))
    made, elsewhere = [], []

    @schema
    class Item(dj.Manual):
        definition = """
        item : int32
        """

    @schema
    class Twice(dj.Computed):
        definition = """
        -> Item
        ---
        twice : int32
        """

        def make(self, key):
            made.append(key["item"])
            if len(made) == 1:  # meanwhile, another connection makes a later key and commits
                elsewhere.append(next(i for i in range(4) if i != key["item"]))
                with other.transaction() as tx:
                    tx.execute(Twice().sa_table.insert().values(item=elsewhere[0], twice=2 * elsewhere[0]))
            self.insert1({**key, "twice": 2 * key["item"]})

    try:
        Item.insert([{"item": i} for i in range(4)])
        result = Twice.populate()
        assert result["success_count"] == 3 and not result["error_list"]
        assert sorted(made) == sorted(set(range(4)) - set(elsewhere))
        assert dict(zip(*Twice.to_arrays("item", "twice", order_by="item"))) == {0: 0, 1: 2, 2: 4, 3: 6}
    finally:
        other.close()


def test_ignored_jobs_are_skipped_and_bad_keys_refused(pipeline):
    Score = pipeline["Score"]
    pending = {"subject_id": 1, "session": 1, "method": "double"}
    unseen = {"subject_id": 2, "session": 1, "method": "triple", "extra": "dropped"}
    Score.jobs.refresh()
    Score.jobs.ignore(pending)  # a pending job becomes ignored
    Score.jobs.ignore(unseen)  # a key without a job gets one, ignored
    assert _job_keys(Score.jobs, "ignore") == [(1, 1, "double"), (2, 1, "triple")]
    result = Score.populate(reserve_jobs=True)
    assert result["success_count"] == 4
    assert not Score & pending and not Score & {k: v for k, v in unseen.items() if k != "extra"}
    with pytest.raises(dj.DataError, match="missing"):
        Score.jobs.ignore({"subject_id": 1})
    with pytest.raises(dj.DataError, match="attribute 'session', value 99999"):
        Score.jobs.ignore({"subject_id": 1, "session": 99999, "method": "double"})  # beyond int16
    assert _job_keys(Score.jobs, "ignore") == [(1, 1, "double"), (2, 1, "triple")]
