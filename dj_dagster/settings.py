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

datajoint 2.x's settings work unchanged: the groups ``database``, ``connection``,
``display``, ``jobs`` and ``provenance`` (``dj.config.database.host``,
``dj.config["database.host"]``), its environment variables (``DJ_HOST``, ``DJ_USER``,
``DJ_PASS``, ``DJ_PORT``, ``DJ_BACKEND``, ``DJ_DATABASE_NAME``, ``DJ_JOBS_*``, ...), its
``datajoint.json`` file (found in the working folder or a parent, up to a repository
root) and ``config.override(...)``. When no ``DJ_DATABASE_URL`` / ``database_url`` is
given but ``database.user`` is, the server in ``database.*`` is used.
"""

from __future__ import annotations

import json
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def dj_home() -> Path:
    return Path(os.environ.get("DJ_HOME") or Path.home() / ".dj_dagster").expanduser()


def default_database_url() -> str:
    """``DJ_DATABASE_URL``, else the server in ``config.database`` when a user is set
    (datajoint's settings), else the embedded SQLite file."""
    return (os.environ.get("DJ_DATABASE_URL") or config.server_url()
            or f"sqlite:///{dj_home() / 'dj.sqlite'}")


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

CONFIG_FILENAME = "datajoint.json"


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


def _flag(text: str) -> bool:
    return text.strip().lower() in ("1", "true", "yes", "on")


def _port(text: str) -> int | None:
    return int(text) if text.strip() else None


# group -> setting -> (default, environment variable or None, parser of the variable's text)
GROUPS: dict[str, dict[str, tuple[Any, str | None, Any]]] = {
    "database": {
        "host": ("localhost", "DJ_HOST", str),
        "user": (None, "DJ_USER", str),
        "password": (None, "DJ_PASS", str),
        "backend": ("mysql", "DJ_BACKEND", str),
        "port": (None, "DJ_PORT", _port),
        "name": (None, "DJ_DATABASE_NAME", str),
        "reconnect": (True, None, _flag),
        "use_tls": (None, "DJ_USE_TLS", _flag),
        "database_prefix": ("", "DJ_DATABASE_PREFIX", str),
        "create_tables": (True, "DJ_CREATE_TABLES", _flag),
    },
    "connection": {
        "init_function": (None, None, str),
        "charset": ("", None, str),
    },
    "display": {
        "limit": (12, None, int),
        "width": (14, None, int),
        "show_tuple_count": (True, None, _flag),
        "diagram_direction": ("LR", "DJ_DIAGRAM_DIRECTION", str),
        "diagram_theme": ("auto", "DJ_DIAGRAM_THEME", str),
    },
    "jobs": {
        "auto_refresh": (True, "DJ_JOBS_AUTO_REFRESH", _flag),
        "keep_completed": (False, "DJ_JOBS_KEEP_COMPLETED", _flag),
        "stale_timeout": (3600, "DJ_JOBS_STALE_TIMEOUT", int),
        "default_priority": (5, "DJ_JOBS_DEFAULT_PRIORITY", int),
        "version_method": (None, "DJ_JOBS_VERSION_METHOD", str),
        "allow_new_pk_fields_in_computed_tables": (False, None, _flag),
        "add_job_metadata": (False, "DJ_JOBS_ADD_JOB_METADATA", _flag),
    },
    "provenance": {
        "capture": (False, "DJ_PROVENANCE_CAPTURE", _flag),
        "source": ({}, "DJ_PROVENANCE_SOURCE", json.loads),
    },
}

# flat names this library used before the groups, and where they live now
ALIASES = {
    "display_limit": ("display", "limit"),
    "diagram_direction": ("display", "diagram_direction"),
    "jobs_keep_completed": ("jobs", "keep_completed"),
}

TOP_LEVEL: dict[str, tuple[Any, str | None, Any]] = {
    "loglevel": ("INFO", "DJ_LOG_LEVEL", str),
    "download_path": (".", None, str),
    "query_cache": (None, None, str),
    "ignore_config_file": (False, "DJ_IGNORE_CONFIG_FILE", _flag),
    "insert_chunk_size": (10_000, None, int),
}


class Settings(dict):
    """One group of settings (``dj.config.database``): a dict with attribute access."""

    def __init__(self, group: str, values: dict[str, Any]):
        super().__init__(values)
        object.__setattr__(self, "_group", group)

    def __getitem__(self, name: str) -> Any:
        value = dict.__getitem__(self, name)
        if value is None and name == "port" and self._group == "database":  # the backend's port
            return 5432 if self.get("backend") == "postgresql" else 3306
        return value

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"config.{self._group} has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name not in self:
            raise AttributeError(f"config.{self._group} has no setting {name!r}")
        self[name] = value

    def __repr__(self) -> str:
        return f"{self._group}({_masked(dict(self))!r})"


def _defaults(spec: dict[str, tuple[Any, str | None, Any]], env: dict[str, str]) -> dict[str, Any]:
    values = {}
    for name, (default, variable, parse) in spec.items():
        raw = env.get(variable) if variable else None
        if raw is None:
            values[name] = json.loads(json.dumps(default))  # a fresh copy of a mutable default
            continue
        try:
            values[name] = parse(raw)
        except ValueError as exc:
            raise ValueError(f"environment variable {variable}={raw!r} is not valid: {exc}") from None
    return values


def find_config_file(start: Path | None = None) -> Path | None:
    """``datajoint.json`` in ``start`` (default: the working folder) or a parent folder,
    up to the first folder that holds ``.git`` or ``.hg``."""
    current = (start or Path.cwd()).resolve()
    while True:
        candidate = current / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
        if (current / ".git").exists() or (current / ".hg").exists() or current == current.parent:
            return None
        current = current.parent


class Config(dict):
    """A dict of settings with attribute access (``dj.config.safemode``) and datajoint's
    dotted names (``dj.config["database.host"]``). Its repr masks secrets, so printing it
    in a notebook or a log shows no password or secret key."""

    def __repr__(self) -> str:
        return f"Config({_masked(dict(self))!r})"

    __str__ = __repr__

    @staticmethod
    def _split(key: str) -> tuple[str, str | None]:
        if key in ALIASES:
            return ALIASES[key]
        group, dot, name = key.partition(".")
        return (group, name) if dot else (key, None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __getitem__(self, key: str) -> Any:
        group, name = self._split(key)
        value = dict.__getitem__(self, group)
        if name is None:
            return value
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"Setting '{key}' not found")
            value = value[part]
        return value

    def __setitem__(self, key: str, value: Any) -> None:
        group, name = self._split(key)
        if name is None:
            if group in GROUPS and isinstance(value, dict) and not isinstance(value, Settings):
                current = dict.get(self, group)
                if isinstance(current, Settings):
                    unknown = set(value) - set(current)
                    if unknown:
                        raise KeyError(f"Setting '{group}.{sorted(unknown)[0]}' not found")
                    current.update(value)
                    return
            dict.__setitem__(self, group, value)
            return
        target = dict.__getitem__(self, group) if dict.__contains__(self, group) else None
        *path, last = name.split(".")
        for part in path:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict) or (isinstance(target, Settings) and last not in target):
            raise KeyError(f"Setting '{key}' not found")
        target[last] = value

    def __delitem__(self, key: str) -> None:
        """Reset a setting to its default (datajoint's meaning); other keys are removed."""
        group, name = self._split(key)
        if name is None:
            if group in TOP_LEVEL:
                dict.__setitem__(self, group, TOP_LEVEL[group][0])
            elif group in GROUPS:
                dict.__setitem__(self, group, Settings(group, _defaults(GROUPS[group], {})))
            else:
                dict.__delitem__(self, group)
            return
        if group in GROUPS and name in GROUPS[group]:
            self[key] = GROUPS[group][name][0]
            return
        parent = self[group] if "." not in name else self[f"{group}.{name.rsplit('.', 1)[0]}"]
        del parent[name.rsplit(".", 1)[-1]]

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        try:
            self[key]
        except KeyError:
            return False
        return True

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    @contextmanager
    def override(self, **settings: Any) -> Iterator["Config"]:
        """Set settings for the block, restoring them after it. Names of a group's
        settings join group and name with ``__`` (``database__host="db"``)."""
        import copy

        saved: list[tuple[str, bool, Any]] = []
        try:
            for name, value in settings.items():
                key = name.replace("__", ".")
                present = key in self
                saved.append((key, present, copy.deepcopy(self[key]) if present else None))
                self[key] = value
            yield self
        finally:
            for key, present, value in reversed(saved):
                if present:
                    self[key] = value
                else:
                    dict.pop(self, key, None)

    def load(self, filename: str | Path) -> None:
        """Update the settings from a JSON file: nested groups (``{"database": {"host":
        ...}}``) or dotted names (``{"database.host": ...}``)."""
        path = Path(filename)
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read settings from {path}: {exc}") from None
        self._update(data)

    def _update(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key in GROUPS and isinstance(value, dict):
                for name, item in value.items():
                    self[f"{key}.{name}"] = item
            elif key == "stores" and isinstance(value, dict):
                self["stores"] = {**self.get("stores", {}), **value}
            else:
                self[key] = value

    def server_url(self) -> str | None:
        """A SQLAlchemy URL for the server in ``database.*``, or None when no user is set."""
        db = self["database"]
        if not db.get("user"):
            return None
        import sqlalchemy as sa

        host, port = str(db["host"]), db.get("port")
        if ":" in host:
            host, port = host.rsplit(":", 1)
        backend = db.get("backend") or "mysql"
        driver = "postgresql+psycopg" if backend == "postgresql" else "mysql+pymysql"
        return sa.URL.create(driver, username=db["user"], password=db.get("password") or None, host=host,
                             port=int(port) if port else None,
                             database=(db.get("name") or "postgres") if backend == "postgresql" else None
                             ).render_as_string(hide_password=False)

    def reload(self) -> "Config":
        """Re-read the environment and ``datajoint.json`` (tests change them between cases)."""
        env = dict(os.environ)
        dict.clear(self)
        dict.update(
            self,
            database_url=None,  # None: read DJ_DATABASE_URL / database.* / the default on first connect
            stores=_default_stores(),
            default_store=os.environ.get("DJ_DEFAULT_STORE") or None,
            safemode=_default_safemode(),
            upload_batch_bytes=None,
            download_batch_bytes=None,
        )
        for name in [n for n in ("upload_batch_bytes", "download_batch_bytes") if dict.get(self, n) is None]:
            dict.__delitem__(self, name)
        dict.update(self, _defaults(TOP_LEVEL, env))
        for group, spec in GROUPS.items():
            dict.__setitem__(self, group, Settings(group, _defaults(spec, env)))
        if not self["ignore_config_file"]:
            found = find_config_file()
            if found is not None:
                self.load(found)
                for group, spec in GROUPS.items():  # the environment wins over the file
                    for name, (_, variable, _parse) in spec.items():
                        if variable and variable in env:
                            self[group][name] = _defaults({name: spec[name]}, env)[name]
        return self


config = Config().reload()
