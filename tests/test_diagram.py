"""dj.Diagram: selection algebra, Mermaid / DOT / SVG output and the networkx view.

The Graphviz tests need the `dot` program (Debian package graphviz; .ci/run installs it):
without it they skip locally but FAIL when the environment variable CI is set. The
built-in SVG renderer is tested everywhere.
"""

from __future__ import annotations

import os
import shutil
import types
import xml.etree.ElementTree as ET

import networkx as nx
import pytest

import dj_dagster as dj
from dj_dagster import diagram as diagram_module

SVG = "{http://www.w3.org/2000/svg}"
LABELS = {"Animal", "Method", "Session", "Recording", "Pairing", "Analysis", "Analysis.Unit"}


def declare(schema: dj.Schema) -> types.SimpleNamespace:
    @schema
    class Animal(dj.Manual):
        definition = """
        animal_id : int32
        ---
        species : varchar(30)
        """

    @schema
    class Method(dj.Lookup):
        definition = """
        method : varchar(16)
        """
        contents = [("fast",), ("slow",)]

    @schema
    class Session(dj.Manual):
        definition = """
        -> Animal
        session : int16
        ---
        -> Method
        """

    @schema
    class Recording(dj.Imported):
        definition = """
        -> Session
        ---
        path : varchar(200)
        """

    @schema
    class Pairing(dj.Manual):
        definition = """
        -> Session
        -> Animal.proj(partner_id='animal_id')
        """

    @schema
    class Analysis(dj.Computed):
        definition = """
        -> Recording
        ---
        score : float64
        """

        class Unit(dj.Part):
            definition = """
            -> master
            unit : int16
            ---
            rate : float64
            """

    return types.SimpleNamespace(Animal=Animal, Method=Method, Session=Session, Recording=Recording,
                                 Pairing=Pairing, Analysis=Analysis)


@pytest.fixture(autouse=True)
def _top_to_bottom():
    """These drawings are pinned top to bottom (datajoint's default direction is LR)."""
    with dj.config.override(display={"diagram_direction": "TB"}):
        yield


@pytest.fixture
def pipe(schema):
    return declare(schema)


def full(schema, *table_names):
    return {f"{schema.database}.{t}" for t in table_names}


def labels_of(diagram) -> set[str]:
    return {d["label"] for _, d in diagram.to_networkx().nodes(data=True)}


def expected_mermaid(database: str) -> str:
    return f"""flowchart TB
    classDef manual fill:#E8F0E9,stroke:#3E7A52,color:#28513A
    classDef lookup fill:#F0F0F1,stroke:#808285,color:#5A5C5F
    classDef imported fill:#E0F4FC,stroke:#00A0DF,color:#00537A
    classDef computed fill:#FFEDE5,stroke:#FF5113,color:#B23200
    classDef part fill:#FFFFFF,stroke:#B9BBBE,color:#55585C,font-size:11px
    subgraph schema_{database}["{database}"]
        subgraph entity_Analysis[" "]
            Analysis(["Analysis"]):::computed
            Analysis_Unit["Analysis.Unit"]:::part
        end
        Animal["Animal"]:::manual
        Method["Method"]:::lookup
        Pairing["Pairing"]:::manual
        Recording(["Recording"]):::imported
        Session["Session"]:::manual
    end
    Analysis --> Analysis_Unit
    Animal -->|"partner_id ← animal_id"| Pairing
    Animal --> Session
    Method --> Session
    Recording ==> Analysis
    Session --> Pairing
    Session ==> Recording
    linkStyle 0,2,3,5 stroke:#171C39,stroke-width:1px
    linkStyle 1 stroke:#C77D3A,stroke-width:1px,color:#C77D3A
    linkStyle 4,6 stroke:#171C39,stroke-width:2px
"""


# --- Mermaid -----------------------------------------------------------------------------
def test_mermaid_exact(schema, pipe):
    assert dj.Diagram(schema).to_mermaid() == expected_mermaid(schema.database)


def test_mermaid_is_deterministic(schema, pipe):
    a = dj.Diagram([pipe.Pairing, pipe.Analysis.Unit, pipe.Animal, pipe.Session, pipe.Method, pipe.Recording,
                    pipe.Analysis])
    b = dj.Diagram(pipe.Method) + dj.Diagram(schema)
    assert a.to_mermaid() == b.to_mermaid() == dj.Diagram(schema).to_mermaid()


