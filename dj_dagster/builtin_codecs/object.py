"""``<object@store>``: files, folders and bytes at schema-addressed paths."""

from __future__ import annotations

import os
from typing import Any

from .schema import SchemaCodec


class ObjectCodec(SchemaCodec):
    """Stores bytes, ``(ext, bytes or binary stream)`` or a local file or folder (its path)
    once per row; fetch returns a lazy :class:`~dj_dagster.objectref.ObjectRef`. Metadata
    in the column: ``path``, ``store``, ``size``, ``ext``, ``is_dir``, ``item_count``,
    ``timestamp``."""

    name = "object"

    def validate(self, value: Any) -> None:
        if isinstance(value, (bytes, bytearray, memoryview, str, os.PathLike)):
            return
        if isinstance(value, tuple) and len(value) == 2:
            return
        if isinstance(value, dict) and "path" in value:
            return
        raise TypeError(f"<object> expects bytes, (ext, data), or a file or folder path, got {type(value).__name__}")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> dict:
        from ..external import put_object

        schema, table, field, primary_key = self._extract_context(key, context)
        return put_object(store_name, value, schema=schema, table=table, field=field, key=primary_key)

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> Any:
        from ..external import _as_meta
        from ..objectref import ObjectRef

        return ObjectRef.from_json(_as_meta(stored))
