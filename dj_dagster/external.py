"""Values kept in object stores: content-addressed blobs, attachments and raw bytes,
schema-addressed objects and arrays, and references to files already in a store.

The layout and the JSON metadata in the database column follow DataJoint 2.3.5, so a
store and a database written by either library can be read by the other:

- Hash-addressed (``<blob@>``, ``<attach@>``, ``<hash@>``): the content's MD5 digest in
  lower-case base32 (26 characters), stored at ``{hash_prefix}/{schema}/{hash}``
  (``hash_prefix`` defaults to ``_hash``; a store's ``subfolding`` such as ``[2, 2]``
  inserts folders cut from the hash: ``_hash/{schema}/ab/cd/{hash}``). The column holds
  ``{"hash", "path", "schema", "store", "size"}``. The same bytes in the same schema are
  one object, however many rows refer to them.
- Schema-addressed (``<object@>``, ``<npy@>``): stored at
  ``{schema_prefix}/{schema}/{table}/{pk}=.../{attribute}_{token}{ext}`` (``schema_prefix``
  defaults to ``_schema``; the token is random, so every write is a new object). Fetch
  returns a lazy reference (:class:`ObjectRef`, :class:`NpyRef`).
- ``<filepath@store>``: a file that is already in the store; the column keeps its path
  relative to the store plus size and hash. Those files belong to the user: garbage
  collection never looks at them.

Uploads made while rows are prepared for one insert are collected and written together
(:func:`upload_batch`, used by :func:`dj_dagster.insert_rows.prepare_rows`) with the
store's concurrent ``put_many``, before any row reaches the database: a failed upload
fails the insert and writes no row. A fetch reads the objects of a column together
(:func:`get_contents`, with the store's concurrent ``get_many``), in bounded chunks.
Deleting rows never deletes objects; :func:`gc` removes the ones no row refers to any more.
"""

from __future__ import annotations

import base64
import contextlib
import contextvars
import datetime as dt
import hashlib
import io
import json
import logging
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any, Callable, Iterator, NamedTuple, Sequence

from .errors import DataError, DataJointError, NotInStoreError
from .settings import config
from .stores import ObjectNotFoundError, Store, StoreError, get_store

log = logging.getLogger(__name__)

__all__ = [
    "ExternalStoreError", "UploadError", "compute_hash", "hash_path", "put_content", "get_content",
    "get_contents", "upload_batch", "ObjectRef", "NpyRef", "put_object", "put_npy", "gc", "Orphan",
]

HASH_PREFIX = "_hash"
SCHEMA_PREFIX = "_schema"
_HASH_NAME = re.compile(r"^[a-z2-7]{26}$")
_DEFAULT_BATCH_BYTES = 256 * 1024 * 1024  # flush collected uploads beyond this much data
_DOWNLOAD_BATCH_BYTES = 256 * 1024 * 1024  # read at most this much data at a time
_HASH_WORKERS = min(4, os.cpu_count() or 1)
_MANIFEST = ".manifest.json"


class ExternalStoreError(DataJointError):
    """An object store could not be read or written for a stored value."""


class UploadError(ExternalStoreError, DataError):
    """Uploading the objects of an insert failed; no row was written."""


# --------------------------------------------------------------------------- helpers


def compute_hash(data: bytes) -> str:
    """MD5 of ``data`` in lower-case base32 without padding: 26 characters."""
    return base64.b32encode(hashlib.md5(data).digest()).decode("ascii").rstrip("=").lower()


def _hash_stream(f: IO[bytes]) -> str:
    md5 = hashlib.md5()
    for chunk in iter(lambda: f.read(1 << 20), b""):
        md5.update(chunk)
    return base64.b32encode(md5.digest()).decode("ascii").rstrip("=").lower()


def _store(name: str | None) -> Store:
    try:
        return get_store(name or None)
    except StoreError as exc:
        raise ExternalStoreError(str(exc)) from None


def _section(store: Store, key: str, default: str) -> str:
    value = store.spec.get(key, default)
    return ("" if value is None else str(value)).strip("/")


def _hash_section(store: Store) -> str:
    return _section(store, "hash_prefix", HASH_PREFIX)


