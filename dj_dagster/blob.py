"""DataJoint blob serialization (the ``longblob`` attribute codec).

The wire format is the one used by DataJoint (Python 2.x and MATLAB's mYm):

* an optional compression envelope: ``b"ZL123\\0"``, the uncompressed length
  as a little-endian uint64, then a zlib stream;
* a protocol marker: ``b"mYm\\0"`` when the value only uses MATLAB-compatible
  constructs (numeric/char arrays of ndim >= 1, struct and cell arrays), or
  ``b"dj0\\0"`` as soon as any Python-only construct appears;
* one encoded value.  Each value starts with a one-byte code (``A`` array,
  ``S`` struct, ``C`` cell, ``F`` structured array, ``\\x01`` tuple, ...).
  Containers prefix every element with its encoded length (uint64).

``pack(obj, compress=False)`` produces exactly the bytes that
``datajoint.blob.pack(obj, compress=False)`` produces.  With compression the
envelope is the same, but this module picks its own zlib settings: zlib
level 1, large payloads are compressed in parallel (a pigz-style stream that
any zlib reader accepts), and payloads that a sample shows to be nearly
incompressible are stored raw.  ``unpack`` reads every variant, including
blobs written by MATLAB.

Numeric arrays are decoded without copying: the returned array is a
read-only view on the blob's bytes (as in DataJoint).
"""

from __future__ import annotations

from .errors import BlobError, BlobFormatError
import collections.abc
import datetime
import decimal
import math
import os
import struct
import uuid
import zlib
from decimal import Decimal
from itertools import chain

import numpy as np

__all__ = [
    "BlobError",
    "BlobFormatError",
    "UnsupportedTypeError",
    "MatCell",
    "MatStruct",
    "pack",
    "unpack",
]


class UnsupportedTypeError(BlobError, TypeError):
    """The object (or numpy dtype) cannot be represented in a blob."""


class MatCell(np.ndarray):
    """Object array standing for a MATLAB cell array (code ``C``)."""


class MatStruct(np.recarray):
    """Record array standing for a MATLAB struct array (code ``S``)."""


# ---------------------------------------------------------------------------
# constants

ZL_PREFIX = b"ZL123\0"
_MYM = b"mYm\0"
_DJ0 = b"dj0\0"

#: payloads not longer than this are never compressed (same rule as DataJoint)
COMPRESS_MIN = 1000
#: zlib level used when writing
COMPRESS_LEVEL = 1
#: payloads at least this long are first sampled for compressibility
SAMPLE_MIN = 64 * 1024
#: store raw when the sampled compressed/raw ratio exceeds this
SAMPLE_MAX_RATIO = 0.9
#: payloads at least this long are compressed in parallel chunks
PARALLEL_MIN = 8 * 1024 * 1024
PARALLEL_CHUNK = 4 * 1024 * 1024
#: deflate cannot expand a byte of its stream into more than this many bytes
DEFLATE_MAX_RATIO = 1032
#: containers nested deeper than this are refused by unpack
MAX_DEPTH = 256
#: numpy's limit on array dimensions
MAX_DIMS = 64

_S_U64 = struct.Struct("<Q")
_S_U32 = struct.Struct("<I")
_S_U16 = struct.Struct("<H")
_S_F64 = struct.Struct("<d")
_S_C128 = struct.Struct("<dd")
_S_II = struct.Struct("<II")
_S_DATETIME = struct.Struct("<iq")

_u64 = _S_U64.pack
_u32 = _S_U32.pack

# type ids of the ``A`` array record
_TYPE_LOGICAL, _TYPE_CHAR, _TYPE_VOID = 3, 4, 5  # 1 and 2 (cell, struct) have their own codes
_ID_TO_DTYPE: dict[int, np.dtype] = {
    _TYPE_LOGICAL: np.dtype("bool"),
    6: np.dtype("<f8"),
    7: np.dtype("<f4"),
    8: np.dtype("i1"),
    9: np.dtype("u1"),
    10: np.dtype("<i2"),
    11: np.dtype("<u2"),
    12: np.dtype("<i4"),
    13: np.dtype("<u4"),
    14: np.dtype("<i8"),
    15: np.dtype("<u8"),
}
for _i, _unit in enumerate(("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as")):
    _ID_TO_DTYPE[65536 + _i] = np.dtype(f"<M8[{_unit}]")
# numeric (non-char, non-object) dtypes -> type id
_DTYPE_TO_ID: dict[np.dtype, int] = {dt: tid for tid, dt in _ID_TO_DTYPE.items()}
_ID_NAMES = {0: "UNKNOWN", 1: "CELL", 2: "STRUCT", 16: "FUNCTION"}


