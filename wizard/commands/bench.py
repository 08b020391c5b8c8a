"""``servewise bench``: measure a live OpenAI-compatible endpoint against the profile's plan.

Exit codes: 0 measured and the SLA holds at the planned load (or there is no SLA), 1 the
SLA is missed there, 6 the endpoint refused, failed or timed out (results so far are kept),
3 ``--calibrate`` had no prediction to calibrate against.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
from pathlib import Path
from urllib.parse import urlsplit

from typing import TYPE_CHECKING

from servewise.perfdata.errors import DataError, EndpointError, ServewiseError, UsageError
from servewise.wizard import flags
from servewise.wizard.exitcodes import ExitCode

if TYPE_CHECKING:  # the load generator (httpx, the estimator) is imported when bench runs, not on every CLI start
    from servewise.profiles.schema import Profile
    from servewise.wizard.bench import runner
    from servewise.wizard.bench.predict import Predictor
    from servewise.wizard.bench.results import BenchReport

DEFAULT_TIMEOUT_S = 300.0
DEFAULT_MAX_DURATION_S = 1800.0
REQUESTS_PER_SLOT = 10        # requests per level = 10 x concurrency: the first batch does not dominate
RATE_WINDOW_S = 10.0          # open loop: 10 s of arrivals per level (at least 10 requests)
MAX_LEVELS = 64
MAX_REQUESTS = 1_000_000


def _int_list(text: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < 1 or v > 100_000 for v in vals) or len(vals) > MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_LEVELS} concurrencies between 1 and 100000")
    return sorted(set(vals))


def _float_list(text: str) -> list[float]:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not vals or any(not math.isfinite(v) or v <= 0 or v > 1e5 for v in vals) or len(vals) > MAX_LEVELS:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_LEVELS} request rates above 0 (per second)")
    return sorted(set(vals))


def _positive(kind: type):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (v > 0 and math.isfinite(v)) or v > MAX_REQUESTS:
            raise argparse.ArgumentTypeError(f"expected a positive number up to {MAX_REQUESTS}, got {text!r}")
        return v
    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="measure a live endpoint against the plan; --calibrate corrects it",
                       description="Load an OpenAI-compatible endpoint at the plan's concurrencies (or request "
                                   "rates), measure TTFT, TPOT and throughput, compare with the predictions and "
                                   "the SLA, and optionally store correction factors in the profile.")
    p.add_argument("--profile", required=True, type=flags.path,
                   help="the deployed profile (its plan, workload and SLA)")
    p.add_argument("--url", required=True, help="the endpoint's base URL, e.g. http://host:8000")
    p.add_argument("--model", help="the served model name (default: model.served_name, else model.id)")
    p.add_argument("--api", choices=["auto", "completions", "chat"], default="auto",
                   help="OpenAI API to load (auto: completions with token-id prompts, else chat)")
    load = p.add_mutually_exclusive_group()
    load.add_argument("--concurrency-sweep", type=_int_list, metavar="C1,C2,...",
                      help="closed-loop concurrencies (default: 1, 2, 4, ... up to the planned concurrency)")
    load.add_argument("--request-rate", type=_float_list, metavar="R1,R2,...",
                      help="open loop: Poisson arrivals at these request rates per second")
    p.add_argument("--requests", type=_positive(int), metavar="K",
                   help=f"measured requests per level, at least the concurrency (default {REQUESTS_PER_SLOT} x "
                        f"concurrency; open loop: {RATE_WINDOW_S:g} s of arrivals, at least 10)")
    p.add_argument("--warmup", type=int, metavar="N", help="warm-up requests per level, not measured "
                   "(default: one per concurrency slot; open loop 1)")
    p.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT_S, metavar="S",
                   help=f"seconds one request may take (default {DEFAULT_TIMEOUT_S:g})")
    p.add_argument("--max-duration", type=_positive(float), default=DEFAULT_MAX_DURATION_S, metavar="S",
                   help=f"seconds one level may run (default {DEFAULT_MAX_DURATION_S:g})")
    p.add_argument("--seed", type=int, default=0, help="seed of the random prompts and arrivals")
    p.add_argument("--results", metavar="PATH.json", type=flags.path,
                   help="results file (default <profile>.bench.json; the CSV "
                   "sits beside it)")
    p.add_argument("--calibrate", action="store_true", help="store the measured correction factors in the profile")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                   help="environment variable holding a bearer token for the endpoint, if set")
    p.add_argument("--no-progress", action="store_true", help="no progress display on stderr")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(handler=run)


ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalize_url(url: str) -> str:
    from servewise.profiles.secrets import token_kind

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise UsageError(f"--url: expected http(s)://host[:port], got {url!r}") from None
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UsageError(f"--url: bad port in {url!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or not url.strip().isprintable():
        raise UsageError(f"--url: expected http(s)://host[:port], got {url!r}")
    if parts.username or parts.password or token_kind(url):
        raise UsageError("--url: holds credentials, which would be printed and recorded; give a bearer token "
                         "through the environment instead (--api-key-env VAR)")
    path = parts.path.rstrip("/").removesuffix("/v1").rstrip("/")
    return f"{parts.scheme}://{parts.netloc}{path}"


def default_sweep(top: int) -> list[int]:
    """1, 2, 4, ... below ``top``, then ``top`` itself."""
    out = [2**k for k in range(int(math.log2(top)) + 1) if 2**k < top]
    return out + [top]


def levels_from(a: argparse.Namespace, profile: Profile) -> tuple[runner.Level, ...]:
    from servewise.wizard.bench import runner
    from servewise.wizard.bench.predict import planned_concurrency

    if a.warmup is not None and a.warmup < 0:
        raise UsageError("--warmup must be 0 or more")
    rates = a.request_rate
    concs = a.concurrency_sweep
    if rates is None and concs is None:
        if profile.workload.load.request_rate is not None:
            rates = [profile.workload.load.request_rate]
        else:
            top = planned_concurrency(profile)
            if top is None:
                raise UsageError("--concurrency-sweep: the profile has no planned concurrency; give the levels")
            concs = default_sweep(top)
    if concs is not None:
        # a closed loop never reaches concurrency c with fewer than c requests
        return tuple(runner.Level(concurrency=c, requests=max(c, a.requests or REQUESTS_PER_SLOT * c),
                                  warmup=c if a.warmup is None else a.warmup) for c in concs)
    return tuple(runner.Level(request_rate=r, requests=a.requests or max(10, math.ceil(RATE_WINDOW_S * r)),
                              warmup=1 if a.warmup is None else a.warmup) for r in rates)


def _resolved(profile: Profile) -> tuple[int | None, str | None, list[str]]:
    """(vocabulary size, engine version, notes) from the catalog, when the model resolves offline."""
    from servewise.estimator.context import build_context

    try:
        ctx = build_context(profile)
    except ServewiseError as e:
        return None, profile.engine.version, [f"model facts unavailable ({e}); text prompts, no model predictions"]
    return ctx.model.arch.vocab_size, ctx.engine.version, []


def settings_from(a: argparse.Namespace, profile: Profile, vocab_size: int | None) -> runner.Settings:
    from servewise.profiles.secrets import token_kind
    from servewise.wizard.bench import runner

    if a.api_key_env and not ENV_NAME.match(a.api_key_env):
        raise UsageError(f"--api-key-env: {a.api_key_env!r} is not an environment variable name "
                         "(letters, digits and '_', not starting with a digit)")
    if a.model is not None and (not a.model.isprintable() or token_kind(a.model)):
        raise UsageError("--model: give the served model name (no control characters, nothing token-like; "
                         "the token goes in the environment: --api-key-env VAR)")
    key = os.environ.get(a.api_key_env, "") if a.api_key_env else ""
    gpus = profile.plan.gpus if profile.plan else profile.hardware.total_gpus
    return runner.Settings(url=normalize_url(a.url), model=a.model or profile.model.served_name or profile.model.id,
                           api=a.api, isl=profile.workload.isl, osl=profile.workload.osl, gpus=gpus,
                           levels=levels_from(a, profile), timeout_s=a.timeout, max_duration_s=a.max_duration,
                           seed=a.seed, vocab_size=vocab_size,
                           headers={"authorization": f"Bearer {key}"} if key else {})


def run(a: argparse.Namespace, predictor: Predictor | None = None) -> int:
    from servewise.profiles import load_profile
    from servewise.wizard.bench import predict, runner
    from servewise.wizard.bench.chart import format_report
    from servewise.wizard.bench.progress import Progress
    from servewise.wizard.bench.report import build_report, default_results_path, save_results
    from servewise.wizard.output import print_json

    profile = load_profile(a.profile)
    vocab, engine_version, notes = _resolved(profile)
    s = settings_from(a, profile, vocab)
    results = Path(a.results) if a.results else default_results_path(a.profile)
    if results.suffix != ".json":
        raise UsageError(f"--results: expected a .json path, got {a.results!r}")
    if not results.parent.is_dir():
        raise UsageError(f"--results: folder {str(results.parent)!r} does not exist")
    deployment = None
    if profile.plan is not None:
        from servewise.estimator.user_calibration import deployment_of

        deployment = deployment_of(profile, engine_version or "default", profile.plan)
    state = runner.BenchState()
    progress = Progress.choose(a.json, enabled=not a.no_progress)

    def report() -> BenchReport:
        r = build_report(profile, s, state, predictor or predict.model_predictor, profile_path=a.profile,
                         deployment=deployment, results_json=results)
        r = r.model_copy(update={"notes": notes + r.notes})
        return save_results(r, results) if state.levels else r

    try:
        asyncio.run(runner.run(s, state, progress))
    except KeyboardInterrupt:
        if state.levels:
            report()
        raise
    r = report()
    r, calibrate_error = _calibrate(a, profile, r)
    if a.json:
        print_json(r.dump())
    else:
        print(format_report(r, profile.sla.ttft_ms, profile.sla.tpot_ms))
        if r.files:
            print(f"results: {', '.join(r.files)}")
    return _exit(r, calibrate_error)


def _calibrate(a: argparse.Namespace, profile: Profile, r: BenchReport) -> tuple[BenchReport, str | None]:
    """With --calibrate, store the correction points in the profile (atomic save)."""
    from servewise.profiles import profile_from_dict, save_profile

    if not a.calibrate:
        return r, None
    if r.failed or r.stopped:  # the endpoint error is reported instead; a failing run calibrates nothing
        return r.model_copy(update={"notes": [*r.notes, "not calibrated: requests failed"]}), None
    if r.calibration is None:
        return r, ("--calibrate: no prediction to calibrate against (the plan has no performance estimates "
                   "for this profile)")
    doc = {**profile.model_dump(mode="json"), "calibration": r.calibration.model_dump(mode="json")}
    save_profile(profile_from_dict(doc, path=a.profile), a.profile)
    kinds = sorted({p.metric for p in r.calibration.points})
    note = (f"calibration: {len(r.calibration.points)} correction points ({', '.join(kinds)}) written to {a.profile}; "
            "plan and estimate now apply them")
    return r.model_copy(update={"calibrated": True, "notes": [*r.notes, note]}), None


def _exit(r: BenchReport, calibrate_error: str | None) -> int:
    if r.failed or r.stopped:
        first = next((e for lv in r.levels for e in lv.error_examples), r.stopped or "requests failed")
        total = sum(lv.requests + lv.warmup_requests for lv in r.levels)
        kept = f"; results kept in {r.files[0]}" if r.files else ""
        raise EndpointError(f"{r.failed} of {total} requests failed: {first}{kept}")
    if calibrate_error:
        raise DataError(calibrate_error)
    if r.sla is not None and r.sla.met is False:
        return ExitCode.INFEASIBLE
    return ExitCode.OK