def _schema_section(store: Store) -> str:
    return _section(store, "schema_prefix", SCHEMA_PREFIX)


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def hash_path(content_hash: str, schema: str, store: Store) -> str:
    """``{hash_prefix}/{schema}/[folds/]{hash}`` for ``store``'s settings."""
    if not _HASH_NAME.match(content_hash):
        raise DataJointError(f"Invalid content hash {content_hash!r} (expected 26 lower-case base32 characters)")
    folds: list[str] = []
    rest = content_hash
    for n in store.spec.get("subfolding") or ():
        folds.append(rest[: int(n)])
        rest = rest[int(n):]
    return _join(_hash_section(store), schema, *folds, content_hash)


def _as_meta(stored: Any) -> dict:
    """The JSON metadata of a stored value (a dict, or JSON text from some drivers)."""
    if isinstance(stored, (bytes, bytearray, memoryview)):
        stored = bytes(stored).decode("utf-8")
    if isinstance(stored, str):
        try:
            stored = json.loads(stored)
        except ValueError:
            raise DataJointError(f"Stored value is not JSON metadata: {stored[:80]!r}") from None
    if not isinstance(stored, dict) or "path" not in stored:
        raise DataJointError(f"Stored value is not object-store metadata: {stored!r:.80}")
    return stored


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


# --------------------------------------------------------------------------- uploads


@dataclass
class _Pending:
    data: bytes
    dedup: bool  # content-addressed: skip the upload when the object is already there
    where: str


@dataclass
class UploadBatch:
    """Objects waiting to be written, grouped per store; :meth:`flush` writes them."""

    limit_bytes: int = _DEFAULT_BATCH_BYTES
    pending: dict[str, dict[str, _Pending]] = field(default_factory=dict)
    stores: dict[str, Store] = field(default_factory=dict)
    pending_bytes: int = 0
    uploaded: int = 0  # objects written by this batch so far
    skipped: int = 0  # content-addressed objects that were already in their store
    where: str = ""  # the table being inserted into, for errors

    def add(self, store: Store, path: str, data: bytes, *, dedup: bool, where: str = "") -> None:
        items = self.pending.setdefault(store.name, {})
        self.stores[store.name] = store
        if path in items:
            return  # same content (hash-addressed) or a retried object: once is enough
        items[path] = _Pending(bytes(data), dedup, where)
        self.pending_bytes += len(data)
        if self.pending_bytes >= self.limit_bytes:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, {}
        self.pending_bytes = 0
        for name, items in pending.items():
            store = self.stores[name]
            where = next((p.where for p in items.values() if p.where), self.where)
            try:
                # one HEAD a path on S3, asked concurrently
                present = store.exists_many([p for p, item in items.items() if item.dedup])
                todo = {p: item.data for p, item in items.items() if p not in present}
                if len(todo) == 1:
                    store.put(*next(iter(todo.items())))
                elif todo:
                    store.put_many(todo)
            except StoreError as exc:
                target = f"Cannot insert into {where}: " if where else ""
                # StoreError messages (and the causes they keep) are free of secrets
                raise UploadError(f"{target}uploading {len(items)} object(s) to store {name!r} failed: {exc}") from exc
            self.uploaded += len(todo)
            self.skipped += len(items) - len(todo)


_current: contextvars.ContextVar[UploadBatch | None] = contextvars.ContextVar("dj_upload_batch", default=None)


@contextlib.contextmanager
def upload_batch(limit_bytes: int | None = None) -> Iterator[UploadBatch]:
    """Collect the uploads made inside the block and write them concurrently when it ends.

    Nothing is uploaded if the block raises. A nested block is a batch of its own, written
    when the nested block ends (its rows may reach the database before the outer ones).
    When the collected data exceeds ``limit_bytes`` (``config['upload_batch_bytes']``,
    256 MiB by default) it is written early, so memory stays bounded for big inserts.
    """
    if limit_bytes is None:
        limit_bytes = int(config.get("upload_batch_bytes") or _DEFAULT_BATCH_BYTES)
    batch = UploadBatch(limit_bytes=limit_bytes)
    token = _current.set(batch)
    try:
        yield batch
    finally:
        _current.reset(token)
    batch.flush()


