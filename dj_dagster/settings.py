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
root), the ``.secrets/`` folder next to it (one file per secret, named
``database.password`` or ``stores.<store>.<key>``; else ``/run/secrets/datajoint``) and
``config.override(...)``. When no ``DJ_DATABASE_URL`` / ``database_url`` is given but
``database.user`` is, the server in ``database.*`` is used.

Precedence, highest first: assignment in code, the environment, ``datajoint.json``,
``DJ_STORES`` (for ``stores``), the secrets folder (only for what is still unset), the
defaults. ``DJ_IGNORE_CONFIG_FILE=true`` skips the file and the secrets folder.

Known settings are checked when set (``config.database.port = "x"`` raises pydantic's
``ValidationError`` naming the setting); the password is kept as a pydantic
``SecretStr`` (``config.database.password``) and given as plain text only to
``config["database.password"]``. No repr shows a secret.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Literal, NamedTuple, Optional

from .errors import DataJointError

CONFIG_FILENAME = "datajoint.json"
SECRETS_DIRNAME = ".secrets"
SYSTEM_SECRETS_DIR = Path("/run/secrets/datajoint")

logger = logging.getLogger(__name__.split(".")[0])


def dj_home() -> Path:
    return Path(os.environ.get("DJ_HOME") or Path.home() / ".dj_dagster").expanduser()


def default_database_url() -> str:
    """``DJ_DATABASE_URL``, else the server in ``config.database`` when a user is set
    (datajoint's settings), else the embedded SQLite file."""
    return (os.environ.get("DJ_DATABASE_URL") or config.server_url()
            or f"sqlite:///{dj_home() / 'dj.sqlite'}")


def _stores_from_env() -> dict[str, Any] | None:
    """The stores in ``DJ_STORES`` (a JSON object), or None when it is unset."""
    raw = os.environ.get("DJ_STORES")
    if not raw:
        return None
    try:
        stores = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"DJ_STORES holds invalid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(stores, dict):
        raise ValueError(f"DJ_STORES must be a JSON object of store name -> spec, not {type(stores).__name__}")
    return stores


def _default_stores() -> dict[str, Any]:
    stores = _stores_from_env()
    if stores is not None:
        return stores
    return {"local": {"protocol": "file", "location": str(dj_home() / "store")}}


def _default_safemode() -> bool:
    flag = os.environ.get("DJ_SAFEMODE")
    if flag is not None:
        return flag.lower() in ("1", "true", "yes", "on")
    return True  # as datajoint: ask before deleting or dropping, wherever input() can answer


_SECRETS = ("secret_key", "session_token", "password", "access_key", "token", "account_key",
            "connection_string", "api_key")


def _is_secret_value(value: Any) -> bool:
    return type(value).__name__ == "SecretStr" and hasattr(value, "get_secret_value")


def _plain(value: Any) -> Any:
    """A SecretStr's text; any other value as it is."""
    return value.get_secret_value() if _is_secret_value(value) else value


def _masked(value: Any, key: str = "") -> Any:
    """A copy for display: secrets as ``***``, a database URL without its password."""
    if isinstance(value, dict):
        return {k: _masked(v, k) for k, v in value.items()}
    if value and (key in _SECRETS or _is_secret_value(value)):
        return "***"
    if value and key == "database_url":
        import sqlalchemy as sa

        try:
            return sa.make_url(value).render_as_string(hide_password=True)
        except Exception:  # noqa: BLE001 - unparsable: show nothing of it
            return "***"
    return value


class Setting(NamedTuple):
    """One known setting: its default, the environment variable that sets it (or None),
    its type (a typing form pydantic validates) and, for integers, inclusive bounds."""

    default: Any
    env: Optional[str]
    kind: Any
    bounds: tuple[Optional[int], Optional[int]] | None = None


_Port = Optional[int]
_SECRET = "SecretStr"  # resolved lazily: pydantic loads only when a secret is set

