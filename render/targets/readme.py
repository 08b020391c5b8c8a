"""``README.md`` of an artifact directory: what was chosen and why, the estimates, how to run it."""

from __future__ import annotations

from servewise.profiles.schema import AggPlan, Worker
from servewise.render.context import RenderContext
from servewise.render.templates_env import render_template
from servewise.render.yamlout import comment_safe


def _md(text: str) -> str:
    return comment_safe(text).replace("|", "\\|").replace("`", "'")


def _worker(w: Worker) -> str:
    par = f"TP{w.tp}" + (f" PP{w.pp}" if w.pp > 1 else "") + (f" DP{w.dp}" if w.dp > 1 else "") + \
        (f" EP{w.ep}" if w.ep > 1 else "")
    return (f"{par} x {w.workers} worker(s); max_num_seqs {w.max_num_seqs}, max_num_batched_tokens "
            f"{w.max_num_batched_tokens}, memory fraction {w.gpu_memory_utilization}")


def _band(est: dict, key: str, unit: str, fmt: str = "{:.1f}") -> str | None:
    v = est.get(key)
    if v is None:
        return None
    band = est.get(f"{key}_range")
    b = f" (range {fmt.format(band[0])}-{fmt.format(band[1])})" if band else ""
    return f"{key.replace('_', ' ')}: {fmt.format(v)} {unit}{b}"


def render_readme(rc: RenderContext, files: list[str]) -> dict[str, str]:
    p = rc.profile
    plan = rc.plan
    rows = [("replicas", str(plan.replicas))]
    if isinstance(plan, AggPlan):
        rows.append(("worker", _worker(plan.worker)))
    else:
        rows += [("prefill", _worker(plan.prefill)), ("decode", _worker(plan.decode))]
    est = plan.estimates.model_dump() if plan.estimates else {}
    lines = [s for s in (
        _band(est, "ttft_ms", "ms"), _band(est, "tpot_ms", "ms", "{:.2f}"),
        _band(est, "output_tokens_per_s", "tokens/s", "{:.0f}"),
        _band(est, "output_tokens_per_s_per_gpu", "tokens/s/GPU", "{:.0f}"),
        _band(est, "tokens_per_s_per_user", "tokens/s/user", "{:.1f}"),
    ) if s]
    if est.get("provenance"):
        lines.append(f"provenance: {_md(est['provenance'])}")
    sections = []
    if "shell/serve.sh" in files:
        sections.append(("Shell (on the GPU host)",
                         "```bash\nexport HF_TOKEN=...        # gated models only\n"
                         "REPLICA=0 bash shell/serve.sh  # one replica per invocation\n```"))
    if "compose/docker-compose.yaml" in files:
        sections.append(("Docker Compose", "```bash\nexport HF_TOKEN=...\n"
                                           "docker compose -f compose/docker-compose.yaml up -d\n```"))
    hw = p.hardware
    text = render_template(
        "README.md.j2", title=_md(f"{rc.name}: {rc.model_ref}"), generator=p.generator.servewise,
        model=_md(rc.model_ref), weights=p.model.weights_dtype, kv=p.model.kv_cache_dtype,
        max_model_len=p.model.max_model_len or "model maximum",
        hardware=f"{hw.total_gpus} x {hw.gpu_id} ({hw.nodes} node(s) of {hw.gpus_per_node})",
        engine=f"{p.engine.name} {rc.engine.version}", image=_md(p.engine.image or rc.engine.image),
        mode="aggregated" if plan.mode == "agg" else "disaggregated prefill/decode",
        plan_rows=rows, estimates=lines, run_sections=sections, secret=p.deploy.hf_token_secret)
    return {"README.md": text}
