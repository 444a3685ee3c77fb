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


def test_component_selects_tables_and_translates(schema, monkeypatch):
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

    @schema
    class Unwanted(dj.Manual):
        definition = """
        unwanted_id : int32
        """

    module = types.ModuleType("dj_component_selection")
    module.schema, module.Source, module.Derived, module.Unwanted = schema, Source, Derived, Unwanted
    monkeypatch.setitem(sys.modules, module.__name__, module)
    component = DataJointPipeline.resolve_from_yaml(f"""
module: {module.__name__}
name: sel_{schema.database}
tables: [Source, Derived]
translation:
  group_name: imaging
  key_prefix: [lab]
  owners: [team:imaging]
  tags: {{domain: fractals}}
executor: multiprocess
""")
    defs = component.build_defs(None)
    graph = defs.resolve_asset_graph()
    keys = set(graph.get_all_asset_keys())
    derived = dg.AssetKey(["lab", schema.database, "derived"])
    assert keys == {dg.AssetKey(["lab", schema.database, "source"]), derived}
    node = graph.get(derived)
    assert node.group_name == "imaging" and node.owners == ["team:imaging"]
    assert node.tags["domain"] == "fractals" and node.tags["dj/tier"] == "computed"
    job = next(j for j in defs.get_repository_def().get_all_jobs() if j.name.endswith("_populate_partitions"))
    assert job.executor_def.name == "multiprocess"
