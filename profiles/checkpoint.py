"""Reading a checkpoint's facts: a local folder, or the Hugging Face Hub (configs and safetensors
metadata only; never weights).

This is the one module that touches checkpoints. It lives in ``profiles`` because what it reads
is recorded into the profile (``model.revision``, ``model.config_hash``, ``model.architecture``)
so the estimator stays pure (it never reads the network or writes a cache) and a replay never
needs the network. The Hub is reached through ``huggingface_hub``, which honours ``HF_TOKEN``,
``HF_HOME`` / ``HF_HUB_CACHE``, ``HF_HUB_OFFLINE`` and ``HF_ENDPOINT``; every call runs under one
short deadline, so an unreachable Hub fails in seconds instead of retrying.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from servewise.perfdata.errors import DataError, UsageError, closest
from servewise.perfdata.models import all_models, find_model, trim_config
from servewise.profiles.safetensors_meta import SafetensorsSummary, summarize_local, summarize_params
from servewise.profiles.schema import HF_ID, is_local_model_path

DEADLINE_S = float(os.environ.get("SERVEWISE_HUB_TIMEOUT_S", "8"))
_CONFIG = "config.json"
_HF_QUANT = "hf_quant_config.json"
HINT = ("set HF_TOKEN for a gated or private repo, pass a local checkpoint folder (./path), "
        "or set HF_HUB_OFFLINE=1 to use the local Hugging Face cache")
OFFLINE_HINT = ("run once with network access (unset HF_HUB_OFFLINE) to cache its config, or pass a local "
                "checkpoint folder (./path)")
T = TypeVar("T")


@dataclass(frozen=True)
class CheckpointFacts:
    model_id: str
    source: str                          # local | hub | hub-cache
    config: dict[str, Any]
    hf_quant_config: dict[str, Any] | None
    safetensors: SafetensorsSummary | None
    revision: str | None                 # Hub commit the files were read at
    config_hash: str                     # sha256 of config.json as stored

    def architecture_record(self) -> dict[str, Any]:
        """What the profile keeps (``model.architecture``): the architecture fields of config.json
        verbatim, plus ``hf_quant_config`` and ``safetensors`` when the checkpoint has them."""
        rec = trim_config(self.config)
        if self.hf_quant_config:
            rec["hf_quant_config"] = self.hf_quant_config
        if self.safetensors:
            rec["safetensors"] = self.safetensors.record()
        return rec


is_local_path = is_local_model_path


MAX_CONFIG_BYTES = 16 * 1024**2  # config.json files are kilobytes; tokenizer-sized ones stay far below


def _read_bytes(path: Path, what: str) -> bytes:
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise DataError(f"{path}: larger than {MAX_CONFIG_BYTES // 1024**2} MiB; not a {what}")
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read {what} ({e.strerror or e})") from None


def _read_json(path: Path, what: str) -> dict[str, Any]:
    return _parse_json(_read_bytes(path, what), f"{path}")


def _parse_json(raw: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        pos = f" (line {e.lineno}, column {e.colno})" if isinstance(e, json.JSONDecodeError) else ""
        raise DataError(f"{where}: not valid JSON{pos}") from None
    except RecursionError:
        raise DataError(f"{where}: JSON nested too deeply to be a model configuration") from None
    if not isinstance(doc, dict):
        raise DataError(f"{where}: expected a JSON object")
    return doc


def _hash(raw: bytes) -> str:
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def local_config_change(model_id: str, config_hash: str | None) -> str | None:
    """Why the local checkpoint folder ``model_id`` no longer has the config.json a profile recorded
    (``model.config_hash``); ``None`` when it matches, nothing was recorded, the model is not a folder,
    or the folder is not on this machine (replay needs neither the folder nor the network)."""
    if not config_hash or not is_local_model_path(model_id):
        return None
    cfg_path = Path(os.path.expanduser(model_id)) / _CONFIG
    try:
        raw = _read_bytes(cfg_path, _CONFIG) if cfg_path.is_file() else None
    except DataError:
        return None
    if raw is None or _hash(raw) == config_hash:
        return None
    return f"{cfg_path} is not the config.json the profile was planned with (its sha256 differs from model.config_hash)"


def read_local(path_text: str) -> CheckpointFacts:
    """A local checkpoint folder: config.json (required), hf_quant_config.json, safetensors headers."""
    path = Path(os.path.expanduser(path_text))
    if not path.is_dir():
        raise DataError(f"--model {path_text}: no such folder (a local checkpoint is a folder with config.json)")
    cfg_path = path / _CONFIG
    if not cfg_path.is_file():
        raise DataError(f"--model {path_text}: no config.json in the folder; not a Hugging Face checkpoint")
    raw = _read_bytes(cfg_path, _CONFIG)
    config = _parse_json(raw, str(cfg_path))
    hfq = _read_json(path / _HF_QUANT, _HF_QUANT) if (path / _HF_QUANT).is_file() else None
    return CheckpointFacts(path_text, "local", config, hfq, summarize_local(path, config), None, _hash(raw))


# ----------------------------------------------------------------------------- Hub
class HubClient(Protocol):
    """The three things servewise asks the Hub (tests substitute a fake)."""

    def model_info(self, repo_id: str, revision: str | None, timeout: float) -> tuple[str, list[str],
                                                                                      dict[str, int] | None]:
        """(commit sha, file names, safetensors parameters by dtype or None)."""

    def download(self, repo_id: str, filename: str, revision: str | None, timeout: float, offline: bool) -> Path:
        """A file from the Hub (or, offline, from the cache); raises when it is not there."""


class HuggingFaceHub:
    """``huggingface_hub`` with short timeouts; the library handles tokens, cache and endpoint."""

    def model_info(self, repo_id: str, revision: str | None, timeout: float):
        from huggingface_hub import HfApi

        info = HfApi().model_info(repo_id, revision=revision, timeout=timeout,
                                  expand=["sha", "siblings", "safetensors"])
        files = [s.rfilename for s in (info.siblings or [])]
        params = dict(info.safetensors.parameters) if info.safetensors and info.safetensors.parameters else None
        return str(info.sha), files, params

    def download(self, repo_id: str, filename: str, revision: str | None, timeout: float, offline: bool) -> Path:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id, filename, revision=revision, etag_timeout=timeout,
                                    local_files_only=offline))


_client: HubClient = HuggingFaceHub()   # tests replace it with a fake


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _with_deadline(fn: Callable[[], T], seconds: float, what: str) -> T:
    """Run ``fn`` in a daemon thread and give up after ``seconds`` (the client's own retries and
    connection timeouts cannot then hold the command)."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, daemon=True, name="servewise-hub")
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise DataError(f"{what}: the Hugging Face Hub did not answer within {seconds:g} s; {HINT}")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _hub_error(repo_id: str, err: BaseException) -> DataError:
    name = type(err).__name__
    if name == "GatedRepoError":
        return DataError(f"{repo_id} is a gated repository: accept its licence on huggingface.co and set HF_TOKEN")
    if name == "RepositoryNotFoundError":
        return DataError(f"no model {repo_id!r} on the Hugging Face Hub (or it is private: set HF_TOKEN); "
                         f"check the id, or list the catalog with `servewise models`")
    if name == "RevisionNotFoundError":
        return DataError(f"{repo_id}: revision not found on the Hugging Face Hub")
    if name in ("LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return DataError(f"{repo_id}: not in the local Hugging Face cache and the Hub is not used "
                         f"(HF_HUB_OFFLINE or no network); {OFFLINE_HINT if _offline() else HINT}")
    return DataError(f"{repo_id}: cannot reach the Hugging Face Hub ({name}); {HINT}")


