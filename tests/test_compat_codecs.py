"""DataJoint 2.x's codec, object-store and garbage-collection API on every backend:
custom codecs (get_dtype, store_name/context, validate, chaining, the column type their
chain stores), the registry, storage paths and URLs, hash_registry, StorageBackend,
ObjectRef, staged inserts and GarbageCollector."""

from __future__ import annotations

import io
import json
import warnings

import numpy as np
import pytest

import dj_dagster as dj
from dj_dagster import hash_registry, storage
from dj_dagster.builtin_codecs import SchemaCodec
from dj_dagster.codecs import (_REGISTRY, Codec, get_codec, is_codec_registered, list_codecs, resolve_dtype,
                               unregister_codec)
from dj_dagster.settings import config
from dj_dagster.stores import clear_store_cache


@pytest.fixture
def stores(tmp_path):
    saved = {k: config.get(k) for k in ("stores", "default_store")}
    config["stores"] = {"local": {"protocol": "file", "location": str(tmp_path / "store")}}
    config["default_store"] = "local"
    clear_store_cache()
    yield tmp_path / "store"
    for k, v in saved.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    clear_store_cache()


@pytest.fixture
def scratch_codecs():
    """Codecs named ``compat_*`` defined by a test are forgotten afterwards."""
    yield
    for name in [n for n in _REGISTRY if n.startswith("compat_")]:
        del _REGISTRY[name]


# --------------------------------------------------------------------------- codec API


class Pair:
    def __init__(self, a, b):
        self.a, self.b = a, b


class PairCodec(Codec):
    """A user codec of the 2.x form: stored through <blob>, told the store and context."""

    name = "compat_pair"
    calls: list = []

    def get_dtype(self, is_store: bool) -> str:
        return "<blob>"

    def encode(self, value, *, key=None, context=None, store_name=None):
        PairCodec.calls.append((dict(key or {}), dict(context or {}), store_name))
        return [value.a, value.b]

    def decode(self, stored, *, key=None, context=None):
        return Pair(*stored)

    def validate(self, value):
        if not isinstance(value, Pair):
            raise TypeError(f"expected a Pair, got {type(value).__name__}")


class LegacyCodec(Codec):
    """A codec written before store_name/context: called with key only."""

    name = "compat_legacy"

    def get_dtype(self, is_store: bool) -> str:
        return "<blob>"

    def encode(self, value, *, key=None):
        assert key["_field"] == "legacy" and "_schema" in key
        return {"v": value}

    def decode(self, stored, *, key=None):
        return stored["v"]


class JsonCodec(Codec):
    """A codec storing JSON in its own column (no blob)."""

    name = "compat_json"

    def get_dtype(self, is_store: bool) -> str:
        return "json"

    def encode(self, value, *, key=None, store_name=None):
        return {"items": sorted(value)}

    def decode(self, stored, *, key=None):
        return set(stored["items"])


class TextCodec(Codec):
    """A codec storing text in a varchar column."""

    name = "compat_text"

    def get_dtype(self, is_store: bool) -> str:
        return "varchar(64)"

    def encode(self, value, *, key=None, store_name=None):
        return "-".join(map(str, value))

    def decode(self, stored, *, key=None):
        return tuple(int(x) for x in stored.split("-"))


