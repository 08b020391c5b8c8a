"""The accepted-flags index servewise ships equals what the reference lists yield, and render's own
checks (which use it) refuse what the engines would refuse."""

from __future__ import annotations

import os

import pytest

from servewise.render.errors import RenderError
from servewise.render.flagindex import check_command, check_extra_args, load_index

from .conftest import ROOT
from .validators.flag_lists import INDEXES, derive_index, dump_index

INDEX_DIR = ROOT / "render" / "flags"


@pytest.mark.parametrize("stem", sorted(INDEXES))
def test_shipped_index_matches_the_reference_list(stem: str, shared_dir):
    text = dump_index(derive_index(shared_dir, stem))
    path = INDEX_DIR / f"{stem}.json"
    if os.environ.get("SERVEWISE_UPDATE_FLAG_INDEX") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"{path.name} is stale; SERVEWISE_UPDATE_FLAG_INDEX=1 rewrites it"


def test_no_unlisted_index_files():
    assert {p.stem for p in INDEX_DIR.glob("*.json")} == set(INDEXES)


def test_checks_refuse_unknown_flags_bad_values_and_conflicts():
    vllm = load_index("vllm-0.33.0", "vLLM 0.33.0")
    check_command(vllm, ["--tensor-parallel-size", "2", "--enable-expert-parallel", "--kv-cache-dtype", "fp8"], "t")
    with pytest.raises(RenderError, match="has no flag --swap-space"):
        check_command(vllm, ["--swap-space", "4"], "t")
    with pytest.raises(RenderError, match="takes an integer"):
        check_command(vllm, ["--max-num-seqs", "many"], "t")
    with pytest.raises(RenderError, match="not one of"):
        check_command(vllm, ["--kv-cache-dtype", "fp9"], "t")
    with pytest.raises(RenderError, match="takes JSON"):
        check_command(vllm, ["--kv-transfer-config", "{oops"], "t")
    ours = ["--tensor-parallel-size", "2", "--max-num-seqs", "8"]
    check_extra_args(vllm, ["--enforce-eager", "--seed", "7"], ours, "deploy.extra_args.agg")
    for extra in (["-tp", "4"], ["--tensor_parallel_size", "4"], ["--max-num-seqs=16"]):
        with pytest.raises(RenderError, match="conflicts with"):
            check_extra_args(vllm, extra, ours, "deploy.extra_args.agg")
    with pytest.raises(RenderError, match="is not a flag"):
        check_extra_args(vllm, ["stray"], ours, "deploy.extra_args.agg")
    sglang = load_index("sglang-0.5.23", "SGLang 0.5.23")
    with pytest.raises(RenderError, match="has no flag --tensor_parallel_size"):   # no '_' equivalence in SGLang
        check_command(sglang, ["--tensor_parallel_size", "2"], "t")
    with pytest.raises(RenderError, match="deprecated"):
        check_extra_args(sglang, ["--enable-dp-attention"], [], "deploy.extra_args.agg")
