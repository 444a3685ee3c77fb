"""The Dagster face of a DataJoint pipeline: a translator from tables to asset specs,
partitions keyed by primary key, a sensor, an IO manager, resources and checks."""

from .definitions import build_definitions
from .plan import PipelinePlan, make_plan
from .resources import DataJointIOManager, DataJointResource
from .translator import DataJointTranslator

__all__ = ["build_definitions", "DataJointTranslator", "DataJointIOManager", "DataJointResource",
           "PipelinePlan", "make_plan"]