def test_mermaid_hidden_parts(schema, pipe):
    text = dj.Diagram(schema, show_parts=False).to_mermaid()
    assert "Analysis_Unit" not in text and "Analysis.Unit" not in text
    assert "    Recording ==> Analysis\n" in text


def test_mermaid_direction(schema, pipe):
    assert dj.Diagram(pipe.Animal, direction="LR").to_mermaid().startswith("flowchart LR\n")
    assert dj.Diagram(pipe.Animal).make_mermaid().startswith("flowchart TB\n")
    with pytest.raises(dj.DataJointError):
        dj.Diagram(pipe.Animal, direction="up")


# --- selection algebra -------------------------------------------------------------------
def test_schema_and_table_sources(schema, pipe):
    everything = full(schema, "animal", "#method", "session", "_recording", "pairing", "__analysis",
                      "__analysis__unit")
    assert dj.Diagram(schema).nodes_to_show == everything
    assert dj.Diagram(pipe.Session).nodes_to_show == full(schema, "session")
    assert dj.Diagram(pipe.Session()).nodes_to_show == full(schema, "session")
    assert dj.Diagram([pipe.Animal, pipe.Method]).nodes_to_show == full(schema, "animal", "#method")
    assert dj.Diagram(pipe.Analysis.Unit).nodes_to_show == full(schema, "__analysis__unit")
    # dj.Diagram is a lazy-import function: the class (and its classmethods) live in dj_dagster.diagram
    sequence = diagram_module.Diagram.from_sequence([pipe.Animal, pipe.Method])
    assert sequence.nodes_to_show == full(schema, "animal", "#method")
    # a Diagram is a copy; the operators never change their operands
    d = dj.Diagram(pipe.Session)
    _ = d + 2
    _ = d - 2
    assert dj.Diagram(d).nodes_to_show == d.nodes_to_show == full(schema, "session")


def test_expand_down(schema, pipe):
    d = dj.Diagram(pipe.Session)
    assert (d + 1).nodes_to_show == full(schema, "session", "_recording", "pairing")
    assert (d + 2).nodes_to_show == full(schema, "session", "_recording", "pairing", "__analysis")
    assert (d + 3).nodes_to_show == full(schema, "session", "_recording", "pairing", "__analysis",
                                         "__analysis__unit")
    assert (d + 10).nodes_to_show == (d + 3).nodes_to_show
    assert (dj.Diagram(pipe.Analysis) + 1).nodes_to_show == full(schema, "__analysis", "__analysis__unit")


def test_expand_up(schema, pipe):
    d = dj.Diagram(pipe.Analysis)
    assert (d - 1).nodes_to_show == full(schema, "__analysis", "_recording")
    assert (d - 2).nodes_to_show == full(schema, "__analysis", "_recording", "session")
    assert (d - 3).nodes_to_show == full(schema, "__analysis", "_recording", "session", "animal", "#method")
    assert (d - 10).nodes_to_show == (d - 3).nodes_to_show
    # renamed foreign keys are edges like any other
    assert (dj.Diagram(pipe.Pairing) - 1).nodes_to_show == full(schema, "pairing", "session", "animal")


def test_expand_both_ways_is_order_dependent(schema, pipe):
    assert (dj.Diagram(pipe.Session) + 1 - 1).nodes_to_show == full(
        schema, "session", "_recording", "pairing", "animal", "#method")
    assert (dj.Diagram(pipe.Session) - 1 + 1).nodes_to_show == full(
        schema, "session", "animal", "#method", "_recording", "pairing")
    assert (dj.Diagram(pipe.Recording) - 1 + 1).nodes_to_show == full(
        schema, "_recording", "session", "__analysis", "pairing")