def test_custom_codecs_round_trip_with_store_name_and_context(schema, stores):
    PairCodec.calls.clear()

    @schema
    class Thing(dj.Manual):
        definition = """
        thing_id : int32
        ---
        pair : <compat_pair>
        remote = null : <compat_pair@>
        legacy : <compat_legacy>
        tags : <compat_json>
        code : <compat_text>
        """

    Thing.insert1({"thing_id": 7, "pair": Pair(1, "x"), "remote": Pair(2, "y"), "legacy": [1, 2],
                   "tags": {"b", "a"}, "code": (3, 4)})
    row = Thing.fetch1()
    assert (row["pair"].a, row["pair"].b) == (1, "x") and (row["remote"].a, row["remote"].b) == (2, "y")
    assert row["legacy"] == [1, 2] and row["tags"] == {"a", "b"} and row["code"] == (3, 4)
    (inline_key, inline_ctx, inline_store), (_, _, remote_store) = PairCodec.calls
    assert inline_store is None and remote_store == ""  # '@' alone: the default store
    assert inline_key["thing_id"] == 7 and inline_key["_schema"] == schema.database
    assert inline_ctx["schema"] == schema.database and inline_ctx["field"] == "pair"
    assert inline_ctx["config"] is config and inline_key["_config"] is config  # the connection's (global) config
    # the column holds what the chain stores: JSON for <compat_json>, text for <compat_text>
    import sqlalchemy as sa

    cols = Thing().sa_table.c
    tags, code = Thing.connection.query_all(sa.select(cols.tags, cols.code))[0]
    assert (json.loads(tags) if isinstance(tags, (str, bytes)) else tags) == {"items": ["a", "b"]}
    assert code == "3-4"
    assert Thing.heading["remote"].type.store == ""
    from dj_dagster.codecs import decode_attribute

    assert decode_attribute(Thing.heading["tags"], '{"items": ["x"]}') == {"x"}
    assert decode_attribute(Thing.heading["code"], "5-6") == (5, 6)
    assert decode_attribute(Thing.heading["code"], None) is None

    with pytest.raises(dj.DataError, match="expected a Pair"):
        Thing.insert1({"thing_id": 8, "pair": (1, 2), "legacy": 1, "tags": set(), "code": (1,)})
    assert len(Thing) == 1


def test_registry_refuses_a_second_codec_of_a_name(scratch_codecs):
    class First(Codec):
        name = "compat_dup"

        def get_dtype(self, is_store):
            return "bytes"

    assert is_codec_registered("<compat_dup@store>") and get_codec("<compat_dup>") is _REGISTRY["compat_dup"]
    with pytest.raises(dj.DataJointError, match="already registered"):
        class Second(Codec):  # noqa: F841
            name = "compat_dup"

    class Abstract(Codec, register=False):
        name = "compat_abstract"

    assert "compat_dup" in list_codecs() and not is_codec_registered("compat_abstract")
    unregister_codec("compat_dup")
    assert not is_codec_registered("compat_dup")
    with pytest.raises(dj.DataJointError, match="Unknown codec"):
        get_codec("compat_dup")
    with pytest.raises(dj.DataJointError, match="not registered"):
        unregister_codec("compat_dup")


def test_resolve_dtype_follows_chains_and_refuses_loops(scratch_codecs):
    assert resolve_dtype("<blob>") == ("bytes", [get_codec("blob")], None)
    assert resolve_dtype("<blob@cold>") == ("json", [get_codec("blob"), get_codec("hash")], "cold")
    assert resolve_dtype("<attach@>")[0] == "json" and resolve_dtype("<attach@>")[2] == ""
    assert resolve_dtype("varchar(10)") == ("varchar(10)", [], None)
    assert get_codec("blob").get_dtype(is_store=True) == "<hash>"

    class A(Codec):
        name = "compat_a"

        def get_dtype(self, is_store):
            return "<compat_b>"

    class B(Codec):
        name = "compat_b"

        def get_dtype(self, is_store):
            return "<compat_a>"

    with pytest.raises(dj.DataJointError, match="Circular codec reference"):
        resolve_dtype("<compat_a>")
    for store_only in ("hash", "object", "npy", "filepath"):
        with pytest.raises(dj.DataJointError, match="requires @"):
            resolve_dtype(f"<{store_only}>")


def test_a_store_only_codec_without_store_is_refused_at_declaration(schema, stores):
    class NoStore(dj.Manual):
        definition = """
        ns_id : int32
        ---
        content : <hash>
        """

    with pytest.raises(dj.DeclarationError, match="requires @"):
        schema(NoStore)