def _is_kind(cls: type, name: str) -> bool:
    """True if a class called ``name`` is among cls's bases (DataJoint's own
    MatCell/MatStruct are accepted as well as ours)."""
    return any(c.__name__ == name for c in cls.__mro__)


# ---------------------------------------------------------------------------
# writing
#
# Every encoder has the signature ``enc(obj, out) -> int``: it appends byte
# chunks (bytes or memoryviews) to ``out`` and returns how many bytes it
# appended.  ``out[0]`` holds the protocol marker; encoders of Python-only
# constructs overwrite it with ``dj0``.


def _int_chunk(v: int) -> bytes:
    """A length-prefixed int record (code 0x0a)."""
    n = v.bit_length() // 8 + 1
    if n > 0xFFFF:
        raise BlobError(f"integer too large for a blob ({n} bytes; the limit is 65535)")
    return _u64(n + 3) + b"\x0a" + _S_U16.pack(n) + v.to_bytes(n, "little", signed=True)


_SMALL_INTS = {v: _int_chunk(v) for v in range(-1024, 1025)}
_NONE_ITEM = _u64(1) + b"\xff"
_TRUE_ITEM = _u64(2) + b"\x0b\x01"
_FALSE_ITEM = _u64(2) + b"\x0b\x00"
_float_item = struct.Struct("<QBd").pack
# encoded (length-prefixed) short strings: dict keys repeat across the rows of a table
_STR_CACHE: dict[str, bytes] = {}
_STR_CACHE_SIZE = 4096
_STR_CACHE_MAX_LEN = 40
_str_item = struct.Struct("<QBQ").pack


def _enc_items(items, out: list) -> int:
    """Length-prefixed elements; returns the byte count including prefixes.

    Common scalar types are encoded inline (prefix included) to keep small
    Python structures fast; everything else goes through the encoder table.
    """
    get = _ENCODERS.get
    append = out.append
    total = 0
    python_scalar = False
    for item in items:
        cls = item.__class__
        if cls is str:
            c = _STR_CACHE.get(item)
            if c is None:
                b = item.encode()
                n = len(b)
                c = _str_item(n + 9, 5, n) + b
                if n <= _STR_CACHE_MAX_LEN and len(_STR_CACHE) < _STR_CACHE_SIZE:
                    _STR_CACHE[item] = c
            append(c)
            total += len(c)
            python_scalar = True
        elif cls is float:
            append(_float_item(9, 13, item))
            total += 17
            python_scalar = True
        elif cls is int:
            c = _SMALL_INTS.get(item) or _int_chunk(item)
            append(c)
            total += len(c)
            python_scalar = True
        elif item is None:
            append(_NONE_ITEM)
            total += 9
            python_scalar = True
        elif cls is bool:
            append(_TRUE_ITEM if item else _FALSE_ITEM)
            total += 10
            python_scalar = True
        else:
            i = len(out)
            append(None)
            enc = get(cls) or _resolve(item)
            n = enc(item, out)
            out[i] = _u64(n)
            total += n + 8
    if python_scalar:
        out[0] = _DJ0
    return total


def _enc_none(obj, out):
    out[0] = _DJ0
    out.append(b"\xff")
    return 1


def _enc_bool(obj, out):
    out[0] = _DJ0
    out.append(b"\x0b\x01" if obj else b"\x0b\x00")
    return 2


def _enc_int(obj, out):
    out[0] = _DJ0
    c = _int_chunk(obj)
    out.append(c[8:])
    return len(c) - 8


def _enc_float(obj, out):
    out[0] = _DJ0
    out.append(b"\x0d" + _S_F64.pack(obj))
    return 9


def _enc_complex(obj, out):
    out[0] = _DJ0
    out.append(b"\x0c" + _S_C128.pack(obj.real, obj.imag))
    return 17


def _enc_str(obj, out):
    out[0] = _DJ0
    b = obj.encode()
    out.append(b"\x05" + _u64(len(b)) + b)
    return len(b) + 9


def _enc_bytes(obj, out):
    out[0] = _DJ0
    n = len(obj)
    if n > 4096:
        out.append(b"\x06" + _u64(n))
        out.append(obj)
    else:
        out.append(b"\x06" + _u64(n) + bytes(obj))
    return n + 9


def _enc_decimal(obj, out):
    out[0] = _DJ0
    s = str(obj).encode()
    out.append(b"d" + _u64(len(s)) + s)
    return len(s) + 9


def _enc_uuid(obj, out):
    out[0] = _DJ0
    out.append(b"u" + obj.bytes)
    return 17


