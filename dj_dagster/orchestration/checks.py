"""Asset checks per table: completeness (nothing left to compute), integrity (no part
row without its master), and failed jobs."""

from __future__ import annotations

import dagster as dg

from .plan import PipelinePlan


def build_checks(plan: PipelinePlan, key_of) -> list:
    checks = []
    for node in plan.nodes.values():
        key = key_of[node.full_name]
        if node.tier in ("Imported", "Computed") and node.master is None:
            checks.append(_completeness(node, key))
            checks.append(_job_errors(node, key))
        if node.master is not None:
            checks.append(_integrity(node, plan.nodes[node.master], key))
    return checks


def _completeness(node, key):
    @dg.asset_check(asset=key, name="completeness", description="No key of the key source is missing",
                    blocking=False)
    def _check():
        remaining, total = node.table.progress()
        return dg.AssetCheckResult(passed=remaining == 0, metadata={"remaining": remaining, "total": total})

    return _check


def _job_errors(node, key):
    @dg.asset_check(asset=key, name="no_failed_jobs", description="No key is in the error state", blocking=False)
    def _check():
        errors = node.table.jobs.errors
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
