"""Object-store codecs (<blob@>, <attach>, <hash@>, <object@>, <npy@>, <filepath@>), batched
uploads and garbage collection, on every selected backend, with a local folder store and an S3
store (moto, as a subprocess)."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
import warnings

import numpy as np
import pytest
import sqlalchemy as sa

import dj_dagster as dj
from dj_dagster import blob, catalog, external
from dj_dagster.builtin_codecs import HashCodec
from dj_dagster.external import NpyRef, ObjectRef, Orphan, UploadError, compute_hash, gc
from dj_dagster.settings import config
from dj_dagster.stores import Store, StoreError, clear_store_cache, get_store, store_names

try:  # tests/ on sys.path (rootdir conftest) or tests as a package
    from s3server import TEST_ACCESS_KEY, TEST_SECRET_KEY, s3_server
except ImportError:  # pragma: no cover
    from tests.s3server import TEST_ACCESS_KEY, TEST_SECRET_KEY, s3_server

MIB = 1024 * 1024


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def s3_endpoint():
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def s3_client(s3_endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, aws_access_key_id=TEST_ACCESS_KEY,
                        aws_secret_access_key=TEST_SECRET_KEY, region_name="us-east-1")


@pytest.fixture
def stores(tmp_path):
    """Configure stores for one test and restore the configuration afterwards.

    ``stores()`` sets a local folder store ``local`` (the default ``@``);
    ``stores(s3=endpoint_and_bucket)`` adds ``s3``; ``default=`` picks the default store.
    """
    saved = {k: config.get(k) for k in ("stores", "default_store", "download_path", "upload_batch_bytes")}

    def configure(extra: dict | None = None, default: str = "local") -> dict:
        specs = {"local": {"protocol": "file", "location": str(tmp_path / "store")}, **(extra or {})}
        config["stores"] = specs
        config["default_store"] = default
        config["download_path"] = str(tmp_path / "downloads")
        clear_store_cache()
        return specs

    configure()
    yield configure
    for k, v in saved.items():
        if v is None:
            config.pop(k, None)
        else:
            config[k] = v
    clear_store_cache()


def s3_spec(endpoint: str, bucket: str) -> dict:
    return {"protocol": "s3", "endpoint_url": endpoint, "location": f"{bucket}/objects",
            "access_key": TEST_ACCESS_KEY, "secret_key": TEST_SECRET_KEY,
            "config_kwargs": {"retries": {"max_attempts": 1}}, "retries": 1}


@pytest.fixture
def s3_bucket(s3_client):
    name = f"dj-ext-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    yield name
    # empty and drop the bucket so the server's memory does not grow test after test
    paginator = s3_client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=name):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            s3_client.delete_objects(Bucket=name, Delete={"Objects": keys})
    s3_client.delete_bucket(Bucket=name)


@pytest.fixture(params=["file", "s3"])
def store_kind(request, stores):
    """The default store ``@`` is a local folder or an S3 bucket."""
    if request.param == "s3":
        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = request.getfixturevalue("s3_bucket")
        stores({"s3": s3_spec(endpoint, bucket)}, default="s3")
    return request.param


class PutSpy:
    """Counts the objects written by Store.put / Store.put_many."""

    def __init__(self, monkeypatch):
        self.put_calls = 0
        self.put_many_sizes: list[int] = []
        real_put, real_many = Store.put, Store.put_many
        spy = self

        def put(self, path, data):
            spy.put_calls += 1
            return real_put(self, path, data)

        def put_many(self, items):
            spy.put_many_sizes.append(len(items))
            return real_many(self, items)

        monkeypatch.setattr(Store, "put", put)
        monkeypatch.setattr(Store, "put_many", put_many)

    @property
    def objects(self) -> int:
        return self.put_calls + sum(self.put_many_sizes)


def raw_column(table, attr: str) -> list:
    """The stored (undecoded) values of a column, ordered by primary key."""
    info = catalog.load(table.connection, table.database, table.table_name)
    t = info.sa_table
    rows = table.connection.query_all(sa.select(t.c[attr]).order_by(*[t.c[k] for k in table.primary_key]))
    return [external._as_meta(r[0]) for r in rows]


def same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


# --------------------------------------------------------------------------- <blob@>


def test_blob_store_round_trip_and_metadata(schema, store_kind):
    @schema
    class Signal(dj.Manual):
        definition = """
        signal_id : int32
        ---
        data : <blob@>
        extra = null : <blob@>
        """

    rng = np.random.default_rng(1)
    values = {
        1: rng.standard_normal((30, 40)),
        2: np.arange(24, dtype=np.int16).reshape(2, 3, 4),
        3: {"name": "trial", "spikes": rng.integers(0, 100, 17).astype(np.uint32), "rate": 3.5},
        4: np.array([], dtype=np.float32),
    }
    Signal.insert([{"signal_id": k, "data": v} for k, v in values.items()])
    Signal.insert1({"signal_id": 5, "data": np.eye(3), "extra": [1, 2, 3]})

    for k, v in values.items():
        assert same((Signal & {"signal_id": k}).fetch1("data"), v)
        assert (Signal & {"signal_id": k}).fetch1("extra") is None
    assert (Signal & {"signal_id": 5}).fetch1("extra") == [1, 2, 3]
    fetched = Signal.to_arrays("data", order_by="signal_id")
    assert same(fetched[0], values[1])

    store = get_store("@")
    for meta, value in zip(raw_column(Signal, "data"), [*values.values(), np.eye(3)]):
        assert set(meta) == {"hash", "path", "schema", "store", "size"}
        assert meta["schema"] == schema.database and meta["store"] == store.name
        assert len(meta["hash"]) == 26 and meta["hash"] == meta["hash"].lower()
        assert meta["path"] == f"_hash/{schema.database}/{meta['hash']}"
        stored = store.get(meta["path"])
        assert meta["size"] == len(stored) and compute_hash(stored) == meta["hash"]
        assert stored == blob.pack(value)
        assert same(blob.unpack(stored), value)


def test_layout_matches_datajoint(schema, stores):
    """Hash and path as datajoint 2.3.5 computes them; its blob reader reads our objects."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from datajoint import blob as djblob
        from datajoint.hash_registry import build_hash_path
        from datajoint.hash_registry import compute_hash as dj_hash

    @schema
    class Thing(dj.Manual):
        definition = """
        thing_id : int32
        ---
        data : <blob@local>
        raw : <hash@>
        """

    arr = np.linspace(0, 1, 5000)
    Thing.insert1({"thing_id": 1, "data": arr, "raw": b"raw bytes"})
    meta, raw = raw_column(Thing, "data")[0], raw_column(Thing, "raw")[0]
    stored = get_store("local").get(meta["path"])
    assert meta["hash"] == dj_hash(stored)
    assert meta["path"] == build_hash_path(meta["hash"], schema.database, hash_prefix="_hash")
    assert np.array_equal(djblob.unpack(stored), arr)
    assert raw["hash"] == dj_hash(b"raw bytes") and get_store("local").get(raw["path"]) == b"raw bytes"


