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


class QuerySyntaxError(QueryError):
    """SQL the server cannot parse (a string restriction, ``conn.query``)."""


class AccessError(QueryError):
    """The database user lacks a privilege the operation needs."""


class UnknownAttributeError(QueryError):
    """A name that is not an attribute of the table or query."""


class MissingAttributeError(QueryError):
    """A row without a value for a required attribute."""


class DuplicateError(DataError, QueryError):
    """A row whose primary key is already present."""


class IntegrityError(DataError, QueryError):
    """A foreign key, part-table or make-consistency violation."""


class MissingTableError(DataJointError):
    """A table that the database does not hold."""


class NotInStoreError(DataJointError):
    """A stored object that the row refers to but the store does not hold."""


class TransientError(DataJointError):
    """A statement lost a deadlock or a lock wait: the same work may succeed if retried."""


class ConnectionError_(DataJointError):
    """The database cannot be reached (the URL's password is never shown)."""


LostConnectionError = ConnectionError_  # datajoint's name


class MissingExternalFile(DataJointError):
    """A file that an attachment or filepath refers to is not where it should be."""


class BucketInaccessible(DataJointError):
    """An object store's bucket cannot be reached."""


class BlobError(DataJointError):
    """A value that cannot be packed into, or unpacked from, a blob."""


class BlobFormatError(BlobError, ValueError):
    """Bytes that are not a valid blob: truncated, corrupt, malformed, or claiming more
    memory than they can hold or than ``dj.config["blob_max_bytes"]`` allows."""


class WorkerError(DataJointError):
    """A make's error relayed from a ``populate(processes=N)`` worker, as its text
    (``Class: message``)."""


class ThreadSafetyError(DataJointError):
    """A global connection or setting used where thread-safe mode forbids it."""


_MESSAGE_TYPES = (  # (fragment of a driver message, lower case) -> our error, first match wins
    (("unknown column", "no such column", "column \"", "has no column named"), UnknownAttributeError),
    (("duplicate entry", "duplicate key", "unique constraint failed"), DuplicateError),
    (("foreign key", "cannot delete or update a parent row", "violates", "constraint failed"), IntegrityError),
    (("doesn't exist", "does not exist", "no such table", "unknown database"), MissingTableError),
    (("access denied", "permission denied", "command denied"), AccessError),
    (("syntax", "parse error"), QuerySyntaxError),
    (("lost connection", "server has gone away", "connection refused", "terminating connection",
      "server closed the connection"), ConnectionError_),
)


def translate_driver_error(exc: BaseException, adapter=None) -> BaseException:
    """The DataJointError subclass for an exception a database driver (or SQLAlchemy
    around it) raised, keeping the driver's message; other exceptions are returned as
    they are. Used where user SQL reaches the server (``conn.query``, string
    restrictions)."""
    if isinstance(exc, DataJointError):
        return exc
    orig = getattr(exc, "orig", None) or exc
    module = type(orig).__module__.split(".")[0]
    if module not in ("pymysql", "psycopg", "psycopg2", "sqlite3", "MySQLdb", "sqlalchemy"):
        return exc
    message = str(orig)
    lower = message.lower()
    for fragments, kind in _MESSAGE_TYPES:
        if any(f in lower for f in fragments):
            return kind(message)
    return QueryError(message)


class UnknownFieldError(DataError, UnknownAttributeError, KeyError):
    """A row (insert, update) naming an attribute the table lacks; a KeyError too, as
    datajoint raises for it."""

    __str__ = Exception.__str__  # KeyError's would quote the message


class MissingValueError(DataError, MissingAttributeError):
    """A row without a value for an attribute that has no default and is not nullable."""


class SemanticJoinError(QueryError):
    """Namesake attributes of different lineage met in a join."""
