"""One call from DataJoint schemas to ``dagster.Definitions``."""

from __future__ import annotations

import functools

import dagster as dg

from .assets import build_group_asset, populated_by_make
from .checks import build_checks
from .plan import collect_tables, make_plan
from .resources import DataJointIOManager, DataJointResource
from .sensors import build_sensor
from .translator import DataJointTranslator, safe_name


@functools.lru_cache(maxsize=None)
def _shared_resources(database_url: str | None) -> dict:
    """One resource object per database, so Definitions of several pipelines merge."""
    return {"datajoint": DataJointResource(database_url=database_url),
            "dj_io_manager": DataJointIOManager(database_url=database_url)}


def _config_url(connection) -> str | None:
    """The URL the resources may carry in config: the pipeline's own when it holds no
    password; otherwise None (DJ_DATABASE_URL), since config lands in run storage."""
    url = connection.url
    return None if url.password else url.render_as_string(hide_password=False)


def build_definitions(*sources, partition_root=None, translator: DataJointTranslator | None = None,
                      name: str | None = None, sensor_interval: int = 30, resources: dict | None = None,
                      checks: bool = True, executor=dg.in_process_executor) -> dg.Definitions:
    """Every table of ``sources`` (schemas, modules, table classes, or lists of them)
    becomes an asset; foreign keys become dependencies; a sensor follows the database.

    ``partition_root``: a table class or name (inferred when None; False for none).
    ``resources`` adds or replaces resources (``datajoint``, ``dj_io_manager``).
    ``executor``: how a run executes its steps; by default all in the run's process
    (populate steps are database-bound, and a process per step costs seconds). Pass
    ``dagster.multiprocess_executor`` to run steps in parallel processes, or None to
    leave the choice to Dagster's defaults."""
    translator = translator or DataJointTranslator()
    classes = collect_tables(sources)
    plan = make_plan(classes, partition_root)
    key_of = {n: translator.get_asset_key(node.table) for n, node in plan.nodes.items()}
    first = next(iter(plan.nodes.values())).table
    name = safe_name(name or first.database)
    partitions_def = None
    if plan.root is not None:
        root = plan.root_node.table
        partitions_def = dg.DynamicPartitionsDefinition(name=f"{name}__{safe_name(root.table_name.lstrip('_#'))}")
    assets = []
    for group in plan.groups():
        built = build_group_asset(plan, group, translator, partitions_def, key_of)
        assets.extend(built if isinstance(built, list) else [built])
    made = {n for n, node in plan.nodes.items() if populated_by_make(node.cls)}
    in_jobs = [n for n, node in plan.nodes.items() if n in made or node.master in made]
    part_keys = [key_of[n] for n in in_jobs if n in plan.partitioned]
    global_keys = [key_of[n] for n in in_jobs if n not in plan.partitioned]
    partitioned_job = dg.define_asset_job(
        f"{name}_populate_partitions", selection=dg.AssetSelection.assets(*part_keys),
        partitions_def=partitions_def, executor_def=executor) if part_keys else None
    global_job = dg.define_asset_job(f"{name}_populate", selection=dg.AssetSelection.assets(*global_keys),
                                     executor_def=executor) if global_keys else None
    sensor = build_sensor(plan, partitions_def, key_of, partitioned_job, global_job, f"{name}_sensor",
                          sensor_interval, made=made)
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(plan, key_of, made, partitions_def) if checks else None,
        sensors=[sensor],
        jobs=[j for j in (partitioned_job, global_job) if j is not None],
        resources={**_shared_resources(_config_url(first._connection)), **(resources or {})},
        executor=executor,
    )