def test_union_intersection_difference(schema, pipe):
    down = dj.Diagram(pipe.Session) + 1
    up = dj.Diagram(pipe.Analysis) - 2
    assert (dj.Diagram(pipe.Animal) + dj.Diagram(pipe.Method)).nodes_to_show == full(schema, "animal", "#method")
    assert (down * up).nodes_to_show == full(schema, "session", "_recording")
    assert (down - up).nodes_to_show == full(schema, "pairing")
    assert (down + up).nodes_to_show == full(schema, "session", "_recording", "pairing", "__analysis")
    assert (dj.Diagram(schema) - pipe.Pairing).nodes_to_show == dj.Diagram(schema).nodes_to_show - full(
        schema, "pairing")
    assert (dj.Diagram(pipe.Animal) + pipe.Method).nodes_to_show == full(schema, "animal", "#method")
    assert sum([dj.Diagram(pipe.Animal), dj.Diagram(pipe.Method)]).nodes_to_show == full(
        schema, "animal", "#method")


def test_parts(schema, pipe):
    assert labels_of(dj.Diagram(pipe.Analysis)) == {"Analysis"}
    assert labels_of(dj.Diagram(pipe.Analysis, show_parts=True)) == {"Analysis", "Analysis.Unit"}
    assert labels_of(dj.Diagram(pipe.Analysis).add_parts()) == {"Analysis", "Analysis.Unit"}
    assert labels_of(dj.Diagram(schema, show_parts=False)) == LABELS - {"Analysis.Unit"}
    assert pipe.Analysis.Unit in dj.Diagram(schema)
    assert pipe.Analysis.Unit not in dj.Diagram(schema, show_parts=False)
    # show_parts survives the operators (the left operand's setting)
    assert labels_of(dj.Diagram(pipe.Recording, show_parts=True) + 1) == {"Recording", "Analysis",
                                                                             "Analysis.Unit"}


def test_hidden_part_edges_attach_to_master(make_schema):
    s = make_schema()

    @s
    class Probe(dj.Manual):
        definition = """
        probe : int32
        """

    @s
    class Scan(dj.Manual):
        definition = """
        scan : int32
        """

        class Channel(dj.Part):
            definition = """
            -> master
            -> Probe
            """

    @s
    class Trace(dj.Computed):
        definition = """
        -> Scan.Channel
        """

    g = dj.Diagram(s, show_parts=False).to_networkx()
    db = s.database
    assert set(g) == {f"{db}.probe", f"{db}.scan", f"{db}.__trace"}
    assert g.edges[f"{db}.probe", f"{db}.scan"]["via"] == f"{db}.scan__channel"
    assert g.edges[f"{db}.scan", f"{db}.__trace"]["via"] == f"{db}.scan__channel"
    assert set(dj.Diagram(s).to_networkx().edges) == {
        (f"{db}.probe", f"{db}.scan__channel"), (f"{db}.scan", f"{db}.scan__channel"),
        (f"{db}.scan__channel", f"{db}.__trace")}


def test_errors(schema, pipe, tmp_path):
    with pytest.raises(dj.DataJointError):
        dj.Diagram(42)
    with pytest.raises(dj.DataJointError):
        dj.Diagram([])
    with pytest.raises(dj.DataJointError):
        dj.Diagram(schema).save(tmp_path / "diagram.txt")
    with pytest.raises(dj.DataJointError):
        dj.Diagram(schema).to_svg(engine="cairo")


# --- networkx ----------------------------------------------------------------------------
def test_to_networkx(schema, pipe):
    g = dj.Diagram(schema).to_networkx()
    db = schema.database
    assert isinstance(g, nx.DiGraph) and not g.is_multigraph()
    tiers = {d["class_name"]: d["tier"] for _, d in g.nodes(data=True)}
    assert tiers == {"Animal": "Manual", "Method": "Lookup", "Session": "Manual", "Recording": "Imported",
                     "Pairing": "Manual", "Analysis": "Computed", "Analysis.Unit": "Part"}
    unit = g.nodes[f"{db}.__analysis__unit"]
    assert unit["master"] == f"{db}.__analysis" and unit["schema"] == db and unit["table_name"] == "__analysis__unit"
    assert unit["primary_key"] == ["animal_id", "session", "unit"]
    assert unit["introduces_dimension"] and not g.nodes[f"{db}.__analysis"]["introduces_dimension"]
    assert nx.is_directed_acyclic_graph(g)
    assert set(g.edges) == {
        (f"{db}.animal", f"{db}.session"), (f"{db}.#method", f"{db}.session"),
        (f"{db}.session", f"{db}._recording"), (f"{db}._recording", f"{db}.__analysis"),
        (f"{db}.__analysis", f"{db}.__analysis__unit"), (f"{db}.session", f"{db}.pairing"),
        (f"{db}.animal", f"{db}.pairing")}
    renamed = g.edges[f"{db}.animal", f"{db}.pairing"]
    assert renamed["renamed"] and renamed["primary"] and renamed["attr_map"] == {"partner_id": "animal_id"}
    assert renamed["label"] == "partner_id ← animal_id"
    assert not g.edges[f"{db}.#method", f"{db}.session"]["primary"]
    assert not g.edges[f"{db}.session", f"{db}._recording"]["multi"]  # 1:1
    assert g.edges[f"{db}.animal", f"{db}.session"]["multi"]


