"""datajoint 2.3.5's extrinsic provenance, deploy helpers and job-metadata migration:
dj_dagster.provenance, dj_dagster.deploy, dj_dagster.migrate (every backend)."""

from __future__ import annotations

import datetime
import json
import re

import pytest
import sqlalchemy as sa

import dj_dagster as dj
from dj_dagster import provenance
from dj_dagster.deploy import add_prov_column, set_replica_identity
from dj_dagster.errors import DataJointError, UnknownFieldError
from dj_dagster.migrate import add_job_metadata_columns
from dj_dagster.user_tables import Computed, Imported, Lookup, Manual, Part, is_tier

SOURCE = {"system": "PyRat", "endpoint": "https://pyrat.example.org"}
JOB_COLUMNS = ("_job_start_time", "_job_duration", "_job_version")


@pytest.fixture
def capture():
    saved = dict(dj.config.provenance)
    dj.config.provenance.capture = True
    dj.config.provenance.source = SOURCE
    yield
    dj.config.provenance.capture = saved["capture"]
    dj.config.provenance.source = saved["source"]


def raw_prov(table) -> list:
    """The stored _prov values, in primary-key order, read past the heading."""
    t = table()
    col = t.sa_table.c[provenance.PROV_ATTRIBUTE]
    order = [t.sa_table.c[k] for k in t.primary_key]
    rows = t.connection.query_all(sa.select(col).order_by(*order))
    return [json.loads(r[0]) if isinstance(r[0], (str, bytes)) else r[0] for r in rows]


