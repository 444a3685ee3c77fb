"""Object-store paths and access in DataJoint 2.x's public terms.

- URLs: :data:`URL_PROTOCOLS`, :func:`is_url`, :func:`parse_url`, :func:`normalize_to_url`.
- Schema-addressed paths: :func:`generate_token`, :func:`encode_pk_value`,
  :func:`build_object_path` (``{schema_prefix}/[partition/]{schema}/{table}/{pk=v}/.../
  {field}_{token}{ext}``, the layout DataJoint 2.3.5 writes).
- :class:`StorageBackend`: one store's objects by path relative to its location
  (``put_buffer``, ``get_buffer``, ``exists``, ``isdir``, ``remove``, ``size``, ``open``,
  ``put_file``, ``get_file``, ``put_folder``, ``remove_folder``, ``get_fsmap``,
  ``get_url``, ``fs``). It runs on :class:`dj_dagster.stores.Store` (atomic local writes,
  secret-free errors); :func:`dj_dagster.hash_registry.get_store_backend` gives the one of
  a configured store.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import urllib.parse
from datetime import datetime
from pathlib import Path, PurePath
from typing import IO, Any

from .errors import DataJointError, NotInStoreError

__all__ = [
    "URL_PROTOCOLS", "TOKEN_ALPHABET", "is_url", "parse_url", "normalize_to_url", "generate_token",
    "encode_pk_value", "build_object_path", "StorageBackend", "get_storage_backend",
]

TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

# URL prefix -> fsspec protocol
_URL_PROTOCOL = {
    "file://": "file", "s3://": "s3", "gs://": "gcs", "gcs://": "gcs", "az://": "abfs", "abfs://": "abfs",
    "http://": "http", "https://": "https",
}
URL_PROTOCOLS = tuple(_URL_PROTOCOL)


def is_url(path: str) -> bool:
    """Whether ``path`` starts with one of :data:`URL_PROTOCOLS` (any case)."""
    return str(path).lower().startswith(URL_PROTOCOLS)


def parse_url(url: str) -> tuple[str, str]:
    """``(fsspec protocol, path)`` of a URL: ``"s3://b/k"`` -> ``("s3", "b/k")``,
    ``"gs://b/k"`` -> ``("gcs", "b/k")``, ``"file:///d/f"`` -> ``("file", "/d/f")``.
    Anything else raises :class:`DataJointError`."""
    low = url.lower()
    for prefix, protocol in _URL_PROTOCOL.items():
        if low.startswith(prefix):
            return protocol, url[len(prefix):]
    raise DataJointError(f"Unsupported URL protocol: {url!r} (expected one of {', '.join(URL_PROTOCOLS)})")


def _path_to_file_url(path: PurePath) -> str:
    """``file://`` URL of an absolute path, with forward slashes on every platform."""
    posix = path.as_posix()
    return "file://" + (posix if posix.startswith("/") else "/" + posix)


def normalize_to_url(path: str) -> str:
    """A URL for ``path``: URLs as given, local paths (relative ones made absolute) as
    ``file://`` URLs."""
    if is_url(path):
        return path
    return _path_to_file_url(Path(path).expanduser().absolute())


def generate_token(length: int = 8) -> str:
    """A random URL-safe token of ``length`` characters (kept within 4..16)."""
    n = max(4, min(16, int(length or 8)))
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(n))


