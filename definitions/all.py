"""Both example pipelines as one code location (the Docker deployment serves this)."""

import dagster as dg

from definitions import fractal, neuro

defs = dg.Definitions.merge(fractal.defs, neuro.defs)
