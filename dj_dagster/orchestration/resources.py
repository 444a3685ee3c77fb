"""Resources: the database connection, and an IO manager that lets plain Dagster assets
read a table (a DataFrame restricted to the partition, blobs decoded) or write one (rows
inserted, codec values encoded).

The IO manager finds its table from the asset's metadata (``dj/table``, set by the
translator) or, for assets declared by hand, from the asset key ``[database, table]``;
the connection comes from its ``database_url``. Dagster stores resource config in every
job snapshot, so a URL holding a password must be given as ``dagster.EnvVar``: a plain
string with a password is refused."""

from __future__ import annotations

import contextvars
from typing import Any

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from pydantic import field_validator

from ..connection import Connection, conn
from ..errors import DataJointError
from ..partition_keys import decode_key

TABLE_METADATA = "dj/table"


# Dagster rebuilds a resource at run time from its resolved config (an EnvVar's value is
# then a plain string): only a URL written in code is refused.
_RESOLVING = contextvars.ContextVar("dj_resolving_resource_config", default=False)


def refuse_plain_password(value):
    """``database_url`` accepts None, ``dagster.EnvVar("NAME")``, or a plain URL without a
    password; a plain URL with one would be written into Dagster's run storage."""
    if value is None or isinstance(value, dg.EnvVar) or not isinstance(value, str) or _RESOLVING.get():
        return value
    try:
        password = sa.make_url(value).password
    except Exception:  # noqa: BLE001 - not a URL: the connection reports it when used
        return value
    if password:
        raise DataJointError(
            "database_url holds a password and would be stored in Dagster's job snapshots; "
            "pass it as dagster.EnvVar('DJ_DATABASE_URL') (or leave it unset to use DJ_DATABASE_URL)")
    return value


class _DatabaseURL:
    def _with_updated_values(self, values):
        """Dagster's run-time rebuild from resolved config. A URL with a password is accepted
        here only as the value of the ``EnvVar`` written in code; one given as run config
        (the launchpad, ``run_config``) is refused as it is in code."""
        current = self.__dict__.get("database_url")
        given = (values or {}).get("database_url")
        trusted = isinstance(current, dg.EnvVar) and (given is None or given == current.get_value())
        token = _RESOLVING.set(trusted)
        try:
            return super()._with_updated_values(values)
        finally:
            _RESOLVING.reset(token)

    def connection(self) -> Connection:
        """The connection for ``database_url``, or the default one (DJ_DATABASE_URL or the
        embedded default) when it is unset."""
        return conn(self.database_url) if self.database_url else conn()

    def __repr__(self) -> str:  # never show the URL
        return f"{type(self).__name__}(database_url=<hidden>)"

    __str__ = __repr__  # pydantic's str() would print the field


class DataJointResource(_DatabaseURL, dg.ConfigurableResource):
    """The pipeline database. Leave ``database_url`` unset to use DJ_DATABASE_URL or the
    embedded default; give it as ``dagster.EnvVar`` when it holds a password."""

    database_url: str | None = None

    @field_validator("database_url", mode="before")
    @classmethod
    def check_database_url(cls, value):
        return refuse_plain_password(value)

    def table(self, name: str):
        """The table ``database.table_name`` (its registered class when this process
        declared it, else one built from the catalog)."""
        from ..schema import table_class

        return table_class(self.connection(), name)()


def table_for_asset(connection: Connection, asset_key: dg.AssetKey, metadata) -> Any:
    """The table behind an asset: ``dj/table`` from its metadata, else the table of
    database ``asset_key.path[0]`` whose name without tier prefix is ``path[-1]``."""
    from ..schema import Schema, table_class

    name = (metadata or {}).get(TABLE_METADATA)
    name = getattr(name, "value", name)
    if name:
        return table_class(connection, str(name))()
    path = asset_key.path
    if len(path) >= 2:
        try:
            schema = Schema(path[0], connection=connection, create_schema=False, create_tables=False)
            tables = [t for t in schema.list_tables() if t.lstrip("_#") == path[-1]]
        except DataJointError:
            tables = []
        if len(tables) == 1:
            return table_class(connection, f"{path[0]}.{tables[0]}")()
    raise DataJointError(f"Asset {asset_key.to_user_string()} is not a DataJoint table: it has no "
                         f"'{TABLE_METADATA}' metadata and no table of that name exists")


def _restrict(table, context) -> Any:
    """Restrict to the run's partitions; a partition key names its attributes
    (``subject=m1/session=2``), all of them in the primary key of a partitioned table."""
    if not context.has_asset_partitions:
        return table
    heading = table.heading
    keys = []
    for text in context.asset_partition_keys:
        names = [part.partition("=")[0] for part in text.split("/")]
        keys.append(decode_key(heading, text, names, table=table.full_table_name))
    return table & keys


class DataJointIOManager(_DatabaseURL, dg.ConfigurableIOManager):
    """Reads table assets as DataFrames; writes DataFrames or row lists into tables.
    ``database_url`` as for :class:`DataJointResource`."""

    database_url: str | None = None

    @field_validator("database_url", mode="before")
    @classmethod
    def check_database_url(cls, value):
        return refuse_plain_password(value)

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        upstream = context.upstream_output
        metadata = upstream.definition_metadata if upstream is not None else None
        table = table_for_asset(self.connection(), context.asset_key, metadata)
        return _restrict(table, context).to_pandas()

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        if obj is None:
            return
        table = table_for_asset(self.connection(), context.asset_key, context.definition_metadata)
        rows = obj.to_dict("records") if isinstance(obj, pd.DataFrame) else obj
        before = len(table)
        table.insert(rows, skip_duplicates=True, allow_direct_insert=True)
        context.add_output_metadata({"dagster/row_count": len(table), "dj/rows_inserted": len(table) - before})
