"""The pipeline sensor: keeps Dagster's view equal to the database's.

Each evaluation (1) adds and deletes dynamic partitions as root rows come and go,
(2) records runless materializations for partitions whose rows exist in the database
but not in Dagster's event log (Manual data, and work done by populate() outside
Dagster), and (3) requests runs for partitions with keys left to compute. Run keys
carry a signature of the missing work, so the same work is never requested twice."""

from __future__ import annotations

import hashlib
import json
import time

import dagster as dg

from ..expression import U
from ..partition_keys import encode_key
from .plan import PipelinePlan

MAX_ADDS = 25_000
MAX_RUNS_PER_TICK = 50
MAX_EVENTS = 10_000  # runless events per tick; the rest follow on later ticks


def _partition_keys_with_rows(expr, root_heading, pk) -> set[str]:
    return {encode_key(root_heading, k, pk) for k in (U(*pk) & expr).to_dicts()}


def build_sensor(plan: PipelinePlan, partitions_def, key_of, partitioned_job, global_job, name: str,
                 interval: int = 30):
    nodes = plan.nodes
    computed = [n for n in nodes.values() if n.tier in ("Imported", "Computed") and n.master is None]
    part_computed = [n for n in computed if n.full_name in plan.partitioned]
    global_computed = [n for n in computed if n.full_name not in plan.partitioned]
    partitioned_all = [n for n in nodes.values() if n.full_name in plan.partitioned]
    unpartitioned_data = [n for n in nodes.values() if n.tier in ("Manual", "Lookup") and
                          n.full_name not in plan.partitioned]
    jobs = [j for j in (partitioned_job, global_job) if j is not None]

    @dg.sensor(name=name, minimum_interval_seconds=interval, default_status=dg.DefaultSensorStatus.RUNNING,
               jobs=jobs, description="Follows the DataJoint database: partitions, outside work, missing keys")
    def _sensor(context):
        started = time.perf_counter()
        cursor = json.loads(context.cursor) if context.cursor else {}
        instance = context.instance
        events: list = []
        requests: list = []
        partition_requests: list = []
        counts = {n.full_name: len(n.table) for n in unpartitioned_data}
        for n in unpartitioned_data:  # reference data recorded when it changes
            if cursor.get("counts", {}).get(n.full_name) != counts[n.full_name]:
                events.append(dg.AssetMaterialization(asset_key=key_of[n.full_name],
                                                      metadata={"dagster/row_count": counts[n.full_name],
                                                                "dj/source": "sensor"}))
        if plan.root is not None:
            root = plan.root_node.table
            heading, pk = root.heading, root.heading.primary_key
            root_keys = {encode_key(heading, k, pk): k for k in root.keys()}
            db_keys = list(root_keys)
            db_set = set(db_keys)
            existing = set(instance.get_dynamic_partitions(partitions_def.name))
            add = [k for k in db_keys if k not in existing][:MAX_ADDS]
            gone = sorted(existing - db_set)
            if add:
                partition_requests.append(partitions_def.build_add_request(add))
            if gone:
                partition_requests.append(partitions_def.build_delete_request(gone))
            known = existing | set(add)
            known -= set(gone)
            missing: dict[str, list[str]] = {}
            for n in part_computed:
                for k in _partition_keys_with_rows(n.table._todo(()), heading, pk):
                    missing.setdefault(k, []).append(n.full_name)
            for n in partitioned_all:
                if n.master is not None:
                    continue
                have = _partition_keys_with_rows(n.table, heading, pk) & known
                if n.tier in ("Imported", "Computed"):
                    have = {k for k in have if n.full_name not in missing.get(k, ())}
                done = instance.get_materialized_partitions(key_of[n.full_name]) if have else set()
                group = [n] + [p for p in nodes.values() if p.master == n.full_name]
                for k in sorted(have - set(done)):
                    if len(events) >= MAX_EVENTS:
                        break
                    for member in group:
                        events.append(dg.AssetMaterialization(asset_key=key_of[member.full_name], partition=k,
                                                              metadata={"dj/source": "sensor"}))
            if partitioned_job is not None:
                for k in sorted(missing)[:MAX_RUNS_PER_TICK]:
                    if k not in known:
                        continue
                    todo = sorted(missing[k])
                    signature = hashlib.sha1(json.dumps(
                        [(t, len(nodes[t].table._todo((root_keys[k],)))) for t in todo]).encode()).hexdigest()[:12]
                    requests.append(dg.RunRequest(run_key=f"{k}@{signature}", partition_key=k,
                                                  job_name=partitioned_job.name,
                                                  tags={"dj/trigger": "sensor"}))
        if global_job is not None:
            remaining = {n.full_name: n.table.progress()[0] for n in global_computed}
            if any(remaining.values()):
                signature = hashlib.sha1(json.dumps(sorted(remaining.items())).encode()).hexdigest()[:12]
                requests.append(dg.RunRequest(run_key=f"global@{signature}", job_name=global_job.name,
                                              tags={"dj/trigger": "sensor"}))
        new_cursor = json.dumps({"counts": counts, "evaluated_s": round(time.perf_counter() - started, 3)})
        if not (events or requests or partition_requests):
            return dg.SensorResult(skip_reason="The database matches Dagster's view", cursor=new_cursor)
        return dg.SensorResult(run_requests=requests, asset_events=events,
                               dynamic_partitions_requests=partition_requests, cursor=new_cursor)

    return _sensor
