"""``README.md`` of an artifact directory: what was chosen and why, the estimates, how to run it."""

from __future__ import annotations

from servewise.profiles.schema import AggPlan, Worker
from servewise.render.context import RenderContext
from servewise.render.engines import dynamo as dyn
from servewise.render.targets import helm, kube
from servewise.render.targets.docker_run import one_liner
from servewise.render.templates_env import render_template
from servewise.render.topology import nodes_used
from servewise.render.yamlout import comment_safe


def _md(text: str) -> str:
    return comment_safe(text).replace("|", "\\|").replace("`", "'")


def _worker(rc: RenderContext, w: Worker) -> str:
    par = f"TP{w.tp}" + (f" PP{w.pp}" if w.pp > 1 else "") + (f" DP{w.dp}" if w.dp > 1 else "") + \
        (f" EP{w.ep}" if w.ep > 1 else "") + (" (attention DP)" if w.attention_dp else "")
    given = rc.memory_fraction(w)
    note = "" if given == w.gpu_memory_utilization else \
        f" of the free memory planned on (given to the engine as {given} of the whole GPU)"
    return (f"{par} = {w.gpus_per_worker} GPU(s) per worker x {w.workers} worker(s); max_num_seqs "
            f"{w.max_num_seqs}, max_num_batched_tokens {w.max_num_batched_tokens}, memory fraction "
            f"{w.gpu_memory_utilization}{note}")


def _band(est: dict, key: str, unit: str, fmt: str = "{:.1f}") -> str | None:
    v = est.get(key)
    if v is None:
        return None
    band = est.get(f"{key}_range")
    b = f" (band {fmt.format(band[0])} to {fmt.format(band[1])})" if band else ""
    return f"{key.replace('_', ' ')}: {fmt.format(v)} {unit}{b}"


def _why(rc: RenderContext) -> list[str]:
    p = rc.profile
    out = [f"workload: {p.workload.isl} input + {p.workload.osl} output tokens per request, " +
           (f"concurrency {p.workload.load.concurrency}" if p.workload.load.concurrency else
            f"{p.workload.load.request_rate} requests/s" if p.workload.load.request_rate else "maximum throughput")]
    sla = [f"TTFT <= {p.sla.ttft_ms:g} ms" if p.sla.ttft_ms else "", f"TPOT <= {p.sla.tpot_ms:g} ms"
           if p.sla.tpot_ms else ""]
    if any(sla):
        out.append(f"SLA ({p.sla.percentile}): " + ", ".join(s for s in sla if s))
    out.append(f"objective: {p.search.objective.replace('_', ' ')}")
    return out


def _sections(rc: RenderContext, files: list[str]) -> list[tuple[str, str]]:
    d = rc.profile.deploy
    s: list[tuple[str, str]] = []
    shell = [f for f in files if f.startswith("shell/") and f.endswith(".sh") and f != "shell/docker-run.sh"]
    if shell:
        lines = ["export HF_TOKEN=...        # gated models only"]
        if rc.runtime == "dynamo":
            lines.append("docker compose -f compose/" + ("docker-compose.yaml" if nodes_used(list(rc.instances)) == 1
                                                      else "docker-compose.node0.yaml") + " up -d etcd nats")
        for f in shell:
            role = f.rsplit("/", 1)[1]
            if "_node" in role and not role.endswith("_node0.sh"):
                lines.append(f"HEAD_ADDRESS=<node 0 address> INSTANCE=0 bash {f}   # on the next node")
            elif "router" in role or "frontend" in role:
                lines.append(f"bash {f}   # the OpenAI-compatible endpoint, port {d.service_port}")
            else:
                lines.append(f"INSTANCE=0 bash {f}   # one instance per invocation (INSTANCE=0,1,...)")
        s.append(("Shell (on the GPU hosts)", "```bash\n" + "\n".join(lines) + "\n```\nEach script starts one "
                  "process in the foreground; run each in its own terminal or service unit. MODEL overrides the "
                  "model path."))
    if "shell/docker-run.sh" in files:
        s.append(("One container (docker run)", "```bash\n" + one_liner(rc) + "\n```\n`shell/docker-run.sh` "
                  "does the same for any INSTANCE."))
    compose = [f for f in files if f.startswith("compose/") and "docker-compose" in f]
    if compose:
        body = "\n".join(f"docker compose -f {f} up -d" for f in compose)
        extra = "" if len(compose) == 1 else ("\nRun each file on its node, with NODE<k>_ADDRESS set for the nodes "
                                              "it names.")
        s.append(("Docker Compose", f"```bash\nexport HF_TOKEN=...\n{body}\n```{extra}"))
    helm_files = [f for f in files if f.startswith("helm/") and f.endswith("-values.yaml")]
    if helm_files or "helm/engine-configmap.yaml" in files:
        body = []
        if "helm/engine-configmap.yaml" in files:
            body.append(f"kubectl apply -n {d.namespace} -f helm/engine-configmap.yaml")
        if "helm/vllm-stack-values.yaml" in files:
            body += ["helm repo add vllm https://vllm-project.github.io/production-stack",
                     f"helm install {rc.name} vllm/vllm-stack -n {d.namespace} -f helm/vllm-stack-values.yaml"]
        if "helm/llm-d-modelservice-values.yaml" in files:
            body += ["helm repo add llm-d-modelservice https://llm-d-incubation.github.io/llm-d-modelservice/",
                     f"helm install {rc.name} llm-d-modelservice/llm-d-modelservice -n {d.namespace} "
                     "-f helm/llm-d-modelservice-values.yaml"]
        charts = [f for f in ("helm/vllm-stack-values.yaml", "helm/llm-d-modelservice-values.yaml") if f in files]
        s.append(("Helm", "```bash\n" + "\n".join(body) + "\n```" +
                  ("\nUse one of the charts, not both." if len(charts) > 1 else "")))
    if any(f.startswith("k8s/") for f in files):
        body = [f"kubectl create namespace {d.namespace}",
                f"kubectl create secret generic {d.hf_token_secret} -n {d.namespace} "
                f"--from-literal={kube.HF_TOKEN_KEY}=\"$HF_TOKEN\"",
                f"kubectl apply -n {d.namespace} -f k8s/"]
        notes = []
        if rc.runtime == "dynamo":
            notes.append(f"Needs the Dynamo {dyn.VERSION} platform (operator) in the cluster.")
        if any(i.multinode for i in rc.instances) and rc.runtime == "native":
            notes.append("Needs the LeaderWorkerSet controller (kubernetes-sigs/lws).")
        if rc.local_model_dir:
            notes.append(f"Copy the local model folder into the PVC {d.model_cache_pvc} as "
                         f"`{_md(kube.local_basename(rc))}/` first.")
        s.append(("Kubernetes", "```bash\n" + "\n".join(body) + "\n```\n" + " ".join(notes)))
    return s