def test_store_settings_subfolding_and_prefix(schema, stores, tmp_path):
    specs = stores()
    specs["local"].update({"hash_prefix": "content", "subfolding": [2, 2]})
    clear_store_cache()

    @schema
    class Item(dj.Manual):
        definition = """
        item_id : int32
        ---
        data : <blob@>
        """

    Item.insert1({"item_id": 1, "data": "hello"})
    meta = raw_column(Item, "data")[0]
    h = meta["hash"]
    assert meta["path"] == f"content/{schema.database}/{h[:2]}/{h[2:4]}/{h}"
    assert Item.fetch1("data") == "hello"
    assert gc(schema) == []


def test_datajoint_stores_setting(schema, stores, tmp_path):
    """datajoint 2.x's stores setting (``DJ_STORES``) as it is: its ``"default"`` entry
    names the default store and is not a store itself."""
    config["stores"] = {"default": "main", "local": {"protocol": "file", "location": str(tmp_path / "store")},
                        "main": {"protocol": "file", "location": str(tmp_path / "main")}}
    config["default_store"] = None
    clear_store_cache()
    assert store_names() == ["local", "main"] and get_store().name == "main"

    @schema
    class Item(dj.Manual):
        definition = """
        item_id : int32
        ---
        data : <blob@>
        """

    Item.insert1({"item_id": 1, "data": [1, 2]})
    meta = raw_column(Item, "data")[0]
    assert meta["store"] == "main" and (tmp_path / "main" / meta["path"]).is_file()
    assert Item.fetch1("data") == [1, 2]


