"""Assets from a pipeline plan: Manual tables are external assets (their data arrives
from outside and is recorded by the sensor); Lookup tables materialize their
contents; Imported and Computed tables, with their parts, are one multi-asset each that
populates the selected partitions."""

from __future__ import annotations

import time

import dagster as dg

from ..partition_keys import decode_key
from .plan import PipelinePlan, TableNode
from .translator import DataJointTranslator

MAX_ERRORS_SHOWN = 20


def has_make(cls) -> bool:
    """Lookup tables materialize their contents; auto-populated tables need a make."""
    from ..autopopulate import AutoPopulate

    if cls.tier == "Lookup":
        return True
    if cls.tier not in ("Imported", "Computed"):
        return False
    own_make = getattr(cls, "make", None) is not getattr(AutoPopulate, "make", None)
    three = all(callable(getattr(cls, n, None)) for n in ("make_fetch", "make_compute", "make_insert"))
    return own_make or three


def partition_restrictions(plan: PipelinePlan, partition_keys: list[str]) -> list[dict]:
    root = plan.root_node.table
    pk = root.heading.primary_key
    return [decode_key(root.heading, k, pk, table=root.full_table_name) for k in partition_keys]


def _materialize_metadata(translator: DataJointTranslator, table, extra: dict, full: bool) -> dict:
    """Counts always; the schema and definition text too unless the run covers many
    partitions (Dagster stores the metadata once per partition; the asset's own
    definition metadata carries them anyway)."""
    meta = {"dagster/row_count": len(table)}
    if full:
        meta["dj/definition"] = dg.MetadataValue.md(f"```\n{table.describe()}```")
        meta["dagster/column_schema"] = translator.get_column_schema(table)
    meta.update(extra)
    return meta


def build_group_asset(plan: PipelinePlan, group: list[TableNode], translator: DataJointTranslator,
                      partitions_def, key_of: dict[str, dg.AssetKey]):
    master = group[0]
    is_partitioned = master.full_name in plan.partitioned
    pdef = partitions_def if is_partitioned else None
    specs = []
    for node in group:
        deps = [key_of[p] for p in node.parents if p in key_of and p != node.full_name]
        specs.append(translator.get_asset_spec(node.table, deps, pdef))
    if master.tier == "Manual" or not has_make(master.cls):
        return specs  # external: recorded by the sensor, never materialized by a run
    name = f"{translator.get_group_name(master.table)}__{key_of[master.full_name].path[-1]}"
    policy = dg.BackfillPolicy.single_run() if pdef is not None else None

    @dg.multi_asset(name=name, specs=specs, partitions_def=pdef, backfill_policy=policy, can_subset=False,
                    op_tags={"dj/table": master.full_name})
    def _materialize(context):
        table = master.table
        start = time.perf_counter()
        if master.tier == "Lookup":
            contents = list(type(table).contents or [])
            before = len(table)
            if contents:
                table.insert(contents, skip_duplicates=True)
            extra = {"dj/rows_inserted": len(table) - before}
        else:
            restrictions = []
            if pdef is not None:
                restrictions = partition_restrictions(plan, list(context.partition_keys))
            if restrictions:
                result = table.populate(restrictions, reserve_jobs=True, suppress_errors=True)
            else:
                result = table.populate(reserve_jobs=True, suppress_errors=True)
            errors = result["error_list"]
            if errors:
                shown = "\n".join(f"- {k}: {type(e).__name__}: {e}" for k, e in errors[:MAX_ERRORS_SHOWN])
                raise dg.Failure(
                    description=f"{len(errors)} key(s) of {table.full_table_name} failed:\n{shown}",
                    metadata={"dj/keys_failed": len(errors), "dj/keys_computed": result["success_count"],
                              "dj/errors": dg.MetadataValue.md(shown)})
            extra = {"dj/keys_computed": result["success_count"], "dj/keys_failed": 0}
        extra["dj/duration_s"] = round(time.perf_counter() - start, 3)
        full = pdef is None or len(context.partition_keys) == 1
        for node in group:
            yield dg.MaterializeResult(asset_key=key_of[node.full_name],
                                       metadata=_materialize_metadata(translator, node.table, extra, full))

    return _materialize
