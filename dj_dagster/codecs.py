"""Codec types ``<name>`` / ``<name@store>``: values that need encoding between Python
and the database. Users add their own by subclassing :class:`Codec`; a codec may
store through another codec (``dtype = "<blob>"``), so codecs chain."""

from __future__ import annotations

from typing import Any, Callable

from .errors import DataJointError

_REGISTRY: dict[str, "Codec"] = {}


class Codec:
    """Subclass with ``name``, ``dtype`` (what is stored: ``bytes``, ``json`` or another
    codec type like ``<blob>``), ``encode`` and ``decode``."""

    name: str = ""
    dtype: str = "bytes"

    def __init_subclass__(cls, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if register and cls.name:
            _REGISTRY[cls.name] = cls()

    def encode(self, value: Any, *, key: dict | None = None, store: str | None = None, table=None,
               attribute: str = "") -> Any:
        raise NotImplementedError

    def decode(self, stored: Any, *, key: dict | None = None, store: str | None = None, table=None,
               attribute: str = "") -> Any:
        raise NotImplementedError

    def decode_many(self, values: list, *, store: str | None = None, table=None, attribute: str = "") -> list:
        """``decode`` of each value (none is NULL); a fetch decodes a column at a time through
        this, so that codecs reading object stores can override it to read concurrently."""
        return [self.decode(v, store=store, table=table, attribute=attribute) for v in values]


def get_codec(name: str) -> Codec:
    if name not in _REGISTRY:
        from . import builtin_codecs  # noqa: F401  (registers the built-ins)
    try:
        return _REGISTRY[name]
    except KeyError:
        raise DataJointError(f"Unknown codec <{name}>; known codecs: {sorted(_REGISTRY)}") from None


def _chain(codec: Codec) -> list[Codec]:
    chain = [codec]
    while chain[-1].dtype.startswith("<"):
        chain.append(get_codec(chain[-1].dtype.strip("<>").split("@")[0]))
        if len(chain) > 10:
            raise DataJointError(f"Codec <{codec.name}> chains too deep")
    return chain


def encoder_for(table, attr) -> Callable[[Any, dict], Any] | None:
    if not attr.codec:
        return None
    chain = _chain(get_codec(attr.codec))
    store = attr.type.store

    def encode(value, key):
        for c in chain:
            value = c.encode(value, key=key, store=store, table=table, attribute=attr.name)
        return value
    return encode


def column_decoder_for(expr, attr) -> Callable[[list], list] | None:
    """The codec chain's decoding of a column's values (no NULL among them), decoded
    together so that store-backed codecs can read their objects concurrently."""
    if not attr.codec:
        return None
    chain = list(reversed(_chain(get_codec(attr.codec))))
    store = attr.type.store

    def decode(values: list) -> list:
        for c in chain:
            values = c.decode_many(values, store=store, table=expr, attribute=attr.name)
        return values
    return decode
