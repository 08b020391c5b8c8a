"""Hub resolution without a network: a fake client, a real huggingface_hub reading a prepared
offline cache, and an unreachable endpoint on loopback."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from servewise.perfdata.errors import DataError
from servewise.profiles import load_profile
from servewise.profiles import checkpoint as ck

from .checkpoint_fixtures import FIXTURES, QWEN3_06B
from .conftest import run_cli, run_cli_subprocess

SHA = "0123456789abcdef0123456789abcdef01234567"
WORKLOAD = ("--gpu", "h100-sxm", "--isl", "1000", "--osl", "100", "--concurrency", "2")


class FakeHub:
    """Serves a folder as if it were a Hub repo; records what was asked."""

    def __init__(self, folder: Path, params: dict[str, int] | None = None, error: Exception | None = None,
                 delay_s: float = 0.0):
        self.folder, self.params, self.error, self.delay_s = folder, params, error, delay_s
        self.calls: list[tuple[str, ...]] = []

    def model_info(self, repo_id, revision, timeout):
        self.calls.append(("info", repo_id, str(revision)))
        time.sleep(self.delay_s)
        if self.error:
            raise self.error
        return SHA, sorted(p.name for p in self.folder.iterdir()), self.params

    def download(self, repo_id, filename, revision, timeout, offline):
        self.calls.append(("download", filename, str(revision)))
        path = self.folder / filename
        if not path.is_file():
            raise type("EntryNotFoundError", (Exception,), {})(filename)
        return path


@pytest.fixture
def fake_hub(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def install(fake: FakeHub) -> FakeHub:
        monkeypatch.setattr(ck, "_client", fake)   # restored after the test
        return fake
    return install


def _named(name: str) -> Exception:
    return type(name, (Exception,), {})("x")


def test_hub_model_is_read_and_recorded(tmp_path, fake_hub):
    hub = fake_hub(FakeHub(FIXTURES / "qwen3-0.6b-fp8", params={"F8_E4M3": 440_000_000, "BF16": 156_000_000,
                                                                 "F32": 30_000}))
    profile = tmp_path / "p.yaml"
    r = run_cli("plan", "--model", "someorg/qwen3-fp8-finetune", "--revision", "v1", *WORKLOAD, "--save", str(profile))
    assert r.code == 0, r.err
    p = load_profile(profile)
    assert p.model.revision == SHA and p.model.config_hash.startswith("sha256:")
    assert p.model.architecture["safetensors"]["total_bytes"] == 440_000_000 + 2 * 156_000_000 + 4 * 30_000
    assert ("info", "someorg/qwen3-fp8-finetune", "v1") in hub.calls
    assert ("download", "config.json", SHA) in hub.calls                 # files read at the resolved commit
    assert not any(c[1] == "hf_quant_config.json" for c in hub.calls)    # not listed in the repo: not asked
    # Replay needs no Hub at all.
    fake_hub(FakeHub(FIXTURES / "qwen3-0.6b-fp8", error=_named("ConnectError")))
    assert run_cli("--profile", str(profile), "--out", str(tmp_path / "out")).code == 0


def test_modelopt_quant_config_is_fetched_when_listed(tmp_path, fake_hub):
    folder = tmp_path / "repo"
    shutil.copytree(FIXTURES / "qwen3-0.6b-fp8", folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("quantization_config")
    (folder / "config.json").write_text(json.dumps(cfg))
    (folder / "hf_quant_config.json").write_text(json.dumps(
        {"producer": {"name": "modelopt"}, "quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8",
                                                             "exclude_modules": ["lm_head"]}}))
    fake_hub(FakeHub(folder))
    d = json.loads(run_cli("models", "--describe", "nvidia/some-fp8", "--json").out)
    assert d["checkpoint"]["quantization_method"] == "modelopt_fp8" and d["checkpoint"]["kv_cache_dtype"] == "fp8"
    assert d["source"] == "hub" and d["revision"] == SHA


@pytest.mark.parametrize("error, message", [
    ("GatedRepoError", "HF_TOKEN"),
    ("RepositoryNotFoundError", "no model"),
    ("RevisionNotFoundError", "revision not found"),
    ("ConnectError", "HF_HUB_OFFLINE"),
])
def test_hub_errors_are_one_line_with_what_to_do(fake_hub, error, message):
    fake_hub(FakeHub(FIXTURES / "qwen3-0.6b-fp8", error=_named(error)))
    r = run_cli("models", "--describe", "someorg/some-model")
    assert r.code == 3 and r.err.count("\n") == 1 and message in r.err, r.err


def test_a_hanging_hub_gives_up_at_the_deadline(fake_hub):
    fake_hub(FakeHub(FIXTURES / "qwen3-0.6b-fp8", delay_s=5))
    t = time.monotonic()
    with pytest.raises(DataError, match="did not answer within 0.5 s"):
        ck.fetch_hub("someorg/slow", deadline_s=0.5)
    assert time.monotonic() - t < 2


def _write_cache(home: Path, repo: str, files: dict[str, str]) -> None:
    """The huggingface_hub cache layout: hub/models--org--name/{refs/main, snapshots/<sha>/...}."""
    root = home / "hub" / ("models--" + repo.replace("/", "--"))
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(SHA)
    snap = root / "snapshots" / SHA
    snap.mkdir(parents=True)
    for name, text in files.items():
        (snap / name).write_text(text)


def test_offline_mode_reads_the_hf_home_cache(tmp_path):
    """A real huggingface_hub, HF_HUB_OFFLINE=1 and HF_HOME pointing at a prepared cache."""
    _write_cache(tmp_path, "someorg/cached-model", {"config.json": json.dumps(QWEN3_06B)})
    env = {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hub")}
    r = run_cli_subprocess("models", "--describe", "someorg/cached-model", "--json", env=env)
    assert r.code == 0, r.err
    d = json.loads(r.out)
    assert d["source"] == "hub-cache" and d["revision"] == SHA and d["params"]["total"] > 5e8
    assert d["checkpoint"]["weight_bytes_source"] == "architecture"      # no safetensors metadata offline
    r = run_cli_subprocess("models", "--describe", "someorg/not-cached", env=env)
    assert r.code == 3 and "not in the local Hugging Face cache" in r.err and r.err.count("\n") == 1
    assert "set HF_HUB_OFFLINE=1" not in r.err    # it is set: say how to fill the cache instead


def test_unreachable_hub_exits_3_quickly(tmp_path):
    """Nothing cached and the endpoint refuses connections: one line and exit 3 well within 10 s."""
    env = {"HF_HOME": str(tmp_path), "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_ENDPOINT": "http://127.0.0.1:9",
           "HF_HUB_OFFLINE": "0"}
    t = time.monotonic()
    r = run_cli_subprocess("estimate", "--model", "someorg/unreachable-model", *WORKLOAD, "--json", env=env)
    elapsed = time.monotonic() - t
    assert r.code == 3 and r.out == "" and r.err.count("\n") == 1, r.err
    assert "HF_HUB_OFFLINE" in r.err and "local checkpoint folder" in r.err
    assert elapsed < 10


def test_ids_that_are_neither_paths_nor_repos_are_refused():
    r = run_cli("models", "--describe", "not-an-id")
    assert r.code == 3 and "neither a catalog id" in r.err