def test_dedup_same_bytes_one_object(schema, store_kind, monkeypatch):
    @schema
    class Trace(dj.Manual):
        definition = """
        trace_id : int32
        ---
        data : <blob@>
        """

    arr = np.arange(10_000, dtype=np.float64)
    spy = PutSpy(monkeypatch)
    Trace.insert([{"trace_id": 1, "data": arr}, {"trace_id": 2, "data": arr.copy()}])
    assert spy.objects == 1  # the same bytes twice in one insert: one upload
    Trace.insert1({"trace_id": 3, "data": arr})
    assert spy.objects == 1  # already in the store: not uploaded again
    Trace.insert1({"trace_id": 4, "data": arr + 1})
    assert spy.objects == 2
    store = get_store("@")
    objects = store.list(f"_hash/{schema.database}/")
    assert len(objects) == 2
    metas = raw_column(Trace, "data")
    assert metas[0]["path"] == metas[1]["path"] == metas[2]["path"] != metas[3]["path"]
    assert all(same(v, arr) for v in (Trace & "trace_id < 4").to_arrays("data"))


def test_dedup_is_per_schema(schema, make_schema, stores):
    other = make_schema("djo")
    tables = []
    for s in (schema, other):
        @s
        class Shared(dj.Manual):
            definition = """
            shared_id : int32
            ---
            data : <blob@>
            """

        Shared.insert1({"shared_id": 1, "data": np.ones(100)})
        tables.append(Shared)
    paths = [raw_column(t, "data")[0]["path"] for t in tables]
    assert paths[0] != paths[1] and paths[0].split("/")[2] == paths[1].split("/")[2]
    assert get_store("local").list("_hash/") == sorted(paths)


# --------------------------------------------------------------------------- <attach>, <hash@>


def test_attach_round_trip(schema, store_kind, tmp_path):
    @schema
    class Document(dj.Manual):
        definition = """
        doc_id : int32
        ---
        inline : <attach>
        stored = null : <attach@>
        """

    src = tmp_path / "src"
    src.mkdir()
    (src / "notes.txt").write_bytes(b"first version\n")
    (src / "image.bin").write_bytes(os.urandom(5000))
    Document.insert1({"doc_id": 1, "inline": src / "notes.txt", "stored": str(src / "image.bin")})

    row = (Document & {"doc_id": 1}).fetch1()
    downloads = tmp_path / "downloads"
    assert row["inline"] == str(downloads / "notes.txt")
    assert open(row["inline"], "rb").read() == b"first version\n"
    assert row["stored"] == str(downloads / "image.bin")
    assert open(row["stored"], "rb").read() == (src / "image.bin").read_bytes()
    meta = raw_column(Document, "stored")[0]
    assert get_store("@").get(meta["path"]) == b"image.bin\x00" + (src / "image.bin").read_bytes()

    # same name, other contents: fetched next to the first one, not over it
    (src / "notes.txt").write_bytes(b"second version\n")
    Document.insert1({"doc_id": 2, "inline": src / "notes.txt"})
    second = (Document & {"doc_id": 2}).fetch1("inline")
    assert second == str(downloads / "notes_1.txt")
    assert open(second, "rb").read() == b"second version\n"
    assert open(row["inline"], "rb").read() == b"first version\n"

    with pytest.raises(dj.DataError, match="not found"):
        Document.insert1({"doc_id": 3, "inline": src / "missing.txt"})
    assert len(Document) == 2


def test_hash_codec_and_store_only_codecs(schema, stores):
    @schema
    class Raw(dj.Manual):
        definition = """
        raw_id : int32
        ---
        content : <hash@>
        """

    Raw.insert([{"raw_id": 1, "content": b"\x00\x01binary"}, {"raw_id": 2, "content": bytearray(b"more")}])
    assert [r["content"] for r in Raw.to_dicts(order_by="raw_id")] == [b"\x00\x01binary", b"more"]
    with pytest.raises(dj.DataError, match="bytes"):
        Raw.insert1({"raw_id": 3, "content": "text"})

    class Wrong(dj.Manual):
        definition = """
        wrong_id : int32
        ---
        content : <npy>
        """

    with pytest.raises(dj.DeclarationError, match="requires @"):
        schema(Wrong)


def test_corrupted_or_missing_object(schema, stores):
    @schema
    class Blobby(dj.Manual):
        definition = """
        blobby_id : int32
        ---
        data : <blob@>
        """

    Blobby.insert([{"blobby_id": 1, "data": np.arange(5)}, {"blobby_id": 2, "data": np.arange(6)}])
    m1, m2 = raw_column(Blobby, "data")
    store = get_store("local")
    store.put(m1["path"], blob.pack(np.arange(7)))
    with pytest.raises(external.ExternalStoreError, match="Hash mismatch"):
        (Blobby & {"blobby_id": 1}).fetch1("data")
    store.remove(m2["path"])
    with pytest.raises(dj.errors.NotInStoreError):
        (Blobby & {"blobby_id": 2}).fetch1("data")


