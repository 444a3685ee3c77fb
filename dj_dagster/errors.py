"""One exception hierarchy, so callers can catch ``dj.DataJointError`` for anything
the library raises on purpose, and messages say what was wrong and where."""

from __future__ import annotations


class DataJointError(Exception):
    """Base of every error dj_dagster raises on purpose."""


class DeclarationError(DataJointError):
    """A table definition that cannot be declared (names the table and line)."""


class QueryError(DataJointError):
    """A query expression that cannot be built (bad restriction, projection, join)."""


class DataError(DataJointError):
    """A row or value that does not fit its table (names table, row and attribute)."""


class DuplicateError(DataError):
    """A row whose primary key is already present."""


class IntegrityError(DataError):
    """A foreign key, part-table or make-consistency violation."""


class MissingTableError(DataJointError):
    """A table that the database does not hold."""


class NotInStoreError(DataJointError):
    """A stored object that the row refers to but the store does not hold."""


class TransientError(DataJointError):
    """A statement lost a deadlock or a lock wait: the same work may succeed if retried."""


class ConnectionError_(DataJointError):
    """The database cannot be reached (the URL's password is never shown)."""


class SemanticJoinError(QueryError):
    """Namesake attributes of different lineage met in a join."""
