"""Throughput/latency of `repost record` vs plain mitmdump, both as reverse proxies.

Each round starts both proxies fresh (order alternates between rounds), warms
each up with wrk, then measures it with the same wrk load. The candidate gets a
fresh SQLite DB per round; after SIGINT its `flows` row count must be >= the
number of requests wrk completed (warm-up + measured).

    .venv/bin/python bench/record_throughput.py [--rounds 5] [--duration 10] [--connections 8]

Exit status: 0 ok, 1 criteria failed (only with --check), 2 a proxy failed to
start, 3 the benchmark itself failed (e.g. wrk error).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import _harness as h

MIN_THROUGHPUT_RATIO = 0.95
MAX_P50_DIFF_MS = 1.0


@dataclass
class ProxyRun:
    round: int
    proxy: str  # "baseline" or "candidate"
    warmup: h.WrkResult | None
    measured: h.WrkResult
    stop_signal: str | None
    exit_code: int
    rows: int | None = None  # candidate only, when its command has {db}

    @property
    def requests_completed(self) -> int:
        return self.measured.requests + (self.warmup.requests if self.warmup else 0)

    @property
    def all_recorded(self) -> bool | None:
        return None if self.rows is None else self.rows >= self.requests_completed

    def to_dict(self) -> dict:
        data = asdict(self)
        data.update(requests_completed=self.requests_completed, all_recorded=self.all_recorded)
        return data


@dataclass
class Config:
    rounds: int
    duration: int
    warmup: int
    connections: int
    threads: int
    baseline_cmd: str
    candidate_cmd: str
    workdir: Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Compare `repost record` with plain mitmdump (reverse proxy, wrk POST load).")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs both proxies (default 5)")
    p.add_argument("--duration", type=int, default=10, help="measured wrk seconds per proxy per round (default 10)")
    p.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds before each measurement, 0 = none (default 2)")
    p.add_argument("--connections", type=int, default=8, help="wrk connections (default 8)")
    p.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--baseline-cmd", default=h.DEFAULT_BASELINE_CMD,
                   help="baseline proxy command prefix (default %(default)r)")
    p.add_argument("--candidate-cmd", default=h.DEFAULT_CANDIDATE_CMD,
                   help="candidate command prefix; {db} is replaced by a fresh per-round DB path "
                        "(without {db}, row counting is skipped) (default %(default)r)")
    p.add_argument("--json", action="store_true", help="print the summary (and rounds) as JSON on stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if the pass criteria are not met")
    p.add_argument("--keep", action="store_true", help="keep the temp dir with logs and DBs")
    return p.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_proxy(cfg: Config, name: str, round_no: int, upstream_port: int) -> ProxyRun:
    """Start one proxy fresh, warm it up, measure it, stop it with SIGINT, count its rows."""
    round_dir = cfg.workdir / f"round{round_no}"
    round_dir.mkdir(exist_ok=True)
    template = cfg.candidate_cmd if name == "candidate" else cfg.baseline_cmd
    db = round_dir / "bench.db"
    port = h.free_port()
    argv = h.reverse_proxy_argv(h.command_prefix(template, db=str(db)), upstream_port, port)
    wrk_log = round_dir / f"{name}.wrk.log"

    service = h.start_service(name, argv, port, round_dir)
    try:
        warmup = h.run_wrk(port, cfg.warmup, cfg.connections, cfg.threads, log_path=wrk_log) if cfg.warmup else None
        measured = h.run_wrk(port, cfg.duration, cfg.connections, cfg.threads, log_path=wrk_log)
    finally:
        exit_code = h.stop_service(service)
    rows = h.count_rows(db) if name == "candidate" and h.uses_db(template) else None
    run = ProxyRun(round_no, name, warmup, measured, service.stop_signal, exit_code, rows)
    log(f"round {round_no} {name:9s} {measured.rps:9.1f} req/s  p50 {measured.p50_ms:.3f} ms"
        + (f"  rows {rows}/{run.requests_completed}" if rows is not None else ""))
    return run


def run_rounds(cfg: Config, upstream_port: int) -> list[ProxyRun]:
    runs = []
    for round_no in range(1, cfg.rounds + 1):
        order = ("baseline", "candidate") if round_no % 2 else ("candidate", "baseline")
        for name in order:
            runs.append(run_proxy(cfg, name, round_no, upstream_port))
    return runs


def pairs(runs: list[ProxyRun]) -> list[tuple[ProxyRun, ProxyRun]]:
    by_round: dict[int, dict[str, ProxyRun]] = {}
    for run in runs:
        by_round.setdefault(run.round, {})[run.proxy] = run
    return [(r["baseline"], r["candidate"]) for _, r in sorted(by_round.items())]


def summarize(runs: list[ProxyRun]) -> dict:
    paired = pairs(runs)
    ratios = [c.measured.rps / b.measured.rps for b, c in paired]
    p50_diffs = [c.measured.p50_ms - b.measured.p50_ms for b, c in paired]
    recorded = [c.all_recorded for _, c in paired]
    all_recorded = None if None in recorded else all(recorded)
    errors = {name: sum(r.measured.errors + (r.warmup.errors if r.warmup else 0)
                        for r in runs if r.proxy == name)
              for name in ("baseline", "candidate")}
    summary = {
        "rounds": len(paired),
        "throughput_ratio_median": statistics.median(ratios),
        "throughput_ratios": ratios,
        "p50_diff_ms_median": statistics.median(p50_diffs),
        "p50_diffs_ms": p50_diffs,
        "baseline_rps_median": statistics.median(b.measured.rps for b, _ in paired),
        "candidate_rps_median": statistics.median(c.measured.rps for _, c in paired),
        "all_recorded": all_recorded,
        "rows": [c.rows for _, c in paired],
        "requests_completed": [c.requests_completed for _, c in paired],
        "http_or_socket_errors": errors,
        "unclean_stops": [f"round {r.round} {r.proxy}: {r.stop_signal}, exit {r.exit_code}"
                          for r in runs if r.stop_signal not in (None, "SIGINT")],
    }
    summary["checks"] = {
        "throughput_ratio_ge_0.95": summary["throughput_ratio_median"] >= MIN_THROUGHPUT_RATIO,
        "p50_diff_le_1ms": summary["p50_diff_ms_median"] <= MAX_P50_DIFF_MS,
        "every_request_recorded": all_recorded,
        "no_errors": not any(errors.values()),
    }
    summary["pass"] = all(v is not False for v in summary["checks"].values())
    return summary


def format_table(runs: list[ProxyRun]) -> str:
    header = (f"{'round':>5} {'proxy':<9} {'req/s':>9} {'requests':>9} {'non2xx':>6} "
              f"{'sockerr':>7} {'p50 ms':>7} {'p99 ms':>7} {'rows':>15}  stop")
    lines = [header, "-" * len(header)]
    for r in sorted(runs, key=lambda r: (r.round, r.proxy)):
        m = r.measured
        rows = f"{r.rows}/{r.requests_completed}" if r.rows is not None else "-"
        lines.append(f"{r.round:>5} {r.proxy:<9} {m.rps:>9.1f} {m.requests:>9} {m.non2xx:>6} "
                     f"{m.socket_errors:>7} {m.p50_ms:>7.3f} {m.p99_ms:>7.3f} {rows:>15}  "
                     f"{r.stop_signal or 'exited'}/{r.exit_code}")
    return "\n".join(lines)


def format_summary(s: dict) -> str:
    def verdict(ok: bool | None) -> str:
        return {True: "ok", False: "FAIL", None: "n/a"}[ok]

    c = s["checks"]
    recorded = {True: "yes", False: "NO", None: "n/a (candidate command has no {db})"}[s["all_recorded"]]
    return "\n".join([
        f"median throughput ratio candidate/baseline: {s['throughput_ratio_median']:.3f} "
        f"({s['candidate_rps_median']:.1f} vs {s['baseline_rps_median']:.1f} req/s)  "
        f"[>= {MIN_THROUGHPUT_RATIO}: {verdict(c['throughput_ratio_ge_0.95'])}]",
        f"median p50 latency difference (candidate - baseline): {s['p50_diff_ms_median']:+.3f} ms  "
        f"[<= {MAX_P50_DIFF_MS} ms: {verdict(c['p50_diff_le_1ms'])}]",
        f"every request recorded: {recorded}  rows {s['rows']} vs completed {s['requests_completed']}",
        f"non-2xx/socket errors: {s['http_or_socket_errors']}  [{verdict(c['no_errors'])}]",
        *(f"unclean stop: {u}" for u in s["unclean_stops"]),
        f"PASS: {s['pass']}",
    ])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="repost-bench-"))
    cfg = Config(args.rounds, args.duration, args.warmup, args.connections, args.threads,
                 args.baseline_cmd, args.candidate_cmd, workdir)
    log(f"workdir (logs, DBs): {workdir}")
    keep = args.keep
    upstream = None
    try:
        for template in (cfg.baseline_cmd, cfg.candidate_cmd):
            h.command_prefix(template, db="")  # fail fast if an executable is missing
        upstream = h.start_upstream(workdir)
        runs = run_rounds(cfg, upstream.port)
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

    summary = summarize(runs)
    if args.json:
        print(json.dumps({"summary": summary, "runs": [r.to_dict() for r in runs]}, indent=2))
    else:
        print(format_table(runs))
        print()
        print(format_summary(summary))
    return 1 if args.check and not summary["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
