"""``<hash@store>``: raw bytes, content-addressed (:mod:`dj_dagster.hash_registry`)."""

from __future__ import annotations

from typing import Any

from ..codecs import Codec
from ..errors import DataJointError
from ._util import config_of, decode_overridden, schema_of


class HashCodec(Codec):
    """Bytes stored once per content and schema at ``{hash_prefix}/{schema}/{hash}``; the
    column holds ``{hash, path, schema, store, size}``. Store only (``<hash@>``)."""

    name = "hash"

    def get_dtype(self, is_store: bool) -> str:
        if not is_store:
            raise DataJointError("<hash> requires @ (in-store storage only): declare <hash@store> or <hash@>")
        return "json"

    def validate(self, value: Any) -> None:
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"<hash> expects bytes, got {type(value).__name__} (use <blob@> for Python objects)")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> dict:
        from .. import hash_registry

        return hash_registry.put_hash(value, schema_name=schema_of(key, context), store_name=store_name,
                                      config=config_of(key, context))

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> bytes:
        from .. import hash_registry

        return hash_registry.get_hash(stored, config=config_of(key, context))

    reads_together = True  # decode_many(values, then=f): f applied to each object as its chunk arrives

    def decode_many(self, values: list, *, then=None, **kwargs) -> list:
        """The objects of a column read together, in chunks of bounded size; ``then``
        (optional) turns each object's bytes into the value to return while its chunk is in
        memory, so a large fetch never holds all the raw bytes at once."""
        if decode_overridden(self, HashCodec):
            out = super().decode_many(values, **kwargs)
            return [then(v) for v in out] if then is not None else out
        from ..external import get_contents

        return get_contents(values, then)
