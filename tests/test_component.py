"""The Dagster Component builds the same definitions from YAML attributes."""

from __future__ import annotations

import sys
import types

import dagster as dg

import dj_dagster as dj
from dj_dagster.orchestration.component import DataJointPipeline


def test_component_builds_pipeline(schema, monkeypatch):
    @schema
    class Source(dj.Manual):
        definition = """
        source_id : int32
        """

    @schema
    class Derived(dj.Computed):
        definition = """
        -> Source
        ---
        value : float64
        """

        def make(self, key):
            self.insert1({**key, "value": 1.0})

    module = types.ModuleType("dj_component_pipeline")
    module.schema, module.Source, module.Derived = schema, Source, Derived
    monkeypatch.setitem(sys.modules, module.__name__, module)
    component = DataJointPipeline.resolve_from_yaml(
        f"module: {module.__name__}\npartition_root: Source\nname: comp_{schema.database}\n")
    defs = component.build_defs(None)
    graph = defs.resolve_asset_graph()
    derived = dg.AssetKey([schema.database, "derived"])
    assert set(graph.get(derived).parent_keys) == {dg.AssetKey([schema.database, "source"])}
    assert graph.get(derived).partitions_def is not None
