"""The built-in codecs. ``<blob>`` keeps DataJoint's serialized bytes in the row."""

from __future__ import annotations

from typing import Any

from .codecs import Codec


class BlobCodec(Codec):
    name = "blob"
    dtype = "bytes"

    def encode(self, value: Any, *, store=None, **_) -> Any:
        from . import blob

        data = blob.pack(value)
        if store is not None:
            from .external import put_content

            return put_content(_["table"], store, data)
        return data

    def decode(self, stored: Any, *, store=None, **_) -> Any:
        from . import blob

        if store is not None:
            from .external import get_content

            stored = get_content(stored)
        return blob.unpack(bytes(stored))
