"""Dagster-layer cases: a single-run backfill against populate() of the same keys, and
building Definitions for a 50-table pipeline against bare Dagster specs."""

from __future__ import annotations

import os
import uuid

from .harness import Case

SCALE = float(os.environ.get("BENCH_SCALE", "1"))
URL = os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


ONE_SCHEMA_ENV = "BENCH_DG_ONE_SCHEMA"
_ONE_TABLES: dict = {}
_ONE_JOBS: dict = {}
NOOP_PARTITIONS = "noop_one"


def _one_partition_job(executor: str):
    """The populate job of a two-table pipeline in schema $BENCH_DG_ONE_SCHEMA; at module
    level so that Dagster rebuilds it in the processes it starts."""
    import dagster as dg

    import dj_dagster as dj
    from dj_dagster.orchestration import build_definitions

    if not _ONE_TABLES:
        schema = dj.Schema(os.environ[ONE_SCHEMA_ENV], connection=dj.conn(URL))

        @schema
        class Session(dj.Manual):
            definition = """
            session : int32
            """

        @schema
        class Result(dj.Computed):
            definition = """
            -> Session
            ---
            y : float64
            """

            def make(self, key):
                self.insert1({**key, "y": 1.0})

        if not len(Session()):
            Session.insert1((0,))
        _ONE_TABLES.update(schema=schema, Result=Result)
    if executor in _ONE_JOBS:
        return _ONE_JOBS[executor]
    executor_def = dg.in_process_executor if executor == "in_process" else dg.multiprocess_executor
    defs = build_definitions(_ONE_TABLES["schema"], name=f"one_{executor}", executor=executor_def)
    job = next(j for j in defs.get_repository_def().get_all_jobs() if j.name.endswith("_partitions"))
    _ONE_JOBS[executor] = job, defs
    return _ONE_JOBS[executor]


def _one_in_process():
    return _one_partition_job("in_process")[0]


def _one_multiprocess():
    return _one_partition_job("multiprocess")[0]


def _noop_job():
    import dagster as dg

    @dg.asset(name="noop_one", partitions_def=dg.DynamicPartitionsDefinition(name=NOOP_PARTITIONS))
    def noop_one():
        return dg.MaterializeResult(metadata={"dagster/row_count": 1})

    return dg.Definitions(assets=[noop_one], jobs=[dg.define_asset_job("noop_one_job", [noop_one])],
                          executor=dg.in_process_executor).resolve_job_def("noop_one_job")