def _enc_datetime(obj, out):
    out[0] = _DJ0
    if isinstance(obj, datetime.datetime):
        d, t = obj, obj
    elif isinstance(obj, datetime.date):
        d, t = obj, None
    else:
        d, t = None, obj
    date = -1 if d is None else d.year * 10000 + d.month * 100 + d.day
    time = -1 if t is None else (t.hour * 10000 + t.minute * 100 + t.second) * 1000000 + t.microsecond
    out.append(b"t" + _S_DATETIME.pack(date, time))
    return 13


def _make_seq_encoder(code: bytes):
    def enc(obj, out):
        out[0] = _DJ0
        out.append(code + _u64(len(obj)))
        return 9 + _enc_items(obj, out)

    return enc


_enc_tuple = _make_seq_encoder(b"\x01")
_enc_list = _make_seq_encoder(b"\x02")
_enc_set = _make_seq_encoder(b"\x03")


_chain = chain.from_iterable


def _enc_dict(obj, out):
    out[0] = _DJ0
    out.append(b"\x04" + _u64(len(obj)))
    return 9 + _enc_items(_chain(obj.items()), out)


def _dims(a: np.ndarray) -> bytes:
    return struct.pack(f"<{a.ndim + 1}Q", a.ndim, *a.shape)


def _raw_bytes_f(a: np.ndarray):
    """The array's elements in Fortran order, as a bytes-like object (no copy
    when the array is already Fortran-contiguous)."""
    if a.flags.f_contiguous:
        return memoryview(a.T.reshape(-1).view(np.uint8))
    return a.tobytes(order="F")


def _enc_array(a: np.ndarray, out) -> int:
    """Code ``A``: an array without fields."""
    if type(a) is not np.ndarray:
        a = a.view(np.ndarray)
    dt = a.dtype
    kind = dt.kind
    if not dt.isnative and kind not in "OUS":
        a = a.astype(dt.newbyteorder("="))
        dt = a.dtype
    is_complex = kind == "c"
    base = np.dtype(f"f{dt.itemsize // 2}") if is_complex else dt
    head = b"A" + _dims(a)
    if kind == "U" or kind == "O":
        out[0] = _DJ0
        out.append(head + _S_II.pack(_TYPE_VOID, 0))
        return len(head) + 8 + _enc_items(a.ravel(order="F").tolist() if kind == "U" else a.ravel(order="F"), out)
    if kind == "S" and dt.itemsize == 1:
        # MATLAB chars are 16 bit; DataJoint writes them in C order
        data = np.ascontiguousarray(a).view(np.uint8).astype("<u2").tobytes()
        out.append(head + _S_II.pack(_TYPE_CHAR, 0))
        out.append(data)
        return len(head) + 8 + len(data)
    tid = _DTYPE_TO_ID.get(base)
    if tid is None:
        raise UnsupportedTypeError(f"cannot pack numpy arrays of dtype {dt}")
    if a.ndim == 0 or kind == "M":
        out[0] = _DJ0
    out.append(head + _S_II.pack(tid, is_complex))
    if is_complex:
        re, im = a.real.tobytes(order="F"), a.imag.tobytes(order="F")
        out.append(re)
        out.append(im)
        return len(head) + 8 + len(re) + len(im)
    data = _raw_bytes_f(a)
    out.append(data)
    return len(head) + 8 + a.nbytes


def _enc_recarray(a: np.ndarray, out) -> int:
    """Code ``F``: an array with named fields."""
    out[0] = _DJ0
    a = a.view(np.ndarray)
    names = a.dtype.names
    head = b"F" + _u32(len(names)) + "\0".join(names).encode() + b"\0"
    out.append(head)
    total = len(head)
    for name in names:
        field = a[name]
        total += _enc_recarray(field, out) if field.dtype.fields else _enc_array(field, out)
    return total


def _enc_ndarray(a: np.ndarray, out) -> int:
    fields = a.dtype.fields
    if fields is None:
        return _enc_array(a, out)
    if fields:
        return _enc_recarray(a, out)
    raise UnsupportedTypeError(f"cannot pack a structured array without fields ({type(a).__name__})")


def _enc_struct(a: np.ndarray, out) -> int:
    """Code ``S``: MATLAB struct array."""
    names = a.dtype.names
    head = b"S" + _dims(a) + _u32(len(names)) + "\0".join(names).encode() + b"\0"
    out.append(head)
    return len(head) + _enc_items((e for rec in a.ravel(order="F") for e in rec), out)


def _enc_cell(a: np.ndarray, out) -> int:
    """Code ``C``: MATLAB cell array."""
    head = b"C" + _dims(a)
    out.append(head)
    return len(head) + _enc_items(a.ravel(order="F"), out)