class GetSpy:
    """Records the paths read by Store.get / Store.get_many, one list a call (not the
    gets that a local store's get_many makes)."""

    def __init__(self, monkeypatch):
        self.calls: list[list[str]] = []
        self.inside = False
        real_get, real_many = Store.get, Store.get_many
        spy = self

        def get(self, path):
            if not spy.inside:
                spy.calls.append([path])
            return real_get(self, path)

        def get_many(self, paths, sizes=None):
            paths = list(paths)
            spy.calls.append(paths)
            spy.inside = True
            try:
                return real_many(self, paths, sizes)
            finally:
                spy.inside = False

        monkeypatch.setattr(Store, "get", get)
        monkeypatch.setattr(Store, "get_many", get_many)


class Doubled(dj.Codec):
    """A user codec stored through <blob>: declared <doubled@>, its values are decoded after the blob's."""

    name = "doubled"
    dtype = "<blob>"

    def encode(self, value, **_):
        return [value, value]

    def decode(self, stored, **_):
        assert stored[0] == stored[1]
        return stored[0]


def test_fetch_reads_a_column_of_objects_together(schema, store_kind, monkeypatch):
    @schema
    class Many(dj.Manual):
        definition = """
        many_id : int32
        ---
        arr = null : <blob@>
        raw = null : <hash@>
        pair = null : <doubled@>
        """

    n = 30
    arrays = [np.random.default_rng(k).integers(0, 2**31, 1000, dtype=np.int32) for k in range(7)]  # ~4 kB
    rows = [{"many_id": i, "arr": arrays[i % 7] if i % 5 else None,
             "raw": b"%d" % (i % 4), "pair": {"i": i}} for i in range(n)]
    Many.insert(rows)
    spy = GetSpy(monkeypatch)
    got = Many.to_dicts(order_by="many_id")
    assert [r["many_id"] for r in got] == list(range(n))
    for r, g in zip(rows, got):
        assert same(r["arr"], g["arr"]) and g["raw"] == r["raw"] and g["pair"] == {"i": r["many_id"]}
    # one read a column, each distinct object once: 7 arrays, 4 contents, 30 pairs
    assert sorted(len(c) for c in spy.calls) == [4, 7, n]
    assert all(len(set(c)) == len(c) for c in spy.calls)
    # decoded values are not shared between rows, even for one object
    assert got[1]["arr"] is not got[8]["arr"]

    spy.calls.clear()
    config["download_batch_bytes"] = 9000  # two 4 kB arrays a read
    try:
        assert same(Many.to_arrays("arr", order_by="many_id")[1], rows[1]["arr"])
    finally:
        config.pop("download_batch_bytes")
    assert [len(c) for c in spy.calls] == [2, 2, 2, 1]


class Shouting(HashCodec):
    """A built-in codec's subclass with its own decode: fetching a column must call it."""

    name = "shouting"

    def decode(self, stored, **kwargs):
        return super().decode(stored, **kwargs).upper()


def test_fetch_uses_the_decode_of_a_builtin_codecs_subclass(schema, stores):
    @schema
    class Loud(dj.Manual):
        definition = """
        loud_id : int32
        ---
        text : <shouting@>
        """

    Loud.insert([{"loud_id": i, "text": b"word %d" % i} for i in range(3)])
    assert [r["text"] for r in Loud.to_dicts(order_by="loud_id")] == [b"WORD %d" % i for i in range(3)]


def test_fetch_of_many_rows_reports_missing_and_corrupted_objects(schema, store_kind):
    @schema
    class Several(dj.Manual):
        definition = """
        several_id : int32
        ---
        data : <blob@>
        """

    Several.insert([{"several_id": i, "data": np.arange(i + 1)} for i in range(10)])
    metas = raw_column(Several, "data")
    store = get_store("@")
    store.put(metas[3]["path"], blob.pack(np.arange(99)))
    with pytest.raises(external.ExternalStoreError, match=f"Hash mismatch for '{metas[3]['path']}'"):
        Several.to_dicts()
    store.remove(metas[6]["path"])
    for query in (Several & "several_id > 3", Several & {"several_id": 6}):  # many rows, or one
        with pytest.raises(dj.errors.NotInStoreError) as info:
            query.to_dicts()
        message = str(info.value)
        assert f"store '{store.name}': object '{metas[6]['path']}' not found" in message
        assert "the row refers to it" in message
    assert [r["several_id"] for r in (Several & "several_id < 3").to_dicts()] == [0, 1, 2]


