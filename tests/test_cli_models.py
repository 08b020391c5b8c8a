"""``servewise models``: search, --describe, --json and the exit codes of the contract."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli


def test_models_json_lists_the_catalog():
    r = run_cli("models", "--json")
    assert r.code == 0 and r.err == ""
    rows = json.loads(r.out)
    assert len(rows) >= 40
    assert {"id", "family", "params", "active_params", "dtype", "max_position_embeddings", "gated"} <= set(rows[0])


def test_search_by_size_and_family():
    ids = [m["id"] for m in json.loads(run_cli("models", "70b", "--json").out)]
    assert "meta-llama/Llama-3.1-70B-Instruct" in ids and "meta-llama/Llama-3.1-8B-Instruct" not in ids
    rows = json.loads(run_cli("models", "qwen3", "--json").out)
    assert rows and all("qwen3" in (m["id"] + m["family"]).lower() for m in rows)
    both = [m["id"] for m in json.loads(run_cli("models", "qwen3", "32b", "--json").out)]
    assert "Qwen/Qwen3-32B" in both and "Qwen/Qwen3-8B" not in both


def test_search_table_and_empty_result():
    r = run_cli("models", "gpt-oss")
    assert r.code == 0 and "openai/gpt-oss-20b" in r.out and "117B" not in r.err
    assert json.loads(run_cli("models", "no-such-model-xyz", "--json").out) == []


def test_describe_json_carries_counts_weights_and_kv():
    r = run_cli("models", "--describe", "openai/gpt-oss-120b", "--json")
    assert r.code == 0 and r.err == ""
    d = json.loads(r.out)
    assert d["params"]["total"] == pytest.approx(116.83e9, rel=2e-3)          # model card
    assert d["params"]["active_excluding_embedding"] == pytest.approx(5.13e9, rel=5e-3)
    assert d["checkpoint"]["quantization_method"] == "mxfp4" and d["checkpoint"]["quantized_roles"] == ["experts"]
    assert d["kv_bytes_per_token"]["bf16"] == {"full": 36 * 8 * 64 * 2 * 2 / 2, "sliding": 36 * 8 * 64 * 2 * 2 / 2}
    assert d["weight_bytes"]["bf16"] > d["weight_bytes"]["fp8"] > d["weight_bytes"]["nvfp4"] > d["weight_bytes"]["mxfp4"]
    assert d["architecture"]["max_position_embeddings"] == 131072


def test_describe_human_names_the_parts():
    out = run_cli("models", "--describe", "deepseek-ai/DeepSeek-V3").out
    assert "MLA" in out and "256 experts, top-8" in out and "MTP layers     1" in out and "70,272" in out


def test_describe_unknown_model_exits_3_with_suggestions():
    r = run_cli("models", "--describe", "Qwen/Qwen3-33B")
    assert r.code == 3 and r.out == ""
    assert r.err.count("\n") == 1 and "did you mean Qwen/Qwen3-32B" in r.err


def test_query_and_describe_together_is_usage_error():
    assert run_cli("models", "qwen", "--describe", "Qwen/Qwen3-32B").code == 2


def test_a_size_is_a_size_not_a_substring():
    """``7b`` lists the ~7B models, not ``gemma-2-27b`` or ``Qwen3.5-397B-A17B`` whose ids contain it."""
    ids = [m["id"] for m in json.loads(run_cli("models", "7b", "--json").out)]
    assert "mistralai/Mistral-7B-Instruct-v0.3" in ids and "Qwen/Qwen2.5-7B" in ids
    assert "google/gemma-2-27b-it" not in ids and "Qwen/Qwen3.5-397B-A17B" not in ids
    assert [m["id"] for m in json.loads(run_cli("models", "3b", "--json").out)] == ["meta-llama/Llama-3.2-3B-Instruct"]


def test_no_match_says_so_on_stderr():
    r = run_cli("models", "zz-no-such-model")
    assert r.code == 0 and r.out == "" and r.err.count("\n") == 1 and "no model in the catalog matches" in r.err


def test_describe_errors_name_the_describe_flag(tmp_path):
    r = run_cli("models", "--describe", str(tmp_path / "absent"))
    assert r.code == 3 and r.err.startswith(f"servewise: --describe {tmp_path / 'absent'}: no such folder"), r.err