def encode_pk_value(value: Any) -> str:
    """A primary-key value as a path segment: numbers and dates as text, datetimes as
    ``YYYY-MM-DDTHH-MM-SS``; strings with characters unsafe in paths are URL-quoted, and
    strings over 100 characters are shortened (50 characters and a hash of the rest)."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H-%M-%S")
    if hasattr(value, "isoformat"):
        return value.isoformat()
    text = str(value)
    if len(text) > 100:
        text = text[:50] + "_" + hashlib.md5(text.encode()).hexdigest()[:8]
        return urllib.parse.quote(text, safe="")
    if any(c in text for c in '/\\:*?"<>|'):
        return urllib.parse.quote(text, safe="")
    return text


def build_object_path(schema: str, table: str, field: str, primary_key: dict[str, Any], ext: str | None,
                      partition_pattern: str | None = None, token_length: int = 8, *,
                      schema_prefix: str = "_schema") -> tuple[str, str]:
    """``(path, token)`` of a new schema-addressed object:
    ``{schema_prefix}/{partition attrs}/{schema}/{table}/{other pk attrs}/{field}_{token}{ext}``.

    ``partition_pattern`` (e.g. ``"{subject_id}/{session_id}"``) names primary-key
    attributes that lead the path, in its order; ``schema_prefix=""`` gives the layout
    without a section folder."""
    token = generate_token(token_length)
    filename = f"{field}_{token}"
    if ext:
        filename += ext if ext.startswith(".") else "." + ext
    leading = re.findall(r"\{(\w+)\}", partition_pattern) if partition_pattern else []
    parts = [schema_prefix.strip("/")] if schema_prefix and schema_prefix.strip("/") else []
    parts += [f"{a}={encode_pk_value(primary_key[a])}" for a in leading if a in primary_key]
    parts += [schema, table]
    parts += [f"{a}={encode_pk_value(v)}" for a, v in primary_key.items()
              if a not in leading and not str(a).startswith("_")]
    parts.append(filename)
    return "/".join(parts), token


class StorageBackend:
    """One object store, addressed by paths relative to its location.

    ``StorageBackend(spec)`` takes a store specification as in ``config['stores']``
    (``protocol`` ``file`` with ``location``; ``s3`` with ``endpoint``, ``bucket``,
    ``location``, ``access_key``, ``secret_key``, ``secure``; other fsspec protocols).
    Failures raise :class:`DataJointError` (a missing object: ``NotInStoreError``).
    """

    def __init__(self, spec: dict[str, Any], *, name: str | None = None, _store=None) -> None:
        self.spec = dict(spec)
        self.protocol = str(self.spec.get("protocol") or "file").lower()
        self.name = name
        self._fs = None
        self._store_obj = _store

    @classmethod
    def of_store(cls, store) -> "StorageBackend":
        """The backend of a :class:`dj_dagster.stores.Store`."""
        backend = cls(store._original, name=store.name, _store=store)
        backend.protocol = store.protocol
        return backend

    @property
    def _store(self):
        if self._store_obj is None:
            from .stores import Store, StoreError, _resolve_spec

            name = self.name or "store"
            try:
                self._store_obj = Store(name, _resolve_spec(name, self.spec), _original=self.spec)
            except StoreError as exc:
                raise DataJointError(str(exc)) from None
        return self._store_obj

    def _call(self, action: str, fn, *args):
        from .stores import ObjectNotFoundError, StoreError

        try:
            return fn(*args)
        except ObjectNotFoundError as exc:
            raise NotInStoreError(str(exc)) from None
        except FileNotFoundError as exc:
            raise NotInStoreError(f"{action}: {exc}") from None
        except StoreError as exc:
            raise DataJointError(str(exc)) from None

    @staticmethod
    def _rel(path) -> str:
        return str(path).replace("\\", "/") if isinstance(path, PurePath) else str(path)

    @property
    def fs(self):
        """The fsspec filesystem of the store."""
        return self._fs if self._fs is not None else self._store.fs

    def get_url(self, path) -> str:
        """A URL of the object: ``file:///...`` or ``s3://bucket/...``."""
        full = self._call("url", self._store.full_path, self._rel(path))
        return _path_to_file_url(Path(full)) if self.protocol == "file" else full

    def put_buffer(self, buffer: bytes, remote_path) -> None:
        """Write ``buffer`` at ``remote_path`` (replacing any object there)."""
        self._call("put", self._store.put, self._rel(remote_path), buffer)

    def get_buffer(self, remote_path) -> bytes:
        """The bytes at ``remote_path``."""
        return self._call("get", self._store.get, self._rel(remote_path))

    def put_file(self, local_path, remote_path, metadata: dict | None = None) -> None:
        """Upload a local file."""
        self.put_buffer(Path(local_path).read_bytes(), remote_path)

    def get_file(self, remote_path, local_path) -> None:
        """Download an object into a local file (folders are made as needed)."""
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.get_buffer(remote_path))

    def exists(self, remote_path) -> bool:
        """Whether an object (or a folder of objects) is at ``remote_path``."""
        rel = self._rel(remote_path)
        return bool(self._call("exists", self._store.exists, rel)) or self.isdir(rel)

    def isdir(self, remote_path) -> bool:
        """Whether ``remote_path`` is a folder holding objects."""
        return bool(self._call("list", self._store.list, self._rel(remote_path).rstrip("/") + "/"))

    def size(self, remote_path) -> int:
        """Size in bytes of the object (of all objects in it, for a folder)."""
        rel = self._rel(remote_path)
        if self.isdir(rel):
            return sum(self._store.size(p) for p in self._store.list(rel.rstrip("/") + "/"))
        return int(self._call("size", self._store.size, rel))

    def remove(self, remote_path) -> None:
        """Delete the object (missing ones are ignored)."""
        self._call("remove", self._store.remove, self._rel(remote_path))

    def open(self, remote_path, mode: str = "rb") -> IO:
        """A file object for the object at ``remote_path``."""
        return self._call("open", self._store.open, self._rel(remote_path), mode)

    def put_folder(self, local_path, remote_path) -> dict:
        """Upload a local folder's files under ``remote_path`` with a ``.manifest.json``
        beside it; returns the manifest (``files``, ``total_size``, ``item_count``)."""
        import json

        from .external import _MANIFEST, folder_manifest

        source, rel = Path(local_path), self._rel(remote_path).rstrip("/")
        items, files = {}, []
        for root, _dirs, names in os.walk(source):
            for fname in sorted(names):
                local = Path(root) / fname
                sub = local.relative_to(source).as_posix()
                data = local.read_bytes()
                items[f"{rel}/{sub}"] = data
                files.append({"path": sub, "size": len(data)})
        manifest = folder_manifest(files)
        items[rel + _MANIFEST] = manifest
        self._call("put_many", self._store.put_many, items)
        return json.loads(manifest)

    def remove_folder(self, remote_path) -> None:
        """Delete a folder's objects and its manifest."""
        from .external import _MANIFEST

        rel = self._rel(remote_path).rstrip("/")
        paths = self._call("list", self._store.list, rel + "/")
        self._call("remove", self._store.remove, [*paths, rel + _MANIFEST])

    def get_fsmap(self, remote_path):
        """An ``fsspec.FSMap`` (a key-value view, as zarr uses) of the folder."""
        import fsspec

        root = self._call("path", self._store.full_path, self._rel(remote_path))
        return fsspec.FSMap(root.split("://", 1)[-1] if self.protocol != "file" else root, self.fs)

    def __repr__(self) -> str:
        return f"StorageBackend(protocol={self.protocol!r}, location={self.spec.get('location')!r})"


def get_storage_backend(spec: dict[str, Any]) -> StorageBackend:
    """A :class:`StorageBackend` for a store specification."""
    return StorageBackend(spec)
