"""Hash-addressed storage (``<hash@store>`` and what stores through it: ``<blob@>``,
``<attach@>``): content named by its MD5 digest in lower-case base32, at
``{hash_prefix}/{schema}/[subfolders/]{hash}`` in a store. The same bytes in the same
schema are one object, however many rows refer to them.

:func:`put_hash` / :func:`get_hash` / :func:`delete_path` work one object at a time
through the store's :class:`~dj_dagster.storage.StorageBackend`. During an insert,
:func:`put_hash` hands its upload to the insert's batch instead (written concurrently,
before any row), and a fetch reads a column's objects together
(:func:`dj_dagster.external.get_contents`).
"""

from __future__ import annotations

from typing import Any

from . import external
from .errors import DataJointError
from .storage import StorageBackend

__all__ = ["compute_hash", "build_hash_path", "get_store_backend", "get_store_subfolding", "put_hash", "get_hash",
           "delete_path"]

compute_hash = external.compute_hash


def build_hash_path(content_hash: str, schema_name: str, subfolding: tuple[int, ...] | None = None, *,
                    hash_prefix: str = external.HASH_PREFIX) -> str:
    """``{hash_prefix}/{schema}/[folds/]{hash}``; ``subfolding`` such as ``(2, 2)`` adds
    folders cut from the start of the hash. A malformed hash raises DataJointError."""
    if not external._HASH_NAME.match(str(content_hash)):
        raise DataJointError(f"Invalid content hash {content_hash!r} (expected 26 lower-case base32 characters)")
    folds, rest = [], content_hash
    for n in subfolding or ():
        folds.append(rest[: int(n)])
        rest = rest[int(n):]
    return "/".join(p for p in (hash_prefix.strip("/"), schema_name, *folds, content_hash) if p)


def get_store_backend(store_name: str | None = None, config=None) -> StorageBackend:
    """The :class:`StorageBackend` of a configured store (``None``/``""``: the default)."""
    return StorageBackend.of_store(external._store(store_name))


def get_store_subfolding(store_name: str | None = None, config=None) -> tuple[int, ...] | None:
    """The store's ``subfolding`` setting, or None."""
    folds = external._store(store_name).spec.get("subfolding")
    return tuple(int(n) for n in folds) if folds else None


def put_hash(value: bytes, *, schema_name: str, store_name: str | None = None, config=None) -> dict[str, Any]:
    """Store ``value`` (bytes) content-addressed for ``schema_name``; returns the metadata
    kept in the column: ``hash``, ``path``, ``schema``, ``store``, ``size``. An object
    already present is not written again."""
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise DataJointError(f"<hash> stores bytes, got {type(value).__name__}")
    if external.batching():
        return external.put_content(schema_name, store_name, value)
    data = bytes(value)
    store = external._store(store_name)
    content_hash = compute_hash(data)
    path = external.hash_path(content_hash, schema_name, store)
    backend = get_store_backend(store_name, config=config)
    if not backend.exists(path):
        backend.put_buffer(data, path)
    return {"hash": content_hash, "path": path, "schema": schema_name, "store": store.name, "size": len(data)}


def get_hash(metadata: dict[str, Any], config=None) -> bytes:
    """The bytes that hash-addressed ``metadata`` refers to, checked against the hash."""
    meta = external._as_meta(metadata)
    data = get_store_backend(meta.get("store"), config=config).get_buffer(meta["path"])
    if meta.get("hash"):
        actual = compute_hash(data)
        if actual != meta["hash"]:
            raise DataJointError(
                f"Hash mismatch for {meta['path']!r} in store {meta.get('store')!r}: expected {meta['hash']}, got "
                f"{actual}; the object may be corrupted")
    return data


def delete_path(path: str, store_name: str | None = None, config=None) -> bool:
    """Delete the object at ``path``; False if there was none."""
    backend = get_store_backend(store_name, config=config)
    if not backend.exists(path):
        return False
    backend.remove(path)
    return True