@pytest.fixture
def pipeline(schema, capture):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int16
        ---
        species : varchar(32)
        """

        class Detail(dj.Part):
            definition = """
            -> master
            ---
            info : varchar(16)
            """

    @schema
    class Param(dj.Lookup):
        definition = """
        param_id : int16
        ---
        value : float32
        """
        contents = [(1, 1.0)]

    @schema
    class RecordingFile(dj.Manual):
        definition = """
        file_id : int16
        ---
        path : varchar(255)
        """

    @schema
    class Session(dj.Manual):
        definition = """
        session_id : int16
        ---
        note : varchar(64)
        """

    @schema
    class Ingest(dj.Imported):
        definition = """
        -> RecordingFile
        ---
        n_rows : int16
        """

        def make(self, key):
            Session.insert1({"session_id": 100 + key["file_id"], "note": "fanned out"})
            self.insert1({**key, "n_rows": 1})

    @schema
    class Analysis(dj.Computed):
        definition = """
        -> Subject
        ---
        score : float32
        """

        def make(self, key):
            self.insert1({**key, "score": 1.0})

    return dict(Subject=Subject, Param=Param, RecordingFile=RecordingFile, Session=Session, Ingest=Ingest,
                Analysis=Analysis)


def test_tier_regexp_names_entry_tables():
    for name, tier in [("subject", Manual), ("session_note", Manual), ("#param", Lookup), ("_ingest", Imported),
                       ("__analysis", Computed), ("subject__detail", Part), ("__analysis__unit", Part)]:
        assert is_tier(name, tier), name
        assert is_tier(name, Manual) is (tier is Manual), name
    for name in ("~jobs", "~~analysis", "~lineage"):
        assert not any(re.fullmatch(t.tier_regexp, name) for t in (Manual, Lookup, Imported, Computed, Part))


def test_only_entry_tables_get_the_hidden_column(pipeline):
    t = pipeline
    for name in ("Subject", "Session", "RecordingFile"):
        heading = t[name]().heading
        assert provenance.PROV_ATTRIBUTE in heading.attributes and heading[provenance.PROV_ATTRIBUTE].hidden
        assert provenance.PROV_ATTRIBUTE not in heading.names
    for table in (t["Param"], t["Ingest"], t["Analysis"], t["Subject"].Detail):
        assert provenance.PROV_ATTRIBUTE not in table().heading.attributes


def test_insert_records_provenance_and_hides_it(pipeline, backend):
    t = pipeline
    t["Subject"].insert1({"subject_id": 1, "species": "mouse"})
    (record,) = raw_prov(t["Subject"])
    assert record["source"] == SOURCE
    assert record["agent"]["database_name" if backend == "sqlite" else "user"]  # SQLite: the file, no user
    datetime.datetime.fromisoformat(record["time"])
    assert "context" not in record
    assert provenance.PROV_ATTRIBUTE not in t["Subject"]().to_dicts()[0]
    joined = (t["Subject"] * t["Param"]).to_dicts()
    assert len(joined) == 1 and provenance.PROV_ATTRIBUTE not in joined[0]


def test_author_cannot_write_prov(pipeline):
    with pytest.raises(UnknownFieldError, match="_prov"):
        pipeline["Subject"].insert1({"subject_id": 3, "species": "mouse", "_prov": {"forged": True}})
    assert len(pipeline["Subject"]()) == 0


def test_fan_out_write_records_the_ingesting_make(pipeline):
    t = pipeline
    t["RecordingFile"].insert1({"file_id": 7, "path": "/data/a.tif"})
    t["Ingest"].populate()
    (record,) = raw_prov(t["Session"])
    assert record["context"]["key"] == {"file_id": 7}
    assert record["context"]["table"] == t["Ingest"]().full_table_name
    (file_record,) = raw_prov(t["RecordingFile"])
    assert "context" not in file_record


def test_insert_from_query_carries_provenance_across(schema, pipeline):
    t = pipeline
    t["Subject"].insert1({"subject_id": 40, "species": "mouse"})

    @schema
    class SubjectCopy(dj.Manual):
        definition = t["Subject"].definition

    SubjectCopy.insert(t["Subject"]() & "subject_id = 40")
    assert raw_prov(SubjectCopy) == raw_prov(t["Subject"])


def test_no_record_without_anything_to_say(schema, capture, monkeypatch):
    """Capture on but with nothing but a time to record (no agent, source or make): NULL."""
    dj.config.provenance.source = {}

    class Bare:
        conn_info = {}

    assert provenance.build_payload(Bare(), dj.config) is None


def test_capture_off_then_add_prov_column(schema):
    saved = dj.config.provenance.capture
    dj.config.provenance.capture = False
    try:
        @schema
        class Legacy(dj.Manual):
            definition = """
            legacy_id : int16
            ---
            note : varchar(32)
            """

        @schema
        class Tuning(dj.Lookup):
            definition = """
            tuning_id : int16
            """

        assert provenance.PROV_ATTRIBUTE not in Legacy().heading.attributes
        dj.config.provenance.capture = True
        Legacy.insert1({"legacy_id": 1, "note": "before"})  # no column: nothing recorded, no error

        preview = add_prov_column(schema, dry_run=True)
        assert preview["tables_analyzed"] == 1 and preview["columns_added"] == 0 and preview["tables_modified"] == 0
        assert len(preview["ddl"]) == 1 and "ADD COLUMN" in preview["ddl"][0]
        assert preview["details"] == [{"table": f"{schema.database}.legacy", "status": "pending"}]
        assert provenance.PROV_ATTRIBUTE not in Legacy().heading.attributes

        applied = add_prov_column(Legacy, dry_run=False)
        assert applied["columns_added"] == 1 and applied["tables_modified"] == 1
        again = add_prov_column(Legacy(), dry_run=False)
        assert again["columns_added"] == 0 and again["details"][0]["status"] == "already_present"
        assert add_prov_column(Tuning, dry_run=False)["tables_analyzed"] == 0  # not an Entry table

        attr = Legacy().heading[provenance.PROV_ATTRIBUTE]
        assert attr.hidden and attr.nullable and attr.type.name == "json"
        Legacy.insert1({"legacy_id": 2, "note": "after"})
        old, new = raw_prov(Legacy)
        assert old is None and new["time"] and new["agent"]
    finally:
        dj.config.provenance.capture = saved


@pytest.fixture
def declared_and_legacy(make_schema):
    saved = dj.config.jobs.add_job_metadata
    dj.config.jobs.add_job_metadata = False
    off = make_schema("djoff")

    @off
    class Source(dj.Lookup):
        definition = """
        source_id : int16
        ---
        value : float32
        """
        contents = [(1, 1.0)]

    @off
    class Legacy(dj.Computed):
        definition = """
        -> Source
        ---
        result : float32
        """

        def make(self, key):
            self.insert1({**key, "result": 2.0})

    dj.config.jobs.add_job_metadata = True
    on = make_schema("djon")

    @on
    class Source2(dj.Lookup):
        definition = """
        source_id : int16
        ---
        value : float32
        """
        contents = [(1, 1.0)]

    @on
    class Fresh(dj.Computed):
        definition = """
        -> Source2
        ---
        result : float32
        """

        def make(self, key):
            self.insert1({**key, "result": 2.0})

    yield off, Legacy, Fresh
    dj.config.jobs.add_job_metadata = saved


def job_columns(table) -> dict:
    heading = table().heading
    return {n: (heading[n].type.text, heading[n].nullable, heading[n].default, heading[n].hidden)
            for n in JOB_COLUMNS if n in heading.attributes}


def test_add_job_metadata_columns_matches_declaration(declared_and_legacy):
    off, legacy, fresh = declared_and_legacy
    assert job_columns(legacy) == {} and set(job_columns(fresh)) == set(JOB_COLUMNS)
    preview = add_job_metadata_columns(off, dry_run=True)
    assert preview["tables_analyzed"] == 1 and preview["columns_added"] == 3
    assert preview["details"][0]["status"] == "pending" and len(preview["details"][0]["sql_statements"]) == 3
    assert job_columns(legacy) == {}
    applied = add_job_metadata_columns(legacy, dry_run=False)
    assert applied["columns_added"] == 3 and applied["details"][0]["status"] == "migrated"
    assert job_columns(legacy) == job_columns(fresh)
    again = add_job_metadata_columns(legacy, dry_run=False)
    assert again["columns_added"] == 0 and again["details"][0]["status"] == "already_migrated"


def test_populate_fills_migrated_columns(declared_and_legacy):
    _, legacy, _ = declared_and_legacy
    add_job_metadata_columns(legacy, dry_run=False)
    legacy.populate()
    t = legacy()
    rows = t.connection.query_all(sa.select(*(t.sa_table.c[c] for c in JOB_COLUMNS)))
    assert rows and rows[0][0] is not None and rows[0][1] is not None


def test_migration_targets(declared_and_legacy, connection):
    off, legacy, _ = declared_and_legacy
    assert add_job_metadata_columns(off.get_table("Source"), dry_run=True)["tables_modified"] == 0
    with pytest.raises(DataJointError, match="must be a Schema or Table"):
        add_job_metadata_columns("legacy")
    with pytest.raises(DataJointError, match="not activated"):
        add_prov_column(dj.Schema(), dry_run=True)


def test_set_replica_identity(schema, backend):
    @schema
    class Thing(dj.Manual):
        definition = """
        thing_id : int16
        """

    with pytest.raises(DataJointError, match="mode must be 'default' or 'full'"):
        set_replica_identity(schema, mode="nothing")
    with pytest.raises(DataJointError, match="must be a Schema or Table"):
        set_replica_identity("not a schema", mode="full")
    if backend != "postgresql":
        with pytest.raises(DataJointError, match="PostgreSQL-only"):
            set_replica_identity(schema, mode="full")
        return
    preview = set_replica_identity(schema, mode="FULL", dry_run=True)
    assert preview == {"tables_analyzed": 1, "tables_modified": 0,
                       "ddl": [f'ALTER TABLE "{schema.database}"."thing" REPLICA IDENTITY FULL']}
    done = set_replica_identity(Thing, mode="full", dry_run=False)
    assert done["tables_modified"] == 1

    def identity():
        return Thing().connection.query(
            "SELECT c.relreplident FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s", (schema.database, "thing")).fetchall()[0][0]

    assert identity() == "f"
    set_replica_identity(Thing(), mode="default", dry_run=False)
    assert identity() == "d"


def test_payload_shapes():
    cfg = dj.config

    class Conn:
        conn_info = {"user": "alice", "host": "db", "database_name": None}

    saved = dict(cfg.provenance)
    try:
        cfg.provenance.source = {"when": datetime.date(2026, 1, 1)}
        with provenance.ingesting("s._ingest", {"when": datetime.datetime(2026, 9, 30, 12), "raw": b"\xde\xad"}, "v1"):
            with provenance.ingesting("s._inner", {"b": 2}):
                assert provenance.build_payload(Conn(), cfg)["context"]["table"] == "s._inner"
            payload = provenance.build_payload(Conn(), cfg)
        assert payload["agent"] == {"user": "alice", "host": "db"}
        assert payload["context"] == {"table": "s._ingest", "key": {"when": "2026-09-30T12:00:00", "raw": "dead"},
                                      "version": "v1"}
        assert json.loads(provenance.serialize(payload))["source"] == {"when": "2026-01-01"}
        assert "context" not in provenance.build_payload(Conn(), cfg)
    finally:
        cfg.provenance.source = saved["source"]
