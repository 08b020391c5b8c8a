"""The servewise profile: a strict, versioned YAML document of inputs and the pinned plan."""

from servewise.profiles.errors import ProfileError
from servewise.profiles.store import (
    atomic_write_text, dump_profile, json_schema, json_schema_text, load_profile, parse_profile,
    profile_from_dict, profile_to_dict, save_profile,
)
from servewise.profiles.schema import (
    SCHEMA_VERSION, AggPlan, Calibration, CustomGpu, Deploy, DisaggPlan, Engine, Estimates, Generator,
    Hardware, Load, Model, Profile, Search, Sla, Worker, Workload,
)

__all__ = [
    "SCHEMA_VERSION", "AggPlan", "Calibration", "CustomGpu", "Deploy", "DisaggPlan", "Engine", "Estimates",
    "Generator", "Hardware", "Load", "Model", "Profile", "ProfileError", "Search", "Sla", "Worker", "Workload",
    "atomic_write_text", "dump_profile", "json_schema", "json_schema_text", "load_profile", "parse_profile",
    "profile_from_dict", "profile_to_dict", "save_profile",
]