def test_schema_codec_context_from_key_is_deprecated():
    class Ctx(SchemaCodec, register=False):
        name = "compat_ctx"

    legacy = {"_schema": "lab", "_table": "subject", "_field": "data", "_config": "CFG", "subject_id": 7}
    with pytest.warns(DeprecationWarning, match="1550"):
        assert Ctx()._extract_context(legacy) == ("lab", "subject", "data", {"subject_id": 7})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        ctx = {"schema": "s", "table": "t", "field": "f", "config": "C"}
        assert Ctx()._extract_context({"subject_id": 1}, ctx) == ("s", "t", "f", {"subject_id": 1})
    assert Codec._codec_config({"_config": "K"}, {"config": "C"}) == "C"
    assert Codec._codec_config({"_config": "K"}, {}) == "K"
    assert get_codec("hash").referenced_paths('{"path": "p", "store": "s"}') == [("p", "s")]
    assert get_codec("object").referenced_paths("not json") == []


# --------------------------------------------------------------------------- storage


def test_urls_and_object_paths():
    assert storage.is_url("S3://bucket/key") and not storage.is_url("/local/path")
    assert storage.parse_url("gs://b/k") == ("gcs", "b/k")
    assert storage.parse_url("file:///data/f.dat") == ("file", "/data/f.dat")
    with pytest.raises(dj.DataJointError, match="Unsupported URL protocol"):
        storage.parse_url("ftp://host/file")
    assert storage.normalize_to_url("relative/f.dat").startswith("file:///")
    assert len(storage.generate_token(2)) == 4 and len(storage.generate_token(40)) == 16
    assert storage.encode_pk_value("a/b") == "a%2Fb" and storage.encode_pk_value(5) == "5"
    path, token = storage.build_object_path("s", "T", "f", {"a": 1, "b": 2}, ".dat", partition_pattern="{b}",
                                            schema_prefix="_schema")
    assert path == f"_schema/b=2/s/T/a=1/f_{token}.dat"
    path, token = storage.build_object_path("s", "T", "f", {"a": 1}, None, schema_prefix="")
    assert path == f"s/T/a=1/f_{token}"


def test_hash_registry_and_storage_backend(stores, tmp_path):
    meta = hash_registry.put_hash(b"content", schema_name="lab", store_name="local")
    assert meta["path"] == f"_hash/lab/{meta['hash']}" and meta["size"] == 7 and meta["store"] == "local"
    assert hash_registry.get_hash(meta) == b"content"
    backend = hash_registry.get_store_backend("local")
    backend.put_buffer(b"corrupt", meta["path"])
    with pytest.raises(dj.DataJointError, match="Hash mismatch"):
        hash_registry.get_hash(meta)
    assert hash_registry.delete_path(meta["path"], "local") is True
    assert hash_registry.delete_path(meta["path"], "local") is False
    with pytest.raises(dj.DataJointError, match="Invalid content hash"):
        hash_registry.build_hash_path("NOT-A-HASH", "lab")
    assert hash_registry.build_hash_path("a" * 26, "lab", (2, 2)) == f"_hash/lab/aa/aa/{'a' * 26}"

    folder = tmp_path / "src"
    (folder / "sub").mkdir(parents=True)
    (folder / "x.bin").write_bytes(b"x")
    (folder / "sub" / "y.bin").write_bytes(b"yy")
    manifest = backend.put_folder(folder, "user/dir")
    assert manifest["item_count"] == 2 and manifest["total_size"] == 3
    assert backend.isdir("user/dir") and backend.exists("user/dir/sub/y.bin") and backend.size("user/dir") == 3
    assert backend.get_url("user/dir/x.bin").startswith("file:///")
    backend.remove_folder("user/dir")
    assert not backend.exists("user/dir")
    with pytest.raises(dj.errors.NotInStoreError):
        backend.get_buffer("user/dir/x.bin")