def _upload(store: Store, path: str, data: bytes, *, dedup: bool, where: str) -> None:
    batch = _current.get()
    if batch is not None:
        batch.add(store, path, data, dedup=dedup, where=where)
        return
    one = UploadBatch()
    one.add(store, path, data, dedup=dedup, where=where)
    one.flush()


# --------------------------------------------------------------------------- hash-addressed


def put_content(schema: str, store: str | None, data: bytes) -> dict:
    """Store ``data`` content-addressed in ``store`` (``''``/``None``: the default store)
    for ``schema``; returns the column's JSON metadata (``hash``, ``path``, ``schema``,
    ``store``, ``size``). Inside :func:`upload_batch` the upload waits for the batch."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DataError(f"Content for an object store must be bytes, got {type(data).__name__}")
    data = bytes(data)
    s = _store(store)
    content_hash = compute_hash(data)
    path = hash_path(content_hash, schema, s)
    _upload(s, path, data, dedup=True, where="")
    return {"hash": content_hash, "path": path, "schema": schema, "store": s.name, "size": len(data)}


def note_table(where: str) -> None:
    """Name the table whose rows the current upload batch (if any) is for, in its errors."""
    batch = _current.get()
    if batch is not None and not batch.where:
        batch.where = where


def batching() -> bool:
    """Whether uploads are being collected by :func:`upload_batch` (an insert is preparing
    its rows)."""
    return _current.get() is not None


@contextlib.contextmanager
def _reading() -> Iterator[None]:
    """Store errors of a read as the library's errors (a missing object: NotInStoreError)."""
    try:
        yield
    except ObjectNotFoundError as exc:
        raise NotInStoreError(f"{exc} (the row refers to it; was it removed from the store?)") from None
    except StoreError as exc:
        raise ExternalStoreError(str(exc)) from None


def _read(meta: dict) -> tuple[Store, bytes]:
    s = _store(meta.get("store"))
    with _reading():
        return s, s.get(meta["path"])


def _check(meta: dict, actual: str) -> None:
    expected = meta.get("hash")
    if expected and actual != expected:
        raise ExternalStoreError(
            f"Hash mismatch for {meta['path']!r} in store {meta.get('store')!r}: expected {expected}, got "
            f"{actual}; the object may be corrupted")


def get_content(stored: Any) -> bytes:
    """The bytes that ``stored`` (a hash-addressed value's metadata) refers to, checked
    against their hash."""
    meta = _as_meta(stored)
    _, data = _read(meta)
    if meta.get("hash"):
        _check(meta, compute_hash(data))
    return data


def get_contents(stored: Sequence[Any], convert: Callable[[bytes], Any] | None = None) -> list:
    """:func:`get_content` for many values (a fetched column), with ``convert`` applied to
    each value's bytes: the distinct objects are read concurrently (``Store.get_many``), in
    chunks of at most ``config['download_batch_bytes']`` (256 MiB by default) by their recorded
    sizes, so memory stays bounded; each chunk is hash-checked in threads (MD5 releases the
    GIL), then converted in this thread in row order (attachments of one name must not race),
    before the next is read."""
    limit = int(config.get("download_batch_bytes") or _DOWNLOAD_BATCH_BYTES)
    metas = [_as_meta(v) for v in stored]
    stores = {name: _store(name) for name in {m.get("store") for m in metas}}
    rows: dict[tuple[Store, str], list[int]] = {}  # (store, path) -> indices of its values
    for i, m in enumerate(metas):
        rows.setdefault((stores[m.get("store")], m["path"]), []).append(i)
    out: list = [None] * len(metas)
    for chunk in _size_chunks(rows, metas, limit):
        found: dict[tuple[Store, str], bytes] = {}
        for s in dict.fromkeys(s for s, _ in chunk):
            paths = [p for t, p in chunk if t is s]
            with _reading():
                got = s.get_many(paths, {p: metas[rows[s, p][0]].get("size") for p in paths})
            found.update(((s, p), d) for p, d in got.items())
        checked = [k for k in chunk if any(metas[i].get("hash") for i in rows[k])]
        for k, actual in zip(checked, _hashes([found[k] for k in checked])):
            for i in rows[k]:
                _check(metas[i], actual)
        for k in chunk:
            data = found.pop(k)
            for i in rows[k]:
                out[i] = convert(data) if convert else data
    return out