# group -> setting -> Setting
GROUPS: dict[str, dict[str, Setting]] = {
    "database": {
        "host": Setting("localhost", "DJ_HOST", str),
        "user": Setting(None, "DJ_USER", Optional[str]),
        "password": Setting(None, "DJ_PASS", _SECRET),
        "backend": Setting("mysql", "DJ_BACKEND", Literal["mysql", "postgresql"]),
        "port": Setting(None, "DJ_PORT", _Port),
        "name": Setting(None, "DJ_DATABASE_NAME", Optional[str]),
        "reconnect": Setting(True, None, bool),
        "use_tls": Setting(None, "DJ_USE_TLS", Optional[bool]),
        "database_prefix": Setting("", "DJ_DATABASE_PREFIX", str),
        "create_tables": Setting(True, "DJ_CREATE_TABLES", bool),
    },
    "connection": {
        "init_function": Setting(None, None, Optional[str]),
        "charset": Setting("", None, str),
    },
    "display": {
        "limit": Setting(12, None, int),
        "width": Setting(14, None, int),
        "show_tuple_count": Setting(True, None, bool),
        # datajoint's TB and LR, and the reversed BT and RL that dj.Diagram also draws
        "diagram_direction": Setting("LR", "DJ_DIAGRAM_DIRECTION", Literal["TB", "LR", "BT", "RL"]),
        "diagram_theme": Setting("auto", "DJ_DIAGRAM_THEME", Literal["light", "dark", "auto"]),
    },
    "jobs": {
        "auto_refresh": Setting(True, "DJ_JOBS_AUTO_REFRESH", bool),
        "keep_completed": Setting(False, "DJ_JOBS_KEEP_COMPLETED", bool),
        "stale_timeout": Setting(3600, "DJ_JOBS_STALE_TIMEOUT", int, (0, None)),
        "default_priority": Setting(5, "DJ_JOBS_DEFAULT_PRIORITY", int, (0, 255)),
        "version_method": Setting(None, "DJ_JOBS_VERSION_METHOD", Optional[Literal["git", "none"]]),
        "allow_new_pk_fields_in_computed_tables": Setting(False, "DJ_JOBS_ALLOW_NEW_PK_FIELDS_IN_COMPUTED_TABLES",
                                                          bool),
        "add_job_metadata": Setting(False, "DJ_JOBS_ADD_JOB_METADATA", bool),
    },
    "provenance": {
        "capture": Setting(False, "DJ_PROVENANCE_CAPTURE", bool),
        "source": Setting({}, "DJ_PROVENANCE_SOURCE", dict),
    },
}

# flat names this library used before the groups, and where they live now
ALIASES = {
    "display_limit": ("display", "limit"),
    "diagram_direction": ("display", "diagram_direction"),
    "jobs_keep_completed": ("jobs", "keep_completed"),
}

TOP_LEVEL: dict[str, Setting] = {
    "loglevel": Setting("INFO", "DJ_LOG_LEVEL", Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]),
    "download_path": Setting(".", None, str),
    "query_cache": Setting(None, None, Optional[Path]),
    "ignore_config_file": Setting(False, "DJ_IGNORE_CONFIG_FILE", bool),
    "insert_chunk_size": Setting(10_000, None, int, (1, None)),
    "blob_max_bytes": Setting(4 * 1024**3, "DJ_BLOB_MAX_BYTES", int, (0, None)),  # largest value unpack() builds
    # dj_dagster's own (read at first use; see the module docstring)
    "database_url": Setting(None, None, Optional[str]),
    "stores": Setting(None, None, dict),
    "default_store": Setting(None, "DJ_DEFAULT_STORE", Optional[str]),
    "safemode": Setting(None, None, bool),
    "upload_batch_bytes": Setting(None, None, Optional[int]),
    "download_batch_bytes": Setting(None, None, Optional[int]),
}

# "group.name" (or a top-level name) -> the environment variable that sets it
ENV_VAR_MAPPING: dict[str, str] = {
    **{f"{group}.{name}": s.env for group, spec in GROUPS.items() for name, s in spec.items() if s.env},
    **{name: s.env for name, s in TOP_LEVEL.items() if s.env},
}

_SECRET_SETTINGS = {"database.password"}


# --- validation (pydantic, loaded on first use) ------------------------------------
_adapters: dict[Any, Any] = {}


