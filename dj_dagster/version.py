"""The installed version of dj_dagster (``dj.__version__``)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dj_dagster")
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
