"""A two-level pipeline (Root -> Stage -> Final) for the load test in test_faults.py, run
as ``python -m tests.fault_pipeline ACTION`` with DJ_DATABASE_URL, DJ_FAULT_SCHEMA and
DJ_FAULT_DIR (where the test drops its ``stop`` file) in the environment.

Actions: ``work`` (a populate worker), ``churn`` (inserts new roots and cascade-deletes
old ones), ``dagster`` (sensor ticks and runs on an ephemeral instance), ``runs`` (one
Dagster run per partition of DJ_PARTITIONS, started when the ``go`` file appears). Each
prints one JSON line of counts at the end."""

from __future__ import annotations

import json
import os
import random
import re
import sys
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

import dj_dagster as dj

schema = dj.Schema(os.environ["DJ_FAULT_SCHEMA"], connection=dj.conn(os.environ["DJ_DATABASE_URL"]))
FOLDER = Path(os.environ.get("DJ_FAULT_DIR", "."))
STOP = FOLDER / "stop"
MAKE_SLEEP = float(os.environ.get("DJ_MAKE_SLEEP", "0"))  # seconds inside Stage's make transaction


@schema
class Root(dj.Manual):
    definition = """
    root_id : int32
    ---
    value : float64
    """


@schema
class MakeLog(dj.Manual):
    definition = """
    # one row per committed make call (no foreign key: it outlives deleted roots)
    tier : varchar(8)
    root_id : int32
    entry : uuid
    ---
    pid : int32
    """


def _log(tier: str, key: dict) -> None:
    MakeLog.insert1({"tier": tier, "root_id": key["root_id"], "entry": uuid.uuid4(), "pid": os.getpid()})


@schema
class Stage(dj.Computed):
    definition = """
    -> Root
    ---
    a : float64
    """

    def make(self, key):
        value = (Root & key).fetch1("value")
        time.sleep(MAKE_SLEEP)
        _log("stage", key)
        self.insert1({**key, "a": value + 1})


@schema
class Final(dj.Computed):
    definition = """
    -> Stage
    ---
    b : float64
    """

    def make(self, key):
        a = (Stage & key).fetch1("a")
        _log("final", key)
        self.insert1({**key, "b": 2 * a})


def _report(**counts) -> None:
    print(json.dumps({"pid": os.getpid(), **counts}), flush=True)


def work() -> None:
    """Populate both tables until told to stop, then drain: exit after a pass that found
    nothing to do once the stop file exists. A populate that raises (suppress_errors
    covers make only) is counted if it lost a deadlock, and is fatal otherwise."""
    done, failed, samples, deadlocks = 0, [], [], []
    while True:
        stopping = STOP.exists()
        n = 0
        for table in (Stage, Final):
            try:
                result = table.populate(reserve_jobs=True, suppress_errors=True, return_exception_objects=True)
            except sa.exc.DBAPIError as exc:
                if "deadlock" not in str(exc).lower():
                    raise
                deadlocks.append(f"{table.__name__}: {str(exc).splitlines()[0][:200]}")
                n = 1  # not drained: go round again
                continue
            n += result["success_count"]
            for key, exc in result["error_list"]:
                failed.append([key["root_id"], "deadlock" in str(exc).lower()])
                samples.append(f"{table.__name__} {key}: {type(exc).__name__}: {str(exc)[:300]}")
        done += n
        if stopping and n == 0:
            break
        if n == 0:
            time.sleep(0.2)
    _report(made=done, failed_ids=failed, error_samples=samples[:3], populate_deadlocks=deadlocks)


def churn() -> None:
    """Insert new roots and cascade-delete random existing ones, in rounds, while the
    workers run; stop once they have nearly caught up (after 5 rounds at least and
    DJ_CHURN_ROUNDS at most)."""
    per_round = int(os.environ.get("DJ_CHURN_BATCH", "20"))
    max_rounds = int(os.environ.get("DJ_CHURN_ROUNDS", "20"))
    next_id = int(os.environ["DJ_CHURN_FIRST_ID"])
    rng = random.Random(os.getpid())
    inserted = deleted = conflicts = rounds = 0
    conflict_samples = []
    deadline = time.monotonic() + float(os.environ.get("DJ_CHURN_MAX_S", "600"))
    while time.monotonic() < deadline and rounds < max_rounds:
        Root.insert([(i, float(i)) for i in range(next_id, next_id + per_round)])
        inserted += per_round
        next_id += per_round
        victims = rng.sample(Root.keys(), per_round)
        for attempt in range(20):  # a make committing a child row at that moment makes the delete fail
            try:
                deleted += (Root & victims).delete(safemode=False)
                break
            except (dj.DataJointError, sa.exc.DBAPIError) as exc:
                conflicts += 1
                conflict_samples.append(f"{type(exc).__name__}: {str(exc)[:200]}")
                time.sleep(0.05 * (attempt + 1))
        else:
            raise RuntimeError(f"delete kept failing: {conflict_samples[-3:]}")
        rounds += 1
        if rounds >= 5 and len(Root()) - len(Final()) <= 2 * per_round:
            break
        time.sleep(0.2)
    _report(inserted=inserted, deleted=deleted, conflicts=conflicts, rounds=rounds,
            conflict_samples=conflict_samples[:3])


def dagster() -> None:
    """The sensor-driven path: tick and run what it requests until told to stop. The
    ``dagster-ready`` file tells the test to start the workers (imports take seconds)."""
    import dagster as dg

    from definitions.runner import run_until_settled
    from dj_dagster.orchestration import build_definitions

    defs = build_definitions(Root, Stage, Final, partition_root=Root, name=f"load_{schema.database}")
    results = []
    with dg.DagsterInstance.ephemeral() as instance:
        (FOLDER / "dagster-ready").touch()
        while not STOP.exists():
            results += run_until_settled(defs, instance, max_ticks=2)
            time.sleep(0.2)
    failures = [e.step_failure_data for r in results if not r.success for e in r.get_step_failure_events()]
    texts = [str(f.user_failure_data.description if f.user_failure_data else f.error) for f in failures]
    # the asset's failure lists its keys as "- {'root_id': 7}: Error: message"
    failed = [[int(m.group(1)), "deadlock" in line.lower()] for text in texts for line in text.splitlines()
              if (m := re.match(r"- \{'root_id': (\d+)\}", line))]
    _report(runs=len(results), failed=sum(not r.success for r in results), failed_ids=failed,
            unexplained=[t[:300] for t in texts if not re.search(r"^- \{'root_id'", t, re.M)])


def runs() -> None:
    """A Dagster run worker: one partitioned run per key of DJ_PARTITIONS, begun together
    with the other workers (the test creates ``go`` once all have started)."""
    import dagster as dg

    from dj_dagster.orchestration import build_definitions

    defs = build_definitions(Root, Stage, Final, partition_root=Root, name=f"runs_{schema.database}")
    job = defs.resolve_job_def(f"runs_{schema.database}_populate_partitions")
    partitions = os.environ["DJ_PARTITIONS"].split(",")
    (FOLDER / f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 300
    while not (FOLDER / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    start = time.time()
    ok = 0
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(job.partitions_def.name, partitions)
        for key in partitions:
            result = job.execute_in_process(instance=instance, partition_key=key, raise_on_error=False)
            ok += result.success
    _report(start=start, end=time.time(), runs=len(partitions), succeeded=ok)


if __name__ == "__main__":
    {"work": work, "churn": churn, "dagster": dagster, "runs": runs}[sys.argv[1]]()
