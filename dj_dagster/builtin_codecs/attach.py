"""``<attach>``: a file's name and contents; fetch writes it into the download folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

from ..codecs import Codec
from ..errors import DataError


NAME_MAX = 255  # bytes in one file name, on every common file system


def attachment_name(name: str, where: str) -> bytes:
    """The UTF-8 bytes of an attachment's file name, or DataError when it is no file
    name: empty, ``.``/``..``, not UTF-8, or longer than a file system allows."""
    if name in ("", ".", ".."):
        raise DataError(f"<attach> {where}: {name!r} is not a file name")
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise DataError(f"<attach> {where}: the file name {name!r} is not valid UTF-8") from None
    if len(raw) > NAME_MAX:
        raise DataError(f"<attach> {where}: the file name {name[:40]!r}... is {len(raw)} bytes long, "
                        f"more than the {NAME_MAX} a file name can have")
    return raw


def _fitted(stem: str, tail: str) -> str:
    """stem + tail, the stem shortened so that the name fits in NAME_MAX bytes."""
    while stem and len((stem + tail).encode("utf-8")) > NAME_MAX:
        stem = stem[:-1]
    return stem + tail


def save_attachment(stored: bytes, folder: str | os.PathLike | None = None) -> str:
    """Write ``filename\\0contents`` into ``folder`` (``config['download_path']``, default
    the working directory); its local path. A different file of the same name already
    there is kept: the new one gets a ``_1``, ``_2``, ... suffix."""
    from ..settings import config

    split = stored.find(b"\x00")
    if split < 0:
        raise DataError("<attach> fetch: the stored value has no file name (not an attachment)")
    try:
        stored_name = stored[:split].decode("utf-8")
    except UnicodeDecodeError:
        raise DataError(f"<attach> fetch: the stored file name {stored[:split][:60]!r} is not valid UTF-8") from None
    # only the name: a stored name can never write outside the download folder
    filename = Path(stored_name).name
    attachment_name(filename, "fetch")
    contents = stored[split + 1:]
    folder = Path(folder or config.get("download_path") or ".")
    target = folder / filename
    try:
        folder.mkdir(parents=True, exist_ok=True)
        stem, suffix, n = target.stem, target.suffix, 0
        while target.exists() and (not target.is_file() or target.read_bytes() != contents):
            n += 1
            target = folder / _fitted(stem, f"_{n}{suffix}")
        if not target.exists():
            tmp = folder / f".attach-{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_bytes(contents)
            os.replace(tmp, target)
    except OSError as exc:
        raise DataError(f"<attach> fetch: cannot write {filename!r} into {str(folder)!r}: "
                        f"{exc.strerror or exc}") from None
    return str(target)


class AttachCodec(Codec):
    """A local file (its path) stored as ``filename\\0contents``: in the row as ``bytes``,
    with ``@store`` through ``<hash@store>``. Fetch returns the path of the file written
    into ``config['download_path']``."""

    name = "attach"

    def get_dtype(self, is_store: bool) -> str:
        return "<hash>" if is_store else "bytes"

    def validate(self, value: Any) -> None:
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"<attach> expects the path of a file, got {type(value).__name__}")

    def encode(self, value: Any, *, key: dict | None = None, context: dict | None = None,
               store_name: str | None = None) -> bytes:
        path = Path(value)
        name = attachment_name(path.name or str(value), "insert")
        try:
            if path.is_dir():
                raise DataError(f"<attach> does not take folders (use <object@store>): {path}")
            if not path.exists():
                raise DataError(f"<attach>: file not found: {path}")
            return name + b"\x00" + path.read_bytes()
        except OSError as exc:
            raise DataError(f"<attach>: cannot read {str(path)!r}: {exc.strerror or exc}") from None

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> str:
        return save_attachment(bytes(stored))