def _enc_np_scalar(obj, out) -> int:
    out[0] = _DJ0
    return _enc_array(np.asarray(obj), out)


def _make_np_scalar_encoder(dt: np.dtype):
    """Fast path for numpy scalars of a supported numeric type (0-d array)."""
    if dt.kind == "c":
        head = b"A" + _u64(0) + _S_II.pack(_DTYPE_TO_ID[np.dtype(f"<f{dt.itemsize // 2}")], 1)

        def enc(obj, out):
            out[0] = _DJ0
            b = head + obj.real.tobytes() + obj.imag.tobytes()
            out.append(b)
            return len(b)

    else:
        head = b"A" + _u64(0) + _S_II.pack(_DTYPE_TO_ID[dt], 0)
        size = len(head) + dt.itemsize

        def enc(obj, out):
            out[0] = _DJ0
            out.append(head + obj.tobytes())
            return size

    return enc


def _resolve(obj):
    """The encoder for types without an exact-type entry.  The order of the
    checks reproduces DataJoint's, so that subclasses go the same way."""
    cls = type(obj)
    if isinstance(obj, np.ndarray):
        if isinstance(obj, MatCell) or _is_kind(cls, "MatCell"):
            return _enc_cell
        if isinstance(obj, MatStruct) or _is_kind(cls, "MatStruct"):
            return _enc_struct
        return _enc_ndarray
    if not isinstance(obj, np.number):
        if isinstance(obj, bool):
            return _enc_bool
        if isinstance(obj, int):
            return _enc_int
        if isinstance(obj, complex):
            return _enc_complex
        if isinstance(obj, float):
            return _enc_float
    if isinstance(obj, (np.number, np.datetime64, np.bool_)):
        return _enc_np_scalar
    if isinstance(obj, (datetime.datetime, datetime.date, datetime.time)):
        return _enc_datetime
    if isinstance(obj, Decimal):
        return _enc_decimal
    if isinstance(obj, uuid.UUID):
        return _enc_uuid
    if isinstance(obj, collections.abc.Mapping):
        return _enc_dict
    if isinstance(obj, str):
        return _enc_str
    if isinstance(obj, (bytes, bytearray)):
        return _enc_bytes
    if isinstance(obj, collections.abc.MutableSequence):
        return _enc_list
    if isinstance(obj, collections.abc.Sequence):
        return _enc_tuple
    if isinstance(obj, collections.abc.Set):
        return _enc_set
    if obj is None:
        return _enc_none
    raise UnsupportedTypeError(f"cannot pack an object of type {cls.__module__}.{cls.__qualname__}")


_ENCODERS: dict[type, object] = {
    type(None): _enc_none,
    bool: _enc_bool,
    int: _enc_int,
    float: _enc_float,
    complex: _enc_complex,
    str: _enc_str,
    np.str_: _enc_str,
    bytes: _enc_bytes,
    np.bytes_: _enc_bytes,
    bytearray: _enc_bytes,
    Decimal: _enc_decimal,
    uuid.UUID: _enc_uuid,
    datetime.datetime: _enc_datetime,
    datetime.date: _enc_datetime,
    datetime.time: _enc_datetime,
    tuple: _enc_tuple,
    list: _enc_list,
    set: _enc_set,
    frozenset: _enc_set,
    dict: _enc_dict,
    np.ndarray: _enc_ndarray,
    np.recarray: _enc_ndarray,
    MatCell: _enc_cell,
    MatStruct: _enc_struct,
    np.datetime64: _enc_np_scalar,
}
for _dt in list(_DTYPE_TO_ID):
    if _dt.kind != "M":
        _ENCODERS[_dt.type] = _make_np_scalar_encoder(_dt)
for _dt in (np.dtype("<c8"), np.dtype("<c16")):
    _ENCODERS[_dt.type] = _make_np_scalar_encoder(_dt)


# ----- compression


def _zlib_header(level: int) -> bytes:
    flevel = 2 if level in (-1, 6) else 0 if level <= 1 else 1 if level <= 5 else 3
    cmf = 0x78
    flg = flevel << 6
    flg += 31 - (cmf * 256 + flg) % 31
    return bytes((cmf, flg))


def _adler32_combine(a1: int, a2: int, len2: int) -> int:
    base = 65521
    s1 = ((a1 & 0xFFFF) + (a2 & 0xFFFF) - 1) % base
    s2 = ((a1 >> 16) + (a2 >> 16) + len2 * ((a1 & 0xFFFF) - 1)) % base
    return (s2 << 16) | s1


