"""Assets from a pipeline plan: Manual tables, and tables filled outside ``make``, are
external assets (their data arrives from outside and is recorded by the sensor); Lookup
tables materialize their contents; Imported and Computed tables, with their parts, are
one multi-asset each that populates the selected partitions and reports, per partition,
its own rows, keys computed and keys failed."""

from __future__ import annotations

import ast
import inspect
import textwrap
import time

import dagster as dg

from ..expression import U
from ..partition_keys import decode_key, encode_key
from .plan import PipelinePlan, TableNode
from .translator import DataJointTranslator

MAX_ERRORS_SHOWN = 20


def _raises_not_implemented_only(fn) -> bool:
    """True when ``fn``'s body is (a docstring and) ``raise NotImplementedError...``:
    the convention for Imported tables filled by direct inserts."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    func = tree.body[0] if tree.body else None
    if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return False
    body = [b for b in func.body if not (isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant))]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].exc is None:
        return False
    exc = body[0].exc.func if isinstance(body[0].exc, ast.Call) else body[0].exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def populated_by_make(cls) -> bool:
    """An Imported or Computed table whose rows come from its make (or the three-part
    make). Those without one, or whose make only raises NotImplementedError, are filled
    by direct inserts: Dagster observes them instead of running them."""
    from ..autopopulate import AutoPopulate

    if cls.tier not in ("Imported", "Computed"):
        return False
    three = all(callable(getattr(cls, n, None)) for n in ("make_fetch", "make_compute", "make_insert"))
    make = getattr(cls, "make", None)
    own_make = make is not getattr(AutoPopulate, "make", None) and not _raises_not_implemented_only(make)
    return own_make or three


def has_make(cls) -> bool:
    """Lookup tables materialize their contents; auto-populated tables need a make."""
    return cls.tier == "Lookup" or populated_by_make(cls)


def partition_restrictions(plan: PipelinePlan, partition_keys: list[str]) -> list[dict]:
    root = plan.root_node.table
    pk = root.heading.primary_key
    return [decode_key(root.heading, k, pk, table=root.full_table_name) for k in partition_keys]


def counts_by_partition(expr, heading, pk) -> dict[str, int]:
    """Rows of ``expr`` per partition key (one grouped query)."""
    return {encode_key(heading, r, pk): int(r["n"]) for r in U(*pk).aggr(expr, n="count(*)").to_dicts()}


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


def add_partition_metadata(context, entries: list[tuple[dg.AssetKey, str, dict]]) -> None:
    """Metadata for each (asset, partition) of the run's materializations. Dagster's
    ``add_asset_metadata`` re-reads every dynamic partition on each call (quadratic in a
    backfill), so the step's accumulator takes the entries directly; the public call is
    the fallback should that internal change."""
    step = context.get_step_execution_context()
    accumulator = getattr(step, "_metadata_accumulator", None)
    if accumulator is None or not hasattr(accumulator, "with_additional_asset_metadata"):
        for asset_key, partition, metadata in entries:
            context.add_asset_metadata(metadata, asset_key=asset_key, partition_key=partition)
        return
    for asset_key, partition, metadata in entries:
        accumulator = accumulator.with_additional_asset_metadata(asset_key=asset_key, partition_key=partition,
                                                                 metadata=metadata)
    step._metadata_accumulator = accumulator


def _lineage(translator, node: TableNode, key_of) -> dg.TableColumnLineage | None:
    return translator.get_column_lineage(node.table, {p: key_of[p] for p in node.parents if p in key_of})


def _failure(table, errors, success_count) -> dg.Failure:
    shown = "\n".join(f"- {k}: {type(e).__name__}: {e}" for k, e in errors[:MAX_ERRORS_SHOWN])
    return dg.Failure(
        description=f"{len(errors)} key(s) of {table.full_table_name} failed:\n{shown}",
        metadata={"dj/keys_failed": len(errors), "dj/keys_computed": success_count,
                  "dj/errors": dg.MetadataValue.md(shown)})
def build_group_asset(plan: PipelinePlan, group: list[TableNode], translator: DataJointTranslator,
                      partitions_def, key_of: dict[str, dg.AssetKey]):
    master = group[0]
    is_partitioned = master.full_name in plan.partitioned
    pdef = partitions_def if is_partitioned else None
    specs = []
    for node in group:
        deps = [key_of[p] for p in node.parents if p in key_of and p != node.full_name]
        spec = translator.get_asset_spec(node.table, deps, pdef)
        lineage = _lineage(translator, node, key_of)
        if lineage is not None:
            spec = spec.merge_attributes(metadata={"dagster/column_lineage": lineage})
        specs.append(spec)
    if master.tier == "Manual" or not has_make(master.cls):
        return specs  # external: recorded by the sensor, never materialized by a run
    name = f"{translator.get_group_name(master.table)}__{key_of[master.full_name].path[-1]}"
    policy = dg.BackfillPolicy.single_run() if pdef is not None else None

    @dg.multi_asset(name=name, specs=specs, partitions_def=pdef, backfill_policy=policy, can_subset=False,
                    op_tags={"dj/table": master.full_name})
    def _materialize(context):
        table = master.table
        start = time.perf_counter()
        if master.tier != "Lookup" and pdef is not None:
            yield from _populate_partitions(context, plan, group, translator, key_of, start)
            return
        if master.tier == "Lookup":
            contents = list(type(table).contents or [])
            before = len(table)
            if contents:
                table.insert(contents, skip_duplicates=True)
            extra = {"dj/rows_inserted": len(table) - before}
        else:
            result = table.populate(reserve_jobs=True, suppress_errors=True, return_exception_objects=True)
            if result["error_list"]:
                raise _failure(table, result["error_list"], result["success_count"])
            extra = {"dj/keys_computed": result["success_count"], "dj/keys_failed": 0}
        extra["dj/duration_s"] = round(time.perf_counter() - start, 3)
        full = pdef is None or len(context.partition_keys) == 1
        for node in group:
            yield dg.MaterializeResult(asset_key=key_of[node.full_name],
                                       metadata=_materialize_metadata(translator, node.table, extra, full))

    return _materialize


def _populate_partitions(context, plan: PipelinePlan, group: list[TableNode], translator, key_of, start):
    """Populate the run's partitions and report each partition's own rows, keys computed
    and keys failed. When keys fail, the partitions that completed are still recorded as
    materialized and the run fails naming the failed keys."""
    master = group[0]
    table = master.table
    keys = list(context.partition_keys)
    root = plan.root_node.table
    heading, pk = root.heading, root.heading.primary_key
    restrictions = partition_restrictions(plan, keys)
    before = counts_by_partition(table._todo((restrictions,)), heading, pk)
    result = table.populate(restrictions, reserve_jobs=True, suppress_errors=True, return_exception_objects=True)
    after = counts_by_partition(table._todo((restrictions,)), heading, pk)
    failed: dict[str, int] = {}
    for key, _ in result["error_list"]:
        k = encode_key(heading, key, pk)
        failed[k] = failed.get(k, 0) + 1
    rows = {node.full_name: counts_by_partition(node.table & restrictions, heading, pk) for node in group}
    duration = round(time.perf_counter() - start, 3)

    def own(node, k) -> dict:
        return {"dagster/row_count": rows[node.full_name].get(k, 0),
                "dj/keys_computed": before.get(k, 0) - after.get(k, 0), "dj/keys_failed": failed.get(k, 0)}

    if result["error_list"]:
        for k in keys:
            if failed.get(k) or after.get(k):
                continue
            for node in group:
                yield dg.AssetMaterialization(asset_key=key_of[node.full_name], partition=k,
                                              metadata={**own(node, k), "dj/run_duration_s": duration})
        raise _failure(table, result["error_list"], result["success_count"])
    add_partition_metadata(context, [(key_of[node.full_name], k, own(node, k)) for node in group for k in keys])
    for node in group:
        common = {"dj/run_duration_s": duration}
        if len(keys) == 1:
            common["dj/definition"] = dg.MetadataValue.md(f"```\n{node.table.describe()}```")
            common["dagster/column_schema"] = translator.get_column_schema(node.table)
            lineage = _lineage(translator, node, key_of)
            if lineage is not None:
                common["dagster/column_lineage"] = lineage
        yield dg.MaterializeResult(asset_key=key_of[node.full_name], metadata=common)