class DagsterSuite:
    def __init__(self):
        import dj_dagster as dj

        self.dj = dj
        self.connection = dj.Connection(URL)
        self.schemas = []
        self.n = max(100, int(1000 * SCALE))

    def _schema(self, prefix):
        s = self.dj.Schema(f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}", connection=self.connection)
        self.schemas.append(s)
        return s

    def cases(self) -> list[Case]:
        return [*self._backfill_cases(), *self._one_partition_cases(), self._definitions_case(),
                self._sensor_case()]

    def _one_partition_cases(self) -> list[Case]:
        """The fixed cost of one run of one partition, as the daemon launches it
        (``execute_job`` on an on-disk instance, checks included): our populate job with its
        default in-process executor, and with the multiprocess executor, against the same
        run of a no-op asset."""
        import tempfile

        import dagster as dg

        schema = self._schema("djbench_one")
        os.environ[ONE_SCHEMA_ENV] = schema.database
        _one_partition_job("in_process")  # declares the tables
        home = tempfile.mkdtemp(prefix="djbench-dagster-")
        state = {}

        def prepare():
            state["instance"] = dg.DagsterInstance.local_temp(home)
            for executor in ("in_process", "multiprocess"):
                job = _one_partition_job(executor)[0]
                state["instance"].add_dynamic_partitions(job.partitions_def.name, ["session=0"])
            state["instance"].add_dynamic_partitions(NOOP_PARTITIONS, ["session=0"])

        def reset():
            _ONE_TABLES["Result"]().delete_quick()
            _ONE_TABLES["Result"]().jobs.delete()

        def run(target):
            def call():
                result = dg.execute_job(dg.reconstructable(target), instance=state["instance"],
                                        tags={"dagster/partition": "session=0"})
                assert result.success, [str(e.event_specific_data)[:800] for e in result.all_events if e.is_failure]
                return 1
            return call

        common = dict(prepare=prepare, setup=reset, repeats=3, units=(1, "runs"),
                      peer=run(_noop_job), peer_name="the same run of a no-op asset")
        return [
            Case(name="one-partition run, in-process executor (default)", ours=run(_one_in_process), **common),
            Case(name="one-partition run, multiprocess executor", ours=run(_one_multiprocess), **common),
        ]

    def _backfill_cases(self) -> list[Case]:
        import dagster as dg

        from dj_dagster.orchestration import build_definitions

        dj = self.dj
        schema = self._schema("djbench_dg")

        @schema
        class Session(dj.Manual):
            definition = """
            session : int32
            ---
            x : float64
            """

        @schema
        class Result(dj.Computed):
            definition = """
            -> Session
            ---
            y : float64
            """

            def make(self, key):
                x = (Session & key).fetch1("x")
                self.insert1({**key, "y": 2 * x})

        Session.insert([(i, float(i)) for i in range(self.n)])
        defs = build_definitions(schema, name=f"bench_{schema.database}", checks=False)
        repo = defs.get_repository_def()
        job = next(j for j in repo.get_all_jobs() if j.name.endswith("_populate_partitions"))
        pdef = defs.resolve_asset_graph().get(dg.AssetKey([schema.database, "result"])).partitions_def
        keys = [f"session={i}" for i in range(self.n)]
        # in-memory event storage: Dagster's CPU cost per partition (two events: planned and
        # materialized). `dagster dev`'s SQLite storage on disk adds a commit per event
        # (about 30 ms each here), which no change on our side can remove.
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(pdef.name, keys)

        def reset():
            Result().delete_quick()
            Result().jobs.delete()

        def backfill():
            tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
            result = job.execute_in_process(instance=instance, tags=tags, run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            assert result.success and len(Result()) == self.n
            return len(Result())

        def populate_and_start_up():
            """populate() of all keys but one, and a one-partition run for the last: the
            same work plus the fixed cost of starting a run, which the target allows."""
            Result.populate(f"session < {self.n - 1}", reserve_jobs=True)
            result = job.execute_in_process(instance=instance, partition_key=keys[-1], run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            assert result.success and len(Result()) == self.n
            return len(Result())

        # Dagster alone: a no-op asset with partitions of its own (the same keys) and the same
        # per-partition metadata, backfilled in one run: the floor that Dagster's own events set
        noop_pdef = dg.DynamicPartitionsDefinition(name=f"noop_{schema.database}")
        instance.add_dynamic_partitions(noop_pdef.name, keys)

        @dg.asset(name="noop", partitions_def=noop_pdef, backfill_policy=dg.BackfillPolicy.single_run())
        def noop(context):
            return dg.MaterializeResult(metadata={"dagster/row_count": self.n, "dj/keys_computed": 0,
                                                  "dj/keys_failed": 0, "dj/duration_s": 0.0})

        noop_job = dg.Definitions(assets=[noop], jobs=[dg.define_asset_job("noop_job", [noop])]).resolve_job_def(
            "noop_job")

        def dagster_alone():
            tags = {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}
            result = noop_job.execute_in_process(instance=instance, tags=tags, run_config={
                "loggers": {"console": {"config": {"log_level": "WARNING"}}}})
            assert result.success
            return self.n

        common = dict(setup=reset, repeats=3, units=(self.n, "partitions"))
        return [
            Case(name=f"single-run backfill of {self.n} partitions", ours=backfill, peer=populate_and_start_up,
                 peer_name="populate(reserve_jobs=True) + a 1-partition run",
                 target=1 / 1.3, target_text="<= 1.3x populate + start-up", **common),
            Case(name=f"single-run backfill of {self.n} partitions", ours=backfill, peer=dagster_alone,
                 peer_name="the same backfill of a no-op Dagster asset", **common),
        ]

    def _definitions_case(self) -> Case:
        import dagster as dg

        from dj_dagster.orchestration import build_definitions

        dj = self.dj
        schema = self._schema("djbench_defs")
        context = {}

        @schema
        class Root(dj.Manual):
            definition = """
            root_id : int32
            """

        prev = Root
        for i in range(49):
            cls = type(f"Step{i}", (dj.Computed,), {"definition": "-> Prev\n---\nv : float64",
                                                     "make": lambda self, key: None})
            schema(cls, context={"Prev": prev})
            prev = cls
        context.clear()

        def ours():
            connection = dj.Connection(URL)  # a fresh process's view: nothing cached
            module = dj.virtual_schema(schema.database, connection=connection)
            defs = build_definitions(module.schema, name=f"defs_{schema.database}", checks=False)
            n = len(list(defs.resolve_asset_graph().get_all_asset_keys()))
            connection.close()
            return n

        def peer():
            specs = [dg.AssetSpec(["plain", f"t{i}"], deps=[["plain", f"t{i - 1}"]] if i else []) for i in range(50)]
            return len(list(dg.Definitions(assets=specs).resolve_asset_graph().get_all_asset_keys()))

        return Case(name="build Definitions for a 50-table pipeline", ours=ours, peer=peer, repeats=3,
                    peer_name="50 plain AssetSpecs", units=(50, "tables"))

    def _sensor_case(self) -> Case:
        """One sensor evaluation over N root rows (first tick: it adds up to 25,000
        partitions and records up to 10,000 runless events) against fetching the keys."""
        import dagster as dg

        from dj_dagster.orchestration import build_definitions

        dj = self.dj
        schema = self._schema("djbench_sensor")
        n = max(1000, int(100_000 * SCALE))

        @schema
        class Session(dj.Manual):
            definition = """
            subject : varchar(8)
            session : int32
            """

        @schema
        class Result(dj.Computed):
            definition = """
            -> Session
            ---
            v : float64
            """

            def make(self, key):
                self.insert1({**key, "v": 1.0})

        Session.insert([(f"s{i % 100}", i) for i in range(n)])
        Result.insert([(f"s{i % 100}", i, 1.0) for i in range(n - 10)], allow_direct_insert=True)
        defs = build_definitions(schema, name=f"sensor_{schema.database}", checks=False)
        sensor = defs.get_repository_def().sensor_defs[0]
        state = {}

        def fresh_instance():
            state["instance"] = dg.DagsterInstance.ephemeral()

        def tick():
            context = dg.build_sensor_context(instance=state["instance"], repository_def=defs.get_repository_def())
            result = sensor(context)
            return len(result.asset_events)

        def keys():
            return len(Session.keys())

        return Case(name=f"sensor evaluation over {n} root rows", ours=tick, peer=keys, setup=fresh_instance,
                    repeats=3, peer_name="fetch the root keys", units=(n, "rows"))

    def close(self):
        for s in reversed(self.schemas):
            try:
                s.drop(force=True, safemode=False)
            except Exception:  # noqa: BLE001 - best effort at the end of a run
                pass
        self.connection.close()