def _deflate_chunk(view: memoryview, level: int, last: bool):
    c = zlib.compressobj(level, zlib.DEFLATED, -15)
    data = c.compress(view) + c.flush(zlib.Z_FINISH if last else zlib.Z_SYNC_FLUSH)
    return data, zlib.adler32(view), len(view)


def _deflate(data: bytes, level: int = COMPRESS_LEVEL) -> bytes:
    """zlib.compress(data, level); large inputs are split into chunks that are
    deflated in parallel and joined into one valid zlib stream."""
    workers = min(os.cpu_count() or 1, 8)
    if len(data) < PARALLEL_MIN or workers < 2:
        return zlib.compress(data, level)
    from concurrent.futures import ThreadPoolExecutor

    view = memoryview(data)
    bounds = list(range(0, len(data), PARALLEL_CHUNK))
    with ThreadPoolExecutor(workers) as pool:
        parts = list(
            pool.map(
                lambda start: _deflate_chunk(view[start : start + PARALLEL_CHUNK], level, start == bounds[-1]),
                bounds,
            )
        )
    checksum = 1
    for _, adler, n in parts:
        checksum = _adler32_combine(checksum, adler, n)
    return b"".join([_zlib_header(level), *(p[0] for p in parts), struct.pack(">I", checksum)])


def _worth_compressing(data: bytes) -> bool:
    """False when 8 evenly spaced 8 KiB samples compress poorly (random-looking
    numbers, already compressed media): zlib would cost time and save little."""
    if len(data) < SAMPLE_MIN:
        return True
    n_samples, size = 8, 8 * 1024
    step = (len(data) - size) // (n_samples - 1)
    view = memoryview(data)
    packed = sum(len(zlib.compress(view[i * step : i * step + size], 1)) for i in range(n_samples))
    return packed <= SAMPLE_MAX_RATIO * n_samples * size


def pack(obj, compress: bool = True) -> bytes:
    """Serialize ``obj`` to a DataJoint blob.

    With ``compress=False`` the result is identical to
    ``datajoint.blob.pack(obj, compress=False)``.  With ``compress=True``
    payloads longer than 1000 bytes are stored zlib-compressed when that pays
    off (see the module documentation).

    Raises :class:`UnsupportedTypeError` for objects that have no blob form.
    """
    out = [_MYM]
    enc = _ENCODERS.get(obj.__class__)
    if enc is None:
        enc = _resolve(obj)
    enc(obj, out)
    blob = b"".join(out)
    if compress and len(blob) > COMPRESS_MIN and _worth_compressing(blob):
        packed = _deflate(blob)
        if len(packed) + 14 < len(blob):
            return b"".join((ZL_PREFIX, _u64(len(blob)), packed))
    return blob


# ---------------------------------------------------------------------------
# reading


_size_code = struct.Struct("<QB").unpack_from
_u64_at = _S_U64.unpack_from
_u16_at = _S_U16.unpack_from
_f64_at = _S_F64.unpack_from


def _scalar_complex_dtype(dt: np.dtype) -> np.dtype:
    return np.dtype("<c8") if dt == np.dtype("<f4") else np.dtype("<c16")


