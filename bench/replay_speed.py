"""Replay speed: `repost replay` vs mitmproxy's own client replay (`mitmdump -nC`).

Builds --flows POST flows to a local bench upstream, writes the same flows into a
repost database (through the store's own write path) and into a mitmproxy flow
file, then alternates for --rounds rounds:

  baseline:  mitmdump -nC FILE                                   (whole command, timed)
  candidate: repost replay --db COPY --yes --concurrency 16 --method POST --path '/orders/*'

The candidate gets a fresh copy of the original database each round, so only the
originals are selected. Each run must make the upstream answer exactly --flows
POSTs (counted at the upstream) and exit 0; the candidate's copy must then hold
--flows replays (rows with replay_of set).

    .venv/bin/python bench/replay_speed.py [--flows 1000] [--rounds 3] [--json]

Pass criterion: median of per-round (mitmdump time / repost time) >= 3.0.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402

MIN_RATIO = 3.0
RUN_TIMEOUT_S = 600.0
BODY_TARGET = 200


def upstream_posts(port: int) -> int:
    with urllib.request.urlopen(f"http://{h.HOST}:{port}/__count", timeout=10) as resp:
        return json.load(resp)["posts"]


def _body(i: int) -> bytes:
    doc = {"order_id": i, "customer": f"customer-{i % 97}", "items": [{"sku": f"SKU-{i:06d}", "qty": 1 + i % 5}],
           "currency": "EUR", "note": ""}  # fmt: skip
    raw = json.dumps(doc, separators=(",", ":"))
    doc["note"] = "x" * max(0, BODY_TARGET - len(raw))
    return json.dumps(doc, separators=(",", ":")).encode()


def build_flows(n: int, port: int) -> list:
    from mitmproxy import http
    from mitmproxy.test import tflow

    flows = []
    now = time.time()
    for i in range(n):
        f = tflow.tflow(resp=True)
        body = _body(i)
        f.request = http.Request.make(
            "POST", f"http://{h.HOST}:{port}/orders/{i}", body,
            {"Host": f"{h.HOST}:{port}", "Content-Type": "application/json", "Accept": "application/json", "User-Agent": "replay-speed-bench/1"},
        )  # fmt: skip
        f.request.timestamp_start = now + i * 0.001
        f.request.timestamp_end = f.request.timestamp_start + 0.0005
        f.response = http.Response.make(200, b'{"ok": true, "id": 123}', {"Content-Type": "application/json"})
        f.response.timestamp_start = f.request.timestamp_end + 0.001
        f.response.timestamp_end = f.response.timestamp_start + 0.0005
        flows.append(f)
    return flows


def write_db(flows, db: Path) -> None:
    from repost.store.capture import snapshot
    from repost.store.writer import BatchWriter

    writer = BatchWriter(str(db), redactor=None, max_body=10 * 1024 * 1024)
    ok = writer.write([snapshot(f) for f in flows])
    writer.close()
    if not ok or writer.lost or writer.written != len(flows):
        raise h.BenchError(f"writing the database failed: written={writer.written} lost={writer.lost} {writer.last_error}")
    # The writer's close leaves a WAL-mode file; checkpoint so one file copy is the whole database.
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    wal = Path(f"{db}-wal")
    if wal.exists() and wal.stat().st_size:
        raise h.BenchError(f"{wal} is not empty after a checkpoint")


def write_flow_file(flows, path: Path) -> None:
    from mitmproxy import io

    with open(path, "wb") as fh:
        w = io.FlowWriter(fh)
        for f in flows:
            w.add(f)


def timed_run(name: str, argv: list[str], log_path: Path, env: dict | None = None) -> float:
    """Run argv to completion with output in a log file; returns wall seconds."""
    with open(log_path, "wb") as log:
        log.write(f"$ {shlex.join(argv)}\n".encode())
        log.flush()
        t0 = time.perf_counter()
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                  cwd=h.REPO_DIR, env=env, timeout=RUN_TIMEOUT_S)  # fmt: skip
        except subprocess.TimeoutExpired:
            raise h.BenchError(f"{name} did not finish within {RUN_TIMEOUT_S:.0f}s: {shlex.join(argv)}") from None
        elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        raise h.BenchError(f"{name} exited {done.returncode}: {shlex.join(argv)}\n  log {log_path}:\n{tail}")
    return elapsed


def replays_in(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT count(*) FROM flows WHERE replay_of IS NOT NULL").fetchone()[0]
    finally:
        conn.close()


def run(args, tmp: Path) -> dict:
    upstream = h.start_upstream(tmp)
    try:
        flows = build_flows(args.flows, upstream.port)
        original = tmp / "original.db"
        flow_file = tmp / "flows.mitm"
        write_db(flows, original)
        write_flow_file(flows, flow_file)
        del flows

        mitmdump = [h.resolve_executable("mitmdump"), "-nC", str(flow_file)] + shlex.split(args.mitmdump_args)
        repost = h.resolve_executable("repost")
        env = dict(os.environ, REPOST_KEY_FILE=str(tmp / "fingerprint.key"), NO_COLOR="1")

        rounds = []
        for r in range(1, args.rounds + 1):
            result = {"round": r}
            order = ("mitmdump", "repost") if r % 2 else ("repost", "mitmdump")
            for name in order:
                before = upstream_posts(upstream.port)
                if name == "mitmdump":
                    secs = timed_run(name, mitmdump, tmp / f"mitmdump-{r}.log")
                else:
                    db = tmp / f"round-{r}.db"
                    shutil.copyfile(original, db)
                    argv = [repost, "replay", "--db", str(db), "--yes", "--concurrency", str(args.concurrency),
                            "--method", "POST", "--path", "/orders/*"]  # fmt: skip
                    secs = timed_run(name, argv, tmp / f"repost-{r}.log", env=env)
                    stored = replays_in(db)
                    if stored != args.flows:
                        raise h.BenchError(f"round {r}: repost stored {stored} replays, expected {args.flows}")
                    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
                        path.unlink(missing_ok=True)
                sent = upstream_posts(upstream.port) - before
                if sent != args.flows:
                    raise h.BenchError(f"round {r}: {name} made the upstream answer {sent} POSTs, expected {args.flows}")
                result[name] = {"seconds": round(secs, 3), "rps": round(args.flows / secs, 1), "sent": sent}
            result["ratio"] = round(result["mitmdump"]["seconds"] / result["repost"]["seconds"], 2)
            rounds.append(result)
            if not args.json:
                print(_round_line(result), flush=True)
    finally:
        h.stop_service(upstream)

    ratio = statistics.median(r["ratio"] for r in rounds)
    return {
        "flows": args.flows,
        "concurrency": args.concurrency,
        "mitmdump_cmd": "mitmdump -nC FILE" + (f" {args.mitmdump_args}" if args.mitmdump_args else ""),
        "repost_cmd": f"repost replay --db DB --yes --concurrency {args.concurrency} --method POST --path '/orders/*'",
        "rounds": rounds,
        "median_mitmdump_s": round(statistics.median(r["mitmdump"]["seconds"] for r in rounds), 3),
        "median_repost_s": round(statistics.median(r["repost"]["seconds"] for r in rounds), 3),
        "median_ratio": round(ratio, 2),
        "min_ratio": MIN_RATIO,
        "pass": ratio >= MIN_RATIO,
    }


def _round_line(r: dict) -> str:
    m, c = r["mitmdump"], r["repost"]
    return (f"round {r['round']}: mitmdump {m['seconds']:7.3f} s ({m['rps']:7.1f} req/s)   "
            f"repost {c['seconds']:7.3f} s ({c['rps']:7.1f} req/s)   ratio {r['ratio']:.2f}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", type=int, default=1000, help="POST flows to replay per run (default 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--concurrency", type=int, default=16, help="repost replay --concurrency (default 16)")
    parser.add_argument("--mitmdump-args", default="", help="extra mitmdump arguments, e.g. '-q'")
    parser.add_argument("--json", action="store_true", help="print only a JSON summary")
    parser.add_argument("--check", action="store_true", help="exit 1 when the criterion fails")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, flow file, database)")
    args = parser.parse_args(argv)
    if args.flows < 1 or args.rounds < 1:
        parser.error("--flows and --rounds must be >= 1")

    tmp = Path(tempfile.mkdtemp(prefix="repost-replay-speed-"))
    keep = args.keep
    try:
        if not args.json:
            print(f"{args.flows} POSTs per run, {args.rounds} rounds (order alternates); work dir {tmp} (removed unless --keep or an error)", flush=True)
        summary = run(args, tmp)
    except h.ProcessStartError as e:
        keep = True
        print(f"replay_speed: {e}", file=sys.stderr)
        return 2
    except h.BenchError as e:
        keep = True
        print(f"replay_speed: {e}\n  (temp dir kept: {tmp})", file=sys.stderr)
        return 3
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"median: mitmdump {summary['median_mitmdump_s']:.3f} s, repost {summary['median_repost_s']:.3f} s")
        print(f"median ratio mitmdump/repost: {summary['median_ratio']:.2f} (need >= {MIN_RATIO})  "
              f"PASS: {summary['pass']}")  # fmt: skip
    return 1 if args.check and not summary["pass"] else 0


if __name__ == "__main__":
    sys.exit(main())
