"""Extrinsic provenance: where a row entered from outside the pipeline came from.

Rows of Computed and Imported tables are explained by the foreign keys they hang from.
Rows of Entry (``Manual``) tables are not: a person, an instrument or a feed put them
there. With ``config.provenance.capture`` on, an Entry table is declared with one hidden
JSON attribute, :data:`PROV_ATTRIBUTE`, and every insert fills it without the caller's
help (there is no argument to set it; passing it is refused). The record holds:

* ``time``: when the row was inserted (UTC, ISO 8601);
* ``agent``: the connection's ``user``, ``host`` and ``database_name``;
* ``version``: the code version (``git`` commit when ``config.jobs.version_method`` is
  ``"git"``);
* ``source``: ``config.provenance.source``, the external system this deployment reads;
* ``context``: the table and key of the ``make()`` running the insert, if any (so a row
  written by an ingest step is traceable without a foreign key).

A table declared before capture was on lacks the attribute and records nothing; see
:func:`dj_dagster.deploy.add_prov_column`.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import functools
import json
import subprocess
from typing import Any

from .errors import UnknownFieldError

#: The hidden attribute (a leading underscore keeps it out of headings and fetches).
PROV_ATTRIBUTE = "_prov"

#: Its declaration line (as :meth:`Heading.__repr__` would show it).
PROV_DEFINITION = "_prov = null : json  # extrinsic provenance of a row entered from outside"


def prov_attribute():
    """The hidden attribute Entry tables are declared with while capture is on (and
    :func:`dj_dagster.deploy.add_prov_column` adds): nullable JSON."""
    from .heading import Attribute
    from .types import parse_type

    return Attribute(PROV_ATTRIBUTE, parse_type("json"), nullable=True,
                     comment="extrinsic provenance of a row entered from outside", hidden=True)

_ingesting: contextvars.ContextVar = contextvars.ContextVar("dj_provenance_ingesting", default=None)


def set_ingesting(table_name: str, key: dict | None, version: str | None = None):
    """Mark ``make(key)`` of ``table_name`` (a full table name) as running in this
    context; rows inserted into Entry tables meanwhile record it. ``version``: the make's
    code version, recorded when given. Returns a token for :func:`reset_ingesting`."""
    value: dict[str, Any] = {"table": table_name, "key": {k: _jsonable(v) for k, v in (key or {}).items()}}
    if version:
        value["version"] = version
    return _ingesting.set(value)


def reset_ingesting(token) -> None:
    """Undo :func:`set_ingesting` (``token`` as it returned; None is ignored)."""
    if token is not None:
        _ingesting.reset(token)


@contextlib.contextmanager
def ingesting(table_name: str, key: dict | None, version: str | None = None):
    """:func:`set_ingesting` for the duration of a ``with`` block (blocks nest)."""
    token = set_ingesting(table_name, key, version)
    try:
        yield
    finally:
        reset_ingesting(token)


def _jsonable(value: Any) -> Any:
    """A key value as JSON can hold it: dates as ISO text, bytes as hex, others as str."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (datetime.date, datetime.time)):  # datetime is a date
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if hasattr(value, "item"):  # numpy scalars
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


@functools.lru_cache(maxsize=4)
def _git_commit(cwd: str | None = None) -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=cwd, check=False)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _code_version(config) -> str:
    """The code version ``config.jobs.version_method`` asks for ("" when none)."""
    try:
        method = config.jobs.version_method
    except (AttributeError, KeyError):
        return ""
    return _git_commit() if method == "git" else ""


def build_payload(connection, config=None) -> dict | None:
    """The provenance record of rows inserted now on ``connection`` (anything with a
    ``conn_info`` dict), under ``config`` (default: the connection's, else
    ``dj.config``). None when nothing but the time would be recorded: the row then
    keeps NULL rather than a record that says nothing about its origin."""
    if config is None:
        config = getattr(connection, "_config", None) or getattr(connection, "config", None)
    if config is None:
        from .settings import config

    payload: dict[str, Any] = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat()}
    info = getattr(connection, "conn_info", None) or {}
    agent = {k: info[k] for k in ("user", "host", "database_name") if info.get(k) is not None}
    if agent:
        payload["agent"] = agent
    try:
        version = _code_version(config)
    except Exception:  # noqa: BLE001 - a version lookup never breaks an insert
        version = ""
    if version:
        payload["version"] = version
    source = config.provenance.source
    if source:
        payload["source"] = source
    context = _ingesting.get()
    if context:
        payload["context"] = context
    return payload if len(payload) > 1 else None


def serialize(payload: Any) -> str:
    """``payload`` as JSON text; values JSON has no form for (dates, paths) become their
    ``str``, so a deployment's ``source`` can never make an insert fail."""
    return json.dumps(payload, default=str)


def attach(table, rows: list[dict]) -> None:
    """Fill :data:`PROV_ATTRIBUTE` of ``rows`` (prepared rows of an insert into
    ``table``, a table that has the attribute). A value given by the caller is refused
    (UnknownFieldError naming the table): the framework alone writes it. Nothing is
    written while ``config.provenance.capture`` is off."""
    for i, row in enumerate(rows):
        if PROV_ATTRIBUTE in row:
            raise UnknownFieldError(
                f"Cannot insert into {table.full_table_name}: row {i} sets {PROV_ATTRIBUTE!r}, which DataJoint "
                f"fills itself (extrinsic provenance); leave it out")
    connection = table.connection
    config = getattr(connection, "config", None)
    if config is None:
        from .settings import config
    if not config.provenance.capture:
        return
    payload = build_payload(connection, config)
    if payload is None:
        return
    value = json.loads(serialize(payload))  # plain JSON values, whatever the source held
    for row in rows:
        row[PROV_ATTRIBUTE] = value
