"""Asset checks per table: completeness, failed jobs and integrity (no part row without
its master). Checks judge what the run covered: in a run of some partitions, the keys of
those partitions; run on their own, the partitions Dagster shows as materialized. So a
failing check always means the database lacks something Dagster claims, or a key failed,
never merely that other partitions are still pending. Tables filled outside make are
observed, not computed, and get no completeness or failed-jobs check."""

from __future__ import annotations

import dagster as dg

from ..partition_keys import encode_key
from .assets import partition_restrictions
from .plan import PipelinePlan
from .sensors import job_keys

SHOWN = 20


def build_checks(plan: PipelinePlan, key_of, made: set[str], partitions_def=None) -> list:
    """Checks for every table of ``plan``; ``made`` holds the tables filled by make."""
    checks = []
    for node in plan.nodes.values():
        key = key_of[node.full_name]
        if node.full_name in made and node.master is None:
            pdef = partitions_def if node.full_name in plan.partitioned else None
            checks.append(_completeness(node, key, plan, pdef))
            checks.append(_job_errors(node, key, plan, pdef))
        if node.master is not None:
            checks.append(_integrity(node, plan.nodes[node.master], key))
    return checks


def run_partitions(context, partitions_def) -> list[str] | None:
    """The partitions of the run executing this check (single key or range), or None
    when the run targets no partitions."""
    if partitions_def is None:
        return None
    tags = context.op_execution_context.run.tags
    if "dagster/partition" in tags:
        return [tags["dagster/partition"]]
    start, end = tags.get("dagster/asset_partition_range_start"), tags.get("dagster/asset_partition_range_end")
    if start is None or end is None:
        return None
    order = list(context.instance.get_dynamic_partitions(partitions_def.name))
    if start not in order or end not in order:
        return [start, end]
    return order[order.index(start):order.index(end) + 1]


def _partition_of(plan, key: dict) -> str:
    heading = plan.root_node.table.heading
    return encode_key(heading, key, heading.primary_key)


def _completeness(node, key, plan, pdef):
    @dg.asset_check(asset=key, name="completeness", blocking=False,
                    description="Every key of the key source is computed: in the run's partitions, or in "
                                "every partition Dagster shows as materialized")
    def _check(context):
        table = node.table
        partitions = run_partitions(context, pdef)
        if pdef is None:
            remaining, total = table.progress()
            return dg.AssetCheckResult(passed=remaining == 0, metadata={"remaining": remaining, "total": total})
        if partitions is not None:
            restrictions = partition_restrictions(plan, partitions)
            remaining, total = table.progress(restrictions)
            return dg.AssetCheckResult(passed=remaining == 0, metadata={
                "remaining": remaining, "total": total, "partitions": len(partitions)})
        claimed = context.instance.get_materialized_partitions(key)
        behind = sorted({_partition_of(plan, k) for k in table._todo(()).keys()} & claimed)
        return dg.AssetCheckResult(passed=not behind, metadata={
            "incomplete_materialized_partitions": len(behind),
            "examples": ", ".join(behind[:SHOWN])})

    return _check


def _job_errors(node, key, plan, pdef):
    @dg.asset_check(asset=key, name="no_failed_jobs", description="No key is in the error state",
                    blocking=False)
    def _check(context):
        errors = job_keys(node.table, "errors")
        partitions = run_partitions(context, pdef)
        if partitions is not None:
            scope = set(partitions)
            errors = [e for e in errors if _partition_of(plan, e) in scope]
        return dg.AssetCheckResult(passed=not errors, severity=dg.AssetCheckSeverity.WARN,
                                   metadata={"errors": len(errors)})

    return _check


def _integrity(node, master, key):
    @dg.asset_check(asset=key, name="parts_have_masters", description="Every part row has its master row",
                    blocking=False)
    def _check():
        orphans = len(node.table - master.table.proj())
        return dg.AssetCheckResult(passed=orphans == 0, metadata={"orphans": orphans})

    return _check