def test_fetch_of_many_attachments_of_one_name(schema, store_kind, tmp_path):
    @schema
    class Report(dj.Manual):
        definition = """
        report_id : int32
        ---
        doc : <attach@>
        """

    src = tmp_path / "src"
    src.mkdir()
    for i in range(6):
        (src / "report.txt").write_bytes(b"version %d" % (i % 3))
        Report.insert1({"report_id": i, "doc": src / "report.txt"})
    paths = [r["doc"] for r in Report.to_dicts(order_by="report_id")]
    assert [open(p, "rb").read() for p in paths] == [b"version %d" % (i % 3) for i in range(6)]
    assert len(set(paths)) == 3 and {os.path.basename(p) for p in paths} == {
        "report.txt", "report_1.txt", "report_2.txt"}


# --------------------------------------------------------------------------- <object@>, <npy@>


def test_object_and_npy_lazy_references(schema, store_kind, tmp_path, monkeypatch):
    @schema
    class Recording(dj.Manual):
        definition = """
        rec_id : int32
        session : varchar(20)
        ---
        waveform : <npy@>
        results = null : <object@>
        """

    folder = tmp_path / "results.zarr"
    (folder / "0").mkdir(parents=True)
    (folder / ".zattrs").write_text("{}")
    (folder / "0" / "0.0").write_bytes(b"chunk")
    (tmp_path / "report.csv").write_text("a,b\n1,2\n")
    wave = np.random.default_rng(2).standard_normal((100, 4)).astype(np.float32)
    Recording.insert([
        {"rec_id": 1, "session": "s/1", "waveform": wave, "results": b"raw payload"},
        {"rec_id": 2, "session": "s2", "waveform": np.arange(6), "results": (".json", io.BytesIO(b"{}"))},
        {"rec_id": 3, "session": "s3", "waveform": np.zeros(0), "results": tmp_path / "report.csv"},
        {"rec_id": 4, "session": "s4", "waveform": np.ones((2, 2)), "results": folder},
    ])

    # fetching reads no object: references are lazy
    def no_reads(*args, **kwargs):
        raise AssertionError("fetch must not read objects")

    monkeypatch.setattr(Store, "get", no_reads)
    monkeypatch.setattr(Store, "get_many", no_reads)
    rows = Recording.to_dicts(order_by="rec_id")
    monkeypatch.undo()
    ref = rows[0]["waveform"]
    assert isinstance(ref, NpyRef) and not ref.is_loaded
    assert ref.shape == (100, 4) and ref.dtype == np.float32 and len(ref) == 100
    prefix = f"_schema/{schema.database}/{Recording.table_name}/rec_id=1/session=s%2F1/waveform_"
    assert ref.path.startswith(prefix) and ref.path.endswith(".npy") and len(ref.path) == len(prefix) + 12
    assert np.array_equal(ref.load(), wave) and ref.is_loaded
    assert np.allclose(np.mean(ref, axis=0), wave.mean(axis=0))
    with ref.open() as f:
        assert np.array_equal(np.load(f), wave)
    assert np.array_equal(rows[1]["waveform"].load(), np.arange(6))
    assert rows[2]["waveform"].load().shape == (0,)

    obj = rows[0]["results"]
    assert isinstance(obj, ObjectRef) and obj.size == len(b"raw payload") and not obj.is_dir
    assert obj.path.startswith(f"_schema/{schema.database}/{Recording.table_name}/rec_id=1/session=s%2F1/results_")
    assert obj.load() == b"raw payload"
    with obj.open() as f:
        assert f.read() == b"raw payload"
    assert rows[1]["results"].ext == ".json" and rows[1]["results"].path.endswith(".json")
    csv = rows[2]["results"]
    assert csv.ext == ".csv" and csv.load() == b"a,b\n1,2\n"
    assert csv.download(tmp_path / "out").read_bytes() == b"a,b\n1,2\n"
    assert csv.verify()

    zarr = rows[3]["results"]
    assert zarr.is_dir and zarr.item_count == 2 and zarr.size == 7
    assert zarr.listdir() == [".zattrs", "0"]
    assert zarr.read("0/0.0") == b"chunk"
    with zarr.open("0/0.0") as f:
        assert f.read() == b"chunk"
    assert zarr.verify()
    back = zarr.download(tmp_path / "copy")
    assert (back / "0" / "0.0").read_bytes() == b"chunk"
    with pytest.raises(dj.DataJointError, match="folder"):
        zarr.load()
    store = get_store("@")
    assert store.exists(zarr.path + ".manifest.json")

    # every write is a new object (random token), also for the same key after a delete
    (Recording & {"rec_id": 2}).delete(safemode=False)
    Recording.insert1({"rec_id": 2, "session": "s2", "waveform": np.arange(6)})
    again = (Recording & {"rec_id": 2}).fetch1("waveform")
    assert again.path != rows[1]["waveform"].path and np.array_equal(again.load(), np.arange(6))

    with pytest.raises(dj.DataError, match="ndarray"):
        Recording.insert1({"rec_id": 9, "session": "x", "waveform": [1, 2, 3]})


