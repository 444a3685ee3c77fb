"""References to objects in object stores, returned by fetches of ``<object@>``,
``<filepath@>`` (:class:`ObjectRef`) and ``<npy@>`` (:class:`NpyRef`) attributes:
metadata without I/O, contents on demand. Defined in :mod:`dj_dagster.external`."""

from .external import ExternalStoreError as IntegrityError  # a stored object does not match its metadata
from .external import NpyRef, ObjectRef

__all__ = ["ObjectRef", "NpyRef", "IntegrityError"]