def _size_chunks(rows: dict[tuple[Store, str], list[int]], metas: list[dict],
                 limit: int) -> Iterator[list[tuple[Store, str]]]:
    """The objects in groups of at most ``limit`` bytes by recorded size (a bigger object
    is a group of its own)."""
    chunk: list[tuple[Store, str]] = []
    total = 0
    for k, indices in rows.items():
        size = int(metas[indices[0]].get("size") or 0)
        if chunk and total + size > limit:
            yield chunk
            chunk, total = [], 0
        chunk.append(k)
        total += size
    if chunk:
        yield chunk


def _hashes(datas: list[bytes]) -> list[str]:
    if len(datas) < 2 or sum(map(len, datas)) < 4 * 1024 * 1024:
        return [compute_hash(d) for d in datas]
    with ThreadPoolExecutor(max_workers=min(_HASH_WORKERS, len(datas))) as pool:
        return list(pool.map(compute_hash, datas))


# --------------------------------------------------------------------------- schema-addressed


def object_path(store: Store, schema: str, table: str, field: str, key: dict | None,
                ext: str | None = None) -> str:
    """``{schema_prefix}/[partition/]{schema}/{table}/{pk=v}/.../{field}_{token}{ext}`` for
    ``store``'s settings (``schema_prefix``, ``partition_pattern``, ``token_length``)."""
    from .storage import build_object_path

    path, _ = build_object_path(schema, table, field, key or {}, ext,
                                partition_pattern=store.spec.get("partition_pattern"),
                                token_length=store.spec.get("token_length", 8),
                                schema_prefix=_schema_section(store))
    return path


def put_object(store: str | None, value: Any, *, schema: str, table: str, field: str,
               key: dict | None = None) -> dict:
    """Store ``value`` for ``<object@store>``: bytes, ``(ext, bytes or binary stream)``, or
    the path of a local file or folder, for the row ``key`` of ``schema.table``. Returns
    the column's JSON metadata; metadata made elsewhere (a staged insert) is kept as given."""
    if isinstance(value, dict) and "path" in value:
        return value
    s = _store(store)
    where = f"{schema}.{table}"
    ext = None
    if isinstance(value, (bytes, bytearray, memoryview)):
        content = bytes(value)
    elif isinstance(value, tuple) and len(value) == 2:
        ext, data = value
        content = data.read() if hasattr(data, "read") else data
        if not isinstance(content, (bytes, bytearray, memoryview)):
            raise DataError(f"<object> (ext, data): data must be bytes or a binary file, got {type(content).__name__}")
        content = bytes(content)
    elif isinstance(value, (str, os.PathLike)):
        source = Path(value)
        if not source.exists():
            raise DataError(f"<object>: source path not found: {source}")
        if source.is_dir():
            return _put_folder(s, source, object_path(s, schema, table, field, key, None), where)
        ext = source.suffix or None
        content = source.read_bytes()
    else:
        raise DataError(f"<object> expects bytes, (ext, bytes) or a file/folder path, got {type(value).__name__}")
    path = object_path(s, schema, table, field, key, ext)
    _upload(s, path, content, dedup=False, where=where)
    return {"path": path, "store": s.name, "size": len(content), "ext": ext, "is_dir": False,
            "item_count": None, "timestamp": _now()}


def folder_manifest(files: list[dict]) -> bytes:
    """The ``.manifest.json`` written next to a stored folder: its files (relative path and
    size), total size and count."""
    manifest = {"files": files, "total_size": sum(f["size"] for f in files), "item_count": len(files),
                "created": _now()}
    return json.dumps(manifest, indent=2).encode()


def _put_folder(s: Store, source: Path, path: str, where: str) -> dict:
    files = []
    for root, _dirs, names in os.walk(source):
        for fname in sorted(names):
            local = Path(root) / fname
            rel = local.relative_to(source).as_posix()
            data = local.read_bytes()
            files.append({"path": rel, "size": len(data)})
            _upload(s, f"{path}/{rel}", data, dedup=False, where=where)
    _upload(s, path + _MANIFEST, folder_manifest(files), dedup=False, where=where)
    return {"path": path, "store": s.name, "size": sum(f["size"] for f in files), "ext": None, "is_dir": True,
            "item_count": len(files), "timestamp": _now()}


