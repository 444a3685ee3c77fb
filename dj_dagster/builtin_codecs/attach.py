"""``<attach>``: a file's name and contents; fetch writes it into the download folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..codecs import Codec
from ..errors import DataError


def save_attachment(stored: bytes, folder: str | os.PathLike | None = None) -> str:
    """Write ``filename\\0contents`` into ``folder`` (``config['download_path']``, default
    the working directory); its local path. A different file of the same name already
    there is kept: the new one gets a ``_1``, ``_2``, ... suffix."""
    from ..settings import config

    split = stored.index(b"\x00")
    # only the name: a stored name can never write outside the download folder
    filename = Path(stored[:split].decode("utf-8")).name or "attachment"
    contents = stored[split + 1:]
    folder = Path(folder or config.get("download_path") or ".")
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    stem, suffix, n = target.stem, target.suffix, 0
    while target.exists() and target.read_bytes() != contents:
        n += 1
        target = folder / f"{stem}_{n}{suffix}"
    if not target.exists():
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(contents)
        os.replace(tmp, target)
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
        if not path.exists():
            raise DataError(f"<attach>: file not found: {path}")
        if path.is_dir():
            raise DataError(f"<attach> does not take folders (use <object@store>): {path}")
        return path.name.encode("utf-8") + b"\x00" + path.read_bytes()

    def decode(self, stored: Any, *, key: dict | None = None, context: dict | None = None) -> str:
        return save_attachment(bytes(stored))
