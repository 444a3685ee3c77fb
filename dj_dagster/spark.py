"""The ``SparkAdapter`` protocol: codecs whose decoded values can be turned into
Spark-native shapes say so by defining ``to_spark``.

A codec opts in by defining ``to_spark(decoded, *, key=None)`` returning only
primitives (bool, int, float, str, bytes, None, date, datetime), lists and dicts with
string keys of such values (numpy arrays as lists). Consumers test
``isinstance(codec, dj.SparkAdapter)`` per column. The built-in ``<blob>`` and ``<hash>``
codecs do not opt in: their values have no fixed shape.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["SparkAdapter"]


@runtime_checkable
class SparkAdapter(Protocol):
    """A codec that adapts its decoded values to Spark-native types (see the module)."""

    def to_spark(self, decoded: Any, *, key: dict | None = None) -> Any:
        """``decoded`` (what the codec's ``decode`` returned) as Spark-native values."""
        ...