def put_npy(store: str | None, value: Any, *, schema: str, table: str, field: str, key: dict | None = None) -> dict:
    """Store a numpy array as a ``.npy`` file for ``<npy@store>``; returns the JSON metadata."""
    import numpy as np

    if not isinstance(value, np.ndarray):
        raise DataError(f"<npy> requires a numpy.ndarray, got {type(value).__name__}")
    if value.dtype.hasobject:
        raise DataError("<npy> does not support arrays of Python objects")
    s = _store(store)
    buf = io.BytesIO()
    np.save(buf, value, allow_pickle=False)
    path = object_path(s, schema, table, field, key, ".npy")
    _upload(s, path, buf.getvalue(), dedup=False, where=f"{schema}.{table}")
    return {"path": path, "store": s.name, "dtype": str(value.dtype), "shape": list(value.shape)}


class ObjectRef:
    """A file or folder in an object store, fetched lazily: nothing is read until asked.

    ``path`` (relative to the store), ``store``, ``size``, ``ext``, ``is_dir``,
    ``timestamp``, ``hash`` (``<filepath@>`` only); ``load()``/``read()`` the bytes,
    ``open()`` a file object, ``download(dest)``, ``exists()``, ``verify()``,
    ``listdir()``/``walk()`` for folders, ``fsmap`` for zarr/xarray.
    """

    def __init__(self, metadata: dict | None = None, backend: Any = None, /, **fields: Any):
        """``ObjectRef(metadata)`` (the column's metadata dict) or ``ObjectRef(path=...,
        size=..., ...)``. ``backend``: a :class:`~dj_dagster.storage.StorageBackend` to read
        through instead of the configured store named in the metadata."""
        self._backend = backend if backend is not None else fields.pop("_backend", None)
        if metadata is None:
            metadata = {}
        if not isinstance(metadata, dict):
            raise DataJointError(f"ObjectRef takes a metadata dict or keyword fields, got {type(metadata).__name__}")
        meta = {**metadata, **{k: v for k, v in fields.items() if v is not None or k not in metadata}}
        if isinstance(meta.get("timestamp"), dt.datetime):
            meta["timestamp"] = meta["timestamp"].isoformat()
        if "path" not in meta:
            raise DataJointError("ObjectRef needs a path")
        self._meta = meta

    @classmethod
    def from_json(cls, json_data: dict | str, backend: Any = None) -> "ObjectRef":
        """The reference for a column's metadata (a dict or its JSON text)."""
        return cls(_as_meta(json_data), backend)

    def _bytes(self, path: str) -> bytes:
        if self._backend is not None:
            return self._backend.get_buffer(path)
        _, data = _read({**self._meta, "path": path})
        return data

    def to_json(self) -> dict:
        """The metadata as kept in the database column."""
        data = {"path": self.path, "size": self.size, "hash": self.hash, "ext": self.ext, "is_dir": self.is_dir,
                "timestamp": self._meta.get("timestamp")}
        for name in ("url", "store", "mime_type", "item_count"):
            if self._meta.get(name) is not None:
                data[name] = self._meta[name]
        return data

    # metadata, no I/O
    @property
    def metadata(self) -> dict:
        return dict(self._meta)

    @property
    def path(self) -> str:
        return self._meta["path"]

    @property
    def store(self) -> str | None:
        return self._meta.get("store")

    @property
    def size(self) -> int | None:
        return self._meta.get("size")

    @property
    def ext(self) -> str | None:
        return self._meta.get("ext")

    @property
    def is_dir(self) -> bool:
        return bool(self._meta.get("is_dir", False))

    @property
    def hash(self) -> str | None:
        return self._meta.get("hash")

    @property
    def item_count(self) -> int | None:
        return self._meta.get("item_count")

    @property
    def mime_type(self) -> str | None:
        import mimetypes

        return self._meta.get("mime_type") or (None if self.is_dir or not self.ext
                                               else mimetypes.types_map.get(self.ext.lower()))

    @property
    def timestamp(self) -> dt.datetime | None:
        ts = self._meta.get("timestamp")
        return dt.datetime.fromisoformat(ts.replace("Z", "+00:00")) if isinstance(ts, str) else ts

    # I/O
    @property
    def _s(self) -> Store:
        return _store(self.store)

    @property
    def full_path(self) -> str:
        return self._s.full_path(self.path)

    url = full_path

    @property
    def fs(self):
        return self._s.fs

    @property
    def fsmap(self):
        import fsspec

        return fsspec.FSMap(self.full_path, self._s.fs)

    def _sub(self, subpath: str | None) -> str:
        if not subpath:
            return self.path
        if not self.is_dir:
            raise DataJointError(f"Cannot use subpath on a file object ({self.path!r})")
        return f"{self.path}/{subpath}"

    def read(self, subpath: str | None = None) -> bytes:
        if self.is_dir and not subpath:
            raise DataJointError(f"Cannot read() a directory (folder {self.path!r}): use listdir(), walk(), "
                                 f"open(subpath) or read(subpath)")
        return self._bytes(self._sub(subpath))

    load = read

    def open(self, subpath: str | None = None, mode: str = "rb") -> IO:
        if "r" not in mode or "+" in mode:
            raise DataJointError("Stored objects are immutable: open them for reading only")
        try:
            return self._s.open(self._sub(subpath), mode)
        except ObjectNotFoundError as exc:
            raise NotInStoreError(str(exc)) from None
        except StoreError as exc:
            raise ExternalStoreError(str(exc)) from None

    def exists(self, subpath: str | None = None) -> bool:
        p = self._sub(subpath)
        s = self._s
        return s.exists(p) or (self.is_dir and not subpath and bool(s.list(p + "/")))

    def listdir(self, subpath: str = "") -> list[str]:
        if not self.is_dir:
            raise DataJointError(f"Cannot listdir() on a file ({self.path!r}): use read() or open()")
        base = self._sub(subpath) + "/"
        return sorted({p[len(base):].split("/", 1)[0] for p in self._s.list(base)})

    def walk(self) -> Iterator[tuple[str, list[str], list[str]]]:
        if not self.is_dir:
            raise DataJointError(f"Cannot walk() on a file ({self.path!r})")
        base = self.path + "/"
        tree: dict[str, tuple[set, list]] = {}
        for p in self._s.list(base):
            rel = PurePosixPath(p[len(base):])
            folder = "" if str(rel.parent) == "." else str(rel.parent)
            tree.setdefault(folder, (set(), []))[1].append(rel.name)
            parts = folder.split("/") if folder else []
            for i in range(len(parts)):
                parent = "/".join(parts[:i])
                tree.setdefault(parent, (set(), []))[0].add(parts[i])
        for folder in sorted(tree):
            dirs, files = tree[folder]
            yield folder, sorted(dirs), sorted(files)

    def download(self, destination: str | os.PathLike, subpath: str | None = None) -> Path:
        dest = Path(destination)
        if self.is_dir and not subpath:
            dest.mkdir(parents=True, exist_ok=True)
            base = self.path + "/"
            paths = self._s.list(base)
            for p, data in self._s.get_many(paths).items():
                target = dest / p[len(base):]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
            return dest
        remote = self._sub(subpath)
        if dest.is_dir():
            dest = dest / remote.rsplit("/", 1)[-1]
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(self.read(subpath) if subpath else self.read())
        return dest

    def verify(self) -> bool:
        """Check that the object exists with its recorded size (and hash, when recorded);
        raise :class:`ExternalStoreError` otherwise."""
        s = self._s
        if self.is_dir:
            base = self.path + "/"
            present = set(s.list(base))
            try:
                manifest = json.loads(s.get(self.path + _MANIFEST))
            except ObjectNotFoundError:
                return bool(present)
            missing = [f["path"] for f in manifest.get("files", []) if base + f["path"] not in present]
            if missing:
                raise ExternalStoreError(f"Folder {self.path!r} is missing {missing[:5]}")
            return True
        if not s.exists(self.path):
            raise NotInStoreError(f"Object {self.path!r} is not in store {s.name!r}")
        size = self._meta.get("size")  # bytes (NpyRef.size counts elements)
        if size is not None and s.size(self.path) != size:
            raise ExternalStoreError(f"Size mismatch for {self.path!r}: expected {size}, got {s.size(self.path)}")
        if self.hash:
            with s.open(self.path, "rb") as f:
                actual = _hash_stream(f)
            if actual != self.hash:
                raise ExternalStoreError(f"Hash mismatch for {self.path!r}: expected {self.hash}, got {actual}")
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectRef) and (other.store, other.path) == (self.store, self.path)

    def __hash__(self) -> int:
        return hash((self.store, self.path))

    def __repr__(self) -> str:
        kind = "folder" if self.is_dir else "file"
        return f"ObjectRef({kind}: {self.path}, store={self.store!r}, size={self.size})"

    def __str__(self) -> str:
        return self.path


