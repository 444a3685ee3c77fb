"""Hostile bytes given to ``blob.unpack``: every claimed length is checked against what
the input can hold (and ``dj.config["blob_max_bytes"]``) before anything is allocated,
compressed data is inflated with a cap, and malformed input of any kind raises
``BlobFormatError`` (a ``DataJointError``) quickly, within a small memory budget."""

from __future__ import annotations

import datetime
import decimal
import struct
import time
import tracemalloc
import uuid
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dj_dagster as dj
from dj_dagster.blob import MAX_DEPTH, pack, unpack
from dj_dagster.errors import BlobFormatError, DataJointError

u64 = struct.Struct("<Q").pack
u32 = struct.Struct("<I").pack
MIB = 1024 * 1024


def refused(data: bytes, *, budget: int = 8 * MIB, seconds: float = 2.0, **kwargs) -> BlobFormatError:
    """Unpacks ``data``, expecting BlobFormatError within the memory and time budget."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(BlobFormatError) as info:
            unpack(data, **kwargs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < budget, f"unpack reserved {peak} bytes for {len(data)} bytes of input"
    assert time.perf_counter() - start < seconds
    assert isinstance(info.value, DataJointError)
    return info.value


def item(payload: bytes) -> bytes:
    return u64(len(payload)) + payload


@pytest.mark.parametrize("claim", [8 * 1024**3, 10**12, 2**63, 2**64 - 1])
def test_compressed_size_claims_are_checked_before_allocating(claim):
    stream = zlib.compress(b"mYm\0")
    err = refused(b"ZL123\0" + u64(claim) + stream)
    assert str(claim) in str(err)


def test_twenty_bytes_claiming_eight_gib():
    data = b"ZL123\0" + u64(8 * 1024**3) + b"\x78\x9c\x03\x00\x00\x00"
    assert len(data) == 20
    refused(data, budget=MIB)


def test_zlib_bomb_stops_at_its_claim():
    inner = b"mYm\0A" + u64(1) + u64(125) + u32(6) + u32(0) + bytes(1000)  # a valid 1 kB blob ...
    bomb = zlib.compress(inner + bytes(100 * MIB), 9)  # ... followed by 100 MiB of zeros
    data = b"ZL123\0" + u64(len(inner)) + bomb
    err = refused(data, budget=4 * MIB)
    assert "more than" in str(err)


def test_truncated_and_corrupt_streams():
    good = pack(np.arange(1000.0))
    assert good.startswith(b"ZL123\0")
    refused(good[:-10])
    refused(good[:14] + b"\x00" * (len(good) - 14))
    refused(good[:10])


def test_claims_beyond_the_limit_setting():
    value = np.zeros(300_000)  # 2.4 MB, compresses well
    data = pack(value)
    assert len(data) < 100_000
    with dj.config.override(blob_max_bytes=MIB):
        err = refused(data)
    assert "blob_max_bytes" in str(err)
    np.testing.assert_array_equal(unpack(data), value)


@pytest.mark.parametrize("claim", [10**12, 2**63, 2**64 - 1])
@pytest.mark.parametrize("template", [
    lambda c: b"mYm\0A" + u64(1) + u64(c) + u32(6) + u32(0),  # an array's dimension
    lambda c: b"mYm\0A" + u64(2) + u64(c) + u64(c) + u32(5) + u32(0),  # an object array's elements
    lambda c: b"mYm\0A" + u64(1) + u64(c) + u32(4) + u32(0),  # a char array
    lambda c: b"mYm\0A" + u64(c),  # the number of dimensions
    lambda c: b"dj0\0\x05" + u64(c) + b"abc",  # a string's length
    lambda c: b"dj0\0\x06" + u64(c) + b"abc",  # bytes
    lambda c: b"dj0\0\x02" + u64(c) + item(b"\xff"),  # a list's count
    lambda c: b"dj0\0\x04" + u64(c) + item(b"\xff"),  # a dict's count
    lambda c: b"dj0\0\x02" + u64(1) + u64(c) + b"\xff",  # an element's length
    lambda c: b"mYm\0C" + u64(1) + u64(c),  # a cell array
    lambda c: b"mYm\0S" + u64(1) + u64(c) + u32(1) + b"a\0",  # a struct array
    lambda c: b"mYm\0S" + u64(1) + u64(1) + u32(c % 2**32) + b"a\0",  # a struct's field count
    lambda c: b"dj0\0F" + u32(c % 2**32) + b"a\0",  # a record array's field count
])
def test_huge_claims_inside_the_blob(template, claim):
    refused(template(claim))


def test_malformed_datetime():
    err = refused(b"dj0\0t" + struct.pack("<iq", 20231340, -1))
    assert "date" in str(err)
    refused(b"dj0\0t" + struct.pack("<iq", 20231201, 256000000000))  # 25:60:00
    refused(b"dj0\0t" + struct.pack("<iq", -1, 999999999999))


def test_more_than_64_dimensions():
    err = refused(b"mYm\0A" + u64(65) + u64(1) * 65 + u32(6) + u32(0) + bytes(8))
    assert "65 dimensions" in str(err)


def test_duplicate_field_names():
    struct_blob = b"mYm\0S" + u64(1) + u64(1) + u32(2) + b"a\0a\0" + item(b"\xff") * 2
    assert "'a'" in str(refused(struct_blob))
    column = pack(np.arange(3.0), compress=False)[4:]
    refused(b"dj0\0F" + u32(2) + b"x\0x\0" + column + column)


def test_invalid_decimal():
    err = refused(b"dj0\0d" + u64(4) + b"1.2x")
    assert "decimal" in str(err)


def test_unhashable_keys_and_elements():
    a_list = b"\x02" + u64(0)
    refused(b"dj0\0\x04" + u64(1) + item(a_list) + item(b"\xff"))  # {[]: None}
    refused(b"dj0\0\x03" + u64(1) + item(a_list))  # {[]}
    refused(b"dj0\0\x04" + u64(1) + item(b"\x04" + u64(0)) + item(b"\xff"))  # {{}: None}


def nested_lists(depth: int) -> bytes:
    body = b"\xff"
    for _ in range(depth):
        body = b"\x02" + u64(1) + item(body)
    return b"dj0\0" + body


def test_nesting_past_the_depth_limit():
    value = None
    for _ in range(MAX_DEPTH - 1):
        value = [value]
    assert unpack(pack(value, compress=False)) == value
    assert unpack(nested_lists(MAX_DEPTH)) is not None
    assert "deep" in str(refused(nested_lists(MAX_DEPTH + 1)))
    refused(nested_lists(100_000), budget=64 * MIB)


def test_32_bit_blobs_are_checked_too():
    refused(b"mYm\0C" + u32(1) + u32(2**32 - 1), dims32=True)
    refused(b"mYm\0A" + u32(1) + u32(2**32 - 1) + u32(6) + u32(0), dims32=True)


# --- property-based: mutate valid blobs ------------------------------------------------

SAMPLES = [
    np.arange(12.0).reshape(3, 4),
    np.array([[1, 2], [3, 4]], dtype=np.int16),
    np.array(["ab", "cde"]),
    np.array([1 + 2j, 3 - 4j]),
    np.array(["2024-01-01", "2024-02-03"], dtype="datetime64[D]"),
    np.rec.array([(1, 2.0, "a"), (3, 4.0, "bb")], dtype=[("i", "i4"), ("f", "f8"), ("s", "U2")]),
    {"id": 7, "name": "session", "rate": 0.5, "tags": ["a", "b", 3], "ok": True, "note": None},
    ({1, 2, 3}, frozenset({"x"}), (1, (2, (3,)))),
    [decimal.Decimal("1.25"), uuid.UUID(int=5), datetime.datetime(2024, 5, 6, 7, 8, 9, 10),
     datetime.date(2020, 2, 29), datetime.time(23, 59), b"\x00\x01", 2**70, -3],
    "a string",
    np.arange(2000.0),  # compressed
    {"k": np.arange(500, dtype=np.uint8).reshape(20, 25), "s": "x" * 1500},  # compressed dj0
]
BLOBS = [pack(v, compress=c) for v in SAMPLES for c in (False, True)]
HUGE = [0, 1, 64, 65, 2**31 - 1, 2**32 - 1, 10**12, 2**63 - 1, 2**63, 2**64 - 1]


@st.composite
def mutated_blobs(draw):
    data = bytearray(draw(st.sampled_from(BLOBS)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "u64", "u32", "cut", "insert", "delete"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "u64":
            data[at:at + 8] = u64(draw(st.sampled_from(HUGE)))
        elif kind == "u32":
            data[at:at + 4] = u32(draw(st.sampled_from(HUGE)) % 2**32)
        elif kind == "cut":
            del data[at:]
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[at:at + draw(st.integers(1, 16))]
    if draw(st.booleans()) and data[:4] in (b"mYm\0", b"dj0\0"):  # mutate, then compress
        data = bytearray(b"ZL123\0" + u64(len(data)) + zlib.compress(bytes(data)))
    return bytes(data)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=mutated_blobs(), dims32=st.booleans())
def test_mutated_blobs_unpack_or_raise_blob_format_error(data, dims32):
    tracemalloc.start()
    start = time.perf_counter()
    try:
        try:
            unpack(data, dims32=dims32)
        except BlobFormatError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 32 * MIB, f"{peak} bytes for {len(data)} bytes of input"


# --- through a table --------------------------------------------------------------------


def test_hostile_bytes_in_a_blob_column(schema, backend):
    @schema
    class Holder(dj.Manual):
        definition = """
        id : int32
        ---
        value : <blob>
        """

    Holder.insert1({"id": 1, "value": np.arange(3.0)})
    table = Holder()
    hostile = b"ZL123\0" + u64(8 * 1024**3) + b"\x78\x9c\x03\x00\x00\x00"
    conn = table.connection
    mark = "?" if backend == "sqlite" else "%s"
    with conn.transaction() as tx:  # the raw bytes, past the codec
        name = conn.adapter._qualified(tx, table.database, table.table_name)
        tx.exec_driver_sql(f"UPDATE {name} SET value = {mark} WHERE id = 1", (hostile,))
    with pytest.raises(BlobFormatError):
        (Holder & {"id": 1}).fetch1("value")
