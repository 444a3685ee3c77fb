"""dj_dagster: DataJoint's relational workflow model on SQLAlchemy, driven by Dagster.

``import dj_dagster as dj`` gives the DataJoint 2.x API; the Dagster face is in
``dj_dagster.dagster`` (imported on demand, so the relational core never needs it).
"""

from .condition import AndList, Not, Top
from .connection import Connection, conn
from .errors import (DataError, DataJointError, TransientError, DeclarationError, DuplicateError, IntegrityError,
                     MissingTableError, QueryError, SemanticJoinError)
from .expression import QueryExpression, U
from .schema import Schema, VirtualModule, list_schemas, virtual_schema
from .settings import config
from .user_tables import Computed, Imported, Lookup, Manual, Part
from .codecs import Codec
from .diagram import Diagram

__version__ = "0.1.0"


def gc(schema_or_connection, store=None, dry_run: bool = True):
    """Objects in the stores that no row references; removed when ``dry_run=False``."""
    from .external import gc as _gc

    return _gc(schema_or_connection, store=store, dry_run=dry_run)

schema = Schema


__all__ = [
    "AndList", "Not", "Top", "Connection", "conn", "DataError", "DataJointError", "DeclarationError",
    "DuplicateError", "IntegrityError", "MissingTableError", "QueryError", "SemanticJoinError",
    "QueryExpression", "U", "Schema", "VirtualModule", "list_schemas", "virtual_schema", "config",
    "Computed", "Imported", "Lookup", "Manual", "Part", "Codec", "Diagram", "schema", "gc",
]
