"""``servewise gpus``: search, JSON and the human table."""

from __future__ import annotations

import json

from servewise.perfdata import all_gpus

from .conftest import run_cli


def test_json_lists_the_whole_catalog():
    r = run_cli("gpus", "--json")
    assert r.code == 0 and r.err == ""
    doc = json.loads(r.out)
    assert len(doc) >= 25 and len(doc) == len(all_gpus())
    h100 = next(g for g in doc if g["id"] == "h100-sxm")
    assert h100["memory_bytes"] == 85020639232 and h100["flops"]["fp8"] == 1978.9e12
    assert "sources" in h100 and h100["interconnect"]["kind"] == "nvlink"


def test_memory_size_query_matches_exactly():
    ids = {g["id"] for g in json.loads(run_cli("gpus", "80gb", "--json").out)}
    assert ids == {"a100-sxm-80gb", "a100-pcie-80gb", "h100-sxm", "h100-pcie"}
    assert {g["id"] for g in json.loads(run_cli("gpus", "180GB", "--json").out)} == {"b200"}


def test_substring_queries_cover_id_name_architecture_and_segment():
    assert {g["id"] for g in json.loads(run_cli("gpus", "blackwell", "--json").out)} == {
        "b200", "b300", "gb200", "gb300", "rtx-5090", "rtx-pro-6000", "rtx-pro-6000-server"}
    assert {g["id"] for g in json.loads(run_cli("gpus", "consumer", "--json").out)} == {
        "rtx-3090", "rtx-4090", "rtx-5090"}
    assert {g["id"] for g in json.loads(run_cli("gpus", "H100", "--json").out)} == {
        "h100-sxm", "h100-pcie", "h100-nvl"}
    assert {g["id"] for g in json.loads(run_cli("gpus", "Ada Generation", "--json").out)} == {"rtx-6000-ada"}


def test_every_word_must_match():
    """As in `servewise models`: `a100 80gb` is both A100 80 GB boards, quoted or not."""
    both = {"a100-sxm-80gb", "a100-pcie-80gb"}
    assert {g["id"] for g in json.loads(run_cli("gpus", "a100", "80gb", "--json").out)} == both
    assert {g["id"] for g in json.loads(run_cli("gpus", "a100 80gb", "--json").out)} == both
    assert {g["id"] for g in json.loads(run_cli("gpus", "consumer", "ada", "--json").out)} == {"rtx-4090"}


def test_human_table_shows_memory_bandwidth_flops_and_link():
    r = run_cli("gpus", "gb200")
    assert r.code == 0 and r.err == ""
    header, _, row, legend = r.out.splitlines()
    assert header.split() == ["id", "name", "GiB", "(CUDA)", "TB/s", "BF16", "FP8", "FP4", "link"]
    assert row.split()[0] == "gb200"
    for cell in ("184.3", "8.00", "2,500", "5,000", "10,000", "NVLink5", "x72"):
        assert cell in row.split()
    assert "dense" in legend


def test_turing_row_marks_fp16_and_absent_formats():
    row = run_cli("gpus", "t4").out.splitlines()[2].split()
    assert row[-4:] == ["65*", "-", "-", "PCIe3"]


def test_no_match_says_so_and_json_is_empty():
    r = run_cli("gpus", "zz-no-such-gpu")
    assert r.code == 0 and r.out == "" and "no GPU" in r.err
    r = run_cli("gpus", "zz-no-such-gpu", "--json")
    assert r.code == 0 and json.loads(r.out) == [] and r.err == ""
