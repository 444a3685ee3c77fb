"""Garbage collection of object-store objects that no row refers to any more.

Deleting rows never deletes their objects (hash-addressed objects may be shared by
other rows; a failed transaction must not lose data), so stores accumulate orphans.
Two ways to find and remove them:

- :class:`GarbageCollector` (DataJoint 2.x's interface): one store, the given schemas::

      collector = dj.gc.GarbageCollector(schema1, schema2, store="mystore")
      stats = collector.collect()               # report only (dry_run=True)
      stats = collector.collect(dry_run=False)  # delete the orphans

- ``dj.gc(schema_or_connection, store=None, dry_run=True)``: this module called as a
  function (:func:`dj_dagster.external.gc`): every store the schemas use, orphans returned
  as ``(store, path)`` pairs.

Only the sections DataJoint manages for the given schemas are examined
(``{hash_prefix}/{schema}/`` and ``{schema_prefix}/{schema}/``): other schemas' objects
and ``<filepath@>`` files are never touched. Run it when no insert into these schemas is
under way: an insert uploads its objects before its rows are committed.
"""

from __future__ import annotations

import logging
import sys
import types
from typing import Any

from . import external
from .errors import DataJointError
from .hash_registry import delete_path, get_store_backend

log = logging.getLogger(__name__)

__all__ = ["GarbageCollector", "collect"]


def _chain_kinds(attr) -> tuple[bool, bool]:
    """(hash-addressed, schema-addressed) for a heading attribute stored in a store."""
    from .builtin_codecs.hash import HashCodec
    from .builtin_codecs.schema import SchemaCodec
    from .codecs import attribute_chain

    if not attr.codec or attr.type.store is None:
        return False, False
    try:
        _, chain, _ = attribute_chain(attr)
    except DataJointError:
        return False, False
    return any(isinstance(c, HashCodec) for c in chain), any(isinstance(c, SchemaCodec) for c in chain)


