"""Blob codec: round trips, and compatibility with datajoint.blob (2.3.5) in both directions."""

from __future__ import annotations

import datetime
import struct
import uuid
import warnings
import zlib
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from dj_dagster import blob
from dj_dagster.blob import (BlobError, BlobFormatError, MatCell, MatStruct, UnsupportedTypeError, pack,
                             unpack)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    djblob = pytest.importorskip("datajoint.blob")

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a, b, strict=False) -> bool:
    """Deep equality for values that may hold numpy arrays (NaN equals NaN).
    strict: also require the same types and dtypes."""
    if strict and type(a).__name__ != type(b).__name__:
        return False
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape or (strict and a.dtype != b.dtype):
            return False
        if a.dtype.names or b.dtype.names:
            return a.dtype.names == b.dtype.names and all(same(a[n], b[n], strict) for n in a.dtype.names)
        if "O" in (a.dtype.kind, b.dtype.kind):
            return all(same(x, y, strict) for x, y in zip(a.reshape(-1).tolist(), b.reshape(-1).tolist()))
        if a.dtype.kind in "mM" and a.dtype == b.dtype:
            return np.array_equal(a.view("i8"), b.view("i8"))
        return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc" and b.dtype.kind in "fc"))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], strict) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, strict) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and a != a:
        return b != b
    if isinstance(a, complex) and isinstance(b, complex):
        return same(a.real, b.real) and same(a.imag, b.imag)
    return a == b


def check(value, *, exact=True):
    """Byte equality of the uncompressed format, round trip, and cross-decoding."""
    ours_raw = pack(value, compress=False)
    peer_value = value  # the peer knows its own MatCell/MatStruct classes only
    if isinstance(value, (MatCell, MatStruct)):
        peer_value = value.view(djblob.MatCell if isinstance(value, MatCell) else djblob.MatStruct)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        peer_raw = djblob.pack(peer_value, compress=False)
    assert ours_raw == peer_raw
    decoded = unpack(ours_raw)
    assert same(decoded, djblob.unpack(peer_raw), strict=True)
    if exact:
        assert same(decoded, value)
    assert same(djblob.unpack(pack(value)), decoded, strict=True)  # our default output
    assert same(unpack(djblob.pack(peer_value)), decoded, strict=True)  # peer's default (compressed) output
    return decoded


# ---------------------------------------------------------------- strategies

NUMERIC = ["?", "i1", "u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f4", "<f8", "<c8", "<c16"]
UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


