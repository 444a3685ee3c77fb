"""Codec types ``<name>`` / ``<name@store>``: values that need encoding between Python
and the database (DataJoint 2.x's codec API).

Users add their own by subclassing :class:`Codec` with a ``name``; the subclass is
registered when it is defined, and a second class claiming a registered name is refused.
A codec says what it stores through :meth:`Codec.get_dtype`: a core type (``bytes``,
``json``, ``varchar(64)``, ...) or another codec (``<blob>``), so codecs chain. A store
given on the attribute (``<graph@cold>``) is handed down the chain: ``<blob@cold>``
stores its bytes through ``<hash@cold>``.

Encoding runs the chain outermost first, decoding innermost first. ``encode`` is called
as ``encode(value, key=..., store_name=..., context=...)`` and ``decode`` as
``decode(stored, key=..., context=...)``; ``store_name`` and ``context`` are passed only
to codecs that declare them (or take ``**kwargs``), so codecs written for older
signatures keep working. ``context`` holds ``schema``, ``table``, ``field`` and
``config``; ``key`` holds the row's primary-key values and, for codecs written before
``context`` existed, the same facts under ``_schema``, ``_table``, ``_field`` and
``_config``.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from typing import Any, Callable

from .errors import DataJointError

log = logging.getLogger(__name__)

__all__ = [
    "Codec", "get_codec", "list_codecs", "is_codec_registered", "unregister_codec", "lookup_codec",
    "parse_type_spec", "resolve_dtype", "decode_attribute",
]

_REGISTRY: dict[str, "Codec"] = {}
_plugins_loaded = False


class Codec:
    """Base class of codec types; subclasses register themselves under ``name``.

    Override :meth:`get_dtype` (or set the ``dtype`` attribute), :meth:`encode` and
    :meth:`decode`; optionally :meth:`validate` (called on each value before it is
    encoded) and :meth:`referenced_paths` (what garbage collection keeps). Pass
    ``register=False`` in the class statement for an abstract base.
    """

    name: str | None = None
    dtype: str = "bytes"

    def __init_subclass__(cls, *, register: bool = True, **kwargs):
        super().__init_subclass__(**kwargs)
        if not register or cls.name is None:
            return
        if not isinstance(cls.name, str) or not cls.name:
            raise DataJointError(f"Codec name must be a non-empty string, got {cls.name!r} in {cls.__qualname__}")
        existing = _REGISTRY.get(cls.name)
        if existing is not None:
            if _same_class(type(existing), cls):
                _REGISTRY[cls.name] = cls()  # the module was reloaded: the newer definition serves
                return
            raise DataJointError(
                f"Codec <{cls.name}> already registered by {type(existing).__module__}.{type(existing).__qualname__}; "
                f"{cls.__module__}.{cls.__qualname__} needs another name")
        _REGISTRY[cls.name] = cls()

    def get_dtype(self, is_store: bool) -> str:
        """What this codec's encoded value is stored as: a core type or another codec
        (``"<blob>"``). ``is_store``: whether the attribute names a store (``@``)."""
        return self.dtype

    def encode(self, value: Any, *, key: dict | None = None, store_name: str | None = None) -> Any:
        """The value to hand to the stored type (``get_dtype``)."""
        raise NotImplementedError(f"codec <{self.name}> does not define encode()")

    def decode(self, stored: Any, *, key: dict | None = None) -> Any:
        """The Python value for a stored one."""
        raise NotImplementedError(f"codec <{self.name}> does not define decode()")

    def validate(self, value: Any) -> None:
        """Check a value before it is encoded (raise ``TypeError``/``ValueError``); the
        default accepts anything."""

    def decode_many(self, values: list, *, key: dict | None = None, context: dict | None = None) -> list:
        """``decode`` of each of a column's values (none is NULL). A fetch decodes a column
        at a time through this, so that codecs reading object stores can read together."""
        call = _decoder(self)
        return [call(v, key, context) for v in values]

    def referenced_paths(self, stored: Any) -> list[tuple[str, str | None]]:
        """``(path, store)`` of each object-store object a stored value refers to: by
        default the ``path``/``store`` of DataJoint's object-store metadata (a dict or its
        JSON text), nothing for other values. Garbage collection keeps these."""
        if isinstance(stored, (bytes, bytearray)):
            try:
                stored = bytes(stored).decode("utf-8")
            except UnicodeDecodeError:
                return []
        if isinstance(stored, str):
            try:
                stored = json.loads(stored)
            except ValueError:
                return []
        if isinstance(stored, dict) and "path" in stored:
            return [(stored["path"], stored.get("store"))]
        return []

    @staticmethod
    def _codec_config(key: dict | None = None, context: dict | None = None):
        """The configuration a codec call was made with: ``context['config']``, else the
        ``_config`` that older callers put in ``key``; None when neither has one."""
        if context and context.get("config") is not None:
            return context["config"]
        return (key or {}).get("_config")

    def __repr__(self) -> str:
        return f"<{type(self).__name__}(name={self.name!r})>"


def _same_class(a: type, b: type) -> bool:
    return a is b or (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def parse_type_spec(spec: str) -> tuple[str, str | None]:
    """``"<blob@cold>"`` -> ``("blob", "cold")``; ``"<blob@>"`` -> ``("blob", "")``;
    ``"blob"`` or ``"<blob>"`` -> ``("blob", None)``."""
    text = spec.strip().strip("<>").strip()
    if "@" in text:
        name, store = text.split("@", 1)
        return name.strip(), store.strip()
    return text, None


def _load_plugins() -> None:
    """Codecs that installed packages declare under the ``datajoint.codecs`` (or
    ``dj_dagster.codecs``) entry-point group, loaded once."""
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    from importlib.metadata import entry_points

    for group in ("datajoint.codecs", "datajoint.types", "dj_dagster.codecs"):
        for ep in entry_points(group=group):
            if ep.name in _REGISTRY:
                continue
            try:
                cls = ep.load()
                if ep.name not in _REGISTRY:
                    _REGISTRY[ep.name] = cls()
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                log.warning("could not load codec %r from %s: %s", ep.name, ep.value, exc)


def _builtins() -> None:
    from . import builtin_codecs  # noqa: F401  (registers the built-ins)


def get_codec(name: str) -> Codec:
    """The registered codec for ``name`` (``"graph"``, ``"<graph>"`` or ``"<graph@store>"``)."""
    type_name, _ = parse_type_spec(name)
    if type_name not in _REGISTRY:
        _builtins()
        if type_name not in _REGISTRY:
            _load_plugins()
    try:
        return _REGISTRY[type_name]
    except KeyError:
        raise DataJointError(
            f"Unknown codec: <{type_name}>. Define it (a subclass of dj.Codec with name={type_name!r}) before "
            f"use; known codecs: {sorted(_REGISTRY)}") from None


def list_codecs() -> list[str]:
    """The registered codec names, sorted."""
    _builtins()
    _load_plugins()
    return sorted(_REGISTRY)


def is_codec_registered(name: str) -> bool:
    """Whether a codec ``name`` (brackets and store allowed) is registered."""
    try:
        get_codec(name)
    except DataJointError:
        return False
    return True


def unregister_codec(name: str) -> None:
    """Remove a codec from the registry (for tests and interactive redefinition)."""
    type_name, _ = parse_type_spec(name)
    if type_name not in _REGISTRY:
        raise DataJointError(f"Codec <{type_name}> is not registered")
    del _REGISTRY[type_name]


def lookup_codec(codec_spec: str) -> tuple[Codec, str | None]:
    """``(codec, store)`` for a type such as ``"<blob@cold>"``."""
    type_name, store = parse_type_spec(codec_spec)
    return get_codec(type_name), store


def resolve_dtype(dtype: str, seen: set[str] | None = None,
                  store_name: str | None = None) -> tuple[str, list[Codec], str | None]:
    """Follow a type through its codecs: ``(stored core type, codecs outermost first,
    store)``. ``"<blob>"`` -> ``("bytes", [blob], None)``; ``"<blob@cold>"`` ->
    ``("json", [blob, hash], "cold")``; a core type resolves to itself. A store named at
    an outer level is handed to the inner codecs; a codec chain that loops is refused."""
    seen = set() if seen is None else seen
    text = dtype.strip()
    if text.startswith("<") and text.endswith(">"):
        type_name, own_store = parse_type_spec(text)
        store = own_store if own_store is not None else store_name
        if type_name in seen:
            raise DataJointError(f"Circular codec reference detected: <{type_name}>")
        seen.add(type_name)
        codec = get_codec(type_name)
        final, inner, store = resolve_dtype(codec.get_dtype(store is not None), seen, store)
        return final, [codec, *inner], store
    if "@" in text:
        base, own_store = text.split("@", 1)
        return base, [], own_store or store_name
    return text, [], store_name


# --------------------------------------------------------------------------- calling codecs


@functools.lru_cache(maxsize=None)
def _takes(func: Callable, name: str) -> bool:
    """Whether ``func`` accepts the keyword ``name`` (declared, or through ``**kwargs``);
    cached per function, as signatures cost more than a small encode."""
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def _encoder(codec: Codec) -> Callable[[Any, dict | None, str | None, dict | None], Any]:
    fn = type(codec).encode
    with_store, with_context = _takes(fn, "store_name"), _takes(fn, "context")

    def call(value, key, store_name, context):
        kwargs = {}
        if with_store:
            kwargs["store_name"] = store_name
        if with_context:
            kwargs["context"] = context
        return codec.encode(value, key=key, **kwargs)
    return call


def _decoder(codec: Codec) -> Callable[[Any, dict | None, dict | None], Any]:
    if _takes(type(codec).decode, "context"):
        return lambda stored, key, context: codec.decode(stored, key=key, context=context)
    return lambda stored, key, context: codec.decode(stored, key=key)


def attribute_chain(attr) -> tuple[str, list[Codec], str | None]:
    """:func:`resolve_dtype` of a heading attribute's codec type."""
    return resolve_dtype(f"<{attr.codec}>", store_name=attr.type.store)


