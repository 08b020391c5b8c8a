"""Facts servewise plans with: GPU specs, the model catalog, engine facts and fitted
calibration coefficients, as data files with typed loaders. Nothing here computes."""

from servewise.perfdata.engines import (
    DynamoRelease, EngineSpec, EngineVersion, all_dynamo_releases, all_engines, get_dynamo, get_engine,
)
from servewise.perfdata.errors import DataError, ServewiseError, UnknownIdError, UsageError
from servewise.perfdata.gpus import GpuSpec, all_gpus, get_gpu
from servewise.perfdata.models import ModelEntry, all_models, find_model, get_model

PERFDATA_VERSION = "2026.11.0"

__all__ = [
    "PERFDATA_VERSION", "DataError", "DynamoRelease", "EngineSpec", "EngineVersion", "GpuSpec", "ModelEntry", "ServewiseError",
    "UnknownIdError", "UsageError", "all_dynamo_releases", "all_engines", "all_gpus", "all_models", "find_model", "get_engine",
    "get_dynamo", "get_gpu", "get_model",
]
