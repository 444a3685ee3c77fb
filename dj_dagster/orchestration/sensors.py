"""The pipeline sensor: a thin shell around :func:`reconcile.reconcile`.

Each evaluation reads the database's state (root rows, partitions with keys left to
compute, with failed keys, with rows) and Dagster's (dynamic partitions, materialized
partitions, runs queued or in flight), asks ``reconcile`` what to do, and returns it as
a ``SensorResult``: partitions added and deleted, runless materializations for work done
outside Dagster, observations marking partitions whose rows went missing, and run
requests, at most one per partition in flight."""

from __future__ import annotations

import json
import time

import dagster as dg

from ..expression import U
from ..partition_keys import encode_key
from .plan import PipelinePlan
from .reconcile import DagsterState, DatabaseState, Roles, reconcile

MAX_ADDS = 25_000
MAX_RUNS_PER_TICK = 50
MAX_EVENTS = 10_000  # runless events per tick; the rest follow on later ticks
UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_NOT_RUNNABLE = ("errors", "ignored")  # job states that a new run would not retry


def roles_of(plan: PipelinePlan, made: set[str]) -> Roles:
    """Sort the plan's master tables into the roles ``reconcile`` knows; ``made`` holds
    the tables filled by their make (the others are observed)."""
    masters = [n for n in plan.nodes.values() if n.master is None]
    partitioned = [n for n in masters if n.full_name in plan.partitioned]
    unpartitioned = [n for n in masters if n.full_name not in plan.partitioned]
    return Roles(
        computed=tuple(n.full_name for n in partitioned if n.full_name in made),
        observed=tuple(n.full_name for n in partitioned if n.full_name not in made),
        global_computed=tuple(n.full_name for n in unpartitioned if n.full_name in made),
        global_data=tuple(n.full_name for n in unpartitioned if n.full_name not in made),
    )


def _partitions(expr, heading, pk) -> set[str]:
    return {encode_key(heading, k, pk) for k in (U(*pk) & expr).to_dicts()}


def job_keys(table, *states: str) -> list[dict]:
    """Keys (of the key source) of ``table``'s jobs in the given states: ``errors``,
    ``ignored``, ``reserved`` (each a list of rows or a query of the jobs table)."""
    attrs = table.key_source.primary_key
    keys = []
    for state in states:
        rows = getattr(table.jobs, state, None)
        if rows is None:
            continue
        for row in (rows.to_dicts() if hasattr(rows, "to_dicts") else rows):
            keys.append({a: row[a] for a in attrs})
    return keys


def split_todo(table):
    """(keys a run would compute, keys held back by failed or ignored jobs), as queries."""
    todo = table._todo(())
    held = job_keys(table, *_NOT_RUNNABLE)
    if not held:
        return todo, None
    return todo - held, todo & held


def database_state(plan: PipelinePlan, roles: Roles) -> DatabaseState:
    """Read what ``reconcile`` needs from the database, by partition key."""
    nodes = plan.nodes
    counts = {n: len(nodes[n].table) for n in roles.global_data}
    global_runnable = any(len(split_todo(nodes[n].table)[0]) for n in roles.global_computed)
    if plan.root is None:
        return DatabaseState(counts=counts, global_runnable=global_runnable)
    root = plan.root_node.table
    heading, pk = root.heading, root.heading.primary_key
    root_partitions = tuple(encode_key(heading, k, pk) for k in root.keys())
    rows, runnable, blocked = {}, {}, {}
    for name in roles.computed:
        table = nodes[name].table
        todo, held = split_todo(table)
        runnable[name] = _partitions(todo, heading, pk)
        blocked[name] = _partitions(held, heading, pk) if held is not None else set()
        rows[name] = _partitions(table, heading, pk)
    for name in roles.observed:
        rows[name] = set(root_partitions) if name == plan.root else _partitions(nodes[name].table, heading, pk)
    return DatabaseState(root_partitions=root_partitions, rows=rows, runnable=runnable, blocked=blocked,
                         counts=counts, global_runnable=global_runnable)


def in_flight(instance, partition_order: list[str], partitioned_keys: set, global_keys: set,
              partitioned_job: str | None, global_job: str | None) -> tuple[set[str], bool]:
    """Partitions targeted by runs that are queued or running (single partitions and
    ranges), and whether a run of the unpartitioned tables is."""
    partitions: set[str] = set()
    global_busy = False
    position = {k: i for i, k in enumerate(partition_order)}
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=UNFINISHED)):
        selection = set(run.asset_selection or ())
        if run.job_name == global_job or selection & global_keys:
            global_busy = True
        if not (run.job_name == partitioned_job or selection & partitioned_keys):
            continue
        tags = run.tags
        if "dagster/partition" in tags:
            partitions.add(tags["dagster/partition"])
        start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
        if start in position and end in position:
            partitions.update(partition_order[position[start]:position[end] + 1])
    partitions |= _backfill_partitions(instance, partitioned_keys)
    return partitions, global_busy


