"""Common request flags (names are part of the CLI contract) and building a Profile from them."""

from __future__ import annotations

import argparse
import math
import os
from importlib.metadata import PackageNotFoundError, version

from servewise.perfdata import PERFDATA_VERSION, get_gpu
from servewise.perfdata.errors import DeviceError, UsageError
from servewise.profiles.schema import (
    AggPlan, DisaggPlan, Engine, Generator, Hardware, Model, Profile, Search, Sla, Workload,
)
from servewise.profiles.checkpoint import model_fields
from servewise.profiles.store import profile_from_dict, validated
from servewise.wizard.output import info

WEIGHTS_DTYPES = ["auto", "bf16", "fp16", "fp8", "int8", "int4-awq", "int4-gptq", "nvfp4", "mxfp4"]
KV_DTYPES = ["auto", "bf16", "fp16", "fp8"]
ENGINES = ["vllm", "sglang", "trtllm"]

# The flag that sets each profile field, so an error about a field built from flags names the flag.
FIELD_FLAGS = {
    "hardware.gpu": "--gpu", "hardware.gpus_per_node": "--gpus-per-node", "hardware.nodes": "--gpus",
    "hardware.prefill_gpu": "--prefill-gpu", "hardware.memory_bytes": "--use-free-memory",
    "model.id": "--model", "model.architecture": "--model", "model.revision": "--revision",
    "model.weights_dtype": "--weights-dtype", "model.kv_cache_dtype": "--kv-cache-dtype",
    "model.max_model_len": "--max-model-len",
    "workload.isl": "--isl", "workload.osl": "--osl", "workload.load.concurrency": "--concurrency",
    "workload.load.request_rate": "--request-rate", "workload.load": "--concurrency/--request-rate",
    "sla.ttft_ms": "--ttft-ms", "sla.tpot_ms": "--tpot-ms", "sla.percentile": "--sla-percentile",
    "engine.name": "--engine", "engine.version": "--engine-version", "search.gpu_hour_usd": "--gpu-hour-usd",
    "search.memory_fraction": "--gpu-memory-utilization", "search.modes": "--mode",
    "plan": "--tp/--pp/--dp/--replicas", "plan.mode": "--mode", "plan.replicas": "--replicas",
    **{f"plan.{role}.{key}": flag for role in ("worker", "prefill", "decode") for key, flag in (
        ("pp", "--pp"), ("dp", "--dp"), ("ep", "--ep"), ("max_num_seqs", "--max-num-seqs"),
        ("max_num_batched_tokens", "--max-num-batched-tokens"), ("gpu_memory_utilization", "--gpu-memory-utilization"))},
    "plan.worker.tp": "--tp", "plan.prefill.tp": "--prefill-tp", "plan.decode.tp": "--decode-tp",
    "plan.prefill.workers": "--prefill-workers", "plan.decode.workers": "--decode-workers",
    "plan.prefill.gpu": "--prefill-gpu",
}


# ``plan`` as a whole (its GPU count) is set by other flags when ``--mode disagg``.
DISAGG_PLAN_FLAGS = "--prefill-tp/--prefill-workers/--decode-tp/--decode-workers/--replicas"


def flag_for(field: str) -> str | None:
    """The flag that sets ``field`` (or its closest enclosing field), or None."""
    while field:
        if field in FIELD_FLAGS:
            return FIELD_FLAGS[field]
        field = field.rpartition(".")[0]
    return None


# Defaults when a flag is not given: a chat-like workload.
DEFAULT_ISL, DEFAULT_OSL, DEFAULT_CONCURRENCY = 2048, 256, 32


def servewise_version() -> str:
    try:
        return version("servewise")
    except PackageNotFoundError:  # running from a source tree without an install
        return "0.0.0+unknown"


def generator() -> Generator:
    return Generator(servewise=servewise_version(), perfdata=PERFDATA_VERSION)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {v}")
    return v


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return v


def _fraction(text: str) -> float:
    v = _positive_float(text)
    if v > 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return v