def _config_of(table):
    """The configuration of the connection ``table`` is read or written through (a
    ``dj.Instance``'s), None for the global one."""
    try:
        return getattr(table.connection, "config", None)
    except Exception:  # noqa: BLE001 - no connection bound: the global configuration
        return None


def _table_name(table) -> str:
    return getattr(table, "table_name", None) or getattr(table, "class_name", None) or "unknown"


def encoder_for(table, attr) -> Callable[[Any, dict], Any] | None:
    """The encoding of ``attr``'s values for rows of ``table``: ``validate`` of the outer
    codec, then each codec's ``encode``, outermost first. None if ``attr`` has no codec."""
    if not attr.codec:
        return None
    from .settings import config

    config = _config_of(table) or config
    _, chain, store = attribute_chain(attr)
    calls = [_encoder(c) for c in chain]
    outer = chain[0]
    schema = getattr(table, "database", None)
    name = _table_name(table)
    context = {"schema": schema, "table": name, "field": attr.name, "config": config}
    legacy = {"_schema": schema, "_table": name, "_field": attr.name, "_config": config}
    primary_key = list(getattr(table, "primary_key", ()) or ())

    where = getattr(table, "full_table_name", None) or f"{schema}.{name}"

    def encode(value, row):
        if store is not None:
            from .external import note_table

            note_table(where)
        try:
            outer.validate(value)
        except (TypeError, ValueError) as exc:
            from .errors import DataError

            raise DataError(f"{getattr(table, 'full_table_name', name)}.{attr.name}: value {value!r:.80} is "
                            f"refused by <{outer.name}>: {exc}") from exc
        key = dict(legacy)
        if row:
            key.update((k, row[k]) for k in primary_key if k in row)
        for call in calls:
            value = call(value, key, store, context)
        return value
    return encode


