"""Headings: the ordered attributes of a table or query result, with their declared
types, key membership and lineage (the table.attribute where each value originates)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Iterable, Iterator

from .types import TypeSpec


@dataclass(frozen=True)
class Attribute:
    name: str
    type: TypeSpec
    in_key: bool = False
    nullable: bool = False
    default: str | None = None  # SQL default text as declared; None: no default
    comment: str = ""
    lineage: str | None = None  # "schema.table.attr" of origin; None for computed values
    computed: bool = False  # defined by an expression in a projection/aggregation
    hidden: bool = False  # leading underscore: not fetched unless asked

    @property
    def codec(self) -> str | None:
        return self.type.name if self.type.is_codec else None

    @property
    def original_type(self) -> str:
        """The type as the definition wrote it (``uuid``, ``enum('a', 'b')``), datajoint's name."""
        return self.type.text

    @property
    def numeric(self) -> bool:
        """Whether values are numbers (integer, float or decimal types, native ones too)."""
        return not self.type.is_codec and self.type.numeric

    @property
    def is_blob(self) -> bool:
        """Whether the column holds binary data (``bytes``, native blobs, and codecs such
        as ``<blob>`` and ``<attach>`` that store their values in one)."""
        from .codecs import stored_spec

        return stored_spec(self.type).name == "bytes"

    @property
    def sql_comment(self) -> str:
        """Column comment as stored in the database: ``:type:comment``."""
        return f":{self.type.text}:{self.comment}"

    def definition_line(self) -> str:
        default = ""
        if self.nullable and self.default is None:
            default = " = null"
        elif self.default is not None:
            default = f" = {self.default}"
        comment = f"  # {self.comment}" if self.comment else ""
        return f"{self.name}{default} : {self.type.text}{comment}"

    def renamed(self, name: str) -> "Attribute":
        return replace(self, name=name)


@dataclass
class Heading:
    attributes: dict[str, Attribute] = field(default_factory=dict)

    @classmethod
    def of(cls, attrs: Iterable[Attribute]) -> "Heading":
        return cls({a.name: a for a in attrs})

    def __iter__(self) -> Iterator[Attribute]:
        return iter(self.attributes.values())

    def __contains__(self, name: object) -> bool:
        return name in self.attributes

    def __getitem__(self, name: str) -> Attribute:
        return self.attributes[name]

    def __len__(self) -> int:
        return len(self.attributes)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self if not a.hidden]

    @property
    def all_names(self) -> list[str]:
        return list(self.attributes)

    @property
    def primary_key(self) -> list[str]:
        return [a.name for a in self if a.in_key]

    @property
    def secondary_attributes(self) -> list[str]:
        return [a.name for a in self if not a.in_key and not a.hidden]

    @property
    def blobs(self) -> list[str]:
        return [a.name for a in self if a.codec]

    def memo(self, key, build):
        """``build()``, made once per heading (a heading is not changed once made): what
        writing or reading a row derives from the attributes, kept for the next row."""
        memos = self.__dict__.setdefault("_memos", {})
        if key not in memos:
            memos[key] = build()
        return memos[key]

    @cached_property
    def codecs(self) -> frozenset[str]:
        """Names of the attributes whose values a codec decodes (checked on every fetch)."""
        return frozenset(a.name for a in self if a.codec)

    @property
    def as_dtype(self):
        """The numpy record dtype of the visible attributes, as fetched by ``to_arrays()``:
        int64 for integers (uint64 for uint64) unless nullable, float64 for floats, Python
        objects otherwise."""
        import numpy as np

        from .fetch import numpy_dtype

        return np.dtype([(a.name, numpy_dtype(a) or object) for a in self if not a.hidden])

    def __repr__(self) -> str:
        lines = [a.definition_line() for a in self if a.in_key]
        lines.append("---")
        lines += [a.definition_line() for a in self if not a.in_key]
        return "\n".join(lines)
