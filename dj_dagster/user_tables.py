"""The table tiers users subclass."""

from __future__ import annotations

import re

from .autopopulate import AutoPopulate
from .table import Table


# a table name without its tier prefix: lower-case words joined by single underscores
_NAME = r"[a-z][a-z0-9]*(?:_[a-z][a-z0-9]*)*"


class UserTable(Table):
    """The base of the tiers users subclass (a table class bound by ``@schema``)."""


class Manual(UserTable):
    """Data entered from outside: by people, instruments or ingest scripts."""

    tier = "Manual"
    tier_regexp = r"(?P<manual>" + _NAME + ")"


class Lookup(UserTable):
    """Reference data declared with the pipeline; ``contents`` is inserted on declaration."""

    tier = "Lookup"
    tier_regexp = r"(?P<lookup>#" + _NAME + ")"
    contents: list = []


class Imported(AutoPopulate, UserTable):
    """Filled by ``make(key)`` from data outside the database (files, instruments)."""

    tier = "Imported"
    tier_regexp = r"(?P<imported>_" + _NAME + ")"


class Computed(AutoPopulate, UserTable):
    """Filled by ``make(key)`` from other tables."""

    tier = "Computed"
    tier_regexp = r"(?P<computed>__" + _NAME + ")"


class Part(UserTable):
    """Detail rows of a master, made in the same transaction as the master's row."""

    tier = "Part"
    tier_regexp = (r"(?P<master>" + "|".join(t.tier_regexp for t in (Manual, Lookup, Imported, Computed))
                   + r")__(?P<part>" + _NAME + ")")
    master = None

    def delete(self, *args, **kwargs):
        kwargs.setdefault("part_integrity", "enforce")
        return super().delete(*args, **kwargs)


# datajoint 2.x's names for three tiers, by what puts the rows in the table: the same
# classes under a second name (aliases, not subclasses)
Entry = Manual
Ingest = Imported
Compute = Computed

def is_tier(table_name: str, tier) -> bool:
    """Whether the SQL name ``table_name`` is a name of ``tier`` (a tier class)."""
    return re.fullmatch(tier.tier_regexp, table_name) is not None


TIERS = {"Manual": Manual, "Lookup": Lookup, "Imported": Imported, "Computed": Computed, "Part": Part}
