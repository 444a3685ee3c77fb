"""Backend adapters, chosen by the URL's dialect name."""

from __future__ import annotations

import sqlalchemy as sa

from ..errors import DataJointError
from .base import Adapter
from .mysql import MySQLAdapter
from .postgresql import PostgreSQLAdapter
from .sqlite import SQLiteAdapter

ADAPTERS: dict[str, type[Adapter]] = {
    "sqlite": SQLiteAdapter,
    "mysql": MySQLAdapter,
    "mariadb": MySQLAdapter,
    "postgresql": PostgreSQLAdapter,
}


def adapter_for(url: sa.URL) -> Adapter:
    try:
        return ADAPTERS[url.get_backend_name()]()
    except KeyError:
        raise DataJointError(
            f"Unsupported database backend {url.get_backend_name()!r}; use one of {sorted(ADAPTERS)}") from None


__all__ = ["Adapter", "adapter_for", "ADAPTERS"]
