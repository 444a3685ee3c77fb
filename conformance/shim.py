"""A pytest plugin that makes ``import datajoint`` import dj_dagster, by name only.

Loaded with ``-p conformance.shim`` before any conftest runs. Every module name under
``datajoint`` is answered by the dj_dagster module of the same name (or the counterpart
listed in :data:`COUNTERPARTS`); a name with no counterpart fails to import, as it would
for a user. Nothing else is changed: no test body, no fixture.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

# datajoint module name -> dj_dagster module name, where they differ.
COUNTERPARTS: dict[str, str] = {
    "datajoint": "dj_dagster",
    "datajoint.schemas": "dj_dagster.schema",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):  # the target module ran when it was imported
        sys.modules[module.__spec__.name] = module


class DatajointToDjDagster(importlib.abc.MetaPathFinder):
    """Finds ``datajoint[.x.y]`` as ``dj_dagster[.x.y]`` (or a listed counterpart)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "datajoint" and not fullname.startswith("datajoint."):
            return None
        target = COUNTERPARTS.get(fullname) or "dj_dagster" + fullname[len("datajoint"):]
        if importlib.util.find_spec(target) is None:
            return None  # ModuleNotFoundError for the user's name, as a missing module gives
        return importlib.machinery.ModuleSpec(fullname, _Alias(target), is_package=True)


def install() -> None:
    for name in [n for n in sys.modules if n == "datajoint" or n.startswith("datajoint.")]:
        del sys.modules[name]
    if not any(isinstance(f, DatajointToDjDagster) for f in sys.meta_path):
        sys.meta_path.insert(0, DatajointToDjDagster())


install()