def _adapter(setting: Setting):
    key = (setting.kind, setting.bounds)
    adapter = _adapters.get(key)
    if adapter is None:
        from typing import Annotated

        from pydantic import Field, SecretStr, TypeAdapter

        kind = Optional[SecretStr] if setting.kind == _SECRET else setting.kind
        if setting.bounds is not None:
            low, high = setting.bounds
            kind = Annotated[kind, Field(ge=low, le=high)]
        adapter = _adapters[key] = TypeAdapter(kind)
    return adapter


def _validate(owner: str, name: str, setting: Setting, value: Any) -> Any:
    """``value`` converted to the setting's type, or pydantic's ValidationError naming
    ``owner.name`` (the value left out when it is a secret)."""
    if setting.bounds is None and (setting.kind in (str, bool, int) and type(value) is setting.kind
                                   or setting.kind is dict and isinstance(value, dict)):
        return value  # the common case, without loading pydantic (a dict is kept, not copied)
    from pydantic import ValidationError

    try:
        return _adapter(setting).validate_python(value)
    except ValidationError as exc:
        details = []
        for error in exc.errors(include_url=False):
            detail = {"type": error["type"], "loc": (name, *error["loc"]), "input": error["input"]}
            if error.get("ctx"):
                detail["ctx"] = error["ctx"]
            details.append(detail)
        secret = f"{owner}.{name}" in _SECRET_SETTINGS or name in _SECRETS
        raise ValidationError.from_exception_data(f"config.{owner}" if owner else "config", details,
                                                  hide_input=secret) from None


def _from_environment(owner: str, name: str, setting: Setting, env: dict[str, str]) -> Any:
    """The setting's value from its environment variable, else its default."""
    raw = env.get(setting.env) if setting.env else None
    if raw is None:
        return copy.deepcopy(setting.default)
    if setting.kind in (dict, list):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"environment variable {setting.env} is not valid JSON: {exc.msg}") from None
    elif raw.strip() == "" and setting.kind not in (str, _SECRET):
        return copy.deepcopy(setting.default)
    return _validate(owner, name, setting, raw)


def _thread_safe() -> bool:
    """Whether ``DJ_THREAD_SAFE`` (``true``, ``1`` or ``yes``) turns off global state."""
    return os.environ.get("DJ_THREAD_SAFE", "").strip().lower() in ("true", "1", "yes")


def _refuse_in_thread_safe_mode() -> None:
    if _thread_safe():
        from .errors import ThreadSafetyError

        raise ThreadSafetyError("The global dj.config and dj.conn() are disabled in thread-safe mode "
                                "(DJ_THREAD_SAFE is set): create a dj.Instance(...) and use its config, "
                                "connection, Schema and FreeTable.")


