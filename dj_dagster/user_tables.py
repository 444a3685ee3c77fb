"""The table tiers users subclass."""

from __future__ import annotations

from .autopopulate import AutoPopulate
from .table import Table


class Manual(Table):
    """Data entered from outside: by people, instruments or ingest scripts."""

    tier = "Manual"


class Lookup(Table):
    """Reference data declared with the pipeline; ``contents`` is inserted on declaration."""

    tier = "Lookup"
    contents: list = []


class Imported(AutoPopulate, Table):
    """Filled by ``make(key)`` from data outside the database (files, instruments)."""

    tier = "Imported"


class Computed(AutoPopulate, Table):
    """Filled by ``make(key)`` from other tables."""

    tier = "Computed"


class Part(Table):
    """Detail rows of a master, made in the same transaction as the master's row."""

    tier = "Part"
    master = None

    def delete(self, *args, **kwargs):
        kwargs.setdefault("part_integrity", "enforce")
        return super().delete(*args, **kwargs)


TIERS = {"Manual": Manual, "Lookup": Lookup, "Imported": Imported, "Computed": Computed, "Part": Part}
