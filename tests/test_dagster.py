"""Tables as Dagster assets: lineage, partitions, sensor-driven runs, runless events,
failures, the IO manager. Runs in process on an ephemeral Dagster instance."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

import dj_dagster as dj
from definitions.runner import run_until_settled, sensor_tick
from dj_dagster.orchestration import DataJointResource, build_definitions


def declare_lab(schema, other):
    """Subjects in one schema, sessions and results in another: diamonds, renamed and
    nullable foreign keys, parts, three-level keys."""

    @other
    class Subject(dj.Manual):
        definition = """
        subject : varchar(16)
        ---
        species : varchar(16)
        """

    @schema
    class Rig(dj.Lookup):
        definition = """
        rig : int16
        ---
        room : varchar(8)
        """
        contents = [(1, "A"), (2, "B")]

    @schema
    class Session(dj.Manual):
        definition = """
        -> Subject
        session : int16
        ---
        -> [nullable] Rig
        """

    @schema
    class Trial(dj.Imported):
        definition = """
        -> Session
        trial : int16
        ---
        value : float64
        """

        def make(self, key):
            self.insert([{**key, "trial": t, "value": t / 2} for t in range(3)])

    @schema
    class Stats(dj.Computed):
        definition = """
        -> Session
        ---
        mean : float64
        """

        class Channel(dj.Part):
            definition = """
            -> master
            channel : int16
            ---
            gain : float64
            """

        def make(self, key):
            if key["subject"] == "bad":
                raise RuntimeError("cannot compute bad subject")
            self.insert1({**key, "mean": float(key["session"])})
            self.Channel.insert([{**key, "channel": c, "gain": c * 1.5} for c in range(2)])

    @schema
    class Pair(dj.Computed):
        definition = """
        -> Stats
        -> Session.proj(ref_session='session')
        ---
        diff : float64
        """

        @property
        def key_source(self):
            return (Stats * Session.proj(ref_session="session")) & "ref_session < session"

        def make(self, key):
            self.insert1({**key, "diff": float(key["session"] - key["ref_session"])})

    @schema
    class SubjectTotal(dj.Computed):
        definition = """
        -> Subject
        ---
        n : int32
        """

        def make(self, key):
            self.insert1({**key, "n": len(Stats & key)})

    return dict(Subject=Subject, Rig=Rig, Session=Session, Trial=Trial, Stats=Stats, Pair=Pair,
                SubjectTotal=SubjectTotal)


@pytest.fixture
def lab(schema, make_schema):
    other = make_schema("djsubj")
    tables = declare_lab(schema, other)
    defs = build_definitions(schema, other, partition_root=tables["Session"], name=f"lab_{schema.database}")
    return tables, defs, schema, other


def key(schema, table):
    return dg.AssetKey([schema.database, table])


def test_lineage_equals_foreign_keys(lab):
    tables, defs, schema, other = lab
    graph = defs.resolve_asset_graph()
    s, o = schema, other
    expected = {
        key(o, "subject"): set(),
        key(s, "rig"): set(),
        key(s, "session"): {key(o, "subject"), key(s, "rig")},
        key(s, "trial"): {key(s, "session")},
        key(s, "stats"): {key(s, "session")},
        key(s, "stats__channel"): {key(s, "stats")},
        key(s, "pair"): {key(s, "stats"), key(s, "session")},
        key(s, "subject_total"): {key(o, "subject")},
    }
    assert set(graph.get_all_asset_keys()) == set(expected)
    for asset_key, parents in expected.items():
        assert set(graph.get(asset_key).parent_keys) == parents, asset_key


def test_partitions_follow_the_root(lab):
    tables, defs, schema, other = lab
    graph = defs.resolve_asset_graph()
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    assert partitioned == {key(schema, n) for n in ("session", "trial", "stats", "stats__channel", "pair")}
    spec = graph.get(key(schema, "stats"))
    assert spec.code_version and spec.group_name == schema.database
    schema_meta = spec.metadata["dagster/column_schema"]
    assert "mean" in [c.name for c in getattr(schema_meta, "schema", schema_meta).columns]


def test_sensor_adds_partitions_and_runs_compute_rows(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse"), ("m/2", "mouse")])
    tables["Session"].insert([("m1", 1, 1), ("m1", 2, None), ("m/2", 1, 2)])
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(defs, instance)
        assert runs and all(r.success for r in runs)
        parts = defs.resolve_asset_graph().get(key(schema, "stats")).partitions_def
        assert sorted(instance.get_dynamic_partitions(parts.name)) == sorted(
            ["subject=m1/session=1", "subject=m1/session=2", "subject=m%2F2/session=1"])
        assert len(tables["Stats"]()) == 3 and len(tables["Stats"].Channel()) == 6
        assert len(tables["Pair"]()) == 1 and len(tables["SubjectTotal"]()) == 2
        done = instance.get_materialized_partitions(key(schema, "stats"))
        assert done == set(instance.get_dynamic_partitions(parts.name))
        event = instance.get_latest_materialization_event(key(schema, "stats"))
        meta = event.asset_materialization.metadata
        assert "dagster/row_count" in meta and "dj/keys_computed" in meta
        # nothing left: the next tick requests nothing
        assert not sensor_tick(defs, instance).run_requests
        # deleting a root row deletes its partition
        (tables["Session"] & {"subject": "m1", "session": 2}).delete(safemode=False)
        assert len(tables["Stats"]()) == 2
        run_until_settled(defs, instance)
        assert "subject=m1/session=2" not in instance.get_dynamic_partitions(parts.name)


def test_failed_keys_fail_the_run(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("bad", "mouse")])
    tables["Session"].insert([("bad", 1, None)])
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(defs, instance)
        failed = [r for r in runs if not r.success]
        assert failed
        messages = " ".join(
            f"{e.step_failure_data.error.message if e.step_failure_data.error else ''} "
            f"{e.step_failure_data.user_failure_data.description if e.step_failure_data.user_failure_data else ''}"
            for r in failed for e in r.get_step_failure_events())
        assert "bad" in messages and "cannot compute bad subject" in messages
        assert len(tables["Stats"].jobs.errors) == 1


def test_work_done_outside_dagster_is_reported(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse")])
    tables["Session"].insert([("m1", 1, None)])
    tables["Stats"].populate()  # e.g. from a notebook
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor_tick(defs, instance)
        for req in result.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        for event in result.asset_events:
            instance.report_runless_asset_event(event)
        assert instance.get_materialized_partitions(key(schema, "stats")) == {"subject=m1/session=1"}
        assert instance.get_materialized_partitions(key(schema, "stats__channel")) == {"subject=m1/session=1"}


def test_io_manager_reads_and_writes_tables(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse"), ("r1", "rat")])

    @dg.asset(ins={"subject": dg.AssetIn(key=key(other, "subject"), input_manager_key="dj_io_manager")})
    def species_count(subject: pd.DataFrame) -> int:
        return int(subject["species"].nunique())

    @dg.asset(key=key(schema, "session"), io_manager_key="dj_io_manager")
    def new_sessions() -> pd.DataFrame:
        return pd.DataFrame([{"subject": "r1", "session": 7, "rig": 2}])

    from dj_dagster.orchestration import DataJointIOManager

    # assets declared by hand: the table is found from the asset key [database, table]
    url = schema.connection.url.render_as_string(hide_password=False)
    result = dg.materialize([dg.AssetSpec(key(other, "subject")), species_count, new_sessions],
                            resources={"dj_io_manager": DataJointIOManager(database_url=url)})
    assert result.success
    assert result.output_for_node("species_count") == 2
    assert (tables["Session"] & {"subject": "r1"}).fetch1("session") == 7


def partitions_of(result) -> set[str]:
    return {r.partition_key for r in result.run_requests if r.partition_key is not None}


def test_deleted_rows_are_recomputed(lab):
    """Deleting computed rows marks the partition stale and requests a run again, though
    the missing work looks exactly as it did before the first run."""
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse")])
    tables["Session"].insert([("m1", 1, None), ("m1", 2, None)])
    with dg.DagsterInstance.ephemeral() as instance:
        run_until_settled(defs, instance)
        assert len(tables["Stats"]()) == 2
        (tables["Stats"] & {"subject": "m1", "session": 1}).delete(safemode=False)
        tick = sensor_tick(defs, instance)
        assert "subject=m1/session=1" in partitions_of(tick)
        stale = [e for e in tick.asset_events if isinstance(e, dg.AssetObservation)]
        assert {(e.asset_key, e.partition) for e in stale} >= {
            (key(schema, "stats"), "subject=m1/session=1"), (key(schema, "stats__channel"), "subject=m1/session=1")}
        for event in tick.asset_events:
            instance.report_runless_asset_event(event)
        runs = run_until_settled(defs, instance)
        assert runs and all(r.success for r in runs)
        assert len(tables["Stats"]()) == 2 and len(tables["Stats"].Channel()) == 4 and len(tables["Pair"]()) == 1
        assert not sensor_tick(defs, instance).run_requests


def test_no_second_run_while_one_is_in_flight(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse")])
    tables["Session"].insert([("m1", 1, None), ("m1", 2, None)])
    with dg.DagsterInstance.ephemeral() as instance:
        tick = sensor_tick(defs, instance)
        for req in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        assert partitions_of(tick) == {"subject=m1/session=1", "subject=m1/session=2"}
        job = defs.resolve_job_def(tick.run_requests[0].job_name)
        for req in tick.run_requests:  # queued, as the daemon leaves them
            if req.partition_key is None:
                continue
            instance.create_run_for_job(job, tags={**req.tags, "dagster/partition": req.partition_key},
                                        status=dg.DagsterRunStatus.NOT_STARTED)
        # partial progress while queued: one partition computed outside the runs
        for table in ("Trial", "Stats"):
            tables[table].populate({"subject": "m1", "session": 1})
        again = sensor_tick(defs, instance)
        assert not partitions_of(again)
        # the runs end (here: they are deleted); the work left is requested once more
        for run in instance.get_runs():
            instance.delete_run(run.run_id)
        assert partitions_of(sensor_tick(defs, instance)) == {"subject=m1/session=2"}


def _latest(instance, asset_key, partition):
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset_key, asset_partitions=[partition]), limit=1).records
    return records[0].asset_materialization.metadata


def test_metadata_describes_each_partition(lab):
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse"), ("bad", "mouse")])
    tables["Session"].insert([("m1", 1, None), ("m1", 2, None), ("bad", 1, None)])
    tables["Trial"].insert([("m1", 1, 0, 0.0)], allow_direct_insert=True)  # computed outside before the run
    with dg.DagsterInstance.ephemeral() as instance:
        tick = sensor_tick(defs, instance)
        for req in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        job = defs.resolve_job_def(tick.run_requests[0].job_name)
        order = list(instance.get_dynamic_partitions(job.partitions_def.name))
        result = job.execute_in_process(instance=instance, raise_on_error=False, tags={
            "dagster/asset_partition_range_start": order[0], "dagster/asset_partition_range_end": order[-1]})
        assert not result.success  # the bad subject's key failed
        meta = _latest(instance, key(schema, "stats"), "subject=m1/session=2")
        assert meta["dagster/row_count"].value == 1 and meta["dj/keys_computed"].value == 1
        assert meta["dj/keys_failed"].value == 0
        channel = _latest(instance, key(schema, "stats__channel"), "subject=m1/session=2")
        assert channel["dagster/row_count"].value == 2
        # the partition that failed is not recorded as materialized; the others are
        assert instance.get_materialized_partitions(key(schema, "stats")) == {
            "subject=m1/session=1", "subject=m1/session=2"}
        # Trial had one row of session 1 before: that partition computed nothing (make inserts all 3 at once
        # only for keys it computes), its own row count is its own
        trial = _latest(instance, key(schema, "trial"), "subject=bad/session=1")
        assert trial["dagster/row_count"].value == 3 and trial["dj/keys_computed"].value == 1


def test_checks_judge_the_partitions_of_the_run(lab):
    """A run of one partition, others still pending: completeness passes."""
    tables, defs, schema, other = lab
    tables["Subject"].insert([("m1", "mouse")])
    tables["Session"].insert([("m1", 1, None), ("m1", 2, None)])
    with dg.DagsterInstance.ephemeral() as instance:
        tick = sensor_tick(defs, instance)
        for req in tick.dynamic_partitions_requests:
            instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
        job = defs.resolve_job_def(tick.run_requests[0].job_name)
        result = job.execute_in_process(instance=instance, partition_key="subject=m1/session=1")
        evaluations = result.get_asset_check_evaluations()
        assert evaluations and all(e.passed for e in evaluations), [
            (e.asset_key, e.check_name, e.metadata) for e in evaluations if not e.passed]
        assert len(tables["Stats"]()) == 1  # session 2 still pending


def test_populate_jobs_run_in_process(lab):
    tables, defs, schema, other = lab
    for job in defs.get_repository_def().get_all_jobs():
        if job.name.endswith(("_populate", "_populate_partitions")):
            assert job.executor_def.name == "in_process", job.name
    graph_defs = build_definitions(schema, other, partition_root=tables["Session"], name=f"mp_{schema.database}",
                                   executor=dg.multiprocess_executor)
    job = next(j for j in graph_defs.get_repository_def().get_all_jobs() if j.name.endswith("_partitions"))
    assert job.executor_def.name == "multiprocess"


def test_tables_filled_outside_make_are_observed(schema):
    @schema
    class Source(dj.Manual):
        definition = """
        source_id : int32
        """

    @schema
    class Event(dj.Imported):
        definition = """
        -> Source
        event : int32
        """

        def make(self, key):
            raise NotImplementedError("insert events directly, with allow_direct_insert=True")

    @schema
    class Count(dj.Computed):
        definition = """
        -> Source
        ---
        n : int32
        """

        def make(self, key):
            self.insert1({**key, "n": len(Event & key)})

    Source.insert([(1,), (2,)])
    Event.insert([(1, 10), (1, 11)], allow_direct_insert=True)
    defs = build_definitions(schema, partition_root=Source, name=f"obs_{schema.database}")
    graph = defs.resolve_asset_graph()
    event_key = dg.AssetKey([schema.database, "event"])
    assert not graph.get(event_key).is_materializable  # observed, not run
    check_keys = {c.asset_key for c in graph.asset_check_keys}
    assert event_key not in check_keys
    with dg.DagsterInstance.ephemeral() as instance:
        runs = run_until_settled(defs, instance)
        assert runs and all(r.success for r in runs)
        assert instance.get_materialized_partitions(event_key) == {"source_id=1"}
        assert len(Count()) == 2 and not Event.jobs.errors
        Event.insert([(2, 20)], allow_direct_insert=True)
        tick = sensor_tick(defs, instance)
        assert [(e.asset_key, e.partition) for e in tick.asset_events] == [(event_key, "source_id=2")]


def test_no_module_registry_and_no_plain_passwords():
    from dj_dagster.errors import DataJointError
    from dj_dagster.orchestration import resources

    assert not hasattr(resources, "TABLES_BY_ASSET")
    with pytest.raises(DataJointError, match="EnvVar"):
        DataJointResource(database_url="postgresql://me:s3cret@db.example/lab")
    with pytest.raises(DataJointError, match="EnvVar"):
        resources.DataJointIOManager(database_url="mysql://me:s3cret@db.example")
    DataJointResource(database_url=dg.EnvVar("DJ_DATABASE_URL"))
    DataJointResource(database_url="postgresql://me@db.example/lab")
    # build_definitions puts the pipeline's own URL in config only when it holds no password
    import types

    import sqlalchemy as sa

    from dj_dagster.orchestration.definitions import _config_url

    with_password = types.SimpleNamespace(url=sa.make_url("postgresql://me:s3cret@db.example/lab"))
    assert _config_url(with_password) is None
    plain = types.SimpleNamespace(url=sa.make_url("sqlite:////tmp/x.sqlite"))
    assert _config_url(plain) == "sqlite:////tmp/x.sqlite"


def test_env_var_url_with_password_resolves_at_run_time(monkeypatch):
    """An EnvVar URL with a password is accepted, resolved in the run, and not in storage."""
    monkeypatch.setenv("DJ_TEST_SECRET_URL", "postgresql://me:pw-a1b2c3@db.invalid/lab")

    @dg.asset
    def sees_url(datajoint: DataJointResource) -> bool:
        return datajoint.database_url.endswith("pw-a1b2c3@db.invalid/lab")

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([sees_url], instance=instance,
                                resources={"datajoint": DataJointResource(database_url=dg.EnvVar("DJ_TEST_SECRET_URL"))})
        assert result.success and result.output_for_node("sees_url") is True
        run = instance.get_run_by_id(result.run_id)
        snapshot = instance.get_job_snapshot(run.job_snapshot_id)
        from dagster._serdes import serialize_value

        assert "pw-a1b2c3" not in serialize_value(snapshot) + serialize_value(run)


def test_column_lineage_and_code_references(lab):
    tables, defs, schema, other = lab
    graph = defs.resolve_asset_graph()
    pair = graph.get(key(schema, "pair")).metadata
    deps = pair["dagster/column_lineage"].deps_by_column
    assert deps["ref_session"] == [dg.TableColumnDep(asset_key=key(schema, "session"), column_name="session")]
    assert {(d.asset_key, d.column_name) for d in deps["session"]} == {(key(schema, "stats"), "session")}
    channel = graph.get(key(schema, "stats__channel")).metadata["dagster/column_lineage"].deps_by_column
    assert channel["subject"] == [dg.TableColumnDep(asset_key=key(schema, "stats"), column_name="subject")]
    assert "dagster/column_lineage" not in graph.get(key(other, "subject")).metadata  # no parents
    reference = pair["dagster/code_references"].code_references[0]
    assert reference.file_path == __file__
    import linecache

    assert linecache.getline(__file__, reference.line_number).strip().startswith("class Pair(")