class NpyRef(ObjectRef):
    """A ``.npy`` array in an object store: ``shape``/``dtype`` without I/O, ``load()`` (or
    any numpy operation, through ``__array__``) reads it once and caches it."""

    def __init__(self, metadata: dict, backend: Any = None):
        super().__init__(metadata, backend)
        self._cached = None

    @property
    def shape(self) -> tuple:
        return tuple(self._meta["shape"])

    @property
    def dtype(self):
        import numpy as np

        return np.dtype(self._meta["dtype"])

    @property
    def ndim(self) -> int:
        return len(self._meta["shape"])

    @property
    def size(self) -> int:  # numpy's meaning: number of elements
        return math.prod(self._meta["shape"])

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def is_loaded(self) -> bool:
        return self._cached is not None

    def load(self, mmap_mode: str | None = None):
        import numpy as np

        if mmap_mode is None:
            if self._cached is None:
                data = self._bytes(self.path)
                self._cached = np.load(io.BytesIO(data), allow_pickle=False)
            return self._cached
        if self._backend is None and self._s.protocol == "file":
            return np.load(self._s.full_path(self.path), mmap_mode=mmap_mode, allow_pickle=False)
        where = f"{self._backend!r}" if self._backend is not None else self._s.name
        import tempfile

        cache = Path(tempfile.gettempdir()) / "dj_dagster_mmap"
        cache.mkdir(exist_ok=True)
        local = cache / f"{hashlib.md5(f'{where}:{self.path}'.encode()).hexdigest()[:16]}.npy"
        if not local.exists():
            data = self._bytes(self.path)
            tmp = local.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, local)
        return np.load(local, mmap_mode=mmap_mode, allow_pickle=False)

    def read(self, subpath: str | None = None) -> bytes:
        """The raw ``.npy`` file bytes."""
        return self._bytes(self.path)

    def __array__(self, dtype=None, copy=None):
        arr = self.load()
        return arr.astype(dtype) if dtype is not None else arr

    def __getitem__(self, item):
        return self.load()[item]

    def __len__(self) -> int:
        if not self._meta["shape"]:
            raise TypeError("len() of a 0-dimensional array")
        return self._meta["shape"][0]

    def __repr__(self) -> str:
        return f"NpyRef(shape={self.shape}, dtype={self.dtype}, {'loaded' if self.is_loaded else 'not loaded'})"


