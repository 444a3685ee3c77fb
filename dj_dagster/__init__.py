"""dj_dagster: DataJoint's relational workflow model on SQLAlchemy, driven by Dagster.

``import dj_dagster as dj`` gives the DataJoint 2.x API; the Dagster face is in
``dj_dagster.orchestration`` (imported on demand, so the relational core never needs it).
"""

from .condition import AndList, Not, Top
from .connection import Connection, conn
from .errors import (DataError, DataJointError, TransientError, DeclarationError, DuplicateError, IntegrityError,
                     MissingTableError, QueryError, SemanticJoinError)
from .expression import QueryExpression, U
from .schema import Schema, VirtualModule, list_schemas, virtual_schema
from .settings import config
from .user_tables import Compute, Computed, Entry, Imported, Ingest, Lookup, Manual, Part
from .codecs import Codec, get_codec, list_codecs
from .builtin_codecs import NpyRef, SchemaCodec
from .objectref import ObjectRef
from .blob import MatCell, MatStruct
from .storage_adapter import StorageAdapter, get_storage_adapter
from .spark import SparkAdapter
from . import errors, utils  # dj.utils.user_choice asks every safe-mode question
from .errors import ThreadSafetyError
from .instance import Instance
from .logging import logger
from .table import FreeTable, Table
from .autopopulate import AutoPopulate
from .version import __version__
from .insert_rows import ValidationResult

# loaded on first use: they import heavy libraries (networkx, argparse's console)
_LAZY = {"Diagram": (".diagram", "Diagram"), "diagram": (".diagram", None), "cli": (".cli", "cli")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(module_name, __name__)
    value = module if attribute is None else getattr(module, attribute)
    globals()[name] = value
    return value


from . import gc  # noqa: E402  (a module, callable as dj.gc(schema_or_connection, store=None, dry_run=True))
from . import deploy, migrate, provenance  # noqa: E402  (dj.deploy.add_prov_column, dj.migrate.add_job_metadata_columns)

schema = Schema


__all__ = [
    "AndList", "Not", "Top", "Connection", "conn", "DataError", "DataJointError", "DeclarationError",
    "DuplicateError", "IntegrityError", "MissingTableError", "QueryError", "SemanticJoinError",
    "QueryExpression", "U", "Schema", "VirtualModule", "list_schemas", "virtual_schema", "config",
    "Computed", "Imported", "Lookup", "Manual", "Part", "Entry", "Ingest", "Compute", "Codec", "Diagram", "schema", "gc",
    "get_codec", "list_codecs", "SchemaCodec", "ObjectRef", "NpyRef", "MatCell", "MatStruct", "StorageAdapter",
    "get_storage_adapter", "SparkAdapter",
    "ValidationResult", "errors", "ThreadSafetyError", "Instance", "logger", "Table", "FreeTable", "AutoPopulate", "cli",
    "__version__", "TransientError", "utils", "deploy", "migrate", "provenance",
]