class GarbageCollector:
    """Orphan collection for one store and a fixed set of schemas.

    ``GarbageCollector(*schemas, store=None, config=None)``: at least one
    :class:`~dj_dagster.Schema`; ``store`` a store name (None: the default store), resolved
    now (an unknown store raises). ``config`` is accepted for DataJoint compatibility;
    stores come from ``dj.config``.
    """

    def __init__(self, *schemas, store: str | None = None, config=None) -> None:
        if not schemas:
            raise DataJointError("At least one schema must be provided to GarbageCollector")
        from .settings import config as global_config

        self.schemas = schemas
        self.store = store
        self.config = config if config is not None else global_config
        self.backend = get_store_backend(store, config=self.config)
        get_spec = getattr(self.config, "get_store_spec", None)
        spec = get_spec(store) if get_spec is not None else dict(external._store(store).spec)
        self._hash_prefix = str(spec.get("hash_prefix", external.HASH_PREFIX) or "").strip("/")
        self._schema_prefix = str(spec.get("schema_prefix", external.SCHEMA_PREFIX) or "").strip("/")
        self._scan_errors: list[str] = []

    @property
    def _store(self):
        return external._store(self.store)

    # ------------------------------------------------------------------ references

    def hash_references(self, verbose: bool = False) -> set[str]:
        """Paths of hash-addressed objects (``<hash@>``, ``<blob@>``, ``<attach@>``) that
        rows of the collector's schemas refer to in its store."""
        return self._references(0, verbose)

    def schema_references(self, verbose: bool = False) -> set[str]:
        """Paths of schema-addressed objects (``<object@>``, ``<npy@>``, any
        :class:`~dj_dagster.SchemaCodec`) that rows refer to in the collector's store (for a
        folder: the folder's path)."""
        return self._references(1, verbose)

    def _references(self, kind: int, verbose: bool) -> set[str]:
        import sqlalchemy as sa

        from . import catalog

        referenced: set[str] = set()
        target = self._store.name
        names: dict[str | None, str | None] = {}  # store named in a row -> the configured store's name
        for schema in self.schemas:
            connection = schema.connection
            with connection.reading() as tx:
                tables = [n for n in connection.adapter.list_tables(tx, schema.database) if not n.startswith("~")]
            for name in tables:
                try:
                    info = catalog.load(connection, schema.database, name)
                except Exception as exc:  # noqa: BLE001 - reported; blocks deletion
                    self._scan_errors.append(f"{schema.database}.{name}: {exc}")
                    log.warning("gc: cannot read table %s.%s: %s", schema.database, name, exc)
                    continue
                for attr in info.heading:
                    if not _chain_kinds(attr)[kind]:
                        continue
                    if verbose:
                        log.info("gc: scanning %s.%s.%s", schema.database, name, attr.name)
                    col = info.sa_table.c[attr.name]
                    try:
                        rows = connection.query_all(sa.select(col).where(col.is_not(None)))
                    except Exception as exc:  # noqa: BLE001
                        self._scan_errors.append(f"{schema.database}.{name}.{attr.name}: {exc}")
                        log.warning("gc: cannot scan %s.%s.%s: %s", schema.database, name, attr.name, exc)
                        continue
                    codec = attr_codec(attr)
                    for (value,) in rows:
                        for path, store in codec.referenced_paths(value):
                            if names.get(store) is None:
                                names[store] = external._store(store).name if store else self._default_name()
                            if names[store] == target:
                                referenced.add(path)
        return referenced

    def _default_name(self) -> str | None:
        try:
            return external._store(None).name
        except DataJointError:
            return None

    # ------------------------------------------------------------------ stored objects

    def _sizes(self, paths: list[str]) -> dict[str, int]:
        out = {}
        for p in paths:
            try:
                out[p] = self._store.size(p)
            except Exception as exc:  # noqa: BLE001 - a vanished file counts as empty
                log.warning("gc: cannot size %s: %s", p, exc)
                out[p] = 0
        return out

    def _list(self, prefix: str, what: str) -> list[str]:
        try:
            return self._store.list(prefix)
        except Exception as exc:  # noqa: BLE001 - reported; blocks deletion
            self._scan_errors.append(f"{what}: {exc}")
            log.warning("gc: cannot list %s in store %r: %s", prefix, self._store.name, exc)
            return []

    def list_hash_paths(self, schema_name: str) -> dict[str, int]:
        """``{path: size}`` of the hash-addressed objects stored for ``schema_name``."""
        prefix = "/".join(p for p in (self._hash_prefix, schema_name) if p) + "/"
        paths = [p for p in self._list(prefix, f"list_hash_paths({schema_name})")
                 if external._HASH_NAME.match(p.rsplit("/", 1)[-1])]
        return self._sizes(paths)

    def list_schema_paths(self, schema_name: str) -> dict[str, int]:
        """``{path: size}`` of the files stored for ``schema_name``'s schema-addressed
        objects (a folder's files and its manifest each)."""
        prefix = "/".join(p for p in (self._schema_prefix, schema_name) if p) + "/"
        return self._sizes(self._list(prefix, f"list_schema_paths({schema_name})"))

    def delete_schema_path(self, path: str) -> bool:
        """Delete one schema-addressed file (empty folders above it are pruned); False if
        it was not there."""
        try:
            if not self._store.exists(path):
                return False
            self._store.remove(path)
        except Exception as exc:  # noqa: BLE001
            log.warning("gc: cannot delete %s: %s", path, exc)
            return False
        return True

    # ------------------------------------------------------------------ collect

    def collect(self, dry_run: bool = True, verbose: bool = False) -> dict[str, Any]:
        """Find the orphans and, unless ``dry_run``, delete them. Deleting is refused
        (DataJointError) when a table or a store section could not be scanned. Returns the
        counts and paths: ``hash_paths_referenced/stored/orphaned/orphaned_bytes``,
        ``orphaned_hash_paths``, the same for ``schema_paths``, ``hash_paths_deleted``,
        ``schema_paths_deleted``, ``deleted``, ``bytes_freed``, ``errors``,
        ``scan_errors``, ``dry_run``."""
        self._scan_errors = []
        hash_refs = self.hash_references(verbose=verbose)
        schema_refs = self.schema_references(verbose=verbose)
        hash_stored: dict[str, int] = {}
        schema_stored: dict[str, int] = {}
        for schema in self.schemas:
            hash_stored.update(self.list_hash_paths(schema.database))
            schema_stored.update(self.list_schema_paths(schema.database))
        hash_orphans = sorted(set(hash_stored) - hash_refs)
        schema_orphans = sorted(p for p in schema_stored if not external._covered(p, schema_refs))
        hash_deleted = schema_deleted = freed = errors = 0
        if not dry_run:
            if self._scan_errors:
                raise DataJointError(f"Refusing to delete: {len(self._scan_errors)} scan error(s) (gc), so live objects "
                                     f"could look orphaned: {self._scan_errors[:5]}")
            for path in hash_orphans:
                try:
                    if delete_path(path, self.store, config=self.config):
                        hash_deleted += 1
                        freed += hash_stored.get(path, 0)
                except Exception as exc:  # noqa: BLE001 - counted, the others still go
                    errors += 1
                    log.warning("gc: cannot delete %s: %s", path, exc)
            for path in schema_orphans:
                try:
                    if self.delete_schema_path(path):
                        schema_deleted += 1
                        freed += schema_stored.get(path, 0)
                except Exception as exc:  # noqa: BLE001
                    errors += 1
                    log.warning("gc: cannot delete %s: %s", path, exc)
        return {
            "hash_paths_referenced": len(hash_refs),
            "hash_paths_stored": len(hash_stored),
            "hash_paths_orphaned": len(hash_orphans),
            "hash_paths_orphaned_bytes": sum(hash_stored[p] for p in hash_orphans),
            "orphaned_hash_paths": hash_orphans,
            "schema_paths_referenced": len(schema_refs),
            "schema_paths_stored": len(schema_stored),
            "schema_paths_orphaned": len(schema_orphans),
            "schema_paths_orphaned_bytes": sum(schema_stored[p] for p in schema_orphans),
            "orphaned_schema_paths": schema_orphans,
            "hash_paths_deleted": hash_deleted,
            "schema_paths_deleted": schema_deleted,
            "deleted": hash_deleted + schema_deleted,
            "bytes_freed": freed,
            "errors": errors,
            "scan_errors": list(self._scan_errors),
            "dry_run": dry_run,
        }


def attr_codec(attr):
    from .codecs import get_codec

    return get_codec(attr.codec)


def collect(schema_or_connection, store: str | None = None, dry_run: bool = True) -> list:
    """Orphans of a Schema (or of every schema of a Connection) in ``store`` (None: every
    store the schemas use), deleted unless ``dry_run``; see
    :func:`dj_dagster.external.gc`."""
    return external.gc(schema_or_connection, store=store, dry_run=dry_run)


class _CallableModule(types.ModuleType):
    """This module, callable as ``dj.gc(schema_or_connection, store=None, dry_run=True)``."""

    def __call__(self, schema_or_connection, store: str | None = None, dry_run: bool = True) -> list:
        return collect(schema_or_connection, store=store, dry_run=dry_run)


sys.modules[__name__].__class__ = _CallableModule