def _path(text: str) -> str:
    """A file or directory argument: an empty one (``--out "$UNSET"``) is refused, never read as absent."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


positive_int, positive_float, fraction, path = _positive_int, _positive_float, _fraction, _path


def add_model_hardware_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model and hardware")
    g.add_argument("--model", help="catalog / Hugging Face id, or a local checkpoint folder (./x, /x, ~/x)")
    g.add_argument("--revision", help="Hugging Face revision (branch, tag or commit) of a non-catalog --model")
    g.add_argument("--gpu", help="GPU catalog id, e.g. h100-sxm (see `servewise gpus`)")
    g.add_argument("--gpus", type=_positive_int, help="total GPUs (default: 1 GPU)")
    g.add_argument("--gpus-per-node", type=_positive_int, help="GPUs per node (default: min(--gpus, typical))")
    g.add_argument("--prefill-gpu", help="heterogeneous disaggregation: GPU catalog id of the prefill pool")
    g.add_argument("--weights-dtype", choices=WEIGHTS_DTYPES, default="auto")
    g.add_argument("--kv-cache-dtype", choices=KV_DTYPES, default="auto")
    g.add_argument("--max-model-len", type=_positive_int, help="longest request in tokens (default: the model's)")
    g = p.add_argument_group("engine")
    g.add_argument("--engine", choices=ENGINES, default="vllm")
    g.add_argument("--engine-version", help="engine version (default: servewise's pinned default)")
    g.add_argument("--gpu-memory-utilization", type=_fraction,
                   help="the engine's memory fraction in its own semantics (vLLM gpu_memory_utilization, "
                        "SGLang mem_fraction_static, TRT-LLM free_gpu_memory_fraction)")


def add_detect_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("GPU detection (NVML)")
    g.add_argument("--detect", action="store_true",
                   help="plan for this machine's GPUs, detected through NVML, instead of --gpu "
                        "(see `servewise detect`)")
    g.add_argument("--detect-group", type=_non_negative_int, default=0, metavar="N",
                   help="with --detect on a box of mixed GPUs: the group to plan for (default 0, the largest)")
    g.add_argument("--use-free-memory", action="store_true",
                   help="with --detect: plan on the memory still free when other processes hold some")


def add_workload_flags(p: argparse.ArgumentParser, searches_batch: bool = False) -> None:
    """``searches_batch``: the command (``plan``) sweeps the batch when no load is given, so the
    default load is --max-throughput rather than a concurrency."""
    g = p.add_argument_group("workload and SLA")
    g.add_argument("--isl", type=_positive_int, help=f"input tokens per request (default {DEFAULT_ISL})")
    g.add_argument("--osl", type=_positive_int, help=f"output tokens per request (default {DEFAULT_OSL})")
    load = g.add_mutually_exclusive_group()
    load.add_argument("--concurrency", type=_positive_int, help="requests in flight, in total" + (
        "" if searches_batch else f" (default {DEFAULT_CONCURRENCY})"))
    load.add_argument("--request-rate", type=_positive_float, help="requests per second (open loop)")
    load.add_argument("--max-throughput", action="store_true", help=(
        "the batch that maximises throughput under the SLA (the default)" if searches_batch else
        "offline: the largest batch memory allows"))
    g.add_argument("--ttft-ms", type=_positive_float, help="time-to-first-token target")
    g.add_argument("--tpot-ms", type=_positive_float, help="time-per-output-token target")
    g.add_argument("--sla-percentile", choices=["mean", "p50", "p90", "p99"], default="mean")
    g.add_argument("--gpu-hour-usd", type=_positive_float, help="price of one GPU hour, for $ per million tokens")


def add_parallel_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fixed configuration")
    g.add_argument("--mode", choices=["agg", "disagg"], default="agg")
    for name in ("tp", "pp", "dp", "ep"):
        g.add_argument(f"--{name}", type=_positive_int, default=1, help=f"{name.upper()} size (default 1)")
    g.add_argument("--replicas", type=_positive_int, help="aggregated replicas (default: fill the GPUs)")
    g.add_argument("--max-num-seqs", type=_positive_int, help=(
        "batch limit per worker (default: aggregated, the engine's own for this GPU; disaggregated, the load "
        "per decode worker and 16 for prefill; with --max-throughput, what the KV cache holds)"))
    g.add_argument("--max-num-batched-tokens", type=_positive_int, help=(
        "tokens per engine step (default: aggregated, the engine's own for this GPU; disaggregated 8192, "
        "and at least the ISL for prefill)"))
    for role in ("prefill", "decode"):
        g.add_argument(f"--{role}-tp", type=_positive_int, help=f"{role} worker TP")
        g.add_argument(f"--{role}-workers", type=_positive_int, default=1, help=f"{role} workers (default 1)")


def refuse_request_flags_with_profile(a: argparse.Namespace, allowed: tuple[str, ...] = ()) -> None:
    """``--profile P`` takes every input from P: a request flag given with it would be ignored, so
    it is refused instead (the profile is edited, or replayed with ``--set``). ``allowed`` flags are
    ones the command applies on top of a profile."""
    if not getattr(a, "profile", None):
        return
    probe = argparse.ArgumentParser(add_help=False)
    for add in (add_model_hardware_flags, add_detect_flags, add_workload_flags, add_parallel_flags):
        add(probe)
    given = [act.option_strings[0] for act in probe._actions
             if act.option_strings and act.option_strings[0] not in allowed and hasattr(a, act.dest)
             and getattr(a, act.dest) != act.default]
    if given:
        raise UsageError(f"{', '.join(given)}: cannot be combined with --profile, which gives every input; edit the "
                         "profile, or drop --profile and give the request as flags")


def hardware_from_args(a: argparse.Namespace) -> Hardware:
    if getattr(a, "detect", False):
        return hardware_from_detection_args(a)
    if getattr(a, "use_free_memory", False) or getattr(a, "detect_group", 0):
        raise UsageError("--use-free-memory and --detect-group need --detect")
    if not a.gpu:
        raise UsageError("--gpu is required (e.g. --gpu h100-sxm; list them with `servewise gpus`)")
    gpu = get_gpu(a.gpu)
    total = a.gpus or 1
    per_node = a.gpus_per_node or min(total, gpu.gpus_per_node)
    if total % per_node:
        raise UsageError(f"--gpus {total} is not a whole number of nodes of --gpus-per-node {per_node}")
    return validated(Hardware, dict(gpu=gpu.id, gpus_per_node=per_node, nodes=total // per_node,
                                    prefill_gpu=a.prefill_gpu), field="hardware")


def hardware_from_detection_args(a: argparse.Namespace) -> Hardware:
    """``--detect``: this machine's GPUs through NVML (detected once per command; warnings on stderr
    unless --json, whose success output keeps stderr empty)."""
    from servewise.profiles.detect import detect, hardware_from_detection

    if a.gpu or a.gpus_per_node or a.prefill_gpu:
        raise UsageError("--detect takes the GPUs from this machine: drop --gpu/--gpus-per-node/--prefill-gpu "
                         "(--gpus N plans on N of the detected GPUs)")
    det = getattr(a, "_detection", None)
    if det is None:
        det = detect()
        a._detection = det
        if det.source == "nvml" and not getattr(a, "json", False):
            from servewise.profiles.detected_hardware import FREE_MEMORY_HINT

            for w in det.warnings:
                if a.use_free_memory:  # asked already: say that it is done
                    w = w.replace(FREE_MEMORY_HINT, "(planning on what is left: --use-free-memory)")
                info(f"warning: {w}")
    if det.source == "none":
        raise DeviceError(f"--detect: GPU detection failed: {det.error}")
    return hardware_from_detection(det, a.detect_group, use_free_memory=a.use_free_memory, gpus=a.gpus)


def inputs_from_args(a: argparse.Namespace) -> dict:
    """Profile inputs (no plan) from flags, as a raw dict validated by the Profile model."""
    if not a.model:
        raise UsageError("--model is required (a catalog id such as meta-llama/Llama-3.1-8B-Instruct, "
                         "or a local checkpoint folder)")
    isl = a.isl or DEFAULT_ISL
    osl = a.osl or DEFAULT_OSL
    if a.max_model_len and not (a.isl or a.osl) and isl + osl > a.max_model_len:
        isl, osl = max(1, a.max_model_len * 7 // 8), max(1, a.max_model_len // 8)
    if a.request_rate:
        load = {"request_rate": a.request_rate}
    elif a.max_throughput:
        load = {"max_throughput": True}
    else:
        load = {"concurrency": a.concurrency or DEFAULT_CONCURRENCY}
    model_id = os.path.expanduser(a.model) if a.model.startswith("~") else a.model
    hardware = hardware_from_args(a)
    # Plain values are checked before the model is read (a local folder or the Hub).
    sla = validated(Sla, dict(ttft_ms=a.ttft_ms, tpot_ms=a.tpot_ms, percentile=a.sla_percentile), field="sla")
    workload = validated(Workload, dict(isl=isl, osl=osl, load=load), field="workload")
    engine = validated(Engine, dict(name=a.engine, version=a.engine_version), field="engine")
    modes = [a.search_mode] if getattr(a, "search_mode", None) else ["agg", "disagg"]
    search = validated(Search, dict(modes=modes, gpu_hour_usd=getattr(a, "gpu_hour_usd", None),
                                    memory_fraction=getattr(a, "gpu_memory_utilization", None)), field="search")
    validated(Model, dict(id=model_id, revision=getattr(a, "revision", None), max_model_len=a.max_model_len),
              field="model")
    model = validated(Model, dict(**model_fields(model_id, getattr(a, "revision", None)),
                                  weights_dtype=a.weights_dtype, kv_cache_dtype=a.kv_cache_dtype,
                                  max_model_len=a.max_model_len), field="model")
    return dict(schema_version=1, generator=generator(), hardware=hardware, model=model, workload=workload,
                sla=sla, engine=engine, search=search)


def profile_from_args(a: argparse.Namespace, with_plan: bool = False,
                      default_fraction: float | None = None) -> Profile:
    doc = inputs_from_args(a)
    if with_plan:
        doc["plan"] = fixed_plan_from_args(a, doc, default_fraction or 0.9)
    return profile_from_dict({k: (v.model_dump(mode="json") if hasattr(v, "model_dump") else v)
                              for k, v in doc.items()})


def fixed_plan_from_args(a: argparse.Namespace, doc: dict, default_fraction: float) -> AggPlan | DisaggPlan:
    hw: Hardware = doc["hardware"]
    wl: Workload = doc["workload"]
    frac = a.gpu_memory_utilization or default_fraction
    conc = wl.load.concurrency or 256
    tokens = a.max_num_batched_tokens or 8192
    if a.mode == "agg":
        per_worker = a.tp * a.pp * a.dp
        replicas = a.replicas or max(1, hw.total_gpus // per_worker)
        seqs = a.max_num_seqs or max(1, math.ceil(conc / replicas))
        w = dict(tp=a.tp, pp=a.pp, dp=a.dp, ep=a.ep, max_num_seqs=seqs, max_num_batched_tokens=tokens,
                 gpu_memory_utilization=frac)
        return validated(AggPlan, dict(replicas=replicas, worker=w), field="plan")
    ptp = a.prefill_tp or a.tp
    dtp = a.decode_tp or a.tp
    pre = dict(tp=ptp, pp=a.pp, workers=a.prefill_workers, max_num_seqs=a.max_num_seqs or 16,
               max_num_batched_tokens=max(tokens, wl.isl), gpu_memory_utilization=frac, gpu=hw.prefill_gpu)
    dec_seqs = a.max_num_seqs or max(1, math.ceil(conc / a.decode_workers))
    dec = dict(tp=dtp, pp=a.pp, workers=a.decode_workers, max_num_seqs=dec_seqs,
               max_num_batched_tokens=tokens, gpu_memory_utilization=frac)
    return validated(DisaggPlan, dict(replicas=a.replicas or 1, prefill=pre, decode=dec), field="plan")