def arrays(dtype, shape=shapes):
    """Arrays; complex values finite, since the peer rebuilds complex numbers as re + 1j*im, which
    turns an infinite or NaN imaginary part into a NaN real part (ours keeps both exactly)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "c":
        elements = st.complex_numbers(allow_nan=False, allow_infinity=False, width=8 * dtype.itemsize)
        return hnp.arrays(dtype, shape, elements=elements)
    return hnp.arrays(dtype, shape)


@st.composite
def numeric_arrays(draw, dtypes=st.sampled_from(NUMERIC + [f"<M8[{u}]" for u in UNITS])):
    a = draw(arrays(draw(dtypes)))
    return np.asfortranarray(a) if draw(st.booleans()) else a


@st.composite
def structured_arrays(draw):
    kinds = draw(st.lists(st.sampled_from(NUMERIC), min_size=1, max_size=3))
    names = [f"f{i}" for i in range(len(kinds))]
    shape = draw(shapes)
    if draw(st.booleans()):  # a recarray from independent columns
        return np.rec.fromarrays([draw(arrays(k, shape)) for k in kinds], names=names)
    return draw(hnp.arrays(np.dtype(list(zip(names, kinds))), shape, elements=st.just(0) | st.just(1)))


scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**300), 2**300) | st.floats()
           | st.complex_numbers() | st.text() | st.binary() | st.decimals(allow_nan=False) | st.datetimes()
           | st.dates() | st.times() | st.uuids()
           | numeric_arrays(st.sampled_from(["<f8", "<i8", "?"])))
hashables = st.none() | st.booleans() | st.integers() | st.text(max_size=5) | st.uuids()
values = st.recursive(
    scalars,
    lambda inner: (st.lists(inner, max_size=4) | st.lists(inner, max_size=4).map(tuple)
                   | st.dictionaries(hashables, inner, max_size=4) | st.sets(hashables, max_size=4)),
    max_leaves=12,
)


# ---------------------------------------------------------------- properties


@SETTINGS
@given(numeric_arrays())
def test_numeric_arrays(a):
    check(a)


@st.composite
def unicode_arrays(draw):  # no lone surrogates: UTF-8 cannot encode them (both libraries raise)
    dtype = draw(hnp.unicode_string_dtypes(endianness="<"))
    chars = st.characters(exclude_categories=["Cs"])
    return draw(hnp.arrays(dtype, shapes, elements=hnp.from_dtype(dtype, alphabet=chars)))


@SETTINGS
@given(unicode_arrays())
def test_unicode_arrays_decode_as_object_arrays(a):
    decoded = check(a)
    assert np.asarray(decoded).dtype == object


@SETTINGS
@given(structured_arrays())
def test_structured_arrays(a):
    decoded = check(a)
    assert isinstance(decoded, np.recarray)


@SETTINGS
@given(values)
def test_python_values(v):
    check(v)


@SETTINGS
@given(st.sampled_from(NUMERIC), st.integers(0, 255))
def test_numpy_scalars(dtype, x):
    v = np.array(x).astype(dtype)[()]
    assert type(check(v)) is type(v)


# ---------------------------------------------------------------- explicit cases

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _dj_cell = djblob.MatCell((2,), dtype=object)
_dj_cell[0], _dj_cell[1] = np.arange(3.0), "s"
_our_cell = np.empty((1, 2), dtype=object).view(MatCell)
_our_cell[0, 0], _our_cell[0, 1] = np.eye(2), {"k": [1, 2]}
_struct = np.array([(np.arange(2.0), "x"), (3, None)], dtype=[("a", "O"), ("b", "O")])

CASES = [
    None, True, 0, -1, 127, -128, 255, 2**100, -(2**70), 1.5, float("inf"), 1 + 2j, "", "héllo ∂", b"\0x",
    Decimal("1.2300"), Decimal("-Infinity"), uuid.UUID(int=7),
    datetime.datetime(2020, 1, 2, 3, 4, 5, 6), datetime.date(1, 1, 1), datetime.time(0, 0),
    [1, "a", (2, 3), {4, 5}], {"a": 1, "b": [1.5, None], "c": {"d": np.arange(3)}}, {1: "x", None: (), 2.5: []},
    np.float64(3), np.int8(-3), np.bool_(True), np.complex64(1 + 2j), np.datetime64("2020-01-01T10:00"),
    np.longlong(3), np.intc(3), np.array(3.0), np.arange(24).reshape(2, 3, 4), np.arange(6).reshape(2, 3).T,
    np.arange(12.0).reshape(3, 4)[::2, ::3], np.zeros((0, 3)), np.array([1 + 2j, 3], dtype="c8"),
    np.array([1, "x", None, np.arange(2)], dtype=object), np.array([b"a", b"b"]), np.array(b"a"),
    np.rec.fromarrays([np.arange(3), np.array(["u", "v", "w"])], names="n,s"),
    np.array([(1, (2.0, 3))], dtype=[("a", "i8"), ("b", [("x", "f4"), ("y", "i2")])]),
    _dj_cell, _our_cell, _struct.view(MatStruct), _struct.view(djblob.MatStruct),
    np.random.default_rng(1).standard_normal((300, 70)), np.tile(np.arange(100), 50), ["x" * 5000] * 3,
]


@pytest.mark.parametrize("value", CASES, ids=lambda v: type(v).__name__)
def test_cases(value):
    check(value, exact=not isinstance(value, np.ndarray) or value.dtype != "S1")


@pytest.mark.parametrize("value, expected", [
    (range(3), (0, 1, 2)), (frozenset({1}), {1}), (bytearray(b"ab"), b"ab"), (np.str_("s"), "s"),
    (np.bytes_(b"q"), b"q"), (np.array([b"a", b"b"]), np.array(["ab"])),
])
def test_conversions(value, expected):
    assert same(check(value, exact=False), expected, strict=True)


def test_squeeze_matches_peer():
    for v in [np.ones((1, 3, 1)), np.array([[2.5]]), np.array(4), {"x": np.ones((2, 1))}]:
        assert same(unpack(pack(v), squeeze=True), djblob.unpack(djblob.pack(v), squeeze=True), strict=True)
    assert unpack(pack(np.array([[2.5]])), squeeze=True) == 2.5


def test_compression_policy_and_parallel_deflate(monkeypatch):
    zeros = np.zeros(200_000)
    assert pack(zeros).startswith(b"ZL123\0") and len(pack(zeros)) < 10_000
    noise = np.random.default_rng(0).standard_normal(200_000)
    assert pack(noise) == pack(noise, compress=False)  # incompressible: stored raw
    monkeypatch.setattr(blob, "PARALLEL_MIN", 100_000)
    monkeypatch.setattr(blob, "PARALLEL_CHUNK", 30_001)
    a = np.tile(np.arange(1000, dtype="<i4"), 300)
    packed = pack(a)
    assert packed.startswith(b"ZL123\0")
    assert zlib.decompress(packed[14:]) == pack(a, compress=False)
    assert same(djblob.unpack(packed), a, strict=False) and same(unpack(packed), a)


def u64(*xs):
    return struct.pack(f"<{len(xs)}Q", *xs)


def mat_double(*values, shape=None):
    shape = shape or (1, len(values))
    return b"A" + u64(len(shape), *shape) + struct.pack("<II", 6, 0) + struct.pack(f"<{len(values)}d", *values)


def mat_char(text):
    return b"A" + u64(2, 1, len(text)) + struct.pack("<II", 4, 0) + text.encode("utf-16-le")


def mat_items(*encoded):
    return b"".join(u64(len(e)) + e for e in encoded)


def test_matlab_struct_and_cell():
    cell = b"C" + u64(2, 1, 3) + mat_items(mat_double(1, 2), mat_char("xy"), mat_double(1, 2, 3, 4, shape=(2, 2)))
    struct_ = (b"S" + u64(2, 1, 1) + struct.pack("<I", 3) + b"a\0name\0c\0"
               + mat_items(mat_double(3.5), mat_char("hello"), cell))
    raw = b"mYm\0" + struct_
    s = unpack(raw)
    assert isinstance(s, MatStruct) and s.shape == (1, 1) and s.dtype.names == ("a", "name", "c")
    assert same(s[0, 0]["a"], np.array([[3.5]])) and s[0, 0]["name"][0] == "hello"
    c = s[0, 0]["c"]
    assert isinstance(c, MatCell) and c.shape == (1, 3)
    assert same(c[0, 1], np.array(["xy"])) and same(c[0, 2], np.array([[1.0, 3.0], [2.0, 4.0]]))
    assert same(unpack(raw), djblob.unpack(raw), strict=True)
    assert same(unpack(raw, squeeze=True), djblob.unpack(raw, squeeze=True), strict=True)
    compressed = b"ZL123\0" + u64(len(raw)) + zlib.compress(raw, 9)
    assert same(unpack(compressed), s, strict=True)
    assert same(unpack(b"mYm\0" + mat_char("naïve ☃")), np.array(["naïve ☃"]))  # 16-bit chars


def test_matlab_32bit_dims(monkeypatch):
    raw = b"mYm\0A" + struct.pack("<IIIII", 2, 1, 2, 6, 0) + struct.pack("<2d", 1.0, 2.0)
    assert same(unpack(raw, dims32=True), np.array([[1.0, 2.0]]))
    monkeypatch.setattr(djblob, "use_32bit_dims", True)
    assert same(unpack(raw, dims32=True), djblob.unpack(raw), strict=True)


def test_inputs_and_zero_copy():
    a = np.arange(1000.0)
    raw = pack(a, compress=False)
    for form in (raw, bytearray(raw), memoryview(raw)):
        assert same(unpack(form), a)
    out = unpack(raw)
    assert not out.flags.writeable and np.shares_memory(out, np.frombuffer(raw, np.uint8))
    assert unpack(None) is None
    assert same(unpack(pack(np.arange(4.0).astype(">f8"))), np.arange(4.0))  # peer rejects non-native order


@pytest.mark.parametrize("value", [object(), np.float16(1), np.zeros(2, "f2"), np.timedelta64(1, "s"),
                                   np.array([b"ab"]), np.zeros(1, dtype=[]), {"k": [lambda: 1]}])
def test_unsupported_types(value):
    with pytest.raises(UnsupportedTypeError) as info:
        pack(value)
    assert isinstance(info.value, (TypeError, BlobError))
    with pytest.raises(Exception):
        djblob.pack(value)


def test_huge_int_rejected():
    with pytest.raises(BlobError):
        pack(1 << (8 * 70000))


@pytest.mark.parametrize("raw", [b"", b"xyz\0\xff", b"mYm\0", b"dj0\0Q", b"dj0\0\xff\xff",
                                 pack({"a": np.arange(10)})[:-3], b"ZL123\0" + u64(50) + zlib.compress(b"dj0\0\xff"),
                                 b"ZL123\0" + u64(5) + b"garbage", b"mYm\0P"])
def test_malformed_blobs(raw):
    with pytest.raises(BlobFormatError):
        unpack(raw)


def test_beyond_the_peer():
    """Values the peer cannot round-trip exactly; ours does (and writes the same bytes)."""
    c = np.array([complex(0, np.inf), complex(1, np.nan)])
    back = unpack(pack(c))  # the peer computes re + 1j*im and gets NaN real parts
    assert back[0] == c[0] and back[1].real == 1 and np.isnan(back[1].imag)
    ragged = np.empty(2, dtype=object)
    ragged[0], ragged[1] = [1, 2], [3, 4]  # the peer's np.array(list) turns this into a 2x2 array
    assert pack(ragged, compress=False) == djblob.pack(ragged, compress=False)
    back = unpack(pack(ragged))
    assert back.shape == (2,) and back[0] == [1, 2] and back[1] == [3, 4]
