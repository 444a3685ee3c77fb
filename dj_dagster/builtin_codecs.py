"""The built-in codecs (DataJoint 2.3.5's set and semantics).

- ``<blob>``: DataJoint's serialized bytes in the row; ``<blob@store>`` / ``<blob@>``: the
  same bytes content-addressed in an object store (JSON metadata in the row).
- ``<attach>``: a file's name and bytes in the row; ``<attach@store>``: content-addressed
  in a store. Fetch writes the file into ``config['download_path']`` (default: the
  working directory) and returns its local path.
- ``<hash@store>``: raw bytes, content-addressed.
- ``<object@store>``: bytes, ``(ext, bytes)`` or a local file or folder, schema-addressed;
  fetch returns an :class:`~dj_dagster.external.ObjectRef`.
- ``<npy@store>``: a numpy array as a ``.npy`` file, schema-addressed; fetch returns an
  :class:`~dj_dagster.external.NpyRef`.
- ``<filepath@store>``: a file already in the store; fetch returns an ``ObjectRef``.

See :mod:`dj_dagster.external` for paths, metadata and garbage collection.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .codecs import Codec
from .errors import DataError


def _decode_overridden(codec: Codec, cls: type) -> bool:
    """Whether a subclass of a built-in codec has its own ``decode``, which reading a
    column together would bypass."""
    return type(codec).decode is not cls.decode


def _store_only(codec: Codec, store: str | None) -> None:
    if store is None:
        raise DataError(f"<{codec.name}> needs an object store: declare it as <{codec.name}@store> or "
                        f"<{codec.name}@> (the default store)")


class BlobCodec(Codec):
    name = "blob"
    dtype = "bytes"

    def encode(self, value: Any, *, store=None, table=None, **_) -> Any:
        from . import blob

        data = blob.pack(value)
        if store is not None:
            from .external import put_content

            return put_content(table, store, data)
        return data

    def decode(self, stored: Any, *, store=None, **_) -> Any:
        from . import blob

        if store is not None:
            from .external import get_content

            stored = get_content(stored)
        return blob.unpack(bytes(stored))

    def decode_many(self, values: list, *, store=None, **kwargs) -> list:
        if store is None or _decode_overridden(self, BlobCodec):
            return super().decode_many(values, store=store, **kwargs)
        from . import blob
        from .external import get_contents

        return get_contents(values, blob.unpack)


def _save_attachment(stored: bytes) -> str:
    """Write ``filename\\0contents`` into the download folder; its local path."""
    from .settings import config

    split = stored.index(b"\x00")
    # only the name: a stored name can never write outside the download folder
    filename = Path(stored[:split].decode("utf-8")).name or "attachment"
    contents = stored[split + 1:]
    folder = Path(config.get("download_path") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    stem, suffix, n = target.stem, target.suffix, 0
    while target.exists() and target.read_bytes() != contents:
        n += 1
        target = folder / f"{stem}_{n}{suffix}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(contents)
        os.replace(tmp, target)
    return str(target)


class AttachCodec(Codec):
    """``filename\\0contents``: in the row, or content-addressed with ``@store``."""

    name = "attach"
    dtype = "bytes"

    def encode(self, value: Any, *, store=None, table=None, **_) -> Any:
        if not isinstance(value, (str, os.PathLike)):
            raise DataError(f"<attach> expects the path of a file, got {type(value).__name__}")
        path = Path(value)
        if not path.exists():
            raise DataError(f"<attach>: file not found: {path}")
        if path.is_dir():
            raise DataError(f"<attach> does not take folders (use <object@store>): {path}")
        data = path.name.encode("utf-8") + b"\x00" + path.read_bytes()
        if store is not None:
            from .external import put_content

            return put_content(table, store, data)
        return data

    def decode(self, stored: Any, *, store=None, **_) -> str:
        if store is not None:
            from .external import get_content

            stored = get_content(stored)
        return _save_attachment(bytes(stored))

    def decode_many(self, values: list, *, store=None, **kwargs) -> list:
        if store is None or _decode_overridden(self, AttachCodec):
            return super().decode_many(values, store=store, **kwargs)
        from .external import get_contents

        return get_contents(values, _save_attachment)


class HashCodec(Codec):
    """Raw bytes, content-addressed (``@store`` required)."""

    name = "hash"
    dtype = "json"

    def encode(self, value: Any, *, store=None, table=None, **_) -> Any:
        from .external import put_content

        _store_only(self, store)
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise DataError(f"<hash> expects bytes, got {type(value).__name__} (use <blob@> for Python objects)")
        return put_content(table, store, value)

    def decode(self, stored: Any, **_) -> bytes:
        from .external import get_content

        return get_content(stored)

    def decode_many(self, values: list, **kwargs) -> list:
        if _decode_overridden(self, HashCodec):
            return super().decode_many(values, **kwargs)
        from .external import get_contents

        return get_contents(values)


class ObjectCodec(Codec):
    """Files, folders and bytes at a path made from schema, table and key (``@store`` required)."""

    name = "object"
    dtype = "json"

    def encode(self, value: Any, *, key=None, store=None, table=None, attribute="", **_) -> Any:
        from .external import put_object

        _store_only(self, store)
        return put_object(table, store, value, key=key, attribute=attribute)

    def decode(self, stored: Any, **_) -> Any:
        from .external import ObjectRef, _as_meta

        return ObjectRef(_as_meta(stored))


class NpyCodec(Codec):
    """Numpy arrays as ``.npy`` files at a schema-addressed path (``@store`` required)."""

    name = "npy"
    dtype = "json"

    def encode(self, value: Any, *, key=None, store=None, table=None, attribute="", **_) -> Any:
        from .external import put_npy

        _store_only(self, store)
        return put_npy(table, store, value, key=key, attribute=attribute)

    def decode(self, stored: Any, **_) -> Any:
        from .external import NpyRef, _as_meta

        return NpyRef(_as_meta(stored))


class FilepathCodec(Codec):
    """A file already in the store: its relative path, size and hash (``@store`` required)."""

    name = "filepath"
    dtype = "json"

    def encode(self, value: Any, *, store=None, **_) -> Any:
        from .external import filepath_metadata

        _store_only(self, store)
        return filepath_metadata(store, value)

    def decode(self, stored: Any, **_) -> Any:
        from .external import ObjectRef, _as_meta

        return ObjectRef(_as_meta(stored))
