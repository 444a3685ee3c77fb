"""Resources: the database connection and an IO manager that lets plain Dagster
assets read a table (a DataFrame restricted to the partition, blobs decoded) or write
one (rows inserted, codec values encoded). The URL is usually an ``EnvVar`` so that a
password never reaches config, logs or metadata."""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from ..connection import Connection, conn
from ..errors import DataJointError
from ..partition_keys import decode_key

# asset key (user string) -> (table class, plan) ; filled by build_definitions
TABLES_BY_ASSET: dict[str, tuple[type, Any]] = {}


class DataJointResource(dg.ConfigurableResource):
    """The pipeline database. Leave ``database_url`` unset to use DJ_DATABASE_URL or the
    embedded default."""

    database_url: str | None = None

    def connection(self) -> Connection:
        return conn(self.database_url) if self.database_url else conn()

    def __repr__(self) -> str:  # never show the URL
        return "DataJointResource(database_url=<hidden>)"

    __str__ = __repr__  # pydantic's str() would print the field


def _table_for(key: dg.AssetKey):
    try:
        return TABLES_BY_ASSET[key.to_user_string()]
    except KeyError:
        raise DataJointError(f"Asset {key.to_user_string()} is not a DataJoint table of any loaded pipeline") from None


def _restrict(table, plan, context) -> Any:
    if plan is None or plan.root is None or table.full_table_name not in plan.partitioned:
        return table
    if not context.has_asset_partitions:
        return table
    root = plan.root_node.table
    pk = root.heading.primary_key
    keys = [decode_key(root.heading, k, pk, table=root.full_table_name) for k in context.asset_partition_keys]
    return table & keys


class DataJointIOManager(dg.ConfigurableIOManager):
    """Reads table assets as DataFrames; writes DataFrames or row lists into tables."""

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        cls, plan = _table_for(context.asset_key)
        return _restrict(cls(), plan, context).to_pandas()

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        cls, _ = _table_for(context.asset_key)
        table = cls()
        rows = obj.to_dict("records") if isinstance(obj, pd.DataFrame) else obj
        before = len(table)
        table.insert(rows, skip_duplicates=True, allow_direct_insert=True)
        context.add_output_metadata({"dagster/row_count": len(table), "dj/rows_inserted": len(table) - before})
