"""Instances: a configuration and a connection of their own, for programs that serve
several databases or users at once (``dj.Instance``), and thread-safe mode.

With ``DJ_THREAD_SAFE`` set to ``true``, ``1`` or ``yes`` the process-wide state is
switched off: ``dj.config``, ``dj.conn()``, and ``dj.Schema(...)`` / ``dj.FreeTable(...)``
without an explicit connection raise :class:`~dj_dagster.errors.ThreadSafetyError`.
Each ``Instance`` then carries what they would have given::

    inst = dj.Instance(host="db", user="alice", password=secret)
    schema = inst.Schema("lab")

Limitation: the library's own operations still read some settings (``safemode``, the
stores, display limits) from the global configuration, so in thread-safe mode those
operations raise ThreadSafetyError too.
"""

from __future__ import annotations

from typing import Any, Literal

from .connection import Connection
from .errors import ThreadSafetyError
from .settings import Config, _create_config, _thread_safe

__all__ = ["Instance", "ThreadSafetyError"]


def _load_thread_safe() -> bool:
    """Whether thread-safe mode is on: ``DJ_THREAD_SAFE`` is ``true``, ``1`` or ``yes``
    (any case), read at each call."""
    return _thread_safe()


class Instance:
    """A configuration and a connection of its own.

    ``Instance(host, user, password, port=None, use_tls=None, backend=None, **settings)``:
    the configuration is read afresh (environment, ``datajoint.json``, secrets) and then
    changed by ``backend`` ("mysql" or "postgresql") and ``settings`` (top-level names, or
    a group's setting as ``database__reconnect=False``); the port defaults to the
    backend's. ``inst.Schema(name)`` and ``inst.FreeTable(full_name)`` work on this
    instance's connection. Allowed in thread-safe mode.
    """

    def __init__(self, host: str, user: str, password: str, port: int | None = None,
                 use_tls: bool | dict | None = None, backend: Literal["mysql", "postgresql"] | None = None,
                 **settings: Any) -> None:
        self.config: Config = _create_config()
        if backend is not None:
            self.config.database.backend = backend
            if port is None and "database__port" not in settings:
                self.config.database.port = 5432 if backend == "postgresql" else 3306
        for name, value in settings.items():
            self.config[name.replace("__", ".")] = value
        if port is None:
            port = self.config.database.port
        self.connection = Connection(host, user, password, port, use_tls,
                                     backend=self.config.database.backend, config=self.config)

    def Schema(self, schema_name: str, *, context: dict[str, Any] | None = None, create_schema: bool = True,
               create_tables: bool | None = None, add_objects: dict[str, Any] | None = None):
        """A Schema on this instance's connection (see ``dj.Schema``)."""
        from .schema import Schema

        if create_tables is None:
            create_tables = self.config.database.create_tables
        return Schema(schema_name, context=context, connection=self.connection, create_schema=create_schema,
                      create_tables=create_tables, add_objects=add_objects)

    def FreeTable(self, full_table_name: str):
        """The table ``full_table_name`` (``"schema.table"``) on this instance's connection."""
        from . import table

        return table.FreeTable(self.connection, full_table_name)

    def __repr__(self) -> str:
        return f"Instance({self.connection!r})"
