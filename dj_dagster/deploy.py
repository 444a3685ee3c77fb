"""Re-runnable deployment steps for an existing pipeline (safe to call from every
deploy hook: a table already configured is reported and left alone).

* :func:`set_replica_identity`: PostgreSQL's ``REPLICA IDENTITY`` (how much of an
  updated or deleted row goes to the write-ahead log, which change-data-capture tools
  read) for a schema's tables or one table.
* :func:`add_prov_column`: the hidden extrinsic-provenance attribute
  (:mod:`dj_dagster.provenance`) on Entry tables declared while
  ``config.provenance.capture`` was off.

One-shot migrations of legacy state live in :mod:`dj_dagster.migrate`.
"""

from __future__ import annotations

from typing import Any

from .errors import DataJointError
from .migrate import add_hidden_columns, resolve_targets

_MODES = ("default", "full")


def _replica_identity_ddl(adapter, connection, schema: str, table: str, mode: str) -> str:
    """``ALTER TABLE ... REPLICA IDENTITY <MODE>`` for ``schema.table`` (the adapter's
    own statement when it provides one)."""
    own = getattr(adapter, "replica_identity_ddl", None)
    if hasattr(adapter, "make_full_table_name"):
        qualified = adapter.make_full_table_name(schema, table)
    else:
        with connection.transaction() as tx:
            qualified = adapter._qualified(tx, schema, table)
    if own is not None:
        return own(qualified, mode)
    return f"ALTER TABLE {qualified} REPLICA IDENTITY {mode.upper()}"


def set_replica_identity(target, mode: str = "full", dry_run: bool = True) -> dict:
    """Set PostgreSQL's ``REPLICA IDENTITY`` of tables: ``"full"`` (the whole old row is
    logged on UPDATE/DELETE, as e.g. Databricks Lakehouse Sync requires) or
    ``"default"`` (the primary key only). Case-insensitive.

    ``target``: a Schema (all its tables), a table class or a table instance.
    ``dry_run`` (default True): only collect the statements. Returns
    ``{"tables_analyzed", "tables_modified" (0 on a dry run), "ddl"}``.
    DataJointError for another mode, another target, an unactivated schema or a
    backend other than PostgreSQL. Re-running is harmless."""
    normalized = mode.lower() if isinstance(mode, str) else mode
    if normalized not in _MODES:
        raise DataJointError(f"set_replica_identity(): mode must be 'default' or 'full'; got {mode!r}")
    connection, tables = resolve_targets(target, lambda name: True, "set_replica_identity")
    adapter = connection.adapter
    backend = getattr(adapter, "backend", None) or getattr(adapter, "name", "?")
    if not hasattr(adapter, "replica_identity_ddl") and backend != "postgresql":
        raise DataJointError(f"set_replica_identity is PostgreSQL-only; the {backend} backend has no "
                             f"REPLICA IDENTITY (target: {target!r})")
    result: dict[str, Any] = {"tables_analyzed": len(tables), "tables_modified": 0, "ddl": []}
    result["ddl"] = [_replica_identity_ddl(adapter, connection, s, t, normalized) for s, t in tables]
    if not dry_run:
        for statement in result["ddl"]:
            connection.query(statement)
            result["tables_modified"] += 1
    return result


def add_prov_column(target, dry_run: bool = True) -> dict:
    """Add the hidden ``_prov`` attribute to Entry (``Manual``) tables that lack it, as
    capture-on declaration would have made it. ``target``: a Schema (its Entry tables),
    a table class or a table instance (left alone unless an Entry table).
    ``dry_run`` (default True): report without changing anything.

    Returns ``tables_analyzed`` (Entry tables looked at), ``tables_modified`` and
    ``columns_added`` (work done: 0 on a dry run), ``ddl`` (statements run, or to run)
    and ``details``: per table ``table`` and ``status`` (``"pending"``, ``"added"`` or
    ``"already_present"``). Rows already present keep NULL; new rows carry a record
    while ``config.provenance.capture`` is on."""
    from .provenance import prov_attribute
    from .user_tables import Manual, is_tier

    def entry(name):
        return is_tier(name, Manual)

    connection, tables = resolve_targets(target, entry, "add_prov_column")
    result: dict[str, Any] = {"tables_analyzed": 0, "tables_modified": 0, "columns_added": 0, "ddl": [],
                              "details": []}
    for schema, table in tables:
        if not entry(table):
            continue
        result["tables_analyzed"] += 1
        report = add_hidden_columns(connection, schema, table, [prov_attribute()], dry_run)
        if not report["missing"]:
            result["details"].append({"table": report["table"], "status": "already_present"})
            continue
        result["ddl"].extend(report["ddl"])
        result["details"].append({"table": report["table"], "status": "pending" if dry_run else "added"})
        if not dry_run:
            result["tables_modified"] += 1
            result["columns_added"] += 1
    return result