class _Reader:
    """Decoder state: the buffer, a read position and the container nesting depth.

    Every length or count read from the bytes is checked against what the rest of the
    buffer can hold before anything is allocated for it."""

    __slots__ = ("buf", "pos", "squeeze", "depth")
    # lengths and dimensions are uint64 (uint32 in blobs of the 32-bit mYm, see _Reader32)
    L, LW, LC = _S_U64, 8, "Q"

    def __init__(self, buf: bytes, squeeze: bool):
        self.buf = buf
        self.pos = 0
        self.squeeze = squeeze
        self.depth = 0

    # -- primitives

    def length(self) -> int:
        pos = self.pos
        self.pos = pos + self.LW
        return self.L.unpack_from(self.buf, pos)[0]

    def dims(self) -> tuple:
        ndim = self.length()
        if ndim > MAX_DIMS:
            raise BlobFormatError(f"invalid blob: an array with {ndim} dimensions (at most {MAX_DIMS})")
        pos = self.pos
        if pos + ndim * self.LW > len(self.buf):
            raise BlobFormatError("blob is truncated")
        shape = struct.unpack_from(f"<{ndim}{self.LC}", self.buf, pos)
        self.pos = pos + ndim * self.LW
        return shape

    def field_names(self, n: int) -> list[str]:
        """n zero-terminated field names, which must be distinct."""
        if n > len(self.buf) - self.pos:
            raise BlobFormatError(f"blob is truncated: {n} field names cannot fit in {len(self.buf) - self.pos} bytes")
        names = [self.cstring() for _ in range(n)]
        if len(set(names)) != n:
            dup = next(name for name in names if names.count(name) > 1)
            raise BlobFormatError(f"invalid blob: field name {dup!r} appears more than once")
        return names

    def cstring(self) -> str:
        buf, pos = self.buf, self.pos
        end = buf.find(b"\0", pos)
        if end < 0:
            raise BlobFormatError("unterminated string in blob")
        self.pos = end + 1
        return buf[pos:end].decode()

    def take(self, n: int) -> bytes:
        pos = self.pos
        end = pos + n
        if end > len(self.buf):
            raise BlobFormatError("blob is truncated")
        self.pos = end
        return self.buf[pos:end]

    def value(self, n_bytes: int | None = None):
        pos = self.pos
        try:
            code = self.buf[pos]
        except IndexError:
            raise BlobFormatError("blob is truncated") from None
        self.pos = pos + 1
        reader = _READERS.get(code)
        if reader is None:
            raise BlobFormatError(f"unknown data structure code {chr(code)!r} in blob")
        v = reader(self)
        if n_bytes is not None and self.pos - pos != n_bytes:
            raise BlobFormatError("blob length check failed: invalid blob")
        return v

    def enter(self, n: int, item_size: int) -> int:
        """Checks before reading n values of at least item_size bytes each, one level
        deeper; returns the new depth (callers set ``self.depth`` back to one less)."""
        if n * item_size > len(self.buf) - self.pos:
            raise BlobFormatError(f"blob is truncated: {n} values cannot fit in {len(self.buf) - self.pos} bytes")
        depth = self.depth + 1
        if depth > MAX_DEPTH:
            raise BlobFormatError(f"invalid blob: containers nested more than {MAX_DEPTH} deep")
        self.depth = depth
        return depth

    def items(self, n: int) -> list:
        """n length-prefixed values; common types are decoded inline."""
        depth = self.enter(n, 9)  # a length and a code at least
        buf = self.buf
        result = []
        append = result.append
        pos = self.pos
        for _ in range(n):
            size, code = _size_code(buf, pos)
            pos += 8
            end = pos + size
            if code == 0x05:  # str
                if _u64_at(buf, pos + 1)[0] + 9 != size:
                    raise BlobFormatError("blob length check failed: invalid blob")
                append(buf[pos + 9 : end].decode())
            elif code == 0x0D and size == 9:  # float
                append(_f64_at(buf, pos + 1)[0])
            elif code == 0x0A:  # int
                if _u16_at(buf, pos + 1)[0] + 3 != size:
                    raise BlobFormatError("blob length check failed: invalid blob")
                append(int.from_bytes(buf[pos + 3 : end], "little", signed=True))
            elif code == 0xFF and size == 1:
                append(None)
            elif code == 0x0B and size == 2:
                append(buf[pos + 1] != 0)
            elif 0x01 <= code <= 0x04:  # tuple, list, set, dict
                self.pos = pos + 9
                count = _u64_at(buf, pos + 1)[0]
                if code == 0x04:
                    it = iter(self.items(2 * count))
                    append(dict(zip(it, it)))
                else:
                    value = self.items(count)
                    append(value if code == 0x02 else tuple(value) if code == 0x01 else set(value))
                if self.pos != end:
                    raise BlobFormatError("blob length check failed: invalid blob")
            else:
                self.pos = pos
                append(self.value(size))
            pos = end
        if pos > len(buf):
            raise BlobFormatError("blob is truncated")
        self.pos = pos
        self.depth = depth - 1
        return result

    def maybe_squeeze(self, a: np.ndarray, to_scalar: bool = True):
        if not self.squeeze:
            return a
        a = a.squeeze()
        return a.item() if to_scalar and a.ndim == 0 else a

    # -- MATLAB-compatible structures

    def read_array(self):
        shape = self.dims()
        n = math.prod(shape)
        tid, is_complex = _S_II.unpack_from(self.buf, self.pos)
        self.pos += 8
        if tid == _TYPE_VOID:
            values = self.items(n)
            data = np.empty(n, dtype=object)
            for i, v in enumerate(values):
                data[i] = v  # element-wise: nested sequences stay single elements
            return self.maybe_squeeze(data.reshape(shape, order="F"))
        if tid == _TYPE_CHAR:
            raw = self.take(2 * n)
            if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
                # a row of chars is a string
                text = raw.decode("utf-16-le", "surrogatepass")
                return self.maybe_squeeze(np.array([text]))
            chars = np.frombuffer(raw, "<u2").astype("<u4").view("<U1")
            return self.maybe_squeeze(chars.reshape(shape, order="F"))
        dt = _ID_TO_DTYPE.get(tid)
        if dt is None:
            name = _ID_NAMES.get(tid, str(tid))
            raise BlobFormatError(f"unsupported array type {name} in blob")
        pos = self.pos
        size = n * dt.itemsize
        if pos + size * (2 if is_complex else 1) > len(self.buf):
            raise BlobFormatError("blob is truncated")
        data = np.frombuffer(self.buf, dt, n, pos)
        self.pos = pos + size
        if is_complex:
            imag = np.frombuffer(self.buf, dt, n, pos + size)
            self.pos += size
            c = np.empty(n, _scalar_complex_dtype(dt))
            c.real = data
            c.imag = imag
            data = c
        if n == 1:
            # DataJoint gives a numpy scalar for 0-d arrays and a fresh
            # (writable) array for other one-element arrays
            if not shape:
                return data[0].item() if self.squeeze else data[0]
            data = data.copy()
        return self.maybe_squeeze(data.reshape(shape, order="F"))

    def read_sparse(self):
        raise BlobFormatError("sparse arrays in blobs are not supported")

    def read_struct(self):
        shape = self.dims()
        n = math.prod(shape)
        n_fields = _S_U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        if not n_fields:
            return np.array(None)
        names = self.field_names(n_fields)
        values = self.items(n * n_fields)
        data = np.empty(n, dtype=[(name, object) for name in names])
        flat = data.view(np.ndarray)
        for j, name in enumerate(names):
            column = flat[name]
            for i in range(n):
                column[i] = values[i * n_fields + j]
        data = self.maybe_squeeze(data.reshape(shape, order="F"), to_scalar=False)
        return data.view(MatStruct)

    def read_cell(self):
        shape = self.dims()
        n = math.prod(shape)
        values = self.items(n)
        if n == 0:
            return np.empty(0, dtype=object).view(MatCell)
        data = np.empty(n, dtype=object)
        for i, v in enumerate(values):
            data[i] = v
        return self.maybe_squeeze(data.reshape(shape, order="F"), to_scalar=False).view(MatCell)

    # -- Python-only structures (dj0)

    def read_recarray(self):
        n_fields = _S_U32.unpack_from(self.buf, self.pos)[0]
        self.pos += 4
        if not n_fields:
            return np.array(None)
        names = self.field_names(n_fields)
        columns = [np.asarray(self.value()) for _ in range(n_fields)]
        dtype = np.dtype([(name, col.dtype) for name, col in zip(names, columns)])
        nbytes = math.prod(columns[0].shape) * dtype.itemsize
        if nbytes > _max_bytes():
            raise BlobFormatError(f"invalid blob: a record array of {nbytes} bytes exceeds "
                                  f"dj.config['blob_max_bytes'] = {_max_bytes()}")
        rec = np.empty(columns[0].shape, dtype=dtype)
        for name, col in zip(names, columns):
            rec[name] = col
        return rec.view(np.recarray)

    def read_none(self):
        return None

    def read_bool(self):
        pos = self.pos
        self.pos = pos + 1
        return self.buf[pos] != 0

    def read_int(self):
        n = _S_U16.unpack_from(self.buf, self.pos)[0]
        self.pos += 2
        return int.from_bytes(self.take(n), "little", signed=True)

    def read_float(self):
        pos = self.pos
        self.pos = pos + 8
        return _S_F64.unpack_from(self.buf, pos)[0]

    def read_complex(self):
        pos = self.pos
        self.pos = pos + 16
        return complex(*_S_C128.unpack_from(self.buf, pos))

    def read_string(self):
        return self.take(self.length()).decode()

    def read_bytes(self):
        return bytes(self.take(self.length()))

    def read_decimal(self):
        text = self.read_string()
        try:
            return Decimal(text)
        except decimal.InvalidOperation:
            raise BlobFormatError(f"invalid blob: {text[:40]!r} is not a decimal number") from None

    def read_tuple(self):
        return tuple(self.items(self.length()))

    def read_list(self):
        return self.items(self.length())

    def read_set(self):
        return set(self.items(self.length()))

    def read_dict(self):
        it = iter(self.items(2 * self.length()))
        return dict(zip(it, it))

    def read_datetime(self):
        date, time = _S_DATETIME.unpack_from(self.buf, self.pos)
        self.pos += 12
        try:
            d = datetime.date(date // 10000, date // 100 % 100, date % 100) if date >= 0 else None
            if time >= 0:
                t = datetime.time(
                    time // 10000000000 % 100, time // 100000000 % 100, time // 1000000 % 100, time % 1000000
                )
                return datetime.datetime.combine(d, t) if d is not None else t
        except ValueError as e:
            raise BlobFormatError(f"invalid blob: date {date} / time {time} is not a valid date or time ({e})") from None
        return d

    def read_uuid(self):
        return uuid.UUID(bytes=bytes(self.take(16)))


class _Reader32(_Reader):
    """Reader for blobs of the 32-bit MATLAB mYm library (uint32 lengths and dimensions)."""

    __slots__ = ()
    L, LW, LC = _S_U32, 4, "I"

    def items(self, n: int) -> list:
        depth = self.enter(n, 5)
        value, length = self.value, self.length
        result = [value(length()) for _ in range(n)]
        self.depth = depth - 1
        return result


_READERS = {
    0x41: _Reader.read_array,  # A
    0x50: _Reader.read_sparse,  # P
    0x53: _Reader.read_struct,  # S
    0x43: _Reader.read_cell,  # C
    0xFF: _Reader.read_none,
    0x01: _Reader.read_tuple,
    0x02: _Reader.read_list,
    0x03: _Reader.read_set,
    0x04: _Reader.read_dict,
    0x05: _Reader.read_string,
    0x06: _Reader.read_bytes,
    0x0A: _Reader.read_int,
    0x0B: _Reader.read_bool,
    0x0C: _Reader.read_complex,
    0x0D: _Reader.read_float,
    0x46: _Reader.read_recarray,  # F
    0x64: _Reader.read_decimal,  # d
    0x74: _Reader.read_datetime,  # t
    0x75: _Reader.read_uuid,  # u
}


def unpack(blob, squeeze: bool = False, *, dims32: bool = False):
    """Deserialize a DataJoint blob (from DataJoint, MATLAB mYm or :func:`pack`).

    ``squeeze=True`` drops singleton dimensions of arrays and turns 0-d arrays
    into Python scalars.  ``dims32=True`` reads blobs written by the 32-bit
    MATLAB mYm library, whose lengths and dimensions are uint32.
    ``None`` is returned unchanged.  Raises :class:`BlobFormatError` for
    malformed input.
    """
    if blob is None:
        return None
    if not isinstance(blob, bytes):
        blob = bytes(blob)
    reader = (_Reader32 if dims32 else _Reader)(blob, squeeze)
    head = blob[:4]
    if head != b"dj0\0" and head != b"mYm\0":
        if not blob.startswith(ZL_PREFIX):
            raise BlobFormatError("not a DataJoint blob (no mYm/dj0 header)")
        reader.pos = len(ZL_PREFIX)
        try:
            size = reader.length()
        except struct.error:
            raise BlobFormatError("blob is truncated: no uncompressed length after the ZL123 header") from None
        blob = _inflate(memoryview(blob)[reader.pos :], size)
        if blob[:4] not in (b"dj0\0", b"mYm\0"):
            raise BlobFormatError("not a DataJoint blob (no mYm/dj0 header)")
        reader.buf = blob
    reader.pos = 4
    try:
        return reader.value(len(blob) - reader.pos)
    except BlobFormatError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError, ArithmeticError, RecursionError,
            MemoryError) as e:
        # e.g. an unhashable dict key or set element, a shape numpy refuses
        raise BlobFormatError(f"invalid blob: {type(e).__name__}: {e}") from None