# --------------------------------------------------------------------------- filepath


# --------------------------------------------------------------------------- garbage collection


class Orphan(NamedTuple):
    store: str
    path: str


def _covered(path: str, referenced: set[str]) -> bool:
    """Whether a stored file belongs to a referenced object: it is one, lies inside a
    referenced folder, or is a referenced folder's manifest."""
    if path.endswith(_MANIFEST):
        path = path[: -len(_MANIFEST)]
    if path in referenced:
        return True
    i = path.rfind("/")
    while i > 0:
        if path[:i] in referenced:
            return True
        i = path.rfind("/", 0, i)
    return False


def _scan(connection, schemas: list[str]) -> tuple[dict[str, set[str]], set[str], list[str]]:
    """References in the rows of ``schemas``: ``{store: {path}}``, the stores their
    attributes are declared with, and the problems met (tables that could not be read)."""
    import sqlalchemy as sa

    from . import catalog

    refs: dict[str, set[str]] = {}
    declared: set[str] = set()
    problems: list[str] = []
    default = None
    with contextlib.suppress(StoreError):
        default = get_store(None).name
    for schema in schemas:
        with connection.reading() as tx:
            names = [n for n in connection.adapter.list_tables(tx, schema) if not n.startswith("~")]
        for name in names:
            try:
                info = catalog.load(connection, schema, name)
            except Exception as exc:  # noqa: BLE001 - reported, blocks deletion
                problems.append(f"{schema}.{name}: {type(exc).__name__}: {exc}")
                continue
            attrs = [a for a in info.heading if a.codec and a.type.store is not None]
            for a in attrs:
                if a.type.store:
                    declared.add(a.type.store)
                elif default:
                    declared.add(default)
                col = info.sa_table.c[a.name]
                try:
                    rows = connection.query_all(sa.select(col).where(col.is_not(None)))
                except Exception as exc:  # noqa: BLE001
                    problems.append(f"{schema}.{name}.{a.name}: {type(exc).__name__}: {exc}")
                    continue
                for (value,) in rows:
                    try:
                        meta = _as_meta(value)
                    except DataJointError:
                        continue
                    store = meta.get("store") or default or ""
                    refs.setdefault(store, set()).add(str(meta["path"]))
    return refs, declared, problems


