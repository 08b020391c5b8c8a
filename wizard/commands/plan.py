"""``servewise plan``: search the configuration that best meets the SLA; optionally save a profile."""

from __future__ import annotations

import argparse

from servewise.estimator import plan
from servewise.estimator.results import PlanResult
from servewise.perfdata.errors import located
from servewise.profiles import load_profile, profile_from_dict, save_profile
from servewise.profiles.schema import Profile
from servewise.wizard import flags
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import info, print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="search the best configuration under the SLA",
                       description="Search aggregated and disaggregated configurations under the SLA.")
    p.add_argument("--profile", help="plan for this profile's inputs instead of flags")
    flags.add_model_hardware_flags(p)
    flags.add_detect_flags(p)
    flags.add_workload_flags(p)
    p.add_argument("--save", metavar="PATH", help="write a profile with the chosen plan pinned")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


def pinned(profile: Profile, result: PlanResult) -> Profile:
    """``profile`` with the chosen plan (and its estimates) pinned."""
    assert result.chosen is not None
    doc = profile.model_dump(mode="json")
    doc["plan"] = result.chosen.plan.model_dump(mode="json")
    doc["engine"]["version"] = result.engine_version  # pin what was planned with
    return profile_from_dict(doc, path="plan")


def run(a: argparse.Namespace) -> int:
    flags.refuse_request_flags_with_profile(a)
    with located(path=a.profile):
        profile = load_profile(a.profile) if a.profile else flags.profile_from_args(a)
        result = plan(profile)
    if a.json:
        print_json(result)
    else:
        print(format_plan(result))
    if not result.feasible:
        return ExitCode.INFEASIBLE
    if a.save:
        save_profile(pinned(profile, result), a.save)
        if not a.json:
            info(f"saved {a.save}")
    return ExitCode.OK


def format_plan(r: PlanResult) -> str:
    lines = [f"{r.model} on {r.gpus} x {r.gpu}, {r.engine} {r.engine_version}, max_model_len {r.max_model_len}"]
    if not r.feasible:
        lines.append(f"no configuration fits: {r.reason}")
        lines += [f"- {a.message}" for a in r.advice]
        return "\n".join(lines)
    c = r.chosen
    assert c is not None
    p = c.plan
    if p.mode == "agg":
        w = p.worker
        lines.append(f"chosen: aggregated, {p.replicas} replica(s) of TP{w.tp}"
                     f"{f' PP{w.pp}' if w.pp > 1 else ''}, max_num_seqs {w.max_num_seqs}, "
                     f"memory fraction {w.gpu_memory_utilization}")
    else:
        lines.append(f"chosen: disaggregated, {p.prefill.workers} x TP{p.prefill.tp} prefill, "
                     f"{p.decode.workers} x TP{p.decode.tp} decode")
    if r.chosen_estimate and r.chosen_estimate.memory:
        m = r.chosen_estimate.memory
        lines.append(f"per GPU: weights {m.weights_bytes / 1024**3:.2f} GiB, KV cache {m.kv_cache_bytes / 1024**3:.2f}"
                     f" GiB = {m.kv_cache_tokens:,} tokens")
    return "\n".join(lines)
