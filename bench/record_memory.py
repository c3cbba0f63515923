"""Memory growth of `repost record` (or plain mitmdump with --baseline) under N POSTs.

Starts the upstream and one proxy, drives N POSTs through it with successive
wrk runs, and samples the proxy's RSS (VmRSS of the process and its children,
from /proc) every 0.5 s. Reports RSS after the warm-up (first 5,000 requests),
peak and final RSS, and growth = peak - after-warm-up. For the candidate, the
`flows` table must hold >= the number of requests wrk completed.

    .venv/bin/python bench/record_memory.py [--requests 100000] [--baseline]

Exit status: 0 ok, 1 criteria failed (only with --check), 2 the proxy failed
to start, 3 the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import _harness as h

MAX_GROWTH_MB = 50.0
MAX_CHUNK_S = 10  # longest single wrk run; keeps the overshoot past N small


@dataclass
class RssSampler:
    """Samples the RSS of a process tree on a background thread."""

    pid: int
    interval: float = 0.5
    samples: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, MB)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = field(default_factory=time.monotonic)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def sample(self) -> float:
        mb = h.tree_rss_mb(self.pid)
        self.samples.append((time.monotonic() - self._t0, mb))
        return mb

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)  # the sampling period, not synchronisation

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_mb(self) -> float:
        return max(mb for _, mb in self.samples)


@dataclass
class Load:
    """Running totals over successive wrk runs."""

    requests: int = 0
    errors: int = 0
    runs: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="RSS growth of the recording proxy over N POSTs.")
    p.add_argument("--requests", type=int, default=100_000, help="total POSTs to drive (default 100000)")
    p.add_argument("--warmup-requests", type=int, default=5_000,
                   help="requests before the 'after warm-up' RSS reading (default 5000)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--interval", type=float, default=0.5, help="RSS sampling period in seconds (default 0.5)")
    p.add_argument("--baseline", action="store_true", help="measure the baseline command instead of the candidate")
    p.add_argument("--baseline-cmd", default=h.DEFAULT_BASELINE_CMD,
                   help="baseline proxy command prefix (default %(default)r)")
    p.add_argument("--candidate-cmd", default=h.DEFAULT_CANDIDATE_CMD,
                   help="candidate command prefix; {db} is replaced by a fresh DB path (default %(default)r)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if the pass criteria are not met")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with logs and the DB")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def drive(port: int, target: int, load: Load, args: argparse.Namespace, wrk_log: Path) -> None:
    """Run wrk repeatedly until load.requests >= target, sizing each run from the observed rate."""
    while load.requests < target:
        remaining = target - load.requests
        seconds = 1 if not load.rate else min(MAX_CHUNK_S, max(1, math.ceil(remaining / load.rate)))
        result = h.run_wrk(port, seconds, args.connections, args.threads, log_path=wrk_log)
        if result.requests == 0:
            raise h.BenchError(f"wrk completed no requests in {seconds}s (see {wrk_log})")
        load.requests += result.requests
        load.errors += result.errors
        load.seconds += result.duration_s
        load.runs += 1
        log(f"  {load.requests:>8} / {target} requests  ({result.rps:.0f} req/s)")


def measure(args: argparse.Namespace, workdir: Path, upstream_port: int) -> dict:
    name = "baseline" if args.baseline else "candidate"
    template = args.baseline_cmd if args.baseline else args.candidate_cmd
    db = workdir / "bench.db"
    port = h.free_port()
    argv = h.reverse_proxy_argv(h.command_prefix(template, db=str(db)), upstream_port, port)
    wrk_log = workdir / "wrk.log"

    service = h.start_service(name, argv, port, workdir)
    sampler = RssSampler(service.pid, args.interval)
    load = Load()
    try:
        sampler.start()
        rss_start = sampler.sample()
        drive(port, args.warmup_requests, load, args, wrk_log)
        rss_warm, warm_requests = sampler.sample(), load.requests
        drive(port, args.requests, load, args, wrk_log)
        rss_final = sampler.sample()
    finally:
        sampler.stop()
        exit_code = h.stop_service(service)
    rows = h.count_rows(db) if h.uses_db(template) else None
    return {
        "proxy": name,
        "command": " ".join(argv),
        "requests": load.requests,
        "wrk_runs": load.runs,
        "errors": load.errors,
        "mean_rps": load.rate,
        "rss_start_mb": rss_start,
        "rss_after_warmup_mb": rss_warm,
        "warmup_requests": warm_requests,
        "rss_peak_mb": sampler.peak_mb,
        "rss_final_mb": rss_final,
        "growth_mb": sampler.peak_mb - rss_warm,
        "samples": len(sampler.samples),
        "rows": rows,
        "all_recorded": None if rows is None else rows >= load.requests,
        "stop": f"{service.stop_signal or 'exited'}/{exit_code}",
    }


def add_checks(result: dict) -> dict:
    result["checks"] = {
        f"growth_le_{MAX_GROWTH_MB:.0f}mb": result["growth_mb"] <= MAX_GROWTH_MB,
        "every_request_recorded": result["all_recorded"],
        "no_errors": result["errors"] == 0,
    }
    result["pass"] = all(v is not False for v in result["checks"].values())
    return result


def format_result(r: dict) -> str:
    recorded = {True: "yes", False: "NO", None: "n/a"}[r["all_recorded"]]
    return "\n".join([
        f"proxy: {r['proxy']}  ({r['command']})",
        f"requests: {r['requests']} in {r['wrk_runs']} wrk runs, {r['mean_rps']:.0f} req/s, "
        f"non-2xx/socket errors: {r['errors']}",
        f"RSS start:          {r['rss_start_mb']:8.1f} MB",
        f"RSS after warm-up:  {r['rss_after_warmup_mb']:8.1f} MB  (after {r['warmup_requests']} requests)",
        f"RSS peak:           {r['rss_peak_mb']:8.1f} MB  ({r['samples']} samples)",
        f"RSS final:          {r['rss_final_mb']:8.1f} MB",
        f"growth (peak - after warm-up): {r['growth_mb']:+.1f} MB  [<= {MAX_GROWTH_MB:.0f} MB: "
        f"{'ok' if r['growth_mb'] <= MAX_GROWTH_MB else 'FAIL'}]",
        f"rows in flows: {r['rows'] if r['rows'] is not None else '-'}  every request recorded: {recorded}",
        f"stop: {r['stop']}",
        f"PASS: {r['pass']}",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="repost-mem-"))
    log(f"workdir (logs, DB): {workdir}")
    keep = args.keep
    upstream = None
    try:
        upstream = h.start_upstream(workdir)
        result = add_checks(measure(args, workdir, upstream.port))
    except h.ProcessStartError as exc:
        log(f"error: {exc}")
        keep = True
        return 2
    except h.BenchError as exc:
        log(f"error: {exc}")
        keep = True
        return 3
    finally:
        if upstream is not None:
            h.stop_service(upstream)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)

    print(json.dumps(result, indent=2) if args.json else format_result(result))
    return 1 if args.check and not result["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