# --------------------------------------------------------------------------- <filepath@>


def test_filepath(schema, stores, tmp_path):
    @schema
    class Acquired(dj.Manual):
        definition = """
        acq_id : int32
        ---
        raw : <filepath@local>
        """

    store = get_store("local")
    payload = os.urandom(3000)
    store.put("acquisition/subject1/data.bin", payload)
    store.put("acquisition/subject1/other.bin", b"other")
    Acquired.insert([
        {"acq_id": 1, "raw": "acquisition/subject1/data.bin"},
        {"acq_id": 2, "raw": store.full_path("acquisition/subject1/other.bin")},  # absolute, inside the store
    ])
    metas = raw_column(Acquired, "raw")
    assert metas[0]["path"] == "acquisition/subject1/data.bin"
    assert metas[0]["size"] == 3000 and metas[0]["is_dir"] is False and metas[0]["store"] == "local"
    assert metas[1]["path"] == "acquisition/subject1/other.bin"
    ref = (Acquired & {"acq_id": 1}).fetch1("raw")
    assert isinstance(ref, ObjectRef) and ref.path == "acquisition/subject1/data.bin"
    assert ref.load() == payload and ref.verify()
    store.put("acquisition/subject1/data.bin", b"changed")
    with pytest.raises(external.ExternalStoreError, match="mismatch"):
        ref.verify()

    with pytest.raises(dj.DataError, match="not found"):
        Acquired.insert1({"acq_id": 3, "raw": "acquisition/missing.bin"})
    store.put(f"_hash/{schema.database}/x", b"x")
    with pytest.raises(dj.DataError, match="manages"):
        Acquired.insert1({"acq_id": 4, "raw": f"_hash/{schema.database}/x"})
    with pytest.raises(dj.DataError, match="not found"):  # outside the store: taken as relative to it
        Acquired.insert1({"acq_id": 5, "raw": str(tmp_path / "elsewhere.bin")})
    assert len(Acquired) == 2


# --------------------------------------------------------------------------- failures


def test_failed_upload_writes_no_row(schema, stores, s3_endpoint):
    stores({"broken": s3_spec(s3_endpoint, f"no-such-bucket-{uuid.uuid4().hex[:8]}")})

    @schema
    class Fragile(dj.Manual):
        definition = """
        fragile_id : int32
        ---
        data : <blob@broken>
        """

    rows = [{"fragile_id": i, "data": np.full(100, i)} for i in range(5)]
    with pytest.raises(dj.DataJointError) as info:
        Fragile.insert(rows)
    assert isinstance(info.value, UploadError) and isinstance(info.value, dj.DataError)
    assert "broken" in str(info.value) and Fragile.full_table_name in str(info.value)
    assert TEST_SECRET_KEY not in str(info.value)
    with pytest.raises(UploadError):
        Fragile.insert1(rows[0])
    assert len(Fragile) == 0


def test_failed_upload_local_and_failed_encoding(schema, stores, monkeypatch):
    @schema
    class Mixed(dj.Manual):
        definition = """
        mixed_id : int32
        ---
        data : <blob@>
        file = null : <attach@>
        """

    def failing(self, items):
        raise StoreError(f"store {self.name!r}: put_many failed: OSError: disk full")

    monkeypatch.setattr(Store, "put_many", failing)
    with pytest.raises(UploadError, match="disk full"):
        Mixed.insert([{"mixed_id": i, "data": np.full(10, i)} for i in range(3)])
    monkeypatch.undo()
    assert len(Mixed) == 0
    store = get_store("local")
    assert store.list() == []

    # an encoding error in a later row: nothing is uploaded at all
    with pytest.raises(dj.DataError, match="not found"):
        Mixed.insert([{"mixed_id": 1, "data": np.arange(3)}, {"mixed_id": 2, "data": 1, "file": "/no/such/file"}])
    assert len(Mixed) == 0 and store.list() == []

    # a database error after the uploads: no row; the objects are left for gc
    Mixed.insert1({"mixed_id": 1, "data": np.arange(3)})
    with pytest.raises(dj.DuplicateError):
        Mixed.insert1({"mixed_id": 1, "data": np.arange(4)})
    assert len(Mixed) == 1
    assert len(gc(schema, dry_run=False)) == 1
    assert len(store.list()) == 1 and same(Mixed.fetch1("data"), np.arange(3))