def _backfill_partitions(instance, partitioned_keys: set) -> set[str]:
    """Partitions of our assets targeted by backfills still in progress: their runs may
    not exist yet, and the backfill will compute them."""
    from dagster._core.execution.backfill import BulkActionStatus  # not re-exported by dagster

    found: set[str] = set()
    for backfill in instance.get_backfills(status=BulkActionStatus.REQUESTED):
        data = backfill.asset_backfill_data
        if data is not None:
            found.update(p.partition_key for p in data.target_subset.iterate_asset_partitions()
                         if p.asset_key in partitioned_keys and p.partition_key is not None)
        elif backfill.partition_names and set(backfill.asset_selection or ()) & partitioned_keys:
            found.update(backfill.partition_names)
    return found


def build_sensor(plan: PipelinePlan, partitions_def, key_of, partitioned_job, global_job, name: str,
                 interval: int = 30, made: set[str] | None = None):
    """The ``@sensor`` that applies :func:`reconcile.reconcile` every ``interval`` seconds."""
    nodes = plan.nodes
    made = made if made is not None else set()
    roles = roles_of(plan, made)
    members = {n: [n] + [p for p, node in nodes.items() if node.master == n] for n in nodes}
    job_keys = {n: key_of[n] for n in made}
    part_keys = {k for n, k in job_keys.items() if n in plan.partitioned}
    global_keys = {k for n, k in job_keys.items() if n not in plan.partitioned}
    jobs = [j for j in (partitioned_job, global_job) if j is not None]

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.RUNNING,
               jobs=jobs, description="Follows the DataJoint database: partitions, outside work, missing keys")
    def _sensor(context):
        started = time.perf_counter()
        cursor = json.loads(context.cursor) if context.cursor else {}
        instance = context.instance
        db = database_state(plan, roles)
        order = list(instance.get_dynamic_partitions(partitions_def.name)) if partitions_def is not None else []
        busy, global_busy = in_flight(instance, order, part_keys, global_keys,
                                      partitioned_job.name if partitioned_job else None,
                                      global_job.name if global_job else None)
        seen = DagsterState(
            partitions=frozenset(order),
            materialized={g: instance.get_materialized_partitions(key_of[g]) for g in roles.computed + roles.observed},
            in_flight=frozenset(busy), global_in_flight=global_busy, counts=cursor.get("counts", {}),
            stale={g: set(v) for g, v in cursor.get("stale", {}).items()})
        actions = reconcile(roles, db, seen, MAX_ADDS, MAX_RUNS_PER_TICK, MAX_EVENTS)
        result = to_sensor_result(actions, plan, members, key_of, partitions_def, partitioned_job, global_job,
                                  db, instance)
        result = dg.SensorResult(
            run_requests=result.run_requests, asset_events=result.asset_events,
            dynamic_partitions_requests=result.dynamic_partitions_requests,
            skip_reason=None if actions else "The database matches Dagster's view",
            cursor=json.dumps({"counts": actions.cursor_counts, "stale": actions.cursor_stale,
                               "evaluated_s": round(time.perf_counter() - started, 3)}))
        return result

    return _sensor


def to_sensor_result(actions, plan, members, key_of, partitions_def, partitioned_job, global_job, db,
                     instance=None) -> dg.SensorResult:
    """Dagster's form of ``actions``. Partitions marked stale get an observation saying
    so (and their materializations wiped where the instance's storage supports it)."""
    requests, events = [], []
    if partitions_def is not None and actions.add_partitions:
        requests.append(partitions_def.build_add_request(actions.add_partitions))
    if partitions_def is not None and actions.delete_partitions:
        requests.append(partitions_def.build_delete_request(actions.delete_partitions))
    for group, partition in actions.materialized:
        if partition is None:
            events.append(dg.AssetMaterialization(asset_key=key_of[group], metadata={
                "dagster/row_count": db.counts.get(group, 0), "dj/source": "sensor"}))
            continue
        for member in members[group]:
            events.append(dg.AssetMaterialization(asset_key=key_of[member], partition=partition,
                                                  metadata={"dj/source": "sensor"}))
    for group, partition in actions.stale:
        for member in members[group]:
            events.append(dg.AssetObservation(
                asset_key=key_of[member], partition=partition,
                description="Rows of this partition are missing from the database",
                metadata={"dj/state": "incomplete", "dj/source": "sensor"}))
            if instance is not None:
                _try_wipe(instance, key_of[member], partition)
    runs = []
    if partitioned_job is not None:
        runs += [dg.RunRequest(partition_key=k, job_name=partitioned_job.name, tags={"dj/trigger": "sensor"})
                 for k in actions.runs]
    if global_job is not None and actions.global_run:
        runs.append(dg.RunRequest(job_name=global_job.name, tags={"dj/trigger": "sensor"}))
    return dg.SensorResult(run_requests=runs, asset_events=events, dynamic_partitions_requests=requests)


def _try_wipe(instance, asset_key, partition) -> None:
    try:
        instance.wipe_asset_partitions(asset_key, [partition])
    except NotImplementedError:  # OSS storages: the observation and the requested run say it
        pass
