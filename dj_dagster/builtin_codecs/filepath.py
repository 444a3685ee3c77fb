"""``<filepath@store>``: a reference to a file the user put in a store."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from ..codecs import Codec
from ..errors import DataError, DataJointError


class FilepathError(DataError, ValueError):
    """A ``<filepath@>`` value names a path the store does not allow."""


class FilepathNotFoundError(DataError, FileNotFoundError):
    """A ``<filepath@>`` value names a file that is not in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _relative(store, raw: str) -> str:
    """The path inside the store: relative paths as given (without leading slashes); for a
    local store, an absolute path inside its folder; a URL inside its location."""
    if store.protocol == "file" and os.path.isabs(raw):
        root = os.path.normpath(store.root)
        full = os.path.normpath(raw)
        if full.startswith(root + os.sep):
            return os.path.relpath(full, root).replace(os.sep, "/")
    prefix = f"{store.protocol}://{store.root}/"
    if raw.startswith(prefix):
        return raw[len(prefix):]
    return raw.replace("\\", "/").lstrip("/")


class FilepathCodec(Codec):
    """A path relative to the store (the file must exist there; DataJoint neither copies
    nor deletes it). Paths in the sections DataJoint manages (the store's ``hash_prefix``
    and ``schema_prefix``) are refused, and when the store sets ``filepath_prefix`` paths
    must lie under it. Fetch returns an :class:`~dj_dagster.objectref.ObjectRef`."""

    name = "filepath"

    def get_dtype(self, is_store: bool) -> str:
        if not is_store:
            raise DataJointError("<filepath> requires @: use <filepath@> for the default store or <filepath@store>")
        return "json"

    def validate(self, value: Any) -> None:
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"<filepath> expects a path string or Path, got {type(value).__name__}")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> dict:
        from .. import hash_registry
        from ..external import _hash_section, _schema_section, _section, _store

        self.validate(value)
        store = _store(store_name)
        path = _relative(store, os.fspath(value))
        for setting, section in (("hash_prefix", _hash_section(store)), ("schema_prefix", _schema_section(store))):
            if section and (path + "/").startswith(section + "/"):
                raise FilepathError(f"<filepath@> cannot use reserved section '{section}' ({setting}) of store "
                                    f"{store.name!r}: DataJoint manages it. Got path: {value}")
        required = _section(store, "filepath_prefix", "")
        if required and not path.startswith(required + "/"):
            raise FilepathError(f"<filepath@> must use prefix '{required}' (filepath_prefix of store "
                                f"{store.name!r}). Got path: {value}")
        backend = hash_registry.get_store_backend(store_name, config=self._codec_config(key, context))
        if not backend.exists(path):
            raise FilepathNotFoundError(f"<filepath@{store.name}>: file not found in the store: {path}")
        is_dir = bool(backend.isdir(path))
        size = None if is_dir else int(backend.size(path))
        return {"path": path, "store": store.name, "size": size, "is_dir": is_dir,
                "timestamp": dt.datetime.now(dt.timezone.utc).isoformat()}

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> Any:
        from ..external import _as_meta
        from ..objectref import ObjectRef

        return ObjectRef.from_json(_as_meta(stored))
