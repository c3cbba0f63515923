"""Time to first SSE event: direct vs `repost record` vs plain `mitmdump` (issue 5).

Starts bench/upstream.py, whose ``POST /v1/chat/completions`` (``"stream": true``)
answers an OpenAI-style event stream: ~50 ms "thinking", then --events
``data: {chat.completion.chunk}`` events every --interval-ms, then
``data: [DONE]``. Three paths are measured, round-robin per stream (the order
rotates each stream), one stream at a time:

    direct:    http://127.0.0.1:UP
    repost:    repost record --db TMP --listen-host 127.0.0.1 --listen-port P --mode reverse:http://127.0.0.1:UP
    mitmdump:  mitmdump --listen-host 127.0.0.1 --listen-port P2 --mode reverse:http://127.0.0.1:UP -q

The client is httpx (``client.stream("POST", ...)`` and ``iter_lines()``), one
keep-alive client per path, warmed with an unrecorded ``GET /__count``. For each
stream it times, from sending the request, the first ``data:`` line and the last
line, and checks every event arrived. After SIGINT, repost's database must hold
``streams`` flows and ``streams * (events + 1)`` events. Run from the repository root:

    .venv/bin/python bench/sse_first_event.py                       # 20 streams x 20 events x 50 ms
    .venv/bin/python bench/sse_first_event.py --streams 3           # quick check
    .venv/bin/python bench/sse_first_event.py --json --check        # JSON summary, exit 1 on FAIL

PASS: median first event (repost - direct) <= --max-overhead-ms (10), every
stream complete on every path, every stream recorded, and repost's median
first event below mitmdump's.
Exit status: 0 done, 1 a criterion failed (with --check), 2 a service failed to
start, 3 the bench itself failed (the temp dir is then kept).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _harness import (  # noqa: E402
    HOST,
    UPSTREAM_PY,
    BenchError,
    ProcessStartError,
    Service,
    free_port,
    resolve_executable,
    start_service,
    stop_service,
)

PATHS = ("direct", "repost", "mitmdump")
CHAT_PATH = "/v1/chat/completions"
STREAM_TIMEOUT_S = 60.0


@dataclass
class PathStats:
    name: str
    first_ms: list[float] = field(default_factory=list)
    total_ms: list[float] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    complete: int = 0


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p90 of 20 values = the 18th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def request_body(i: int) -> dict:
    return {
        "model": "bench-model",
        "stream": True,
        "messages": [
            {"role": "system", "content": "You are a benchmark."},
            {"role": "user", "content": f"Stream number {i}: say something, token by token."},
        ],
    }


def one_stream(client: httpx.Client, i: int, events: int) -> tuple[float, float, int, bool]:
    """POST and read the stream: (ms to first data line, ms to last line, data lines, saw [DONE])."""
    body = request_body(i)
    first = last = None
    data_lines = 0
    done = False
    t0 = time.perf_counter()
    with client.stream("POST", CHAT_PATH, json=body) as response:
        if response.status_code != 200:
            raise BenchError(f"status {response.status_code}")
        ctype = response.headers.get("content-type", "")
        if not ctype.startswith("text/event-stream"):
            raise BenchError(f"content-type {ctype!r}")
        for line in response.iter_lines():
            now = time.perf_counter()
            if not line:
                continue
            last = now
            if line.startswith("data:"):
                if first is None:
                    first = now
                data_lines += 1
                if line == "data: [DONE]":
                    done = True
    if first is None or last is None:
        raise BenchError("no data line received")
    return (first - t0) * 1000, (last - t0) * 1000, data_lines, done


def count(db: Path, sql: str) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchone()[0]


def count_events(db: Path) -> int:
    """Every recorded stream's events, as `repost show` reads them (parsed from the stored stream)."""
    from repost.store.database import open_database
    from repost.store.queries import get_flow

    conn = open_database(str(db))
    try:
        return sum(len(get_flow(conn, i)["events"]) for (i,) in conn.execute("SELECT id FROM flows").fetchall())
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=20, help="streams per path (default 20)")
    parser.add_argument("--events", type=int, default=20, help="chunk events per stream, [DONE] excluded (default 20)")
    parser.add_argument("--interval-ms", type=float, default=50.0, help="pause between events (default 50)")
    parser.add_argument("--think-ms", type=float, default=50.0, help="pause before the first event (default 50)")
    parser.add_argument("--max-overhead-ms", type=float, default=10.0, help="PASS bound on median first event, repost - direct")
    parser.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 when a criterion fails")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, database)")
    args = parser.parse_args(argv)
    if args.streams < 1 or args.events < 0:
        parser.error("--streams must be >= 1 and --events >= 0")

    def say(text: str = "") -> None:
        if not args.json:
            print(text, flush=True)

    tmp = Path(tempfile.mkdtemp(prefix="repost-sse-bench-"))
    db = tmp / "record.db"
    services: dict[str, Service] = {}
    clients: dict[str, httpx.Client] = {}
    keep = args.keep
    try:
        up_port = free_port()
        services["upstream"] = start_service(
            "upstream",
            [sys.executable, str(UPSTREAM_PY), "--port", str(up_port), "--sse-events", str(args.events),
             "--sse-interval-ms", str(args.interval_ms), "--sse-think-ms", str(args.think_ms)],
            up_port, tmp,
        )
        upstream_url = f"http://{HOST}:{up_port}"
        repost_port, mitm_port = free_port(), free_port()
        commands = {
            "repost": [resolve_executable("repost"), "record", "--db", str(db), "--listen-host", HOST,
                       "--listen-port", str(repost_port), "--mode", f"reverse:{upstream_url}"],
            "mitmdump": [resolve_executable("mitmdump"), "--listen-host", HOST, "--listen-port", str(mitm_port),
                         "--mode", f"reverse:{upstream_url}", "-q"],
        }
        services["repost"] = start_service("repost", commands["repost"], repost_port, tmp)
        services["mitmdump"] = start_service("mitmdump", commands["mitmdump"], mitm_port, tmp)
        ports = {"direct": up_port, "repost": repost_port, "mitmdump": mitm_port}

        stats = {name: PathStats(name) for name in PATHS}
        for name in PATHS:
            clients[name] = httpx.Client(base_url=f"http://{HOST}:{ports[name]}", trust_env=False,
                                         timeout=STREAM_TIMEOUT_S)
            # Opens the client->proxy->upstream connections; GET is not recorded (repost records POST).
            clients[name].get("/__count").raise_for_status()

        say(f"{args.streams} streams per path, {args.events} events + [DONE], every {args.interval_ms:g} ms "
            f"after {args.think_ms:g} ms; upstream :{up_port}, repost :{repost_port}, mitmdump :{mitm_port}")
        for i in range(args.streams):
            order = PATHS[i % 3:] + PATHS[:i % 3]
            cells = {}
            for name in order:
                st = stats[name]
                try:
                    first, total, lines, done = one_stream(clients[name], i, args.events)
                except (httpx.HTTPError, BenchError) as exc:
                    st.bad.append(f"stream {i}: {exc}")
                    cells[name] = "error"
                    continue
                if lines != args.events + 1 or not done:
                    st.bad.append(f"stream {i}: {lines} data lines, [DONE] {'seen' if done else 'missing'}")
                else:
                    st.complete += 1
                st.first_ms.append(first)
                st.total_ms.append(total)
                cells[name] = f"{first:7.1f} /{total:7.1f}"
            say(f"  stream {i + 1:2d}  first/last ms  " + "  ".join(f"{n} {cells[n]}" for n in PATHS))

        for client in clients.values():
            client.close()
        clients.clear()

        repost_exit = stop_service(services["repost"])
        repost_signal = services["repost"].stop_signal
        flows = count(db, "SELECT count(*) FROM flows") if db.exists() else 0
        events = count_events(db) if db.exists() else 0
        want_events = args.streams * (args.events + 1)

        summary: dict = {"streams": args.streams, "events": args.events, "interval_ms": args.interval_ms,
                         "think_ms": args.think_ms, "commands": commands, "paths": {}}
        for name in PATHS:
            st = stats[name]
            if not st.first_ms:
                raise BenchError(f"{name}: no stream completed: {st.bad[:3]}")
            summary["paths"][name] = {
                "first_event_median_ms": round(statistics.median(st.first_ms), 2),
                "first_event_p90_ms": round(percentile(st.first_ms, 90), 2),
                "total_median_ms": round(statistics.median(st.total_ms), 2),
                "completed": st.complete,
                "problems": st.bad,
            }
        p = summary["paths"]
        repost_overhead = round(p["repost"]["first_event_median_ms"] - p["direct"]["first_event_median_ms"], 2)
        mitm_overhead = round(p["mitmdump"]["first_event_median_ms"] - p["direct"]["first_event_median_ms"], 2)
        all_complete = all(p[n]["completed"] == args.streams for n in PATHS)
        recorded = flows == args.streams and events == want_events
        clean_stop = repost_exit == 0 and repost_signal == "SIGINT"
        criteria = {
            "first_event_overhead_ok": repost_overhead <= args.max_overhead_ms,
            "beats_mitmdump": p["repost"]["first_event_median_ms"] < p["mitmdump"]["first_event_median_ms"],
            "all_streams_complete": all_complete,
            "all_recorded": recorded,
            "clean_stop": clean_stop,
        }
        passed = all(criteria.values())
        summary.update(
            repost_minus_direct_ms=repost_overhead,
            mitmdump_minus_direct_ms=mitm_overhead,
            max_overhead_ms=args.max_overhead_ms,
            recorded={"flows": flows, "flows_expected": args.streams,
                      "events": events, "events_expected": want_events,
                      "repost_exit": repost_exit, "stop_signal": repost_signal},
            criteria=criteria,
            passed=passed,
        )

        say()
        say(f"{'path':<10}{'first median':>14}{'first p90':>12}{'total median':>14}{'complete':>10}")
        for name in PATHS:
            r = p[name]
            say(f"{name:<10}{r['first_event_median_ms']:>11.1f} ms{r['first_event_p90_ms']:>9.1f} ms"
                f"{r['total_median_ms']:>11.1f} ms{r['completed']:>6}/{args.streams}")
        for name in PATHS:
            for problem in p[name]["problems"]:
                say(f"  {name}: {problem}")
        say()
        say(f"first event, repost - direct:   {repost_overhead:+.1f} ms (must be <= {args.max_overhead_ms:g})")
        say(f"first event, mitmdump - direct: {mitm_overhead:+.1f} ms")
        say(f"recorded: flows {flows}/{args.streams}, events {events}/{want_events}; "
            f"repost stopped by {repost_signal}, exit {repost_exit}")
        failed = [k for k, ok in criteria.items() if not ok]
        say(f"PASS: {passed}" + (f" (failed: {', '.join(failed)})" if failed else ""))
        if args.json:
            print(json.dumps(summary, indent=2))
        return 1 if (args.check and not passed) else 0
    except ProcessStartError as exc:
        keep = True
        print(f"sse_first_event: {exc}\n  temp dir kept: {tmp}", file=sys.stderr)
        return 2
    except (BenchError, httpx.HTTPError, sqlite3.Error, OSError) as exc:
        keep = True
        print(f"sse_first_event: {exc}\n  temp dir kept: {tmp}", file=sys.stderr)
        return 3
    finally:
        for client in clients.values():
            client.close()
        for service in services.values():
            stop_service(service)
        if keep:
            if args.keep:
                print(f"temp dir kept: {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
