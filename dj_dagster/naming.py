"""Table names: CamelCase class names to snake_case table names with tier prefixes."""

from __future__ import annotations

import re

from .errors import DeclarationError

MAX_NAME = 64
TIER_PREFIX = {"Manual": "", "Lookup": "#", "Imported": "_", "Computed": "__"}
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]*")  # full matches only: no trailing newline


def to_snake(class_name: str) -> str:
    """``ProcessedEMG`` -> ``processed_e_m_g`` (every inner capital starts a word)."""
    if not isinstance(class_name, str) or not _CLASS_NAME.fullmatch(class_name):
        raise DeclarationError(
            f"Table class name {class_name!r} must be CamelCase: a capital letter, then letters and digits"
        )
    return class_name[0].lower() + re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), class_name[1:])


def to_camel(table_name: str) -> str:
    """Inverse of :func:`to_snake` for a bare (prefix-free) table name."""
    return "".join(part[:1].upper() + part[1:] for part in table_name.split("_"))


def table_name(tier: str, class_name: str, master: str | None = None) -> str:
    """The SQL table name of a class of ``tier``; parts are ``master__part``."""
    if master is not None:
        name = f"{master}__{to_snake(class_name)}"
    else:
        name = TIER_PREFIX[tier] + to_snake(class_name)
    if len(name) > MAX_NAME:
        raise DeclarationError(f"Table name {name!r} of class {class_name} exceeds {MAX_NAME} characters")
    return name


def tier_of(name: str) -> str:
    """The tier of a table from its SQL name (parts are recognised by ``__`` inside)."""
    if name.startswith("~"):
        return "System"
    stripped = name.lstrip("_#")
    if "__" in stripped:
        return "Part"
    if name.startswith("__"):
        return "Computed"
    if name.startswith("_"):
        return "Imported"
    if name.startswith("#"):
        return "Lookup"
    return "Manual"


def class_name_of(name: str) -> str:
    """The class name a table would have (part tables: the part's own name)."""
    stripped = name.lstrip("_#")
    return to_camel(stripped.split("__")[-1])


def master_of(name: str) -> str | None:
    """For a part table's SQL name, its master's SQL name."""
    if tier_of(name) != "Part":
        return None
    prefix = name[: len(name) - len(name.lstrip("_#"))]
    return prefix + name.lstrip("_#").split("__")[0]
