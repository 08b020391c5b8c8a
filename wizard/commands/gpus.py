"""``servewise gpus``: search the GPU catalog."""

from __future__ import annotations

import argparse

from servewise.perfdata import GpuSpec, all_gpus
from servewise.perfdata.gpus import Link
from servewise.wizard.exitcodes import ExitCode
from servewise.wizard.output import GIB, info, print_json, table


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("gpus", help="the GPU catalog",
                       description="Search the GPU catalog by words that must all match: a substring of the id, "
                                   "name, architecture or segment, or a memory size such as 80gb.")
    p.add_argument("query", nargs="*", help="e.g. h100, blackwell, consumer, 80gb (`a100 80gb`: both)")
    p.add_argument("--json", action="store_true", help="print one JSON document (a list of GPU specs)")
    p.set_defaults(handler=run_gpus)


def search_keys(g: GpuSpec) -> list[str]:
    """What a query may match: id, name, architecture, segment and the memory size as '80gb'."""
    return [g.id, g.name, g.architecture, g.segment, f"{g.memory_gb:g}gb"]


def matches(query: str | None, g: GpuSpec) -> bool:
    """Every word of ``query`` matches ``g`` (all GPUs when it is empty)."""
    return all(_word_matches(w, g) for w in (query or "").lower().split())


def _word_matches(q: str, g: GpuSpec) -> bool:
    if q.endswith("gb") and q[:-2].replace(".", "", 1).isdigit():
        return f"{g.memory_gb:g}gb" == q          # a memory size matches exactly (80gb is not 180gb)
    return any(q in k.lower().replace(" ", "") for k in search_keys(g))


def link_label(link: Link, domain: int | None = None) -> str:
    """'NVLink4 x8', 'NVLink5 x72', 'PCIe5', 'C2C'."""
    names = {"nvlink": "NVLink", "pcie": "PCIe", "nvlink-c2c": "C2C", "infiniband": "IB", "ethernet": "Eth"}
    text = f"{names[link.kind]}{link.generation or ''}"
    return f"{text} x{domain}" if domain and link.kind == "nvlink" else text


def _tflops(g: GpuSpec, dtype: str) -> str:
    value = g.flops.get(dtype)
    return "-" if value is None else f"{value / 1e12:,.0f}"


def run_gpus(a: argparse.Namespace) -> int:
    query = " ".join(a.query)
    gpus = [g for g in all_gpus().values() if matches(query, g)]
    if a.json:
        print_json([g.model_dump(mode="json") for g in gpus])
        return ExitCode.OK
    if not gpus:
        info(f"no GPU in the catalog matches {query!r} (run `servewise gpus` for the full list)")
        return ExitCode.OK
    rows = [[g.id, g.name, f"{g.memory_bytes / GIB:.1f}", f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f}",
             _tflops(g, "bf16") if "bf16" in g.flops else _tflops(g, "fp16") + "*", _tflops(g, "fp8"),
             _tflops(g, "fp4"), link_label(g.interconnect, g.scale_up_domain_gpus)] for g in gpus]
    print(table(["id", "name", "GiB (CUDA)", "TB/s", "BF16", "FP8", "FP4", "link"], rows, "llrrrrrl"))
    print("TFLOP/s dense per GPU; GiB is what CUDA reports; link = scale-up link x NVLink domain size"
          + ("; * = FP16 (no BF16)" if any("bf16" not in g.flops for g in gpus) else ""))
    return ExitCode.OK