def test_s3_upload_asks_one_head_an_object(schema, stores, s3_endpoint, s3_bucket, monkeypatch):
    """Before uploading, each content-addressed object costs one HEAD (no LIST when it is
    missing); objects already there are not uploaded again."""
    stores({"s3": s3_spec(s3_endpoint, s3_bucket)})

    @schema
    class Counted(dj.Manual):
        definition = """
        counted_id : int32
        ---
        data : <hash@s3>
        """

    store = get_store("s3")
    calls = []
    real = store.fs._call_s3

    async def spy(method, *args, **kwargs):
        calls.append(method)
        return await real(method, *args, **kwargs)

    monkeypatch.setattr(store.fs, "_call_s3", spy)
    Counted.insert([{"counted_id": i, "data": b"%d" % i} for i in range(8)])
    assert sorted(calls) == ["head_object"] * 8 + ["put_object"] * 8
    calls.clear()
    Counted.insert([{"counted_id": 10 + i, "data": b"%d" % i} for i in range(9)])  # 8 present, 1 new
    assert sorted(calls) == ["head_object"] * 9 + ["put_object"]
    assert [r["data"] for r in Counted.to_dicts(order_by="counted_id")] == [b"%d" % (i % 10) for i in
                                                                           [*range(8), *range(10, 19)]]


def test_uploads_flush_in_bounded_batches(schema, stores, monkeypatch):
    config["upload_batch_bytes"] = 50_000

    @schema
    class Chunky(dj.Manual):
        definition = """
        chunk_id : int32
        ---
        data : <hash@>
        """

    spy = PutSpy(monkeypatch)
    payloads = [os.urandom(20_000) for _ in range(10)]
    Chunky.insert([{"chunk_id": i, "data": p} for i, p in enumerate(payloads)])
    assert spy.objects == 10 and len(spy.put_many_sizes) >= 3
    assert [r["data"] for r in Chunky.to_dicts(order_by="chunk_id")] == payloads


# --------------------------------------------------------------------------- gc


def test_delete_keeps_objects_and_gc_removes_them(schema, store_kind, tmp_path):
    @schema
    class Subject(dj.Manual):
        definition = """
        subject_id : int32
        ---
        photo = null : <attach@>
        """

    @schema
    class Scan(dj.Manual):
        definition = """
        -> Subject
        scan_id : int32
        ---
        image : <blob@>
        volume = null : <npy@>
        bundle = null : <object@>
        """

    (tmp_path / "photo.jpg").write_bytes(b"jpeg")
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "a.txt").write_text("a")
    Subject.insert([{"subject_id": 1, "photo": tmp_path / "photo.jpg"}, {"subject_id": 2}])
    shared = np.arange(50)
    Scan.insert([
        {"subject_id": 1, "scan_id": 1, "image": shared, "volume": np.ones(3), "bundle": folder},
        {"subject_id": 2, "scan_id": 1, "image": shared, "volume": np.zeros(3)},
        {"subject_id": 2, "scan_id": 2, "image": np.arange(60), "bundle": b"bytes"},
    ])
    store = get_store("@")
    before = store.list()
    assert gc(schema) == []

    (Subject & {"subject_id": 2}).delete(safemode=False)  # cascades to two scans
    assert len(Scan) == 1
    assert store.list() == before  # deleting rows never deletes objects

    orphans = gc(schema)  # dry run: reports only
    assert store.list() == before
    paths = {o.path for o in orphans}
    assert all(o.store == store.name for o in orphans)
    # the shared image is still referenced by scan (1, 1); np.arange(60), two npy files and
    # the bytes object are not
    assert len([p for p in paths if p.startswith("_hash/")]) == 1
    assert len([p for p in paths if p.endswith(".npy")]) == 1
    assert len([p for p in paths if "/bundle_" in p]) == 1
    assert len(orphans) == 3

    removed = gc(schema, store="@", dry_run=False)
    assert removed == orphans
    assert sorted(store.list()) == sorted(set(before) - paths)
    assert gc(schema) == []

    row = Scan.fetch1()
    assert same(row["image"], shared) and np.array_equal(row["volume"].load(), np.ones(3))
    assert row["bundle"].read("a.txt") == b"a" and row["bundle"].verify()
    assert open((Subject & {"subject_id": 1}).fetch1("photo"), "rb").read() == b"jpeg"

    # everything goes once the rows are gone; files in the store outside its sections stay
    store.put("user/own-file.bin", b"mine")
    Subject.delete(safemode=False)
    everything = gc(schema, dry_run=False)
    assert {o.path for o in everything} == set(before) - paths
    assert store.list() == ["user/own-file.bin"]


