"""One call from DataJoint schemas to ``dagster.Definitions``."""

from __future__ import annotations

import dagster as dg

from .assets import build_group_asset
from .checks import build_checks
from .plan import collect_tables, make_plan
from .resources import TABLES_BY_ASSET, DataJointIOManager
from .sensors import build_sensor
from .translator import DataJointTranslator, safe_name


_IO_MANAGER = DataJointIOManager()  # one instance, so Definitions of several pipelines merge


def build_definitions(*sources, partition_root=None, translator: DataJointTranslator | None = None,
                      name: str | None = None, sensor_interval: int = 30, resources: dict | None = None,
                      checks: bool = True) -> dg.Definitions:
    """Every table of ``sources`` (schemas, modules, table classes) becomes an asset;
    foreign keys become dependencies; a sensor follows the database."""
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
    for full_name, node in plan.nodes.items():
        TABLES_BY_ASSET[key_of[full_name].to_user_string()] = (node.cls, plan)
    computed = [n for n in plan.nodes.values() if n.tier in ("Imported", "Computed")]
    part_keys = [key_of[n.full_name] for n in computed if n.full_name in plan.partitioned]
    global_keys = [key_of[n.full_name] for n in computed if n.full_name not in plan.partitioned]
    part_keys += [key_of[n.full_name] for n in plan.nodes.values() if n.master and
                  plan.nodes[n.master].tier in ("Imported", "Computed") and n.full_name in plan.partitioned]
    global_keys += [key_of[n.full_name] for n in plan.nodes.values() if n.master and
                    plan.nodes[n.master].tier in ("Imported", "Computed") and n.full_name not in plan.partitioned]
    partitioned_job = dg.define_asset_job(f"{name}_populate_partitions", selection=dg.AssetSelection.assets(
        *part_keys), partitions_def=partitions_def) if part_keys else None
    global_job = dg.define_asset_job(f"{name}_populate", selection=dg.AssetSelection.assets(*global_keys)) \
        if global_keys else None
    sensor = build_sensor(plan, partitions_def, key_of, partitioned_job, global_job, f"{name}_sensor",
                          sensor_interval)
    return dg.Definitions(
        assets=assets,
        asset_checks=build_checks(plan, key_of) if checks else None,
        sensors=[sensor],
        jobs=[j for j in (partitioned_job, global_job) if j is not None],
        resources={"dj_io_manager": _IO_MANAGER, **(resources or {})},
    )
