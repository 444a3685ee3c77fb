"""Drive a pipeline through Dagster in one process: evaluate its sensor, apply the
partition changes and runless events it returns, and execute the runs it requests,
until the database and Dagster agree. ``make demo`` and the tests use it; a deployment
gets the same from the Dagster daemon."""

from __future__ import annotations

import dagster as dg


def sensor_tick(defs: dg.Definitions, instance: dg.DagsterInstance, sensor_name: str | None = None):
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(sensor_name) if sensor_name else repo.sensor_defs[0]
    context = dg.build_sensor_context(instance=instance, repository_def=repo,
                                      cursor=getattr(instance, "_dj_cursors", {}).get(sensor.name))
    result = sensor(context)
    if not hasattr(instance, "_dj_cursors"):
        instance._dj_cursors = {}
    if isinstance(result, dg.SensorResult):
        instance._dj_cursors[sensor.name] = result.cursor
        return result
    return dg.SensorResult(run_requests=list(result or []))


def run_until_settled(defs: dg.Definitions, instance: dg.DagsterInstance, max_ticks: int = 20,
                      sensor_name: str | None = None) -> list[dg.ExecuteInProcessResult]:
    """Tick the sensor and execute its run requests until it asks for nothing more."""
    # Dagster never launches a run key twice for a sensor: remember them across calls
    seen_run_keys: set[str] = instance.__dict__.setdefault("_dj_run_keys", set())
    results = []
    for _ in range(max_ticks):
        result = sensor_tick(defs, instance, sensor_name)
        for req in result.dynamic_partitions_requests or []:
            if isinstance(req, dg.AddDynamicPartitionsRequest):
                instance.add_dynamic_partitions(req.partitions_def_name, list(req.partition_keys))
            else:
                for key in req.partition_keys:
                    instance.delete_dynamic_partition(req.partitions_def_name, key)
        for event in result.asset_events or []:
            instance.report_runless_asset_event(event)
        new = [r for r in result.run_requests or [] if r.run_key is None or r.run_key not in seen_run_keys]
        if not new and not result.dynamic_partitions_requests and not result.asset_events:
            break
        for req in new:
            if req.run_key is not None:
                seen_run_keys.add(req.run_key)
            job = defs.resolve_job_def(req.job_name)
            results.append(job.execute_in_process(instance=instance, partition_key=req.partition_key,
                                                  tags=dict(req.tags), raise_on_error=False))
    return results
