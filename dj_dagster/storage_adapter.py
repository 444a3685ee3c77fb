"""Plugins for storage protocols beyond the built-in ones (``file``, ``s3`` and fsspec's).

A package adds a protocol by subclassing :class:`StorageAdapter` and declaring it under
the ``datajoint.storage`` (or ``dj_dagster.storage``) entry-point group::

    [project.entry-points."datajoint.storage"]
    myprotocol = "my_package:MyStorageAdapter"

A store configured with ``"protocol": "myprotocol"`` is then reached through the
adapter's ``create_filesystem``.
"""

from __future__ import annotations

import logging
from typing import Any

from .errors import DataJointError

log = logging.getLogger(__name__)

__all__ = ["StorageAdapter", "get_storage_adapter", "register_storage_adapter", "COMMON_STORE_KEYS"]

# settings every store may carry, whatever its protocol
COMMON_STORE_KEYS = frozenset({"protocol", "location", "subfolding", "partition_pattern", "token_length",
                               "hash_prefix", "schema_prefix", "filepath_prefix", "stage"})

_ADAPTERS: dict[str, "StorageAdapter"] = {}
_discovered = False


class StorageAdapter:
    """A storage protocol: set ``protocol``, ``required_keys`` and ``allowed_keys`` (keys a
    store spec of this protocol must / may have, besides :data:`COMMON_STORE_KEYS`) and
    implement :meth:`create_filesystem`."""

    protocol: str = ""
    required_keys: tuple[str, ...] = ()
    allowed_keys: tuple[str, ...] = ()

    def create_filesystem(self, spec: dict[str, Any]):
        """The fsspec filesystem for a store spec of this protocol."""
        raise NotImplementedError(f"storage adapter {self.protocol!r} does not define create_filesystem()")

    def validate_spec(self, spec: dict[str, Any]) -> None:
        """Raise DataJointError naming the keys a spec is missing or should not have."""
        missing = [k for k in self.required_keys if k not in spec]
        if missing:
            raise DataJointError(f"{self.protocol} store is missing: {', '.join(missing)}")
        allowed = set(self.allowed_keys) | COMMON_STORE_KEYS
        invalid = [k for k in spec if k not in allowed]
        if invalid:
            raise DataJointError(f"Invalid key(s) for {self.protocol} store: {', '.join(invalid)}")

    def full_path(self, spec: dict[str, Any], relpath: str) -> str:
        """The filesystem path of ``relpath`` inside the store's ``location``."""
        location = spec.get("location") or ""
        return f"{location}/{relpath}" if location else relpath

    def get_url(self, spec: dict[str, Any], path: str) -> str:
        """A URL to show for a stored object."""
        return f"{self.protocol}://{path}"


def register_storage_adapter(adapter: StorageAdapter) -> None:
    """Make ``adapter`` serve stores of its ``protocol`` (replacing an earlier one)."""
    if not getattr(adapter, "protocol", ""):
        raise DataJointError(f"storage adapter {type(adapter).__name__} has no protocol")
    _ADAPTERS[adapter.protocol] = adapter


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    from importlib.metadata import entry_points

    for group in ("datajoint.storage", "dj_dagster.storage"):
        for ep in entry_points(group=group):
            if ep.name in _ADAPTERS:
                continue
            try:
                adapter = ep.load()()
                _ADAPTERS[adapter.protocol] = adapter
            except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the others
                log.warning("could not load storage adapter %r: %s", ep.name, exc)


def get_storage_adapter(protocol: str) -> StorageAdapter | None:
    """The adapter registered for ``protocol`` (plugins are discovered on first use), or None."""
    if protocol not in _ADAPTERS:
        _discover()
    return _ADAPTERS.get(protocol)
