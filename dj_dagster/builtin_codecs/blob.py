"""``<blob>``: Python objects in DataJoint's serialization (:mod:`dj_dagster.blob`)."""

from __future__ import annotations

from typing import Any

from ..codecs import Codec


class BlobCodec(Codec):
    """Any value :func:`dj_dagster.blob.pack` serializes: numpy arrays, numbers, strings,
    lists, dicts, ... In the row as ``bytes``; with ``@store`` through ``<hash@store>``."""

    name = "blob"

    def get_dtype(self, is_store: bool) -> str:
        return "<hash>" if is_store else "bytes"

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> bytes:
        from .. import blob

        return blob.pack(value)

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> Any:
        from .. import blob

        return blob.unpack(bytes(stored))