def column_decoder_for(expr, attr) -> Callable[[list], list] | None:
    """The decoding of a column of ``attr``'s values (no NULL among them), innermost codec
    first, a column at a time so that store-backed codecs can read their objects together."""
    if not attr.codec:
        return None
    from .settings import config

    config = _config_of(expr) or config
    _, chain, _ = attribute_chain(attr)
    context = {"config": config}
    key = {"_config": config}
    inner, outer = chain[-1], chain[-2::-1]
    if outer and getattr(inner, "reads_together", False) and all(
            type(c).decode_many is Codec.decode_many for c in outer):
        # the objects are read in bounded chunks and decoded while their chunk is in memory
        calls = [_decoder(c) for c in outer]

        def then(value):
            for call in calls:
                value = call(value, key, context)
            return value
        return lambda values: inner.decode_many(values, key=key, context=context, then=then)

    def decode(values: list) -> list:
        for c in reversed(chain):
            values = c.decode_many(values, key=key, context=context)
        return values
    return decode


def decode_attribute(attr, data, squeeze: bool = False, connection=None):
    """One stored value of heading attribute ``attr`` as fetch returns it: decoded by its
    codec chain (innermost first), JSON text parsed for a json column; ``squeeze`` drops
    an array's singleton dimensions. NULL stays None."""
    if data is None:
        return None
    if attr.codec:
        final, chain, _ = attribute_chain(attr)
        if final == "json" and isinstance(data, (str, bytes)):
            data = json.loads(data)
        cfg = getattr(connection, "config", None)
        if cfg is None:
            from .settings import config as cfg
        for codec in reversed(chain):
            data = _decoder(codec)(data, {"_config": cfg}, {"config": cfg})
    elif attr.type.name == "json" and isinstance(data, (str, bytes)):
        data = json.loads(data)
    if squeeze:
        import numpy as np

        if isinstance(data, np.ndarray):
            data = data.squeeze()
    return data


def storage_type(attr_type) -> str | None:
    """The core type a codec-typed attribute's column holds (``"bytes"``, ``"json"``, ...);
    None when its codec is not known here (a table read back without its codec's code)."""
    try:
        final, _, _ = resolve_dtype(f"<{attr_type.name}>", store_name=attr_type.store)
    except DataJointError:
        return None
    return final


def stored_spec(spec):
    """The :class:`~dj_dagster.types.TypeSpec` of the column that holds a codec-typed
    attribute (``<blob>`` -> ``bytes``, ``<blob@>`` -> ``json``, a user codec whose
    ``get_dtype`` says ``varchar(64)`` -> ``varchar(64)``). Other types, and codecs not
    known here, are returned unchanged."""
    if not spec.is_codec:
        return spec
    final = storage_type(spec)
    if final is None:
        return spec
    return _parsed_core(final) or spec


@functools.lru_cache(maxsize=256)
def _parsed_core(text: str):
    from .errors import DeclarationError
    from .types import parse_type

    try:
        parsed = parse_type(text)
    except DeclarationError:
        return None
    return None if parsed.is_codec else parsed
