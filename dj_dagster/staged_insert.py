"""Staged inserts: write an ``<object@>`` attribute's content straight into its store
(a file, or a folder such as a zarr store), then insert the row with the metadata
computed from what was written::

    with table.staged_insert1 as staged:
        staged.rec["subject_id"] = 123                  # the primary key first
        with staged.open("raw", ".bin") as f:            # a file ...
            f.write(data)
        z = zarr.open(staged.store("arr", ".zarr"))      # ... or a folder (an fsspec FSMap)

If the block raises, the row is not inserted and what was written is removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import IO, Any, Iterator

from .errors import DataJointError

__all__ = ["StagedInsert", "staged_insert1"]


class StagedInsert:
    """One row being staged: ``rec`` (the row's values), ``store(field, ext)`` (an FSMap
    for a folder), ``open(field, ext, mode)`` (a file), ``fs`` (the default store's fsspec
    filesystem)."""

    def __init__(self, table) -> None:
        self._table = table
        self._rec: dict[str, Any] = {}
        self._staged: dict[str, tuple[str, str | None, Any]] = {}  # field -> (path, ext, backend)

    @property
    def rec(self) -> dict[str, Any]:
        """The row's values; set the primary key before ``store()`` or ``open()``."""
        return self._rec

    @property
    def fs(self):
        """The fsspec filesystem of the default store."""
        from .hash_registry import get_store_backend

        return get_store_backend(None).fs

    def _target(self, field: str, ext: str):
        if field in self._staged:
            path, _, backend = self._staged[field]
            return path, backend
        from .external import _store, object_path
        from .hash_registry import get_store_backend
        from .storage import StorageBackend

        heading = self._table.heading
        if field not in heading.names:
            raise DataJointError(f"{self._table.full_table_name}: attribute {field!r} not found in the table heading")
        attr = heading[field]
        if attr.codec != "object":
            raise DataJointError(f"{self._table.full_table_name}: attribute {field!r} is not an <object@> attribute")
        key = {k: self._rec[k] for k in self._table.primary_key if k in self._rec}
        missing = [k for k in self._table.primary_key if k not in key]
        if missing:
            raise DataJointError(f"Primary key values must be set in staged.rec before store() or open() "
                                 f"({self._table.full_table_name}: missing {missing})")
        store = _store(attr.type.store)
        path = object_path(store, self._table.database, self._table.table_name, field, key, ext or None)
        backend = StorageBackend.of_store(store) if store is not None else get_store_backend(None)
        self._staged[field] = (path, ext or None, backend)
        return path, backend

    def store(self, field: str, ext: str = ""):
        """An ``fsspec.FSMap`` to write the folder object of ``field`` into (zarr, ...)."""
        path, backend = self._target(field, ext)
        return backend.get_fsmap(path)

    def open(self, field: str, ext: str = "", mode: str = "wb") -> IO:
        """A file to write the object of ``field`` into."""
        path, backend = self._target(field, ext)
        return backend.open(path, mode)

    def _metadata(self, field: str) -> dict:
        from .external import _MANIFEST, folder_manifest

        path, ext, backend = self._staged[field]
        store = backend._store
        files = [p for p in store.list(path + "/")]
        if files:
            sizes = [{"path": p[len(path) + 1:], "size": store.size(p)} for p in files]
            store.put(path + _MANIFEST, folder_manifest(sizes))
            size, is_dir, count = sum(f["size"] for f in sizes), True, len(sizes)
        else:
            size = store.size(path) if store.exists(path) else 0
            is_dir, count = False, None
        return {"path": path, "store": store.name, "size": size, "ext": ext, "is_dir": is_dir, "item_count": count,
                "timestamp": dt.datetime.now(dt.timezone.utc).isoformat()}

    def _finish(self) -> None:
        for field in self._staged:
            self._rec[field] = self._metadata(field)
        self._table.insert1(self._rec)

    def _discard(self) -> None:
        from .external import _MANIFEST

        for path, _, backend in self._staged.values():
            with contextlib.suppress(Exception):  # best effort: gc reclaims what is left
                store = backend._store
                store.remove([*store.list(path + "/"), path, path + _MANIFEST])


@contextlib.contextmanager
def staged_insert1(table) -> Iterator[StagedInsert]:
    """Stage one row of ``table`` (see the module's documentation)."""
    staged = StagedInsert(table)
    try:
        yield staged
        staged._finish()
    except BaseException:
        staged._discard()
        raise
