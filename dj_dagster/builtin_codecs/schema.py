""":class:`SchemaCodec`: the base of schema-addressed codecs (``<object@>``, ``<npy@>``
and users' own), whose objects live at a path made from schema, table, primary key and
attribute."""

from __future__ import annotations

import warnings

from ..codecs import Codec
from ..errors import DataJointError


class SchemaCodec(Codec, register=False):
    """Base for codecs storing one object per row at
    ``{schema_prefix}/{schema}/{table}/{pk=v}/.../{field}_{token}{ext}``. Store only: the
    column holds JSON metadata. Subclasses implement ``encode``/``decode`` with the helpers
    :meth:`_extract_context`, :meth:`_build_path` and :meth:`_get_backend`."""

    def get_dtype(self, is_store: bool) -> str:
        if not is_store:
            raise DataJointError(f"<{self.name}> requires @ (store only): declare <{self.name}@store> or "
                                 f"<{self.name}@>")
        return "json"

    def _extract_context(self, key: dict | None, context: dict | None = None) -> tuple[str, str, str, dict]:
        """``(schema, table, field, primary key)`` of the value being encoded, from
        ``context`` or, for callers written before it, from ``key``'s ``_schema``,
        ``_table``, ``_field`` (deprecated: warns)."""
        key = dict(key or {})
        if context is None and any(str(k).startswith("_") for k in key):
            warnings.warn("Reading the schema, table and field from `key` is deprecated (datajoint issue 1550): "
                          "accept `context` in encode()/decode() and pass it to _extract_context(key, context)",
                          DeprecationWarning, stacklevel=2)
        context = context or {}
        schema = context.get("schema", key.get("_schema", "unknown"))
        table = context.get("table", key.get("_table", "unknown"))
        field = context.get("field", key.get("_field", "data"))
        primary_key = {k: v for k, v in key.items() if not str(k).startswith("_")}
        return schema, table, field, primary_key

    def _build_path(self, schema: str, table: str, field: str, primary_key: dict, ext: str | None = None,
                    store_name: str | None = None, config=None) -> tuple[str, str]:
        """``(path, token)`` for a new object, following the store's ``schema_prefix``,
        ``partition_pattern`` and ``token_length``."""
        from ..external import _schema_section, _store
        from ..storage import build_object_path

        store = _store(store_name)
        return build_object_path(schema, table, field, primary_key, ext,
                                 partition_pattern=store.spec.get("partition_pattern"),
                                 token_length=store.spec.get("token_length", 8),
                                 schema_prefix=_schema_section(store))

    def _get_backend(self, store_name: str | None = None, config=None):
        """The :class:`~dj_dagster.storage.StorageBackend` of a store (None: the default)."""
        from ..hash_registry import get_store_backend

        return get_store_backend(store_name, config=config)
