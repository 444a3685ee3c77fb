"""A Dagster Component, so a ``defs.yaml`` can declare a DataJoint pipeline:

.. code-block:: yaml

    type: dj_dagster.orchestration.component.DataJointPipeline
    attributes:
      module: definitions.fractal_tables
      partition_root: JuliaSpec      # optional
      name: fractal                  # optional
      tables: [JuliaSpec, JuliaImage]  # optional: a selection (parts follow their master)
      translation:                   # optional: how the assets look
        group_name: imaging
        key_prefix: [lab]
        owners: [team:imaging]
        tags: {domain: fractals}
      executor: in_process           # or multiprocess
"""

from __future__ import annotations

import importlib
from typing import Literal

import dagster as dg

from ..errors import DataJointError
from .definitions import build_definitions
from .plan import collect_tables
from .translator import DataJointTranslator


class Translation(dg.Model):
    """Overrides of the default translation, applied to every table of the component."""

    group_name: str | None = None
    key_prefix: list[str] | None = None
    owners: list[str] | None = None
    tags: dict[str, str] | None = None
    kinds: list[str] | None = None


class _ComponentTranslator(DataJointTranslator):
    def __init__(self, translation: Translation):
        self.translation = translation

    def get_asset_key(self, table) -> dg.AssetKey:
        key = super().get_asset_key(table)
        prefix = self.translation.key_prefix
        return key.with_prefix(prefix) if prefix else key

    def get_group_name(self, table) -> str:
        return self.translation.group_name or super().get_group_name(table)

    def get_owners(self, table) -> list[str]:
        return list(self.translation.owners or super().get_owners(table))

    def get_tags(self, table) -> dict[str, str]:
        return {**super().get_tags(table), **(self.translation.tags or {})}

    def get_kinds(self, table) -> set[str]:
        return super().get_kinds(table) | set(self.translation.kinds or ())


def select_tables(classes: list[type], names: list[str]) -> list[type]:
    """The classes named in ``names`` (class names or ``database.table`` names), with the
    parts of selected masters."""
    def name_of(cls):
        return f"{cls._schema.database}.{cls._table_name}"

    wanted = set(names)
    chosen = [c for c in classes if c.__name__ in wanted or name_of(c) in wanted]
    unknown = wanted - {c.__name__ for c in chosen} - {name_of(c) for c in chosen}
    if unknown:
        raise DataJointError(f"Tables {sorted(unknown)} are not tables of the pipeline's module")
    masters = set(chosen)
    return chosen + [c for c in classes if c not in masters and getattr(c, "master", None) in masters]


class DataJointPipeline(dg.Component, dg.Model, dg.Resolvable):
    """Every table of the schemas in ``module`` (or the selected ``tables``) as assets,
    with the pipeline sensor."""

    module: str
    partition_root: str | None = None
    name: str | None = None
    sensor_interval: int = 30
    tables: list[str] | None = None
    translation: Translation | None = None
    executor: Literal["in_process", "multiprocess"] = "in_process"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        module = importlib.import_module(self.module)
        sources = [module] if self.tables is None else [select_tables(collect_tables([module]), self.tables)]
        translator = _ComponentTranslator(self.translation) if self.translation else None
        executor = dg.in_process_executor if self.executor == "in_process" else dg.multiprocess_executor
        return build_definitions(*sources, partition_root=self.partition_root, name=self.name,
                                 sensor_interval=self.sensor_interval, translator=translator, executor=executor)
