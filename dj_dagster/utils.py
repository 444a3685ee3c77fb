"""datajoint's general helpers (``datajoint.utils``): name conversions, a console
prompt, and writes that never leave a half-written file behind."""

from __future__ import annotations

import re
import shutil
import warnings
from pathlib import Path
from typing import Iterable

from .errors import DataJointError
from .naming import to_snake

_CAMEL = re.compile(r"[A-Z][A-Za-z0-9]*")


def user_choice(prompt: str, choices: Iterable[str] = ("yes", "no"), default: str | None = None) -> str:
    """Ask on the console until one of ``choices`` is typed (case-insensitive) and
    return it; an empty answer means ``default`` (shown capitalized), when given."""
    choices = tuple(choices)
    if default is not None and default not in choices:
        raise ValueError(f"default {default!r} is not one of the choices {choices}")
    shown = ", ".join(c.title() if c == default else c for c in choices)
    while True:
        answer = input(f"{prompt} [{shown}]: ").strip().lower() or default
        if answer in choices:
            return answer


def is_camel_case(s: str) -> bool:
    """Whether ``s`` is a CamelCase class name: a capital ASCII letter, then ASCII
    letters and digits only."""
    return _CAMEL.fullmatch(s) is not None


def to_camel_case(s: str) -> str:
    """``"all_groups"`` -> ``"AllGroups"``: each letter that starts the string or
    follows underscores or other non-word characters is capitalized, and those
    separators are dropped."""
    return re.sub(r"(?:^|[_\W])+([a-zA-Z])", lambda m: m.group(1).upper(), s)


def from_camel_case(s: str) -> str:
    """``"AllGroups"`` -> ``"all_groups"`` (a table's name from its class name). Names
    with underscores are accepted with a UserWarning (the underscores are dropped);
    anything else that is not CamelCase raises DataJointError."""
    if "_" in s:
        warnings.warn(f"Table class name `{s}` contains underscores, which are dropped: use CamelCase.",
                      UserWarning, stacklevel=2)
        s = s.replace("_", "")
    if not is_camel_case(s):
        raise DataJointError(f"Class name {s!r} must be CamelCase: a capital letter, then letters and digits")
    return to_snake(s)


def safe_write(filepath: str | Path, blob: bytes) -> None:
    """Write ``blob`` to ``filepath`` unless the file exists, through a temporary file
    renamed into place, so the file is either absent or complete."""
    path = Path(filepath)
    if path.is_file():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".saving")
    partial.write_bytes(blob)
    partial.replace(path)


def safe_copy(src: str | Path, dest: str | Path, overwrite: bool = False) -> None:
    """Copy ``src`` to ``dest`` through a temporary file renamed into place; an
    existing ``dest`` is kept unless ``overwrite``. Copying a file onto itself does
    nothing."""
    src, dest = Path(src), Path(dest)
    if dest.exists() and src.samefile(dest):
        return
    if dest.is_file() and not overwrite:
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".copying")
    shutil.copyfile(src, partial)
    partial.replace(dest)