def fetch_hub(repo_id: str, revision: str | None = None, *, client: HubClient | None = None,
              deadline_s: float | None = None) -> CheckpointFacts:
    """config.json, hf_quant_config.json and the safetensors parameter counts of a Hub repo."""
    c = client or _client
    deadline = DEADLINE_S if deadline_s is None else deadline_s
    offline = _offline()

    def work() -> CheckpointFacts:
        files: list[str] | None = None
        params = None
        rev = revision
        source = "hub-cache" if offline else "hub"
        if not offline:
            rev, files, params = c.model_info(repo_id, revision, deadline)
        cfg_path = c.download(repo_id, _CONFIG, rev, deadline, offline)
        raw = _read_bytes(cfg_path, _CONFIG)
        config = _parse_json(raw, f"{repo_id}/{_CONFIG}")
        hfq = None
        if files is None or _HF_QUANT in files:
            try:
                hfq = _read_json(c.download(repo_id, _HF_QUANT, rev, deadline, offline), _HF_QUANT)
            except DataError:
                raise
            except Exception as e:  # absent from the repo or the cache: the checkpoint has none
                if files is not None and type(e).__name__ not in ("EntryNotFoundError", "LocalEntryNotFoundError"):
                    raise
        if offline and rev is None:
            rev = _snapshot_revision(cfg_path)
        st = summarize_params(params, "hub safetensors metadata") if params else None
        return CheckpointFacts(repo_id, source, config, hfq, st, rev, _hash(raw))

    try:
        return _with_deadline(work, deadline, repo_id)
    except DataError:
        raise
    except Exception as e:
        raise _hub_error(repo_id, e) from None


def _snapshot_revision(path: Path) -> str | None:
    """The commit a cached file belongs to: .../snapshots/<commit>/config.json."""
    parts = path.parts
    if "snapshots" in parts and parts.index("snapshots") + 1 < len(parts):
        return parts[parts.index("snapshots") + 1]
    return None


def load_checkpoint(model_id: str, revision: str | None = None) -> CheckpointFacts:
    """A local folder (path) or a Hub repo (any other id)."""
    if is_local_path(model_id):
        if revision:
            raise UsageError("--revision applies to Hugging Face ids, not to a local folder")
        return read_local(model_id)
    if not HF_ID.match(model_id):
        raise DataError(f"--model {model_id!r} is neither a catalog id, a Hugging Face id (org/name: letters, digits, "
                        f"'-', '_', '.') nor a local folder (./path); list the catalog with `servewise models`")
    return fetch_hub(model_id, revision)


def read_non_catalog(model_id: str, revision: str | None = None) -> CheckpointFacts:
    """``load_checkpoint``, naming the closest catalog ids when reading fails (a typo is likelier
    than a missing repo)."""
    try:
        return load_checkpoint(model_id, revision)
    except DataError as e:
        near = [] if is_local_path(model_id) else closest(model_id, all_models())
        if near:
            raise DataError(f"{model_id!r} is not in the catalog (did you mean {', '.join(near)}?) and reading it "
                            f"failed: {e}") from None
        raise


def model_fields(model_id: str, revision: str | None = None) -> dict[str, Any]:
    """The profile's ``model`` identity for an id: nothing to read for a catalog model; a folder or
    Hub repo is read once and recorded (revision, config hash, architecture)."""
    if not is_local_path(model_id) and find_model(model_id) is not None:
        return {"id": model_id, "revision": revision}
    facts = read_non_catalog(model_id, revision)
    return {"id": model_id, "revision": facts.revision, "config_hash": facts.config_hash,
            "architecture": facts.architecture_record()}