def test_parallel_renamed_foreign_keys(make_schema):
    s = make_schema()

    @s
    class Neuron(dj.Manual):
        definition = """
        neuron : int32
        """

    @s
    class Synapse(dj.Manual):
        definition = """
        -> Neuron.proj(pre='neuron')
        -> Neuron.proj(post='neuron')
        """

    d = dj.Diagram(s)
    db = s.database
    multi = d.to_networkx(multigraph=True)
    assert multi.number_of_edges(f"{db}.neuron", f"{db}.synapse") == 2
    merged = d.to_networkx().edges[f"{db}.neuron", f"{db}.synapse"]
    assert merged["count"] == 2 and merged["label"] == "post ← neuron; pre ← neuron"
    text = d.to_mermaid()
    assert '    Neuron -->|"post ← neuron"| Synapse\n    Neuron -->|"pre ← neuron"| Synapse\n' in text
    assert "    linkStyle 0,1 stroke:#C77D3A,stroke-width:1px,color:#C77D3A\n" in text
    root = ET.fromstring(d.to_svg(engine="builtin").encode("utf-8"))
    assert len([g for g in root.iter(f"{SVG}g") if g.get("class") == "edge"]) == 2


def test_context_names_and_collisions(schema, pipe, make_schema):
    module = types.SimpleNamespace(**vars(pipe))
    g = dj.Diagram(schema, context={"pipe": module}).to_networkx()
    assert g.nodes[f"{schema.database}.__analysis__unit"]["class_name"] == "pipe.Analysis.Unit"
    assert g.nodes[f"{schema.database}.animal"]["label"] == "pipe.Animal"

    other = make_schema()

    @other
    class Animal(dj.Manual):
        definition = """
        animal_id : int32
        """

    both = dj.Diagram(schema) + dj.Diagram(other)
    labels = labels_of(both)
    assert f"{schema.database}.Animal" in labels and f"{other.database}.Animal" in labels
    text = both.to_mermaid()
    assert f'subgraph schema_{other.database}["{other.database}"]' in text
    assert text.index(f"schema_{min(schema.database, other.database)}") < text.index(
        f"schema_{max(schema.database, other.database)}")


# --- SVG ---------------------------------------------------------------------------------
def svg_texts(svg: str) -> tuple[set[str], set[str]]:
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag == f"{SVG}svg"
    texts = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")}
    titles = {"".join(t.itertext()).strip() for t in root.iter(f"{SVG}title")}
    return texts, titles


def test_builtin_svg(schema, pipe):
    d = dj.Diagram(schema)
    svg = d.to_svg(engine="builtin")
    texts, titles = svg_texts(svg)
    assert LABELS <= texts
    assert "partner_id ← animal_id" in texts
    assert full(schema, "animal", "#method", "session", "_recording", "pairing", "__analysis",
                "__analysis__unit") <= titles
    root = ET.fromstring(svg.encode("utf-8"))
    shapes = {g.get("class"): {c.tag.replace(SVG, "") for c in g} for g in root.iter(f"{SVG}g")
              if (g.get("class") or "").startswith("node ")}
    assert shapes["node computed"] == shapes["node imported"] == {"title", "ellipse", "text"}
    assert shapes["node manual"] == shapes["node lookup"] == shapes["node part"] == {"title", "rect", "text"}
    # layered: every parent is drawn above its child
    y = {}
    for g in root.iter(f"{SVG}g"):
        if (g.get("class") or "").startswith("node "):
            y[g.find(f"{SVG}title").text] = float(g.find(f"{SVG}text").get("y"))
    for parent, child in d.to_networkx().edges:
        assert y[parent] < y[child]
    assert svg_texts(dj.Diagram(schema, direction="LR").to_svg(engine="builtin"))[0] >= LABELS


