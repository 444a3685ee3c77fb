"""Tables as Dagster assets: lineage, partitions, sensor-driven runs, runless events,
failures, the IO manager. Runs in process on an ephemeral Dagster instance."""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pytest

import dj_dagster as dj
from definitions.runner import run_until_settled, sensor_tick
from dj_dagster.orchestration import build_definitions


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

    result = dg.materialize([dg.AssetSpec(key(other, "subject")), species_count, new_sessions], resources={"dj_io_manager": DataJointIOManager()})
    assert result.success
    assert result.output_for_node("species_count") == 2
    assert (tables["Session"] & {"subject": "r1"}).fetch1("session") == 7