def _max_bytes() -> int:
    """The largest value unpack builds: ``dj.config["blob_max_bytes"]``."""
    from .settings import config

    return int(config.get("blob_max_bytes") or 4 * 1024**3)


def _inflate(stream: memoryview, size: int) -> bytes:
    """The zlib stream inflated, refusing before allocating when the claimed size is more
    than the stream can hold or than the limit, and stopping as soon as the output
    exceeds the claim (a zlib bomb costs no more than its claim)."""
    limit = _max_bytes()
    if size > limit:
        raise BlobFormatError(f"compressed blob claims {size} bytes, more than dj.config['blob_max_bytes'] = {limit}")
    if size > DEFLATE_MAX_RATIO * len(stream) + DEFLATE_MAX_RATIO:
        raise BlobFormatError(f"corrupt compressed blob: {len(stream)} compressed bytes cannot hold the "
                              f"{size} bytes it claims")
    inflater = zlib.decompressobj()
    try:
        data = inflater.decompress(stream, size)
        if not inflater.eof and inflater.unconsumed_tail and inflater.decompress(inflater.unconsumed_tail, 1):
            raise BlobFormatError(f"blob size mismatch: the compressed data holds more than the {size} bytes "
                                  "it claims")
    except zlib.error as e:
        raise BlobFormatError(f"corrupt compressed blob: {e}") from None
    if not inflater.eof:
        raise BlobFormatError("corrupt compressed blob: the zlib stream is truncated")
    if len(data) != size:
        raise BlobFormatError(f"blob size mismatch: expected {size} bytes, got {len(data)}")
    return data
