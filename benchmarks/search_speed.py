"""Whole-process speed of ``servewise plan --json``: start-up, catalog loading, the search and the output.

    python -m benchmarks.search_speed [--runs 7] [--only a,d]

Each scenario runs ``--runs`` times (after one warm-up run that is not counted) as a fresh process, the
way a user or the wizard's shell-out would. Reported per scenario: the median and the minimum wall time,
the median CPU time of the process (user + system: what it costs when the machine is shared), its peak
resident memory, and what the plan chose. The load average before and after is printed, since other
processes on the machine stretch wall times.

Targets (issue 6): scenario (a) within 1 s wall (aim 0.66 s), (d) within 3 s, peak RSS within 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

SCENARIOS = {
    "a": ("Qwen/Qwen3-32B, 8 x h200-sxm, 4000/500, TTFT 300 / TPOT 10, trtllm",
          "--model Qwen/Qwen3-32B --gpu h200-sxm --gpus 8 --isl 4000 --osl 500 --ttft-ms 300 --tpot-ms 10 "
          "--engine trtllm"),
    "b": ("meta-llama/Llama-3.1-70B-Instruct, 16 x h100-sxm (2 nodes), 2048/256, TTFT 500 / TPOT 30, vllm",
          "--model meta-llama/Llama-3.1-70B-Instruct --gpu h100-sxm --gpus 16 --gpus-per-node 8 --isl 2048 "
          "--osl 256 --ttft-ms 500 --tpot-ms 30 --engine vllm"),
    "c": ("Qwen/Qwen3-30B-A3B, 16 x h200-sxm, 4000/500, TTFT 300 / TPOT 10, sglang",
          "--model Qwen/Qwen3-30B-A3B --gpu h200-sxm --gpus 16 --isl 4000 --osl 500 --ttft-ms 300 --tpot-ms 10 "
          "--engine sglang"),
    "d": ("deepseek-ai/DeepSeek-V3, 64 x h200-sxm, 4000/500, TTFT 1000 / TPOT 30, trtllm",
          "--model deepseek-ai/DeepSeek-V3 --gpu h200-sxm --gpus 64 --isl 4000 --osl 500 --ttft-ms 1000 "
          "--tpot-ms 30 --engine trtllm"),
}
TARGET_WALL_S = {"a": 1.0, "d": 3.0}
AIM_WALL_S = {"a": 0.66}
TARGET_RSS_MB = 300.0


@dataclass
class Run:
    wall_s: float
    cpu_s: float
    rss_mb: float
    code: int
    out: str


def command() -> list[str]:
    """The installed console script beside this interpreter, else the module."""
    script = os.path.join(os.path.dirname(sys.executable), "servewise")
    if os.path.exists(script):
        return [script]
    found = shutil.which("servewise")
    return [found] if found else [sys.executable, "-m", "servewise.wizard.cli"]


def run_measured(argv: list[str]) -> Run:
    """One fresh process: wall time around it, and its own CPU time and peak RSS from os.wait4 (Linux:
    ru_maxrss in KiB)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    out = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0, proc.returncode, out)


def summary(doc: dict) -> str:
    def one(c: dict | None) -> str:
        if not c:
            return "none"
        p = c["plan"]
        if p["mode"] == "agg":
            w = p["worker"]
            shape = f"{p['replicas']}x TP{w['tp']}" + (f" PP{w['pp']}" if w["pp"] > 1 else "") + \
                (f" DP{w['dp']} EP{w['ep']}" if w["dp"] > 1 else f" EP{w['ep']}" if w["ep"] > 1 else "") + \
                f" bs{w['max_num_seqs']}"
        else:
            pw, dw = p["prefill"], p["decode"]
            shape = (f"{pw['workers']}x TP{pw['tp']}" + (f" DP{pw['dp']}" if pw["dp"] > 1 else "") + " / "
                     f"{dw['workers']}x TP{dw['tp']}" + (f" DP{dw['dp']} EP{dw['ep']}" if dw["dp"] > 1 else "")
                     + f" bs{dw['max_num_seqs']}" + (f" x{p['replicas']}" if p["replicas"] > 1 else ""))
        return f"{shape} {c['score']:.1f} tok/s/GPU"
    best = doc.get("best", {})
    return f"agg {one(best.get('agg'))}; disagg {one(best.get('disagg'))}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="measured runs per scenario (median reported)")
    ap.add_argument("--only", help="comma-separated scenario letters")
    a = ap.parse_args(argv)
    names = a.only.split(",") if a.only else list(SCENARIOS)
    base = command()
    load0 = os.getloadavg()
    print(f"servewise plan --json, {a.runs} runs per scenario after one warm-up; {os.cpu_count()} CPUs; "
          f"load average before {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}")
    print(f"command: {' '.join(base)} plan ... --json\n")
    print("| scenario | median wall s | min wall s | median CPU s | peak RSS MB | exit | target | chosen per mode |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for n in names:
        title, flags = SCENARIOS[n]
        cmd = [*base, "plan", *flags.split(), "--json"]
        run_measured(cmd)                                    # warm-up (page cache, .pyc)
        runs = [run_measured(cmd) for _ in range(a.runs)]
        wall = statistics.median(r.wall_s for r in runs)
        cpu = statistics.median(r.cpu_s for r in runs)
        rss = max(r.rss_mb for r in runs)
        codes = sorted({r.code for r in runs})
        verdict = []
        if n in TARGET_WALL_S:
            ok = wall <= TARGET_WALL_S[n]
            failed |= not ok
            verdict.append(f"wall <= {TARGET_WALL_S[n]:g} s {'met' if ok else 'MISSED'}")
            if n in AIM_WALL_S:
                verdict.append(f"aim {AIM_WALL_S[n]:g} s {'met' if wall <= AIM_WALL_S[n] else 'missed'}")
        ok_rss = rss <= TARGET_RSS_MB
        failed |= not ok_rss
        verdict.append(f"RSS {'met' if ok_rss else 'MISSED'}")
        try:
            chosen = summary(json.loads(runs[-1].out))
        except json.JSONDecodeError:
            chosen = "no JSON"
        print(f"| ({n}) {title} | {wall:.3f} | {min(r.wall_s for r in runs):.3f} | {cpu:.3f} | {rss:.0f} | "
              f"{','.join(map(str, codes))} | {'; '.join(verdict)} | {chosen} |")
    load1 = os.getloadavg()
    print(f"\nload average after {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
