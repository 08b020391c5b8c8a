"""The resolved inputs of one estimate / plan request, and input validation."""

from __future__ import annotations

from dataclasses import dataclass

from servewise.estimator.errors import ConfigError
from servewise.estimator.resolve import (
    ResolvedHardware, ResolvedModel, resolve_engine, resolve_hardware, resolve_model,
)
from servewise.perfdata.engines import EngineVersion
from servewise.perfdata.errors import error_field
from servewise.profiles.schema import Profile, Worker


@dataclass(frozen=True)
class Context:
    profile: Profile
    model: ResolvedModel
    hardware: ResolvedHardware
    engine_name: str
    engine: EngineVersion
    max_model_len: int

    @property
    def kv_dtype(self) -> str:
        return self.profile.model.kv_cache_dtype


def build_context(profile: Profile) -> Context:
    """Resolve catalog facts and check the request makes sense (ConfigError, exit 2)."""
    with error_field("model.architecture" if profile.model.architecture is not None else "model.id"):
        model = resolve_model(profile.model)
    with error_field("hardware.gpu"):
        hardware = resolve_hardware(profile.hardware)
    with error_field("engine.version"):
        engine = resolve_engine(profile.engine.name, profile.engine.version)
    if model.weights.name not in engine.weights_dtypes:
        raise ConfigError(f"{profile.engine.name} {engine.version} cannot serve {model.weights.name} weights",
                          field="model.weights_dtype")
    if profile.model.kv_cache_dtype not in engine.kv_cache_dtypes:
        raise ConfigError(f"{profile.engine.name} {engine.version} has no {profile.model.kv_cache_dtype} KV cache",
                          field="model.kv_cache_dtype")
    if (model.engine_quantization or model.quant.method == "online") and \
            engine.quantization.flag_value(None, model.weights.name) is None:
        raise ConfigError(f"{profile.engine.name} {engine.version} cannot quantize a {model.checkpoint_dtype} "
                          f"checkpoint to {model.weights.name} at load time; use a pre-quantized "
                          f"{model.weights.name} checkpoint of the model", field="model.weights_dtype")
    gpu = hardware.gpu
    if model.weights.compute_dtype == "fp4" and not gpu.fp4_supported and model.weights.name == "nvfp4":
        raise ConfigError(f"{gpu.name} has no FP4 tensor cores; NVFP4 checkpoints need Blackwell",
                          field="model.weights_dtype")
    if profile.model.kv_cache_dtype == "fp8" and float(gpu.compute_capability) < 8.9 and \
            profile.engine.name != "vllm":
        raise ConfigError(f"{gpu.name} (compute capability {gpu.compute_capability}) has no FP8 KV-cache support "
                          f"in {profile.engine.name}", field="model.kv_cache_dtype")
    limit = model.arch.max_position_embeddings
    mml = profile.model.max_model_len or limit
    if mml > limit:
        raise ConfigError(f"{mml} exceeds the model's {limit} positions (max_position_embeddings)",
                          field="model.max_model_len")
    wl = profile.workload
    if wl.isl + wl.osl > mml:
        raise ConfigError(f"isl + osl = {wl.isl + wl.osl} exceeds max_model_len {mml}", field="workload.isl")
    return Context(profile, model, hardware, profile.engine.name, engine, mml)


def check_parallelism(ctx: Context, w: Worker, role: str = "worker") -> None:
    """Refuse parallel sizes the engine cannot run, with the reason."""
    a = ctx.model.arch
    if a.num_attention_heads % w.tp:
        raise ConfigError(f"tensor parallel {w.tp} does not divide the {a.num_attention_heads} attention heads "
                          f"of {ctx.model.id}", field=f"plan.{role}.tp")
    if not a.mla and a.num_kv_heads % w.tp and w.tp % a.num_kv_heads:
        raise ConfigError(f"tensor parallel {w.tp} and the {a.num_kv_heads} KV heads do not divide one another",
                          field=f"plan.{role}.tp")
    if w.pp > a.num_layers:
        raise ConfigError(f"pipeline parallel {w.pp} exceeds the {a.num_layers} layers", field=f"plan.{role}.pp")
    if w.ep > 1:
        if not a.moe:
            raise ConfigError(f"{ctx.model.id} is not a mixture-of-experts model", field=f"plan.{role}.ep")
        if a.moe.num_experts % w.ep:
            raise ConfigError(f"expert parallel {w.ep} does not divide the {a.moe.num_experts} experts",
                              field=f"plan.{role}.ep")
        if w.ep > w.tp * w.dp:
            raise ConfigError(f"expert parallel {w.ep} exceeds tp x dp = {w.tp * w.dp}", field=f"plan.{role}.ep")
    if w.tp * w.pp * w.dp > ctx.hardware.total_gpus:
        raise ConfigError(f"one worker needs tp x pp x dp = {w.tp * w.pp * w.dp} GPUs; the hardware has "
                          f"{ctx.hardware.total_gpus}", field=f"plan.{role}.tp")
    if w.tp > ctx.hardware.gpus_per_node:
        raise ConfigError(f"tensor parallel {w.tp} spans nodes ({ctx.hardware.gpus_per_node} GPUs per node); "
                          "use pipeline parallel across nodes", field=f"plan.{role}.tp")