def test_gc_scope(schema, make_schema, stores):
    other = make_schema("djg")
    for s in (schema, other):
        @s
        class Keep(dj.Manual):
            definition = """
            keep_id : int32
            ---
            data : <blob@>
            """

        Keep.insert1({"keep_id": 1, "data": s.database})
    store = get_store("local")
    orphan = f"_hash/{schema.database}/{compute_hash(b'orphan')}"
    store.put(orphan, b"orphan")
    store.put(f"_hash/{schema.database}/not-a-hash-name", b"ignored")
    assert gc(schema) == [Orphan("local", orphan)]
    assert gc(other) == []
    assert Orphan("local", orphan) in gc(schema.connection)
    with pytest.raises(dj.DataJointError):
        gc("not a schema")
    gc(schema, dry_run=False)
    assert not store.exists(orphan) and store.exists(f"_hash/{schema.database}/not-a-hash-name")
    assert len(store.list("_hash/")) == 3


# --------------------------------------------------------------------------- many objects to S3


def test_many_objects_to_s3_concurrently_and_one_at_a_time(schema, stores, s3_endpoint, s3_bucket, monkeypatch):
    """200 objects of 1 MiB: one insert uploads them with one concurrent put_many; with a
    batch limit of one byte, the same insert uploads them one at a time. Speed: bench/."""
    stores({"s3": s3_spec(s3_endpoint, s3_bucket)})

    @schema
    class Batched(dj.Manual):
        definition = """
        item_id : int32
        ---
        data : <hash@s3>
        """

    @schema
    class OneByOne(dj.Manual):
        definition = """
        item_id : int32
        ---
        data : <hash@s3>
        """

    n = 200
    rng = np.random.default_rng(7)
    batched = [rng.bytes(MIB) for _ in range(n)]
    single = [rng.bytes(MIB) for _ in range(n)]
    spy = PutSpy(monkeypatch)
    Batched.insert([{"item_id": i, "data": d} for i, d in enumerate(batched)])
    assert spy.put_many_sizes == [n] and spy.put_calls == 0  # one concurrent put_many
    config["upload_batch_bytes"] = 1  # every object flushed on its own
    OneByOne.insert([{"item_id": i, "data": d} for i, d in enumerate(single)])
    assert spy.put_many_sizes == [n] and spy.put_calls == n  # one put per object
    monkeypatch.undo()

    store = get_store("s3")
    assert len(store.list(f"_hash/{schema.database}/")) == 2 * n
    for table, expected in ((Batched, batched), (OneByOne, single)):
        metas = raw_column(table, "data")
        assert [m["hash"] for m in metas] == [compute_hash(e) for e in expected]
        stored = store.get_many([m["path"] for m in metas])  # every object, read concurrently
        assert [hashlib.md5(stored[m["path"]]).digest() for m in metas] == [hashlib.md5(e).digest() for e in expected]
        sample = table & [{"item_id": i} for i in (0, 1, n // 2, n - 1)]  # and some through fetch
        assert [r["data"] for r in sample.to_dicts(order_by="item_id")] == [expected[i] for i in (0, 1, n // 2, n - 1)]


def test_upload_to_a_stopped_server_writes_no_row(schema, stores):
    import boto3

    with s3_server() as endpoint:  # a server of this test's own, stopped below
        bucket = f"stopping-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=TEST_ACCESS_KEY,
                     aws_secret_access_key=TEST_SECRET_KEY, region_name="us-east-1").create_bucket(Bucket=bucket)
        spec = s3_spec(endpoint, bucket)
        spec["retries"] = 1
        stores({"gone": spec})

        @schema
        class Fragile(dj.Manual):
            definition = """
            fragile_id : int32
            ---
            data : <blob@gone>
            """

        Fragile.insert1({"fragile_id": 0, "data": np.arange(3)})
    # the server is stopped now
    with pytest.raises(dj.DataJointError) as info:
        Fragile.insert([{"fragile_id": i, "data": np.full(100, i)} for i in range(1, 4)])
    assert TEST_SECRET_KEY not in str(info.value)
    assert Fragile.keys() == [{"fragile_id": 0}]