def gc(schema_or_connection, store: str | None = None, dry_run: bool = True) -> list[Orphan]:
    """Objects in a store that no row refers to, removed unless ``dry_run``.

    ``schema_or_connection``: a :class:`~dj_dagster.Schema` (its objects only) or a
    :class:`~dj_dagster.Connection` (every schema it holds). ``store``: a store name
    (``'@'`` or ``''``: the default store); ``None``: the stores that the schemas'
    attributes are declared with, and the default store. Only the sections DataJoint
    manages for these schemas are examined (``{hash_prefix}/{schema}/`` and
    ``{schema_prefix}/{schema}/``); ``<filepath@>`` files and other schemas' objects are
    never touched. Returns the orphans as ``(store, path)`` pairs, sorted.

    Run it when no insert into these schemas is under way: an insert uploads its objects
    before its rows are committed, and objects uploaded by an insert still in progress
    look orphaned.
    """
    from .connection import Connection

    if isinstance(schema_or_connection, Connection):
        connection = schema_or_connection
        with connection.reading() as tx:
            schemas = list(connection.adapter.list_schemas(tx))
    elif getattr(schema_or_connection, "database", None) and hasattr(schema_or_connection, "connection"):
        connection = schema_or_connection.connection
        schemas = [schema_or_connection.database]
    else:
        raise DataJointError(f"gc() takes a Schema or a Connection, got {type(schema_or_connection).__name__}")
    refs, declared, problems = _scan(connection, schemas)
    if store is not None:
        targets = [_store(store)]
    else:
        targets = []
        with contextlib.suppress(StoreError):
            declared.add(get_store(None).name)
        for name in sorted(declared):
            try:
                targets.append(get_store(name))
            except StoreError as exc:
                log.warning("gc: skipping store %r: %s", name, exc)
    orphans: list[Orphan] = []
    for s in targets:
        referenced = refs.get(s.name, set())
        for schema in schemas:
            try:
                hashed = s.list(_join(_hash_section(s), schema) + "/")
                addressed = s.list(_join(_schema_section(s), schema) + "/")
            except StoreError as exc:
                raise ExternalStoreError(f"gc: cannot list store {s.name!r}: {exc}") from None
            orphans += [Orphan(s.name, p) for p in hashed
                        if _HASH_NAME.match(p.rsplit("/", 1)[-1]) and p not in referenced]
            orphans += [Orphan(s.name, p) for p in addressed if not _covered(p, referenced)]
    orphans.sort()
    if not dry_run and orphans:
        if problems:
            raise ExternalStoreError(
                f"gc: refusing to delete: {len(problems)} table(s) could not be scanned, so live objects could "
                f"look orphaned: {problems[:5]}")
        by_store: dict[str, list[str]] = {}
        for o in orphans:
            by_store.setdefault(o.store, []).append(o.path)
        for name, paths in by_store.items():
            try:
                _store(name).remove(paths)
            except StoreError as exc:
                raise ExternalStoreError(f"gc: {exc}") from None
            log.info("gc removed %d object(s) from store %r", len(paths), name)
    elif problems:
        log.warning("gc: %d table(s) could not be scanned: %s", len(problems), problems[:5])
    return orphans
