"""Model architecture maths, memory and performance models, serving dynamics and the search.

Pure functions: nothing here prints, writes files or touches NVML.
"""

from servewise.estimator.api import estimate, plan
from servewise.estimator.results import Estimate, PlanResult

__all__ = ["Estimate", "PlanResult", "estimate", "plan"]
