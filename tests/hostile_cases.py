"""Hostile inputs for every front door: profile files, profile fields, CLI flags, checkpoint folders
(config.json and safetensors) and NVML answers. Each case sets itself up in a scratch folder and
returns the command line to run; the test asserts the exit code, one line on stderr naming the
culprit, no traceback, and nothing written.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from . import fake_nvml as fake
from .checkpoint_fixtures import LLAMA32_1B
from .conftest import EXAMPLES

EXAMPLE = EXAMPLES / "llama-3.1-8b-1xl4-vllm.yaml"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
HF_TOKEN = "hf_" + "kX3pQ9" * 6
MB = 1024**2
Setup = Callable[[Path, Any], list[str]]   # (scratch folder, pytest monkeypatch) -> argv


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    setup: Setup
    code: int
    needle: str          # a piece of the one stderr line (the file, field or flag, and the problem)


def _doc() -> dict[str, Any]:
    return yaml.safe_load(EXAMPLE.read_text())


def _set(doc: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    node = doc
    *head, last = dotted.split(".")
    for key in head:
        node = node[key]
    node[last] = value
    return doc


# ----------------------------------------------------------------------------- profile files
def replay_text(text: str | bytes) -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        p = tmp / "p.yaml"
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        return ["--profile", str(p), "--out", str(tmp / "out")]
    return setup


def replay_field(dotted: str, value: Any) -> Setup:
    return replay_text(yaml.safe_dump(_set(_doc(), dotted, value), sort_keys=False, allow_unicode=True))


def replay_path(make: Callable[[Path], Path]) -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        return ["--profile", str(make(tmp)), "--out", str(tmp / "out")]
    return setup


def _sparse(tmp: Path, name: str, size: int) -> Path:
    """A file of ``size`` bytes that takes no disk space (a hole)."""
    p = tmp / name
    with open(p, "wb") as f:
        f.truncate(size)
    return p


def _dir(tmp: Path) -> Path:
    (tmp / "p.yaml").mkdir()
    return tmp / "p.yaml"


EXAMPLE_TEXT = EXAMPLE.read_text()
LAUGHS = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi"))

PROFILE_FILES = [
    Case("truncated-yaml", "profile file", replay_text(EXAMPLE_TEXT[:EXAMPLE_TEXT.index("workload:")] + "work"),
         2, "p.yaml"),
    Case("empty-file", "profile file", replay_text(""), 2, "the file is empty"),
    Case("comments-only", "profile file", replay_text("# nothing here\n\n"), 2, "the file is empty"),
    Case("top-level-list", "profile file", replay_text("- 1\n- 2\n"), 2, "must be a YAML mapping"),
    Case("two-documents", "profile file", replay_text(EXAMPLE_TEXT + "---\n" + EXAMPLE_TEXT), 2, "another document"),
    Case("python-object-tag", "profile file",
         replay_text("!!python/object/apply:os.system ['touch PWNED']\n"), 2, "could not determine a constructor"),
    Case("python-tag-in-field", "profile file",
         replay_text(EXAMPLE_TEXT.replace("isl: 2048", "isl: !!python/object/apply:os.getpid []")), 2,
         "line 24"),
    Case("custom-tag", "profile file", replay_text(EXAMPLE_TEXT.replace("gpu: l4", "gpu: !Ref l4")), 2, "'!Ref'"),
    Case("merge-key", "profile file", replay_text(EXAMPLE_TEXT.replace("hardware:\n", "hardware:\n  <<: {a: 1}\n")),
         2, "merge"),
    Case("billion-laughs", "profile file", replay_text(LAUGHS), 2, "aliases are not allowed"),
    Case("duplicate-key", "profile file", replay_text(EXAMPLE_TEXT + "schema_version: 1\n"), 2, "duplicate key"),
    Case("duplicate-nested-key", "profile file",
         replay_text(EXAMPLE_TEXT.replace("  isl: 2048\n", "  isl: 2048\n  isl: 9\n")), 2, "duplicate key 'isl'"),
    Case("deep-nesting", "profile file", replay_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n"), 2,
         "nested more than 32 levels"),
    Case("sequence-as-key", "profile file", replay_text(EXAMPLE_TEXT + "? [a, b]\n: 1\n"), 2,
         "keys must be plain values"),
    Case("tab-indentation", "profile file", replay_text(EXAMPLE_TEXT.replace("  gpu: l4", "\tgpu: l4")), 2,
         "'\\t'"),
    Case("nul-byte", "profile file", replay_text(EXAMPLE_TEXT.replace("gpu: l4", "gpu: l4\x00")), 2, "not valid YAML"),
    Case("latin-1-bytes", "profile file", replay_text(EXAMPLE_TEXT.replace("perfdata: 2026.11.0",
                                                                           "perfdata: caf\xe9").encode("latin-1")),
         2, "not UTF-8"),
    Case("100-mb-file", "profile file", replay_path(lambda t: _sparse(t, "p.yaml", 100 * MB)), 2,
         "larger than 128 KiB"),
    Case("directory-not-file", "profile file", replay_path(_dir), 2, "is a directory"),
    Case("missing-file", "profile file", replay_path(lambda t: t / "absent.yaml"), 2, "no such file"),
    Case("endless-device", "profile file", replay_path(lambda t: Path("/dev/zero")), 2, "larger than 128 KiB"),
]

# ----------------------------------------------------------------------------- profile fields
PROFILE_FIELDS = [
    Case("string-for-integer", "profile field", replay_field("workload.isl", "4000"), 2, "workload.isl"),
    Case("float-for-integer", "profile field", replay_field("workload.isl", 4000.5), 2, "workload.isl"),
    Case("bool-for-number", "profile field", replay_field("sla.ttft_ms", True), 2, "sla.ttft_ms"),
    Case("mapping-for-string", "profile field", replay_field("hardware.gpu", {"id": "l4"}), 2, "hardware.gpu"),
    Case("unknown-key", "profile field", replay_field("model.weigths_dtype", "bf16"), 2,
         "model.weigths_dtype: unknown key"),
    Case("future-schema", "profile field", replay_field("schema_version", 2), 2, "newer than this servewise"),
    Case("ancient-schema", "profile field", replay_field("schema_version", -1), 2, "too old to migrate"),
    Case("schema-as-string", "profile field", replay_field("schema_version", "1"), 2, "must be an integer"),
    Case("v0-gpus-not-a-number", "profile field", replay_text("profile_version: 0\ngpu: l4\ngpus: abc\n"), 2,
         "gpus: must be a positive integer"),
    Case("v0-gpus-a-list", "profile field", replay_text("profile_version: 0\ngpu: l4\ngpus: [1]\n"), 2,
         "gpus: must be a positive integer"),
    Case("v0-workload-a-number", "profile field", replay_text("profile_version: 0\nworkload: 5\nconcurrency: 3\n"),
         2, "workload: must be a mapping"),
    Case("nan", "profile field", replay_field("sla.ttft_ms", float("nan")), 2, "sla.ttft_ms: Input should be a finite"),
    Case("infinity", "profile field", replay_field("plan.worker.gpu_memory_utilization", float("inf")), 2,
         "plan.worker.gpu_memory_utilization"),
    Case("nan-estimate", "profile field", replay_field("plan.estimates", {"ttft_ms": float("nan")}), 2,
         "plan.estimates.ttft_ms"),
    Case("nan-in-free-form-mapping", "profile field", replay_field("model.architecture", {"rope": [1.0, float("nan")]}),
         2, "model.architecture.rope[1]: must be a finite number, not nan"),
    Case("negative", "profile field", replay_field("workload.osl", -5), 2, "workload.osl"),
    Case("negative-estimate", "profile field", replay_field("plan.estimates", {"tpot_ms": -1.0}), 2,
         "plan.estimates.tpot_ms"),
    Case("zero", "profile field", replay_field("hardware.gpus_per_node", 0), 2, "hardware.gpus_per_node"),
    Case("absurd", "profile field", replay_field("workload.isl", 10**30), 2, "workload.isl"),
    Case("unknown-gpu", "profile field", replay_field("hardware.gpu", "tpu-v5"), 3, "hardware.gpu: unknown GPU"),
    Case("unknown-model", "profile field", replay_field("model.id", "nobody/nothing"), 3, "model.id: unknown model"),
    Case("unknown-engine", "profile field", replay_field("engine.name", "tgi"), 2, "engine.name"),
    Case("unknown-engine-version", "profile field", replay_field("engine.version", "9.9.9"), 3,
         "engine.version: unknown vLLM version"),
    Case("shell-metacharacters-in-id", "profile field", replay_field("model.id", "x; rm -rf ~"), 2,
         "model.id: 'x; rm -rf ~' is neither a Hugging Face id"),
    Case("command-substitution-in-id", "profile field", replay_field("model.id", "org/$(touch PWNED)"), 2,
         "model.id"),
    Case("path-traversal-name", "profile field", replay_field("deploy.name", "../../etc"), 2,
         "deploy.name: '../../etc' is not a valid Kubernetes name"),
    Case("huge-namespace", "profile field", replay_field("deploy.namespace", "a" * 100_000), 2,
         "'... (100000 characters) is not a valid Kubernetes name"),
    Case("invalid-namespace", "profile field", replay_field("deploy.namespace", "Prod_NS"), 2, "deploy.namespace"),
    Case("control-characters", "profile field", replay_field("model.served_name", "a\x1b[2Jb"), 2,
         "model.served_name: must not contain control characters"),
    Case("bidi-override", "profile field", replay_field("model.served_name", "llama\u202eevil"), 2,
         "model.served_name: contains the invisible or control character U+202E"),
    Case("zero-width-space", "profile field", replay_field("deploy.extra_args.agg", ["--seed\u200b", "1"]), 2,
         "deploy.extra_args.agg[0]: contains the invisible"),
    Case("token-in-revision", "profile field", replay_field("model.revision", HF_TOKEN), 2,
         "model.revision: looks like a Hugging Face token"),
    Case("token-in-extra-args", "profile field", replay_field("deploy.extra_args.agg", ["--hf-token", HF_TOKEN]), 2,
         "deploy.extra_args.agg[1]: looks like a Hugging Face token"),
    Case("secret-flag-value", "profile field", replay_field("deploy.extra_args.agg", ["--api-key", "letmein"]), 2,
         "deploy.extra_args.agg[0]: --api-key takes a secret"),
    Case("credentials-in-url", "profile field",
         replay_field("calibration", {"source": "https://bob:hunter2@bench.example.com/run", "points": []}), 2,
         "calibration.source: looks like credentials in a URL"),
    Case("unpinned-image", "profile field", replay_field("engine.image", "vllm/vllm-openai:latest"), 2,
         "engine.image"),
    Case("image-injection", "profile field", replay_field("engine.image", "x:1;rm -rf /"), 2,
         "engine.image: must be a container image"),
]


# ----------------------------------------------------------------------------- CLI flags
def flags(*extra: str, cmd: str = "plan", model: str = MODEL, gpu: str | None = "h100-sxm") -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        hw = ["--gpu", gpu] if gpu else []
        out = ["--save", str(tmp / "p.yaml")] if cmd == "plan" else []
        return [cmd, "--model", model, *hw, *extra, *out]
    return setup


def render_with(*extra: str, out: Callable[[Path], Path] = lambda t: t / "out") -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        return ["render", "--profile", str(EXAMPLE), "--out", str(out(tmp)), *extra]
    return setup


def bench(*extra: str) -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        argv = ["bench", "--profile", str(EXAMPLE), "--url", "http://127.0.0.1:9", "--no-progress", *extra]
        return argv if "--results" in extra else [*argv, "--results", str(tmp / "r.json")]
    return setup


def _foreign_dir(tmp: Path) -> Path:
    (tmp / "home").mkdir()
    (tmp / "home" / "thesis.tex").write_text("years of work\n")
    return tmp / "home"


def _a_file(tmp: Path) -> Path:
    (tmp / "out").write_text("not a directory\n")
    return tmp / "out"


CLI_FLAGS = [
    Case("zero-gpus", "flag", flags("--gpus", "0"), 2, "--gpus: must be positive"),
    Case("absurd-gpus", "flag", flags("--gpus", "1000000000"), 2, "--gpus: Input should be less than or equal"),
    Case("nan-isl", "flag", flags("--isl", "nan"), 2, "--isl: expected a positive integer"),
    Case("inf-ttft", "flag", flags("--ttft-ms", "inf"), 2, "--ttft-ms: must be a positive finite number"),
    Case("negative-tpot", "flag", flags("--tpot-ms", "-1"), 2, "--tpot-ms"),
    Case("fraction-above-one", "flag", flags("--gpu-memory-utilization", "1.5"), 2, "--gpu-memory-utilization"),
    Case("absurd-concurrency", "flag", flags("--concurrency", "10000000"), 2, "--concurrency: Input should be less"),
    Case("absurd-max-model-len", "flag", flags("--max-model-len", "999999999999"), 2, "--max-model-len"),
    Case("tp-beyond-gpus", "flag", flags("--tp", "3", cmd="estimate"), 2, "--tp/--pp/--dp/--replicas: uses 3 GPUs"),
    Case("model-escape-sequence", "flag", flags(model="a\x1b]0;pwned\x07"), 2,
         "--model: must not contain control characters"),
    Case("model-shell-metacharacters", "flag", flags(model="x; rm -rf ~"), 2,
         "--model: 'x; rm -rf ~' is neither a Hugging Face id"),
    Case("model-path-traversal", "flag", flags(model="../../../../../../etc"), 3, "no config.json in the folder"),
    Case("model-unicode-id", "flag", flags(model="méta/ллама"), 2, "is neither a Hugging Face id"),
    Case("model-is-a-file", "flag", flags(model="/etc/hostname"), 3, "no such folder"),
    Case("unknown-gpu-flag", "flag", flags(gpu="tpu-v5"), 3, "unknown GPU 'tpu-v5'"),
    Case("unknown-engine-flag", "flag", flags("--engine", "tgi"), 2, "--engine: invalid choice"),
    Case("hostile-engine-version", "flag", flags("--engine-version", "1.0;id"), 2,
         "--engine-version: must be a version number"),
    Case("token-as-revision", "flag", flags("--revision", HF_TOKEN, model="org/some-model"), 2,
         "--revision: looks like a Hugging Face token"),
    Case("unknown-flag", "flag", flags("--tensor-parallel", "2"), 2, "unrecognized arguments"),
    Case("profile-with-request-flag", "flag",
         lambda t, _mp: ["plan", "--profile", str(EXAMPLE), "--gpu", "h100-sxm", "--save", str(t / "p.yaml")], 2,
         "--gpu: cannot be combined with --profile"),
    Case("save-into-directory", "flag", lambda t, _mp: ["plan", "--model", MODEL, "--gpu", "h100-sxm", "--save",
                                                         str(t)], 2, "is a directory"),
    Case("set-token", "flag", render_with("--set", f"model.revision={HF_TOKEN}"), 2,
         "--set: model.revision: looks like a Hugging Face token"),
    Case("set-unknown-field", "flag", render_with("--set", "model.nope=1"), 2, "no such field"),
    Case("set-python-tag", "flag", render_with("--set", "workload.isl=!!python/object/apply:os.getpid []"), 2,
         "--set: workload.isl"),
    Case("set-nan", "flag", render_with("--set", "sla.ttft_ms=.nan"), 2, "--set: sla.ttft_ms"),
    Case("set-newline", "flag", render_with("--set", 'model.served_name="a\\nb"'), 2, "model.served_name"),
    Case("unknown-target", "flag", render_with("--target", "shell,terraform"), 2, "--target: unknown target"),
    Case("out-is-a-file", "flag", render_with(out=_a_file), 2, "exists and is not a directory"),
    Case("empty-out", "flag", lambda t, _mp: ["--profile", str(EXAMPLE), "--out", ""], 2,
         "argument --out: expected a path, got an empty string"),
    Case("empty-save", "flag", lambda t, _mp: ["plan", "--profile", str(EXAMPLE), "--save", ""], 2,
         "argument --save: expected a path, got an empty string"),
    Case("save-without-replan", "flag",
         lambda t, _mp: ["--profile", str(EXAMPLE), "--out", str(t / "out"), "--save", str(t / "p2.yaml")], 2,
         "--save: needs --replan"),
    Case("force-over-foreign-directory", "flag", render_with("--force", out=_foreign_dir), 2,
         "refusing to replace it, even with --force"),
    Case("wizard-without-terminal", "flag", lambda t, _mp: ["wizard", "--save", str(t / "p.yaml")], 2,
         "the wizard needs a terminal"),
    Case("bench-url-not-http", "flag", bench("--url", "file:///etc/passwd"), 2, "--url: expected http(s)://"),
    Case("bench-url-escape-sequence", "flag", bench("--url", "http://x\x1b[2J/"), 2, "--url: expected http(s)://"),
    Case("bench-url-credentials", "flag", bench("--url", "http://bob:hunter2@127.0.0.1:9"), 2,
         "--url: holds credentials"),
    Case("bench-api-key-env-not-a-name", "flag", bench("--api-key-env", "A=B;rm -rf ~"), 2,
         "--api-key-env: 'A=B;rm -rf ~' is not an environment variable name"),
    Case("bench-model-token", "flag", bench("--model", HF_TOKEN), 2, "--model: give the served model name"),
    Case("bench-results-not-json", "flag", bench("--results", "/tmp"), 2, "--results: expected a .json path"),
    Case("bench-sweep-not-numbers", "flag", bench("--concurrency-sweep", "1,two"), 2, "--concurrency-sweep"),
]


# ----------------------------------------------------------------------------- checkpoint folders
def checkpoint(config: dict[str, Any] | None = None, *, raw: bytes | None = None,
               extra: Callable[[Path], None] | None = None, name: str = "ckpt") -> Setup:
    def setup(tmp: Path, _mp: Any) -> list[str]:
        folder = tmp / name
        folder.mkdir()
        if raw is not None:
            (folder / "config.json").write_bytes(raw)
        elif config is not None:
            (folder / "config.json").write_text(json.dumps({**LLAMA32_1B, **config}))
        if extra:
            extra(folder)
        return ["plan", "--model", str(folder), "--gpu", "h100-sxm", "--save", str(tmp / "p.yaml")]
    return setup


def _st_header(folder: Path, header: bytes) -> None:
    (folder / "model.safetensors").write_bytes(len(header).to_bytes(8, "little") + header)


CHECKPOINTS = [
    Case("config-empty", "checkpoint", checkpoint(raw=b""), 3, "config.json: not valid JSON"),
    Case("config-truncated", "checkpoint", checkpoint(raw=json.dumps(LLAMA32_1B).encode()[:50]), 3,
         "not valid JSON (line 1"),
    Case("config-array", "checkpoint", checkpoint(raw=b"[1, 2]"), 3, "expected a JSON object"),
    Case("config-deep", "checkpoint", checkpoint(raw=b'{"a": ' + b"[" * 200_000 + b"]" * 200_000 + b"}"), 3,
         "nested too deeply"),
    Case("config-100-mb", "checkpoint", checkpoint(extra=lambda f: _sparse(f, "config.json", 100 * MB)), 3,
         "larger than 16 MiB"),
    Case("config-is-directory", "checkpoint", checkpoint(extra=lambda f: (f / "config.json").mkdir()), 3,
         "no config.json in the folder"),
    Case("config-not-utf8", "checkpoint", checkpoint(raw=b'{"model_type": "\xff"}'), 3, "not valid JSON"),
    Case("config-nan", "checkpoint", checkpoint(raw=json.dumps({**LLAMA32_1B, "rope_theta": float("nan")}).encode()),
         2, "--model (model.architecture.rope_theta): must be a finite number, not nan"),
    Case("negative-hidden-size", "checkpoint", checkpoint({"hidden_size": -2048}), 3,
         "'hidden_size' = -2048 is out of range"),
    Case("zero-attention-heads", "checkpoint", checkpoint({"num_attention_heads": 0}), 3, "num_attention_heads"),
    Case("string-hidden-size", "checkpoint", checkpoint({"hidden_size": "2048"}), 3, "must be an integer"),
    Case("absurd-layers", "checkpoint", checkpoint({"num_hidden_layers": 10**12}), 3, "num_hidden_layers"),
    Case("shell-in-model-type", "checkpoint", checkpoint({"model_type": "$(touch PWNED)"}), 3,
         "is not a family servewise models"),
    Case("garbage-quantization", "checkpoint",
         checkpoint({"quantization_config": {"quant_method": "awq", "bits": "four"}}), 3, "'bits' must be an integer"),
    Case("safetensors-huge-header", "checkpoint",
         checkpoint({}, extra=lambda f: (f / "model.safetensors").write_bytes((10**15).to_bytes(8, "little"))), 3,
         "header length 1000000000000000 is out of range"),
    Case("safetensors-negative-shape", "checkpoint",
         checkpoint({}, extra=lambda f: _st_header(f, b'{"w": {"dtype": "BF16", "shape": [-5, 3], '
                                                      b'"data_offsets": [0, 0]}}')), 3, "invalid shape"),
    Case("safetensors-text-offsets", "checkpoint",
         checkpoint({}, extra=lambda f: _st_header(f, b'{"w": {"dtype": "BF16", "shape": [2], '
                                                      b'"data_offsets": ["0", "4"]}}')), 3, "data_offsets"),
    Case("folder-named-like-a-command", "checkpoint", checkpoint(name="m; rm -rf ~ $(id)"), 3,
         "no config.json in the folder"),
]


# ----------------------------------------------------------------------------- NVML answers
def nvml(make: Callable[[], Any], *extra: str) -> Setup:
    def setup(tmp: Path, mp: Any) -> list[str]:
        import servewise.profiles.detect as detect_module

        scenario = make()
        mp.setattr(detect_module, "_import_nvml", lambda: scenario)
        return ["plan", "--model", MODEL, "--detect", *extra, "--save", str(tmp / "p.yaml")]
    return setup


class _Exploding(fake.FakeNvml):
    def nvmlDeviceGetCount(self) -> int:
        raise RuntimeError("driver exploded")


class _Count(fake.FakeNvml):
    def __init__(self, count: Any) -> None:
        super().__init__([fake.FakeDevice("NVIDIA H100 80GB HBM3", 81559)])
        self.count = count

    def nvmlDeviceGetCount(self) -> Any:
        return self.count


def _all_lost() -> fake.FakeNvml:
    n = fake.lost_gpu()
    for d in n.devices:
        d.lost = True
    return n


def _no_memory_info() -> fake.FakeNvml:
    return fake.FakeNvml([fake.FakeDevice("NVIDIA L4", 23034, cc=(8, 9), unsupported={"nvmlDeviceGetMemoryInfo"})])


NVML = [
    Case("no-driver", "nvml", nvml(fake.no_driver), 4, "no NVIDIA driver found"),
    Case("no-permission", "nvml", nvml(lambda: fake.no_driver(fake.real.NVML_ERROR_NO_PERMISSION)), 4,
         "no permission"),
    Case("no-gpu", "nvml", nvml(fake.no_gpu), 4, "reports no GPU"),
    Case("every-gpu-lost", "nvml", nvml(_all_lost), 4, "GPU detection failed"),
    Case("binding-raises", "nvml", nvml(lambda: _Exploding([])), 4, "NVML query failed (RuntimeError"),
    Case("negative-count", "nvml", nvml(lambda: _Count(-3)), 4, "impossible GPU count (-3)"),
    Case("absurd-count", "nvml", nvml(lambda: _Count(10**6)), 4, "impossible GPU count (1000000)"),
    Case("count-not-a-number", "nvml", nvml(lambda: _Count("8")), 4, "impossible GPU count"),
    Case("group-out-of-range", "nvml", nvml(fake.h100_x8, "--detect-group", "5"), 2, "--detect-group 5"),
    Case("free-memory-unreported", "nvml", nvml(_no_memory_info, "--use-free-memory"), 4,
         "--use-free-memory: NVML did not report free memory"),
]

ALL = PROFILE_FILES + PROFILE_FIELDS + CLI_FLAGS + CHECKPOINTS + NVML


def listing(root: Path) -> set[str]:
    """Every path under ``root`` (what a case must leave unchanged)."""
    return {os.path.relpath(os.path.join(d, n), root) for d, dirs, files in os.walk(root) for n in dirs + files}
