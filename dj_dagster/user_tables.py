"""The table tiers users subclass."""

from __future__ import annotations

from .autopopulate import AutoPopulate
from .table import Table


class UserTable(Table):
    """The base of the tiers users subclass (a table class bound by ``@schema``)."""


class Manual(UserTable):
    """Data entered from outside: by people, instruments or ingest scripts."""

    tier = "Manual"


class Lookup(UserTable):
    """Reference data declared with the pipeline; ``contents`` is inserted on declaration."""

    tier = "Lookup"
    contents: list = []


class Imported(AutoPopulate, UserTable):
    """Filled by ``make(key)`` from data outside the database (files, instruments)."""

    tier = "Imported"


class Computed(AutoPopulate, UserTable):
    """Filled by ``make(key)`` from other tables."""

    tier = "Computed"


class Part(UserTable):
    """Detail rows of a master, made in the same transaction as the master's row."""

    tier = "Part"
    master = None

    def delete(self, *args, **kwargs):
        kwargs.setdefault("part_integrity", "enforce")
        return super().delete(*args, **kwargs)


# datajoint 2.x's names for three tiers, by what puts the rows in the table: the same
# classes under a second name (aliases, not subclasses)
Entry = Manual
Ingest = Imported
Compute = Computed

TIERS = {"Manual": Manual, "Lookup": Lookup, "Imported": Imported, "Computed": Computed, "Part": Part}