def render_readme(rc: RenderContext, files: list[str]) -> dict[str, str]:
    p = rc.profile
    plan = rc.plan
    rows = [("replicas", str(plan.replicas))]
    if isinstance(plan, AggPlan):
        rows.append(("worker", _worker(rc, plan.worker)))
    else:
        rows += [("prefill", _worker(rc, plan.prefill)), ("decode", _worker(rc, plan.decode))]
    est = plan.estimates.model_dump() if plan.estimates else {}
    lines = [s for s in (
        _band(est, "ttft_ms", "ms"), _band(est, "tpot_ms", "ms", "{:.2f}"),
        _band(est, "output_tokens_per_s", "tokens/s", "{:.0f}"),
        _band(est, "output_tokens_per_s_per_gpu", "tokens/s/GPU", "{:.0f}"),
        _band(est, "tokens_per_s_per_user", "tokens/s/user", "{:.1f}"),
    ) if s]
    if est.get("provenance"):
        lines.append(f"provenance: {_md(est['provenance'])}")
    hw = p.hardware
    runtime = f" on Dynamo {dyn.VERSION}" if rc.runtime == "dynamo" else ""
    pinned = dyn.pinned_version(rc.engine_name) if rc.runtime == "dynamo" else rc.engine.version
    if pinned != rc.engine.version:
        runtime += (f" (the runtime image ships {rc.engine_name} {pinned}; its worker flags are Dynamo's own and the "
                    f"options YAML is checked against the {rc.engine.version} keys)")
    text = render_template(
        "README.md.j2", title=_md(f"{rc.name}: {rc.model_id}"), generator=p.generator.servewise,
        model=_md(rc.model_id), weights=p.model.weights_dtype, kv=p.model.kv_cache_dtype,
        max_model_len=p.model.max_model_len or "model maximum",
        hardware=f"{hw.total_gpus} x {hw.gpu_id} ({hw.nodes} node(s) of {hw.gpus_per_node})" + (
            f"; the prefill pool on {hw.prefill_gpu}: place its instances on {hw.prefill_gpu} hosts (the "
            "scripts number GPUs per host; in Kubernetes add a node selector for that GPU)"
            if hw.prefill_gpu and plan.mode == "disagg" else ""),
        engine=f"{rc.label}{runtime}", image=_md(rc.image),
        mode="aggregated" if plan.mode == "agg" else "disaggregated prefill/decode",
        plan_rows=rows, why=_why(rc), estimates=lines, run_sections=_sections(rc, files),
        skipped=[_md(x) for x in helm.skipped(rc)] if "helm" in p.deploy.targets else [],
        secret=p.deploy.hf_token_secret)
    return {"README.md": text}
