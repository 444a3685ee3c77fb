"""Configuration: where the database and the object stores are.

Everything comes from the environment first so that a notebook, a script, `dagster dev`
and a Dagster run worker started from the same shell see the same database; code may
override it through `config`.

- ``DJ_DATABASE_URL``: a SQLAlchemy URL. Unset: an embedded SQLite file
  ``$DJ_HOME/dj.sqlite``.
- ``DJ_HOME``: the embedded default's folder, ``~/.dj_dagster`` when unset.
- ``DJ_STORES``: JSON mapping store name -> spec (``{"protocol": "s3", "location":
  "bucket/prefix", "endpoint_url": ..., "access_key": ..., "secret_key": ...}``).
  Without it, one store named ``local`` (also the default ``@``) in ``$DJ_HOME/store``.
  datajoint 2.x's ``DJ_STORES`` works too: its ``"default": "<name>"`` entry names the
  default store unless ``DJ_DEFAULT_STORE`` does. Secrets may be left out of the JSON and given as ``DJ_STORE_<NAME>_ACCESS_KEY`` /
  ``DJ_STORE_<NAME>_SECRET_KEY`` or the usual AWS variables.
- ``DJ_SAFEMODE``: ``1`` asks before deleting and dropping; off by default when stdin
  is not a terminal.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def dj_home() -> Path:
    return Path(os.environ.get("DJ_HOME") or Path.home() / ".dj_dagster").expanduser()


def default_database_url() -> str:
    return os.environ.get("DJ_DATABASE_URL") or f"sqlite:///{dj_home() / 'dj.sqlite'}"


def _default_stores() -> dict[str, dict[str, Any]]:
    raw = os.environ.get("DJ_STORES")
    if raw:
        try:
            stores = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"DJ_STORES is not valid JSON: {exc.msg} at {exc.pos}") from None
        if not isinstance(stores, dict):
            raise ValueError("DJ_STORES must be a JSON object of store name -> spec")
        return stores
    return {"local": {"protocol": "file", "location": str(dj_home() / "store")}}


def _default_safemode() -> bool:
    flag = os.environ.get("DJ_SAFEMODE")
    if flag is not None:
        return flag.lower() in ("1", "true", "yes", "on")
    return sys.stdin is not None and sys.stdin.isatty()


_SECRETS = ("secret_key", "session_token", "password")


def _masked(value: Any, key: str = "") -> Any:
    """A copy for display: secrets as ``***``, a database URL without its password."""
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if value and key in _SECRETS:
        return "***"
    if value and key == "database_url":
        import sqlalchemy as sa

        try:
            return sa.make_url(value).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - unparsable: show nothing of it
            return "***"
    return value


class Config(dict):
    """A dict of settings with attribute access (``dj.config.safemode``). Its repr masks
    secrets, so printing it in a notebook or a log shows no password or secret key."""

    def __repr__(self) -> str:
        return f"Config({_masked(dict(self))!r})"

    __str__ = __repr__

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def reload(self) -> "Config":
        """Re-read the environment (tests change it between cases)."""
        self.clear()
        self.update(
            database_url=None,  # None: read DJ_DATABASE_URL / the default on first connect
            stores=_default_stores(),
            default_store=os.environ.get("DJ_DEFAULT_STORE") or None,
            safemode=_default_safemode(),
            display_limit=12,
            insert_chunk_size=10_000,
            jobs_keep_completed=False,  # as datajoint: a finished job's row is deleted
        )
        return self


config = Config().reload()
