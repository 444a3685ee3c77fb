"""One-shot migrations of existing schemas.

:func:`add_job_metadata_columns` gives Computed and Imported tables declared while
``config.jobs.add_job_metadata`` was off the three hidden job-metadata columns
(``_job_start_time``, ``_job_duration``, ``_job_version``), built exactly as a new
declaration builds them, so that ``populate()`` fills them from then on.

:func:`add_hidden_columns` is the shared step (also used by :mod:`dj_dagster.deploy`).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import sqlalchemy as sa

from . import catalog
from .errors import DataJointError

log = logging.getLogger(__name__)

#: The core type a migration labels a legacy MySQL column with (in its ``:type:``
#: comment), by native type. Core types have no unsigned integers: an unsigned column is
#: labeled with the next wider signed type (``bigint unsigned`` has none wider and is
#: labeled int64: values above 2**63-1 would not survive a re-declaration). Every blob
#: size is ``<blob>``.
NATIVE_TO_CORE_TYPE: dict[str, str] = {
    **{f"{native} unsigned": core for native, core in
       (("tinyint", "int16"), ("smallint", "int32"), ("mediumint", "int32"), ("int", "int64"), ("bigint", "int64"))},
    "tinyint": "int8", "smallint": "int16", "mediumint": "int32", "int": "int32", "bigint": "int64",
    "float": "float32", "double": "float64",
    **{size + "blob": "<blob>" for size in ("tiny", "", "medium", "long")},
}


def resolve_targets(target, tier_test, what: str) -> tuple[Any, list[tuple[str, str]]]:
    """``(connection, [(schema, table), ...])`` of ``target``: a Schema (its tables for
    which ``tier_test(table_name)`` holds), a table class or a table instance (that
    table, whatever its tier). DataJointError for anything else, or an unactivated
    schema."""
    from .schema import Schema
    from .table import Table

    if isinstance(target, Schema):
        if target.database is None:
            raise DataJointError(f"Schema is not activated. Call schema.activate(...) before {what}().")
        names = [n for n in target.list_tables() if tier_test(n)]
        return target.connection, [(target.database, n) for n in names]
    if isinstance(target, type) and issubclass(target, Table):
        target = target()
    if isinstance(target, Table):
        schema, table = catalog.split_name(target.full_table_name)
        return target.connection, [(schema, table)]
    raise DataJointError(f"{what}(): target must be a Schema or Table class/instance; got {type(target).__name__}")


def existing_columns(connection, schema: str, table: str) -> set[str]:
    """The column names ``schema.table`` has now in the database (not the cached heading)."""
    sa_schema, sa_name = connection.adapter.table_address(schema, table)
    with connection.transaction() as tx:
        return {c["name"] for c in sa.inspect(tx).get_columns(sa_name, schema=sa_schema)}


def add_hidden_columns(connection, schema: str, table: str, attributes: Iterable, dry_run: bool) -> dict:
    """Add those of ``attributes`` (:class:`dj_dagster.heading.Attribute`, secondary and
    nullable or defaulted) that ``schema.table`` lacks, with the type, default and
    ``:type:`` comment a declaration gives them, in one transaction. Returns
    ``{"table", "missing" (names), "ddl" (the ALTER statements)}``; with ``dry_run``
    nothing is changed. The connection's cached heading of the table is refreshed."""
    adapter = connection.adapter
    present = existing_columns(connection, schema, table)
    missing = [a for a in attributes if a.name not in present]
    report = {"table": f"{schema}.{table}", "missing": [a.name for a in missing], "ddl": []}
    if not missing:
        return report
    columns = [catalog.build_column(adapter, a, schema, table) for a in missing]
    with connection.transaction() as tx:
        qualified = adapter._qualified(tx, schema, table)
        report["ddl"] = [f"ALTER TABLE {qualified} ADD COLUMN {sa.schema.CreateColumn(c).compile(dialect=tx.dialect)}"
                         for c in columns]
    if dry_run:
        return report
    if connection.in_transaction:  # DDL would commit the open transaction on MySQL
        raise DataJointError(f"Cannot add {report['missing']} to {schema}.{table} inside a transaction")
    try:
        with connection.transaction() as tx:
            for column in columns:
                adapter.add_column(tx, schema, table, column)
    except sa.exc.DBAPIError as exc:
        raise DataJointError(f"Cannot add {report['missing']} to {schema}.{table}: {exc.orig}") from None
    finally:
        catalog.forget(connection, schema, table)
    for name in report["missing"]:
        log.info("added hidden column %s to %s.%s", name, schema, table)
    return report


def _auto_populated(table_name: str) -> bool:
    from .user_tables import Computed, Imported, is_tier

    return is_tier(table_name, Computed) or is_tier(table_name, Imported)


def add_job_metadata_columns(target, dry_run: bool = True) -> dict:
    """Add the hidden job-metadata columns to Computed/Imported tables declared without
    them. ``target``: a Schema (its Computed and Imported tables), or a table class or
    instance (other tiers are counted but left alone). ``dry_run`` (default True):
    report without changing anything.

    Returns ``tables_analyzed``, ``tables_modified`` and ``columns_added`` (what was, or
    with ``dry_run`` would be, changed) and ``details``: per table ``table``, ``status``
    (``"pending"``, ``"migrated"`` or ``"already_migrated"``), ``columns_added`` and
    ``sql_statements``. Rows already present keep NULL (``_job_version``: "");
    ``populate()`` fills the columns of new rows."""
    from .declare import job_metadata_attributes

    connection, tables = resolve_targets(target, _auto_populated, "add_job_metadata_columns")
    result: dict[str, Any] = {"tables_analyzed": 0, "tables_modified": 0, "columns_added": 0, "details": []}
    for schema, table in tables:
        result["tables_analyzed"] += 1
        if not _auto_populated(table):
            continue
        report = add_hidden_columns(connection, schema, table, job_metadata_attributes(), dry_run)
        added = len(report["missing"])
        status = "already_migrated" if not added else "pending" if dry_run else "migrated"
        result["details"].append({"table": report["table"], "status": status, "columns_added": added,
                                  "sql_statements": report["ddl"]})
        if added:
            result["tables_modified"] += 1
            result["columns_added"] += added
    return result
