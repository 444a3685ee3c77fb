"""A Dagster Component, so a ``defs.yaml`` can declare a DataJoint pipeline:

.. code-block:: yaml

    type: dj_dagster.orchestration.component.DataJointPipeline
    attributes:
      module: definitions.fractal_tables
      partition_root: JuliaSpec      # optional
      name: fractal                  # optional
"""

from __future__ import annotations

import importlib

import dagster as dg

from .definitions import build_definitions


class DataJointPipeline(dg.Component, dg.Model, dg.Resolvable):
    """Every table of the schemas in ``module`` as assets, with the pipeline sensor."""

    module: str
    partition_root: str | None = None
    name: str | None = None
    sensor_interval: int = 30

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        module = importlib.import_module(self.module)
        return build_definitions(module, partition_root=self.partition_root, name=self.name,
                                 sensor_interval=self.sensor_interval)
