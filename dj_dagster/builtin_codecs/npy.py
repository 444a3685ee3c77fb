"""``<npy@store>``: numpy arrays as ``.npy`` files at schema-addressed paths."""

from __future__ import annotations

from typing import Any

from ..errors import DataJointError
from ..external import NpyRef
from .schema import SchemaCodec

__all__ = ["NpyCodec", "NpyRef"]


class NpyCodec(SchemaCodec):
    """A numpy array (not of Python objects) written with ``numpy.save``; the column holds
    ``path``, ``store``, ``dtype`` and ``shape``, so fetch returns an :class:`NpyRef` that
    knows shape and dtype without reading, and loads (or memory-maps) on demand."""

    name = "npy"

    def validate(self, value: Any) -> None:
        import numpy as np

        if not isinstance(value, np.ndarray):
            raise DataJointError(f"<npy> requires numpy.ndarray, got {type(value).__name__}")
        if value.dtype.hasobject:
            raise DataJointError("<npy> does not support object dtype arrays")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> dict:
        from ..external import put_npy

        self.validate(value)
        schema, table, field, primary_key = self._extract_context(key, context)
        return put_npy(store_name, value, schema=schema, table=table, field=field, key=primary_key)

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> NpyRef:
        from ..external import _as_meta

        return NpyRef(_as_meta(stored))