def test_object_ref_json_round_trip():
    ref = dj.ObjectRef.from_json(json.dumps({"path": "s/T/id=1/f.dat", "size": 3, "hash": None, "ext": ".dat",
                                             "is_dir": False, "timestamp": "2025-01-15T10:30:00+00:00"}))
    assert ref.path == "s/T/id=1/f.dat" and ref.size == 3 and ref.ext == ".dat" and ref.timestamp.year == 2025
    assert ref.to_json()["path"] == ref.path and str(ref) == ref.path and "file" in repr(ref)
    built = dj.ObjectRef(path="a/b.zarr", size=None, hash=None, ext=".zarr", is_dir=True, timestamp=None,
                         item_count=4)
    assert built.is_dir and built.item_count == 4 and built.to_json()["item_count"] == 4


# --------------------------------------------------------------------------- objects, staged inserts, gc


def test_object_npy_and_staged_insert(schema, stores, tmp_path):
    @schema
    class Rec(dj.Manual):
        definition = """
        rec_id : int32
        ---
        data : <object@local>
        arr = null : <npy@>
        """

    Rec.insert1({"rec_id": 1, "data": (".txt", io.BytesIO(b"hello")), "arr": np.arange(6).reshape(2, 3)})
    row = Rec.fetch1()
    assert row["data"].read() == b"hello" and row["data"].ext == ".txt"
    assert row["arr"].shape == (2, 3) and np.array_equal(row["arr"].load(), np.arange(6).reshape(2, 3))
    with pytest.raises(dj.DataJointError, match="Cannot listdir"):
        row["data"].listdir()

    with Rec().staged_insert1 as staged:
        staged.rec["rec_id"] = 2
        with staged.open("data", ".bin") as f:
            f.write(b"staged")
    assert (Rec & {"rec_id": 2}).fetch1("data").read() == b"staged"

    with Rec().staged_insert1 as staged:
        staged.rec["rec_id"] = 3
        folder = staged.store("data", ".zarr")
        folder["a"] = b"1"
        folder["b/c"] = b"22"
    ref = (Rec & {"rec_id": 3}).fetch1("data")
    assert ref.is_dir and ref.item_count == 2 and ref.size == 3 and sorted(ref.listdir()) == ["a", "b"]

    with pytest.raises(RuntimeError):
        with Rec().staged_insert1 as staged:
            staged.rec["rec_id"] = 4
            with staged.open("data", ".bin") as f:
                f.write(b"lost")
            raise RuntimeError("fails")
    assert not (Rec & {"rec_id": 4})
    with pytest.raises(dj.DataJointError, match="Primary key"):
        with Rec().staged_insert1 as staged:
            staged.open("data")


def test_garbage_collector_collects_only_orphans(schema, stores):
    @schema
    class Kept(dj.Manual):
        definition = """
        kept_id : int32
        ---
        blob : <blob@local>
        obj : <object@local>
        """

    Kept.insert([{"kept_id": i, "blob": np.full(4, i), "obj": b"obj %d" % i} for i in range(3)])
    collector = dj.gc.GarbageCollector(schema, store="local")
    stats = collector.collect()
    assert stats["hash_paths_referenced"] == 3 and stats["schema_paths_referenced"] == 3
    assert stats["hash_paths_orphaned"] == 0 and stats["schema_paths_orphaned"] == 0 and stats["dry_run"]

    (Kept & {"kept_id": 0}).delete(prompt=False)
    stats = collector.collect()
    assert stats["hash_paths_orphaned"] == 1 and stats["schema_paths_orphaned"] == 1 and stats["deleted"] == 0
    stats = collector.collect(dry_run=False)
    assert stats["deleted"] == 2 and stats["bytes_freed"] > 0
    assert collector.collect()["hash_paths_stored"] == 2
    assert sorted(r["blob"][0] for r in Kept.to_dicts()) == [1, 2]
    assert dj.gc(schema) == []  # the module is callable as before
    with pytest.raises(dj.DataJointError, match="At least one schema"):
        dj.gc.GarbageCollector(store="local")


def test_spark_adapter_protocol():
    class Adapting:
        def to_spark(self, decoded, *, key=None):
            return list(decoded)

    assert isinstance(Adapting(), dj.SparkAdapter) and not isinstance(get_codec("blob"), dj.SparkAdapter)
