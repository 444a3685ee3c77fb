"""Helpers shared by the built-in codecs."""

from __future__ import annotations

from ..codecs import Codec


def decode_overridden(codec: Codec, cls: type) -> bool:
    """Whether a subclass of a built-in codec has its own ``decode``, which reading a
    column together would bypass."""
    return type(codec).decode is not cls.decode


def config_of(key: dict | None, context: dict | None):
    return Codec._codec_config(key, context)


def schema_of(key: dict | None, context: dict | None) -> str:
    """The schema a value is stored for: ``context['schema']``, else the ``_schema`` that
    older callers put in ``key``."""
    if context and context.get("schema"):
        return context["schema"]
    return (key or {}).get("_schema") or "unknown"