def test_builtin_svg_without_dot(schema, pipe, monkeypatch):
    monkeypatch.setattr(diagram_module.shutil, "which", lambda name: None)
    assert not diagram_module.dot_available()
    svg = dj.Diagram(schema).to_svg()
    assert "graphviz" not in svg.lower()
    assert LABELS <= svg_texts(svg)[0]
    assert dj.Diagram(schema)._repr_svg_() == svg[svg.index("<svg"):].rstrip()  # the element, for notebooks
    with pytest.raises(dj.DataJointError, match="Graphviz"):
        dj.Diagram(schema).to_svg(engine="graphviz")


def test_empty_diagram_svg(make_schema):
    s = make_schema()
    d = dj.Diagram(s)
    assert d.to_networkx().number_of_nodes() == 0
    texts, _ = svg_texts(d.to_svg(engine="builtin"))
    assert texts == set()
    assert d.to_mermaid().count("subgraph") == 0


def require_dot():
    if shutil.which("dot") is None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail("Graphviz `dot` is not installed (CI is set: .ci/run should install graphviz)")
        pytest.skip("Graphviz is not installed (apt-get install -y graphviz)")


def test_graphviz_svg(schema, pipe):
    require_dot()
    d = dj.Diagram(schema)
    svg = d.to_svg()
    assert "graphviz" in svg.lower()
    texts, titles = svg_texts(svg)
    assert LABELS <= texts
    assert "partner_id ← animal_id" in texts
    assert full(schema, "animal", "#method", "session", "_recording", "pairing", "__analysis",
                "__analysis__unit") <= titles
    assert d._repr_svg_() == svg[svg.index("<svg"):].rstrip()  # without the XML prolog, for notebooks


def test_dot_source(schema, pipe):
    dot = dj.Diagram(schema).to_dot()
    db = schema.database
    assert f'"{db}.__analysis" [label="Analysis", shape=ellipse' in dot
    assert f'"{db}._recording" [label="Recording", shape=ellipse' in dot
    assert f'"{db}.animal" [label=<<u>Animal</u>>, shape=box, style="rounded,filled", fillcolor="#E8F0E9"' in dot
    assert f'"{db}.#method" -> "{db}.session" [color="#171C399E", style=dashed' in dot
    assert 'label="partner_id ← animal_id"' in dot


# --- save --------------------------------------------------------------------------------
def test_save(schema, pipe, tmp_path):
    d = dj.Diagram(schema)
    d.save(tmp_path / "d.mmd")
    assert (tmp_path / "d.mmd").read_text(encoding="utf-8") == expected_mermaid(schema.database)
    d.save(str(tmp_path / "d.md"))
    assert (tmp_path / "d.md").read_text(encoding="utf-8") == (
        "```mermaid\n" + expected_mermaid(schema.database) + "```\n")
    d.save(tmp_path / "d.svg")
    assert LABELS <= svg_texts((tmp_path / "d.svg").read_text(encoding="utf-8"))[0]
    d.save(tmp_path / "d.dot")
    assert (tmp_path / "d.dot").read_text(encoding="utf-8") == d.to_dot()
    d.save(tmp_path / "diagram.txt", format="mermaid")
    assert (tmp_path / "diagram.txt").read_text(encoding="utf-8") == d.to_mermaid()
    if shutil.which("dot"):
        d.save(tmp_path / "d.png")
        assert (tmp_path / "d.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_snapshot_and_iteration(schema, pipe):
    d = dj.Diagram(schema)

    @schema
    class Late(dj.Manual):
        definition = """
        -> Animal
        late : int32
        """

    assert f"{schema.database}.late" not in d.nodes_to_show  # a snapshot
    assert f"{schema.database}.late" in dj.Diagram(schema).nodes_to_show
    order = [t.full_table_name for t in d]
    assert order == d.topo_sort()
    assert order.index(f"{schema.database}.session") < order.index(f"{schema.database}._recording")
    assert "Diagram(" in repr(d)