# --- one group ---------------------------------------------------------------------
class Settings(dict):
    """One group of settings (``dj.config.database``): a dict with attribute access.

    Built with no argument it takes its values from the environment and the defaults;
    ``Settings(values)`` starts from ``values``. Assigned values are checked against the
    setting's type. Item access (``group["password"]``) gives secrets as plain text,
    attribute access as pydantic ``SecretStr``."""

    _group = ""
    _spec: dict[str, Setting] = {}

    def __init__(self, values: dict[str, Any] | None = None, **settings: Any):
        if values is None:
            env = dict(os.environ)
            values = {name: _from_environment(self._group, name, s, env) for name, s in self._spec.items()}
        super().__init__(values)
        for name, value in settings.items():
            self[name] = value
        self._resolve()

    def _resolve(self) -> None:
        """Fill values derived from others once the group is built (see DatabaseSettings)."""

    def __getitem__(self, name: str) -> Any:
        return _plain(dict.__getitem__(self, name))

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in self else default

    def __setitem__(self, name: str, value: Any) -> None:
        setting = self._spec.get(name)
        if setting is None:
            raise KeyError(f"Setting '{self._group}.{name}' not found")
        dict.__setitem__(self, name, _validate(self._group, name, setting, value))

    def update(self, *args: Any, **kwargs: Any) -> None:
        for name, value in dict(*args, **kwargs).items():
            self[name] = value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            raise AttributeError(f"config.{self._group} has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        if name not in self._spec:
            from pydantic import ValidationError

            raise ValidationError.from_exception_data(
                f"config.{self._group}", [{"type": "extra_forbidden", "loc": (name,), "input": value}])
        self[name] = value

    def __deepcopy__(self, memo: dict) -> "Settings":
        twin = type(self).__new__(type(self))
        dict.update(twin, {k: copy.deepcopy(v, memo) for k, v in dict.items(self)})
        twin.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return twin

    def __reduce__(self):
        return (_rebuild_group, (type(self), dict(dict.items(self)), dict(self.__dict__)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({_masked(dict(self))!r})"


def _rebuild_group(cls: type, values: dict[str, Any], state: dict[str, Any]) -> Settings:
    group = cls.__new__(cls)
    dict.update(group, values)
    group.__dict__.update(state)
    return group


class DatabaseSettings(Settings):
    """``config.database``: the server (``host``, ``port``, ``user``, ``password``,
    ``backend`` "mysql" or "postgresql", ``name``: PostgreSQL's database), ``use_tls``,
    ``reconnect``, ``create_tables``. When no port is given it is the backend's
    (3306 / 5432) as of building; a later change of backend does not move it."""

    _group = "database"
    _spec = GROUPS["database"]

    def _resolve(self) -> None:
        self._auto_port = dict.get(self, "port") is None
        if self._auto_port:
            dict.__setitem__(self, "port", 5432 if dict.get(self, "backend") == "postgresql" else 3306)

    def __setitem__(self, name: str, value: Any) -> None:
        super().__setitem__(name, value)
        if name == "port":
            self._auto_port = value is None
            if value is None:
                self._resolve()

    def server_port(self) -> int:
        """The port to connect to: the one set, else the current backend's default."""
        if getattr(self, "_auto_port", False):
            return 5432 if self["backend"] == "postgresql" else 3306
        return int(self["port"])


class ConnectionSettings(Settings):
    """``config.connection``: ``charset``, ``init_function``."""

    _group = "connection"
    _spec = GROUPS["connection"]


class DisplaySettings(Settings):
    """``config.display``: ``limit``, ``width``, ``show_tuple_count``,
    ``diagram_direction`` ("TB"/"LR"), ``diagram_theme`` ("light"/"dark"/"auto")."""

    _group = "display"
    _spec = GROUPS["display"]


class JobsSettings(Settings):
    """``config.jobs``: the job table's behaviour (``DJ_JOBS_*``)."""

    _group = "jobs"
    _spec = GROUPS["jobs"]


class ProvenanceSettings(Settings):
    """``config.provenance``: ``capture`` and the ``source`` recorded on entered rows."""

    _group = "provenance"
    _spec = GROUPS["provenance"]

    def __setitem__(self, name: str, value: Any) -> None:
        if name == "source":  # refused here, not inside the insert that records it
            try:
                json.dumps(value, default=str)
            except (TypeError, ValueError) as exc:
                from pydantic import ValidationError

                problem = ValueError(f"config.provenance.source must be JSON-serializable: {exc}")
                raise ValidationError.from_exception_data(
                    "config.provenance", [{"type": "value_error", "loc": ("source",), "input": None,
                                           "ctx": {"error": problem}}], hide_input=True) from None
        super().__setitem__(name, value)


GROUP_CLASSES: dict[str, type[Settings]] = {
    cls._group: cls for cls in (DatabaseSettings, ConnectionSettings, DisplaySettings, JobsSettings,
                                ProvenanceSettings)
}


# --- files -------------------------------------------------------------------------
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


def find_secrets_dir(config_path: Path | None = None) -> Path | None:
    """The secrets folder: ``.secrets`` beside ``config_path`` (a ``datajoint.json``)
    when there is one, else ``SYSTEM_SECRETS_DIR`` (``/run/secrets/datajoint``, where
    Docker and Kubernetes mount secrets) when it exists, else None."""
    if config_path is not None:
        beside = Path(config_path).parent / SECRETS_DIRNAME
        if beside.is_dir():
            return beside
    system = Path(SYSTEM_SECRETS_DIR)
    return system if system.is_dir() else None


def read_secret_file(secrets_dir: Path | None, name: str) -> str | None:
    """The text of the file ``name`` in ``secrets_dir`` without surrounding whitespace,
    or None when there is no such folder or file."""
    if secrets_dir is None:
        return None
    path = Path(secrets_dir) / name
    return path.read_text().strip() if path.is_file() else None


# --- the configuration -------------------------------------------------------------
class Config(dict):
    """A dict of settings with attribute access (``dj.config.safemode``) and datajoint's
    dotted names (``dj.config["database.host"]``). Its repr masks secrets, so printing it
    in a notebook or a log shows no password or secret key.

    ``Config()`` holds the defaults and the environment; :func:`_create_config` (and
    :meth:`reload`) also read ``datajoint.json``, ``DJ_STORES`` and the secrets folder.
    """

    _guarded = False  # the global config: refused in thread-safe mode

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()
        self._fill_from_environment()
        if args or kwargs:
            self.update(*args, **kwargs)

    def _check(self) -> None:
        if self._guarded:
            _refuse_in_thread_safe_mode()

    def __repr__(self) -> str:
        if self._guarded and _thread_safe():
            return "Config(<disabled in thread-safe mode: use dj.Instance()>)"
        return f"Config({_masked(dict(self))!r})"

    __str__ = __repr__

    @staticmethod
    def _split(key: str) -> tuple[str, str | None]:
        if key in ALIASES:
            return ALIASES[key]
        group, dot, name = key.partition(".")
        return (group, name) if dot else (key, None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name.startswith("_"):
            raise AttributeError(name)
        try:
            self._check()
            return dict.__getitem__(self, name) if name in GROUPS else self[name]
        except KeyError:
            raise AttributeError(f"config has no setting {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        self._check()
        if name not in GROUPS and name not in TOP_LEVEL and name not in ALIASES and not dict.__contains__(self, name):
            from pydantic import ValidationError

            raise ValidationError.from_exception_data(
                "config", [{"type": "extra_forbidden", "loc": (name,), "input": value}])
        self[name] = value

    def __getitem__(self, key: str) -> Any:
        self._check()
        group, name = self._split(key)
        value = dict.__getitem__(self, group)
        if name is None:
            return value
        for part in name.split("."):
            if not isinstance(value, dict) or part not in value:
                raise KeyError(f"Setting '{key}' not found")
            value = value[part]
        return _plain(value)

    def __setitem__(self, key: str, value: Any) -> None:
        self._check()
        group, name = self._split(key)
        if name is None:
            if group in GROUPS:
                if isinstance(value, GROUP_CLASSES[group]):
                    dict.__setitem__(self, group, value)
                elif isinstance(value, dict):
                    dict.__getitem__(self, group).update(value)
                else:
                    raise KeyError(f"config.{group} is a group of settings: set config['{group}.<name>']")
                return
            if group in TOP_LEVEL:
                value = _validate("", group, TOP_LEVEL[group], value)
                if group == "loglevel":
                    logger.setLevel(value)
            dict.__setitem__(self, group, value)
            return
        target = dict.__getitem__(self, group) if dict.__contains__(self, group) else None
        *path, last = name.split(".")
        for part in path:
            target = target.setdefault(part, {}) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            raise KeyError(f"Setting '{key}' not found")
        target[last] = value

    def __delitem__(self, key: str) -> None:
        """Reset a setting to its default (datajoint's meaning); other keys are removed."""
        self._check()
        group, name = self._split(key)
        if name is None:
            if group in TOP_LEVEL:
                dict.__setitem__(self, group, copy.deepcopy(self._default_of(group)))
            elif group in GROUPS:
                defaults = {n: copy.deepcopy(s.default) for n, s in GROUPS[group].items()}
                dict.__setitem__(self, group, GROUP_CLASSES[group](defaults))
            else:
                dict.__delitem__(self, group)
            return
        if group in GROUPS and name in GROUPS[group]:
            self[key] = GROUPS[group][name].default
            return
        parent = self[group] if "." not in name else self[f"{group}.{name.rsplit('.', 1)[0]}"]
        del parent[name.rsplit(".", 1)[-1]]

    @staticmethod
    def _default_of(name: str) -> Any:
        defaults = {"stores": _default_stores, "safemode": _default_safemode}
        return defaults[name]() if name in defaults else TOP_LEVEL[name].default

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

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._check()
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def __deepcopy__(self, memo: dict) -> "Config":
        twin = type(self).__new__(type(self))
        dict.update(twin, {k: copy.deepcopy(v, memo) for k, v in dict.items(self)})
        return twin

    def __reduce__(self):
        return (_rebuild_config, (dict(dict.items(self)),))

    @contextmanager
    def override(self, **settings: Any) -> Iterator["Config"]:
        """Set settings for the block, restoring them after it. Names of a group's
        settings join group and name with ``__`` (``database__host="db"``)."""
        self._check()
        saved: list[tuple[str, bool, Any]] = []
        try:
            for name, value in settings.items():
                key = name.replace("__", ".")
                present = key in self
                raw = self._raw(key) if present else None
                saved.append((key, present, copy.deepcopy(raw)))
                self[key] = value
            yield self
        finally:
            for key, present, value in reversed(saved):
                if present:
                    self[key] = value
                else:
                    dict.pop(self, key, None)

    def _raw(self, key: str) -> Any:
        """A setting as stored (a secret stays a SecretStr)."""
        group, name = self._split(key)
        value = dict.__getitem__(self, group)
        for part in (name.split(".") if name else ()):
            value = dict.__getitem__(value, part)
        return value

    def load(self, filename: str | Path) -> None:
        """Update the settings from a JSON file: nested groups (``{"database": {"host":
        ...}}``) or dotted names (``{"database.host": ...}``). A setting whose
        environment variable is set keeps the environment's value. Raises
        FileNotFoundError for a missing file, ValueError for one that is not JSON."""
        self._check()
        path = Path(filename)
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"cannot read settings from {path}: {exc}") from None
        logger.debug("Loading configuration from %s", path.absolute())
        self._update(data)
        object.__setattr__(self, "_config_path", path)

    def _update(self, data: dict[str, Any]) -> None:
        flat: dict[str, Any] = {}
        for key, value in data.items():
            if key in GROUPS and isinstance(value, dict):
                flat.update({f"{key}.{name}": item for name, item in value.items()})
            elif key == "stores" and isinstance(value, dict):
                self["stores"] = {**(self.get("stores") or {}), **value}
            elif key.startswith("stores.") and key.count(".") == 2:
                _, store, attr = key.split(".")
                self["stores"].setdefault(store, {})[attr] = value
            else:
                flat[key] = value
        for key, value in flat.items():
            variable = ENV_VAR_MAPPING.get(key)
            if variable and os.environ.get(variable):
                continue  # the environment wins over the file
            self[key] = value

    def _load_secrets(self, secrets_dir: Path) -> None:
        """Fill what is still unset from the secrets folder: ``database.user``,
        ``database.password``, and ``stores.<store>.<key>`` files (any key name)."""
        secrets_dir = Path(secrets_dir)
        object.__setattr__(self, "_secrets_dir", secrets_dir)
        database = dict.__getitem__(self, "database")
        for name in ("user", "password"):
            value = read_secret_file(secrets_dir, f"database.{name}")
            if value is not None and dict.get(database, name) is None:
                database[name] = value
        if not secrets_dir.is_dir():
            return
        stores = self["stores"]
        for path in sorted(secrets_dir.iterdir()):
            parts = path.name.split(".")
            if path.name.startswith(".") or not path.is_file() or len(parts) != 3 or parts[0] != "stores":
                continue
            spec = stores.setdefault(parts[1], {})
            if isinstance(spec, dict) and parts[2] not in spec:
                spec[parts[2]] = path.read_text().strip()

    def _apply_stores_env(self) -> None:
        """``DJ_STORES``, when set, replaces the stores read from the file."""
        stores = _stores_from_env()
        if stores is not None:
            dict.__setitem__(self, "stores", stores)

    def server_url(self) -> str | None:
        """A SQLAlchemy URL for the server in ``database.*``, or None when no user is set."""
        db = dict.__getitem__(self, "database")
        if not db.get("user"):
            return None
        return server_url(db, None, db["user"], db.get("password"), None, None, None).render_as_string(
            hide_password=False)

    # --- stores (datajoint's validation of a store's spec) ---------------------------
    _REQUIRED = {"file": ("protocol", "location"), "s3": ("protocol", "endpoint", "bucket", "location"),
                 "gcs": ("protocol", "bucket", "location"), "azure": ("protocol", "container", "location")}

    def get_store_spec(self, store: str | None = None, *, use_filepath_default: bool = False) -> dict[str, Any]:
        """The spec of store ``store`` with its defaults filled in, checked the way
        datajoint checks it (its required keys, and storage sections ``hash_prefix``,
        ``schema_prefix``, ``filepath_prefix`` that do not nest). ``store=None`` means
        ``stores["default"]`` (or ``config["default_store"]``), or with
        ``use_filepath_default=True`` ``stores["filepath_default"]``. Raises
        DataJointError naming the store."""
        self._check()
        stores = self.get("stores") or {}
        if store is None:
            key = "filepath_default" if use_filepath_default else "default"
            store = stores.get(key) or (None if use_filepath_default else self.get("default_store"))
            if store is None:
                raise DataJointError(f"stores.{key} is not configured: set config.stores['{key}'] to a store's "
                                     f"name or name the store explicitly")
            if not isinstance(store, str):
                raise DataJointError(f"stores.{key} must be a store's name, not {type(store).__name__}")
        if store not in stores or not isinstance(stores[store], dict):
            raise DataJointError(f"Storage '{store}' is requested but not configured in stores")
        spec = dict(stores[store])
        for name, default in (("subfolding", None), ("partition_pattern", None), ("token_length", 8),
                              ("hash_prefix", "_hash"), ("schema_prefix", "_schema"), ("filepath_prefix", None)):
            spec.setdefault(name, default)
        protocol = str(spec.get("protocol", "")).lower()
        if protocol == "s3":
            spec.setdefault("secure", True)
        missing = [k for k in self._REQUIRED.get(protocol, ("protocol", "location")) if k not in spec]
        if missing:
            raise DataJointError(f'config.stores["{store}"] is missing: {", ".join(missing)}')
        named = [(n, spec[n]) for n in ("hash_prefix", "schema_prefix", "filepath_prefix") if spec.get(n)]
        for i, (first, a) in enumerate(named):
            for second, b in named[i + 1:]:
                pa, pb = a.strip("/") + "/", b.strip("/") + "/"
                if pa.startswith(pb) or pb.startswith(pa):
                    raise DataJointError(f'config.stores["{store}"]: {first}="{a}" and {second}="{b}" overlap; '
                                         f"storage section prefixes must be mutually exclusive")
        return spec

    @staticmethod
    def save_template(path: str | Path = CONFIG_FILENAME, minimal: bool = True,
                      create_secrets_dir: bool = True) -> Path:
        """Write a starting ``datajoint.json`` at ``path`` (never over an existing file:
        FileExistsError) and return its absolute path. ``minimal=False`` lists every
        group. ``create_secrets_dir`` also makes ``.secrets/`` beside it, with placeholder
        ``database.user`` / ``database.password`` files (existing ones are kept) and a
        ``.gitignore`` that keeps them out of the repository. Credentials never go in the
        file itself."""
        path = Path(path)
        if path.exists():
            raise FileExistsError(f"File already exists: {path}; remove it or choose another path")
        template: dict[str, Any] = {"database": {"host": "localhost", "port": 3306}}
        if not minimal:
            template = {
                "database": {"host": "localhost", "port": 3306, "backend": "mysql", "reconnect": True,
                             "use_tls": None},
                "connection": {"charset": ""},
                "display": {"limit": 12, "width": 14, "show_tuple_count": True},
                "stores": {"default": "main", "filepath_default": "raw_data",
                           "main": {"protocol": "file", "location": "/data/my-project/main", "subfolding": None,
                                    "partition_pattern": None, "token_length": 8},
                           "raw_data": {"protocol": "file", "location": "/data/my-project/raw"}},
                "loglevel": "INFO",
                "safemode": True,
                "query_cache": None,
                "download_path": ".",
            }
        path.write_text(json.dumps(template, indent=2) + "\n")
        if create_secrets_dir:
            secrets = path.parent / SECRETS_DIRNAME
            secrets.mkdir(exist_ok=True)
            for name, placeholder in (("database.user", "your_username"), ("database.password", "your_password")):
                if not (secrets / name).exists():
                    (secrets / name).write_text(placeholder)
            ignore = secrets / ".gitignore"
            if not ignore.exists():
                ignore.write_text("# secrets stay out of version control\n*\n!.gitignore\n")
        return path.absolute()

    # --- building ------------------------------------------------------------------
    def _fill_from_environment(self) -> None:
        env = dict(os.environ)
        dict.clear(self)
        for name, setting in TOP_LEVEL.items():
            if name in ("stores", "safemode"):
                dict.__setitem__(self, name, self._default_of(name))
            elif name in ("upload_batch_bytes", "download_batch_bytes"):
                continue  # unset: their users apply their own defaults
            else:
                dict.__setitem__(self, name, _from_environment("", name, setting, env))
        for group, cls in GROUP_CLASSES.items():
            dict.__setitem__(self, group, cls())

    def _read_sources(self) -> None:
        """``datajoint.json``, then ``DJ_STORES``, then the secrets folder."""
        found = None
        if not dict.__getitem__(self, "ignore_config_file"):
            found = find_config_file()
            if found is not None:
                try:
                    self.load(found)
                except Exception as exc:  # noqa: BLE001 - a broken file must not stop the import
                    warnings.warn(f"Failed to load settings from {found}: {exc}", stacklevel=3)
            elif not (os.environ.get("DJ_DATABASE_URL") or os.environ.get("DJ_HOST") or os.environ.get("DJ_USER")):
                # datajoint warns here; for us the embedded SQLite file is the intended default
                # of a first run, so it is said at INFO level, not on every import
                logging.getLogger("dj_dagster").info(
                    "No %s found and no DJ_DATABASE_URL / DJ_HOST set: using the embedded SQLite file in %s "
                    "(dj.config.save_template() writes a %s to start from)", CONFIG_FILENAME, dj_home(),
                    CONFIG_FILENAME)
        self._apply_stores_env()
        if not dict.__getitem__(self, "ignore_config_file"):
            secrets = find_secrets_dir(found)
            if secrets is not None:
                self._load_secrets(secrets)

    def reload(self) -> "Config":
        """Re-read the environment, ``datajoint.json``, ``DJ_STORES`` and the secrets
        folder (tests change them between cases)."""
        self._check()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._fill_from_environment()
            self._read_sources()
        return self


def _rebuild_config(values: dict[str, Any]) -> Config:
    config = Config.__new__(Config)
    dict.update(config, values)
    return config


def _create_config() -> Config:
    """A configuration read from the defaults, the environment, ``datajoint.json``,
    ``DJ_STORES`` and the secrets folder (warns when there is no ``datajoint.json`` and
    no server is named in the environment)."""
    config = Config()
    config._read_sources()
    level = dict.__getitem__(config, "loglevel")
    if "DJ_LOG_LEVEL" in os.environ or level != TOP_LEVEL["loglevel"].default:  # else the host's logging decides
        logger.setLevel(level)
    return config


config = _create_config()
config._guarded = True


def server_url(db, host: str | None, user: str | None, password: str | None, port: int | None,
               backend: str | None, database_name: str | None):
    """The SQLAlchemy URL of a server from datajoint's connection arguments; what is not
    given comes from the ``database`` settings ``db``. ``host`` may carry the port."""
    import sqlalchemy as sa

    host = host if host is not None else db["host"]
    if ":" in host:
        host, port = host.rsplit(":", 1)
    backend = backend or db["backend"]
    if backend not in ("mysql", "postgresql"):
        raise DataJointError(f"Unknown database backend {backend!r}: use 'mysql' or 'postgresql'")
    port = int(port) if port else (db.server_port() if db.get("backend") == backend else None)
    if backend == "postgresql":
        return sa.URL.create("postgresql+psycopg", username=user, password=password or None, host=host,
                             port=port or 5432, database=database_name or db.get("name") or "postgres")
    return sa.URL.create("mysql+pymysql", username=user, password=password or None, host=host, port=port or 3306)


def database_settings(cfg: Config | None = None) -> DatabaseSettings:
    """``cfg.database`` (default: the global configuration's) for a connection to read
    its server defaults from; allowed in thread-safe mode, where a connection is given
    its parameters explicitly."""
    return dict.__getitem__(cfg if cfg is not None else config, "database")
