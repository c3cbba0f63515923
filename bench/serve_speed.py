"""Serve speed: `repost serve` vs `mitmdump --server-replay` on the same flows (issue 15).

Sub-measures (``--measures``, default all):

  throughput  wrk POSTs cycling through 1,000 distinct recorded bodies against
              repost serve (server mode), repost serve --mode reverse:URL and
              mitmdump --server-replay FILE (reverse mode, answers reused, misses killed);
  startup     time from starting each server to its first 200, and RSS after 1,000
              answers, for each of --sizes;
  stream      an SSE recording with known chunk times: the first event's offset at the
              client against the recorded one, median of --streams (repost at --speed 1).

    .venv/bin/python bench/serve_speed.py                                  # 100,000 flows, all
    .venv/bin/python bench/serve_speed.py --measures throughput --rounds 3 --duration 5
    .venv/bin/python bench/serve_speed.py --measures startup --sizes 10000,100000,1000000
    .venv/bin/python bench/serve_speed.py --json --check

Stores are generated through the store's own write path (``make_snapshot`` +
``BatchWriter``), keyed with ``index_match_keys`` and cached in /tmp with a sidecar;
the mitmproxy flow file comes from ``repost export --format mitm``.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
from inspect_latency import move_into_place  # noqa: E402

GEN_VERSION = 1
DISTINCT = 1000
PATH = "/orders"
# The recorded destination: the discard port on loopback. Nothing listens there and
# nothing may connect: mitmdump runs with lazy connections and kills misses; repost
# never connects in any mode without --on-miss forward.
ORIGIN = ("127.0.0.1", 9)
ORIGIN_URL = f"http://{ORIGIN[0]}:{ORIGIN[1]}"
KEY_FILE = Path("/tmp/repost-bench-serve.key")
BATCH = 2000

MIN_SERVER_RATIO = 3.0
MIN_PROXY_RATIO = 1.5
MAX_STARTUP_S = 1.0
MAX_RSS_GROWTH_MB = 50.0
MAX_STREAM_OFFSET_MS = 5.0

# the stream recording: first event FIRST_MS after the response began, then one every INTERVAL_MS
STREAM_PATH = "/v1/chat/completions"
FIRST_MS = 250.0
INTERVAL_MS = 30.0
EVENTS = 20


def body(k: int) -> bytes:
    doc = {"order": k, "customer": f"customer-{k % 97}", "items": [{"sku": f"SKU-{k:06d}", "qty": 1 + k % 5}],
           "currency": "EUR", "note": ""}  # fmt: skip
    raw = json.dumps(doc, separators=(",", ":"))
    doc["note"] = "x" * max(0, 200 - len(raw))
    return json.dumps(doc, separators=(",", ":")).encode()


BODIES = [body(k) for k in range(DISTINCT)]


# ---------------------------------------------------------------------------
# stores


def _key() -> bytes:
    if not KEY_FILE.exists():
        KEY_FILE.write_bytes(b"repost-bench-serve-fingerprint!!")  # 32 bytes, fixed: cached stores stay valid
        KEY_FILE.chmod(0o600)
    return KEY_FILE.read_bytes()


def _snapshots(start: int, count: int, t0: float) -> list[tuple]:
    from repost.store.capture import make_snapshot

    out = []
    host = f"{ORIGIN[0]}:{ORIGIN[1]}"
    for i in range(start, start + count):
        b = BODIES[i % DISTINCT]
        started = t0 + i * 0.001
        resp = json.dumps({"ok": True, "order": i % DISTINCT, "id": i + 1}).encode()
        out.append(make_snapshot(
            flow_id=f"{i:032x}", started=started, method="POST", scheme="http", host=ORIGIN[0], port=ORIGIN[1],
            target=PATH, headers=[("Host", host), ("User-Agent", "serve-bench/1"), ("Content-Type", "application/json"),
                                  ("Content-Length", str(len(b)))],
            body=b, error=None,
            response=(200, "OK", "HTTP/1.1", ((b"Content-Type", b"application/json"),
                                              (b"Content-Length", str(len(resp)).encode())), resp, started + 0.002),
        ))  # fmt: skip
    return out


def _schema() -> str:
    """The store's newest migration: a cached store made by another schema (another branch) is not reused."""
    from repost.store.schema import KNOWN_MIGRATIONS

    return KNOWN_MIGRATIONS[-1]


def store_path(n: int) -> Path:
    return Path(f"/tmp/repost-bench-serve-{n}-{_schema()}.db")


def ensure_store(n: int, log) -> dict:
    """The cached store of n flows (generated and keyed if missing), and its sidecar."""
    path = store_path(n)
    side = Path(f"{path}.json")
    if path.exists() and side.exists():
        info = json.loads(side.read_text())
        if info.get("version") == GEN_VERSION and info.get("flows") == n:
            return info
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys
    from repost.store.redact import Redactor
    from repost.store.writer import BatchWriter

    partial = Path(f"{path}.partial")
    for p in (partial, path):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{p}{suffix}").unlink(missing_ok=True)
    side.unlink(missing_ok=True)
    log(f"generating {n:,} flows into {path} ...")
    t0 = time.perf_counter()
    writer = BatchWriter(str(partial), redactor=Redactor(_key()), max_body=10 * 1024 * 1024)
    base = time.time() - n * 0.001 - 60
    try:
        for start in range(0, n, BATCH):
            if not writer.write(_snapshots(start, min(BATCH, n - start), base)):
                raise h.BenchError(f"BatchWriter.write failed: {writer.last_error}")
    finally:
        writer.close()
    if writer.written != n or writer.lost:
        raise h.BenchError(f"wrote {writer.written} flows, lost {writer.lost}; expected {n}")
    t_write = time.perf_counter() - t0
    conn = open_database(str(partial))
    keyed = index_match_keys(conn)
    conn.close()
    t_key = time.perf_counter() - t0 - t_write
    if keyed != n:
        raise h.BenchError(f"index_match_keys keyed {keyed} of {n} flows")
    move_into_place(partial, path)
    info = {"version": GEN_VERSION, "flows": n, "write_s": round(t_write, 1), "index_s": round(t_key, 1)}
    side.write_text(json.dumps(info))
    log(f"  {n:,} flows: written in {t_write:.1f} s, keyed in {t_key:.1f} s")
    return info


def ensure_flow_file(n: int, env: dict, log) -> Path:
    """The same flows as a mitmproxy flow file, by `repost export --format mitm` (cached)."""
    db = store_path(n)
    out = Path(f"/tmp/repost-bench-serve-{n}-{_schema()}.mitm")
    stamp = Path(f"{out}.done")
    if out.exists() and stamp.exists() and stamp.read_text() == str(db.stat().st_mtime):
        return out
    log(f"exporting {n:,} flows to {out} (repost export --format mitm) ...")
    t0 = time.perf_counter()
    done = subprocess.run([h.resolve_executable("repost"), "export", "--format", "mitm", "--db", str(db), "-o", str(out)],
                          env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise h.BenchError(f"repost export failed: {done.stderr.strip()}")
    stamp.write_text(str(db.stat().st_mtime))
    log(f"  exported in {time.perf_counter() - t0:.1f} s ({out.stat().st_size / 1e6:.0f} MB)")
    return out


def stream_store(tmp: Path) -> Path:
    """One recorded SSE stream (first event at FIRST_MS, then every INTERVAL_MS), keyed."""
    from repost.store.capture import Streamed, make_snapshot
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys
    from repost.store.redact import Redactor
    from repost.store.writer import BatchWriter

    events = [f'data: {{"choices":[{{"delta":{{"content":"w{i}"}}}}]}}\n\n'.encode() for i in range(EVENTS)]
    events.append(b"data: [DONE]\n\n")
    chunks = tuple((FIRST_MS + i * INTERVAL_MS, len(e)) for i, e in enumerate(events))
    content = b"".join(events)
    req = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    started = time.time() - 60
    whole = Streamed(content, len(content), hashlib.sha256(content).hexdigest(), True, chunks)
    snap = make_snapshot(
        flow_id="5" * 32, started=started, method="POST", scheme="http", host=ORIGIN[0], port=ORIGIN[1],
        target=STREAM_PATH, headers=[("Host", f"{ORIGIN[0]}:{ORIGIN[1]}"), ("Content-Type", "application/json"),
                                     ("Content-Length", str(len(req)))],
        body=req, error=None,
        response=(200, "OK", "HTTP/1.1", ((b"Content-Type", b"text/event-stream"), (b"Cache-Control", b"no-cache"),
                                          (b"Transfer-Encoding", b"chunked")), whole, started + 1),
    )  # fmt: skip
    db = tmp / "stream.db"
    writer = BatchWriter(str(db), redactor=Redactor(_key()), max_body=10 * 1024 * 1024)
    writer.write([snap])
    writer.close()
    conn = open_database(str(db))
    index_match_keys(conn)
    got = conn.execute("SELECT response_chunks FROM flows").fetchone()[0]
    conn.close()
    if not got:
        raise h.BenchError("the generated stream has no chunk times")
    return db


# ---------------------------------------------------------------------------
# servers


def bench_env() -> dict:
    env = dict(os.environ, REPOST_KEY_FILE=str(KEY_FILE), NO_COLOR="1", PYTHONPYCACHEPREFIX="/tmp/repost-bench-pycache")
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # an installed repost (and mitmdump) has its bytecode
    return env


REPOST_CMD = {"repost": "repost", "repost-reverse": "repost", "repost-regular": "repost"}  # --repost-cmd / --reverse-cmd: try a variant
# Servers used as HTTP proxies (regular mode): their requests name the recorded origin (absolute form).
PROXIES = {"repost-regular", "mitmdump-regular"}


def target_of(kind: str) -> str:
    return f"{ORIGIN_URL}{PATH}" if kind in PROXIES else PATH


def server_argv(kind: str, port: int, db: Path | None = None, flows: Path | None = None, extra=()) -> list[str]:
    listen = ["--listen-host", h.HOST, "--listen-port", str(port)]
    if kind == "repost":
        return [*h.command_prefix(REPOST_CMD[kind]), "serve", "--db", str(db), *listen, *extra]
    if kind == "repost-reverse":
        return [*h.command_prefix(REPOST_CMD[kind]), "serve", "--db", str(db), "--mode", f"reverse:{ORIGIN_URL}", *listen, *extra]
    if kind == "repost-regular":
        return [*h.command_prefix(REPOST_CMD[kind]), "serve", "--db", str(db), "--mode", "regular", *listen, *extra]
    if kind in ("mitmdump", "mitmdump-regular"):
        mode = "regular" if kind == "mitmdump-regular" else f"reverse:{ORIGIN_URL}"
        return [h.resolve_executable("mitmdump"), "--mode", mode, *listen,
                "--server-replay", str(flows), "--set", "server_replay_reuse=true", "--set", "server_replay_extra=kill",
                "--set", "connection_strategy=lazy", *extra]  # fmt: skip
    raise ValueError(kind)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict) -> subprocess.Popen:
    log = open(log_dir / f"{name}.log", "ab")
    log.write(f"$ {' '.join(argv)}\n".encode())
    log.flush()
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                cwd=h.REPO_DIR, env=env, start_new_session=True)  # fmt: skip
    finally:
        log.close()


def stop(name: str, proc: subprocess.Popen, port: int, log_dir: Path) -> int:
    return h.stop_service(h.Service(name, proc, port, log_dir / f"{name}.log"))


def post(conn: http.client.HTTPConnection, path: str, data: bytes) -> tuple[int, dict]:
    conn.request("POST", path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}


def first_answer(proc: subprocess.Popen, port: int, t0: float, timeout: float, target: str = PATH) -> float:
    """Seconds from t0 (the spawn) to the first 200 to a recorded POST; polls with a deadline."""
    deadline = t0 + timeout
    while True:
        if proc.poll() is not None:
            raise h.ProcessStartError(f"server exited with {proc.returncode} before answering")
        try:
            conn = http.client.HTTPConnection(h.HOST, port, timeout=timeout)
            try:
                status, _ = post(conn, target, BODIES[0])
            finally:
                conn.close()
            if status == 200:
                return time.perf_counter() - t0
            raise h.BenchError(f"first answer was {status}, not 200")
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            pass
        if time.perf_counter() >= deadline:
            raise h.ProcessStartError(f"no answer on port {port} after {timeout:.0f}s")
        time.sleep(0.005)


def check_answers(port: int, count: int = DISTINCT, repost: bool = False, distinct: int = DISTINCT, target: str = PATH) -> dict:
    """Send ``count`` POSTs cycling through ``distinct`` recorded bodies on one keep-alive connection;
    count the statuses (all must be 200)."""
    statuses: dict[int, int] = {}
    conn = http.client.HTTPConnection(h.HOST, port, timeout=30)
    try:
        for i in range(count):
            status, headers = post(conn, target, BODIES[i % distinct])
            statuses[status] = statuses.get(status, 0) + 1
            if repost and status == 200 and "repost-flow" not in headers:
                raise h.BenchError("a 200 without Repost-Flow: not repost's answer")
    finally:
        conn.close()
    return statuses


# ---------------------------------------------------------------------------
# throughput


def write_lua(path: Path, target: str = PATH) -> Path:
    """wrk script: POST target, the body cycling through the DISTINCT recorded ones (per thread)."""
    lines = ['wrk.method = "POST"', 'wrk.headers["Content-Type"] = "application/json"', "local bodies = {"]
    lines += [f"  [==[{b.decode()}]==]," for b in BODIES]
    lines += ["}", "local i = 0", "request = function()", "  i = i % #bodies + 1",
              f'  return wrk.format(nil, "{target}", nil, bodies[i])', "end"]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path


def measure_throughput(args, tmp: Path, env: dict, log) -> dict:
    n = args.flows
    ensure_store(n, log)
    flows = ensure_flow_file(n, env, log)
    luas = {False: write_lua(tmp / "bodies.lua"), True: write_lua(tmp / "bodies-proxy.lua", f"{ORIGIN_URL}{PATH}")}
    kinds = ["repost", "repost-reverse", "mitmdump"] + (["repost-regular", "mitmdump-regular"] if args.regular else [])
    procs: dict[str, tuple[subprocess.Popen, int]] = {}
    results: dict[str, list] = {k: [] for k in kinds}
    checks = {}
    try:
        for kind in kinds:
            port = h.free_port()
            t0 = time.perf_counter()
            proc = spawn(f"tp-{kind}", server_argv(kind, port, db=store_path(n), flows=flows), tmp, env)
            procs[kind] = (proc, port)
            secs = first_answer(proc, port, t0, timeout=600, target=target_of(kind))
            checks[kind] = check_answers(port, repost=kind.startswith("repost"), target=target_of(kind))
            log(f"  {kind:15s} up, first answer after {secs:.2f} s; {DISTINCT} distinct bodies answered: {checks[kind]}")
            if set(checks[kind]) != {200}:
                raise h.BenchError(f"{kind} did not answer 200 to every recorded body: {checks[kind]}")
        for kind in kinds:  # warm-up (not counted)
            w = h.run_wrk(procs[kind][1], args.warmup, connections=args.connections, script=luas[kind in PROXIES],
                          log_path=tmp / "wrk.log")  # fmt: skip
            if w.errors:
                raise h.BenchError(f"{kind} warm-up: {w.non2xx} non-2xx, {w.socket_errors} socket errors")
        for r in range(args.rounds):
            order = kinds if r % 2 == 0 else kinds[::-1]
            line = []
            for kind in order:
                w = h.run_wrk(procs[kind][1], args.duration, connections=args.connections, script=luas[kind in PROXIES],
                              log_path=tmp / "wrk.log")  # fmt: skip
                results[kind].append(w)
                line.append(f"{kind} {w.rps:8.1f} req/s (p50 {w.p50_ms:.1f} ms, non-2xx {w.non2xx}, sock err {w.socket_errors})")
            log(f"  round {r + 1}: " + "; ".join(line))
    finally:
        rss = {k: round(h.tree_rss_mb(p.pid), 1) for k, (p, _) in procs.items() if p.poll() is None}
        for kind, (proc, port) in procs.items():
            stop(f"tp-{kind}", proc, port, tmp)
    per_round = [
        {"server_ratio": results["repost"][i].rps / results["mitmdump"][i].rps,
         "proxy_ratio": results["repost-reverse"][i].rps / results["mitmdump"][i].rps,
         "regular_ratio": results["repost-regular"][i].rps / results["mitmdump-regular"][i].rps if args.regular else None}
        for i in range(args.rounds)
    ]  # fmt: skip
    server_ratio = statistics.median(p["server_ratio"] for p in per_round)
    proxy_ratio = statistics.median(p["proxy_ratio"] for p in per_round)
    regular_ratio = statistics.median(p["regular_ratio"] for p in per_round) if args.regular else None
    errors = sum(w.errors for ws in results.values() for w in ws)
    return {
        "flows": n, "rounds": args.rounds, "duration_s": args.duration, "connections": args.connections,
        "rps": {k: [round(w.rps, 1) for w in ws] for k, ws in results.items()},
        "median_rps": {k: round(statistics.median(w.rps for w in ws), 1) for k, ws in results.items()},
        "p50_ms": {k: [w.p50_ms for w in ws] for k, ws in results.items()},
        "non2xx": {k: sum(w.non2xx for w in ws) for k, ws in results.items()},
        "socket_errors": {k: sum(w.socket_errors for w in ws) for k, ws in results.items()},
        "rss_mb_after": rss, "checks": {k: {str(s): c for s, c in v.items()} for k, v in checks.items()},
        "server_ratios": [round(p["server_ratio"], 2) for p in per_round],
        "proxy_ratios": [round(p["proxy_ratio"], 2) for p in per_round],
        "median_server_ratio": round(server_ratio, 2), "median_proxy_ratio": round(proxy_ratio, 2),
        "regular_ratios": [round(p["regular_ratio"], 2) for p in per_round] if args.regular else None,
        "median_regular_ratio": round(regular_ratio, 2) if args.regular else None,
        "pass": server_ratio >= MIN_SERVER_RATIO and proxy_ratio >= MIN_PROXY_RATIO and errors == 0
                and (regular_ratio is None or regular_ratio >= MIN_PROXY_RATIO),
    }  # fmt: skip


# ---------------------------------------------------------------------------
# start-up


def one_startup(kind: str, n: int, tmp: Path, env: dict, flows: Path | None, tag: str, distinct: int = DISTINCT) -> dict:
    port = h.free_port()
    name = f"startup-{kind}-{n}-{tag}"
    t0 = time.perf_counter()
    proc = spawn(name, server_argv(kind, port, db=store_path(n), flows=flows), tmp, env)
    try:
        first = first_answer(proc, port, t0, timeout=1800)
        rss_first = h.tree_rss_mb(proc.pid)
        statuses = check_answers(port, repost=kind != "mitmdump", distinct=distinct)
        rss = h.tree_rss_mb(proc.pid)
    finally:
        stop(name, proc, port, tmp)
    if set(statuses) != {200}:
        raise h.BenchError(f"{kind} at {n} flows: not every answer was 200: {statuses}")
    return {"first_answer_s": round(first, 3), "rss_first_mb": round(rss_first, 1), "rss_mb": round(rss, 1)}


def measure_startup(args, tmp: Path, env: dict, log) -> dict:
    sizes = [int(s) for s in args.sizes.split(",")]
    out: dict = {"sizes": sizes, "runs": args.startup_runs, "repost": {}, "repost-reverse": {}, "mitmdump": {}}
    # mitmproxy's own start-up, the floor of the proxy modes: mitmdump replaying one flow.
    ensure_store(sizes[0], log)
    one = tmp / "one.mitm"
    done = subprocess.run([h.resolve_executable("repost"), "export", "--format", "mitm", "--db", str(store_path(sizes[0])),
                           "--limit", "1", "-o", str(one)], env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise h.BenchError(f"repost export --limit 1 failed: {done.stderr.strip()}")
    floor = [one_startup("mitmdump", sizes[0], tmp, env, one, f"floor{i}", distinct=1)["first_answer_s"] for i in range(args.startup_runs)]
    out["mitmdump_one_flow_s"] = statistics.median(floor)
    log(f"  {'mitmdump':15s}         1 flow : first answer {floor} s (mitmproxy's own start-up)")
    for n in sizes:
        ensure_store(n, log)
        baseline = n <= args.mitmdump_max
        flows = ensure_flow_file(n, env, log) if baseline else None
        for kind in ("repost", "repost-reverse"):
            runs = [one_startup(kind, n, tmp, env, None, str(i)) for i in range(args.startup_runs)]
            out[kind][n] = {
                "first_answer_s": statistics.median(r["first_answer_s"] for r in runs),
                "first_answer_runs": [r["first_answer_s"] for r in runs],
                "rss_mb": statistics.median(r["rss_mb"] for r in runs),
            }
            log(f"  {kind:15s} {n:>9,} flows: first answer {out[kind][n]['first_answer_runs']} s; "
                f"RSS after {DISTINCT} answers {out[kind][n]['rss_mb']:.1f} MB")  # fmt: skip
        if baseline:
            r = one_startup("mitmdump", n, tmp, env, flows, "0")
            out["mitmdump"][n] = {"first_answer_s": r["first_answer_s"], "rss_mb": r["rss_mb"]}
            log(f"  {'mitmdump':15s} {n:>9,} flows: first answer {r['first_answer_s']} s; RSS after {DISTINCT} answers {r['rss_mb']:.1f} MB")
        else:
            log(f"  mitmdump skipped at {n:,} flows (--mitmdump-max {args.mitmdump_max:,})")
    checks = []
    for kind in ("repost", "repost-reverse"):
        firsts = [v["first_answer_s"] for v in out[kind].values()]
        rss = [v["rss_mb"] for v in out[kind].values()]
        out[kind + "_growth_mb"] = round(max(rss) - min(rss), 1)
        checks.append(max(firsts) < MAX_STARTUP_S and out[kind + "_growth_mb"] <= MAX_RSS_GROWTH_MB)
    out["pass"] = all(checks)
    return out


# ---------------------------------------------------------------------------
# streams


def measure_stream(args, tmp: Path, env: dict, log) -> dict:
    import httpx

    db = stream_store(tmp)
    flows = tmp / "stream.mitm"
    done = subprocess.run([h.resolve_executable("repost"), "export", "--format", "mitm", "--db", str(db), "-o", str(flows)],
                          env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise h.BenchError(f"repost export (stream) failed: {done.stderr.strip()}")
    req = b'{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}'
    kinds = ["repost", "mitmdump"]
    procs, clients = {}, {}
    samples: dict[str, list] = {k: [] for k in kinds}
    try:
        for kind in kinds:
            port = h.free_port()
            extra = ("--speed", "1") if kind == "repost" else ()
            procs[kind] = (spawn(f"stream-{kind}", server_argv(kind, port, db=db, flows=flows, extra=extra), tmp, env), port)
            h.wait_for_port(port, proc=procs[kind][0], timeout=120)
            clients[kind] = httpx.Client(base_url=f"http://{h.HOST}:{port}", timeout=30)

        def one(kind: str) -> dict:
            t0 = time.perf_counter()
            first = headers = None
            lines = 0
            with clients[kind].stream("POST", STREAM_PATH, content=req, headers={"Content-Type": "application/json"}) as resp:
                headers = time.perf_counter()
                if resp.status_code != 200:
                    raise h.BenchError(f"{kind}: stream answered {resp.status_code}")
                for line in resp.iter_lines():
                    if line.startswith("data:"):
                        lines += 1
                        if first is None:
                            first = time.perf_counter()
            if lines != EVENTS + 1:
                raise h.BenchError(f"{kind}: {lines} events, expected {EVENTS + 1}")
            # the recorded offsets count from the response's start (its headers, as the recorder saw them)
            return {"first_ms": (first - t0) * 1000, "headers_ms": (headers - t0) * 1000, "offset_ms": (first - headers) * 1000}

        for kind in kinds:
            one(kind)  # warm-up: connection open, first lookup done
        for i in range(args.streams):
            for kind in kinds if i % 2 == 0 else kinds[::-1]:
                samples[kind].append(one(kind))
    finally:
        for c in clients.values():
            c.close()
        for kind, (proc, port) in procs.items():
            stop(f"stream-{kind}", proc, port, tmp)
    out = {"recorded_first_ms": FIRST_MS, "streams": args.streams}
    for kind in kinds:
        offsets = [s["offset_ms"] for s in samples[kind]]
        out[kind] = {
            "median_offset_ms": round(statistics.median(offsets), 2),
            "median_offset_error_ms": round(statistics.median(offsets) - FIRST_MS, 2),
            "min_offset_ms": round(min(offsets), 2), "max_offset_ms": round(max(offsets), 2),
            "median_headers_ms": round(statistics.median(s["headers_ms"] for s in samples[kind]), 2),
            "median_first_from_request_ms": round(statistics.median(s["first_ms"] for s in samples[kind]), 2),
        }  # fmt: skip
        o = out[kind]
        log(f"  {kind:9s} first event {o['median_offset_ms']:.1f} ms after the headers (median of {args.streams}; "
            f"min {o['min_offset_ms']:.1f}, max {o['max_offset_ms']:.1f}), recorded {FIRST_MS:.0f} ms: "
            f"error {o['median_offset_error_ms']:+.1f} ms; headers {o['median_headers_ms']:.1f} ms and first event "
            f"{o['median_first_from_request_ms']:.1f} ms after sending")  # fmt: skip
    out["pass"] = abs(out["repost"]["median_offset_error_ms"]) <= MAX_STREAM_OFFSET_MS
    return out


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measures", default="throughput,startup,stream", help="comma-separated: throughput,startup,stream")
    parser.add_argument("--flows", type=int, default=100_000, help="flows in the store for throughput (default 100,000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating wrk rounds (default 3)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of untimed wrk per server first (default 2)")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections (default 8, 2 threads)")
    parser.add_argument("--sizes", default="10000,100000", help="store sizes for start-up (default 10000,100000)")
    parser.add_argument("--startup-runs", type=int, default=3, help="start-ups per repost server and size (median)")
    parser.add_argument("--mitmdump-max", type=int, default=100_000, help="largest store mitmdump is started on")
    parser.add_argument("--streams", type=int, default=20, help="streams per server (default 20)")
    parser.add_argument("--repost-cmd", default="repost", help="command for repost serve (server mode), e.g. a patched variant")
    parser.add_argument("--reverse-cmd", default="repost", help="command for repost serve --mode reverse:URL")
    parser.add_argument("--json", action="store_true", help="print the JSON summary at the end")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    parser.add_argument("--no-regular", dest="regular", action="store_false",
                        help="throughput: leave out regular (HTTP proxy) mode, repost serve --mode regular vs mitmdump --mode regular")  # fmt: skip
    args = parser.parse_args(argv)
    REPOST_CMD.update({"repost": args.repost_cmd, "repost-reverse": args.reverse_cmd})
    measures = [m.strip() for m in args.measures.split(",") if m.strip()]
    if unknown := set(measures) - {"throughput", "startup", "stream"}:
        parser.error(f"unknown measures: {', '.join(sorted(unknown))}")
    if shutil.which("wrk") is None and "throughput" in measures:
        print("serve_speed: wrk is not on PATH", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="repost-serve-speed-"))
    keep = args.keep

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    log(f"work dir {tmp}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    env = bench_env()
    _key()
    summary: dict = {"load_before": round(os.getloadavg()[0], 2)}
    try:
        for m in measures:
            log(f"{m}:")
            summary[m] = {"throughput": measure_throughput, "startup": measure_startup, "stream": measure_stream}[m](args, tmp, env, log)
    except h.ProcessStartError as e:
        keep = True
        print(f"serve_speed: {e}\n  (logs kept in {tmp})", file=sys.stderr)
        return 2
    except (h.BenchError, sqlite3.Error) as e:
        keep = True
        print(f"serve_speed: {e}\n  (logs kept in {tmp})", file=sys.stderr)
        return 3
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
    summary["load_after"] = round(os.getloadavg()[0], 2)
    if "throughput" in summary:
        t = summary["throughput"]
        log(f"throughput ({t['flows']:,} flows): median req/s {t['median_rps']}; repost/mitmdump server mode "
            f"{t['median_server_ratio']:.2f}x (need {MIN_SERVER_RATIO}), reverse mode {t['median_proxy_ratio']:.2f}x "
            + (f"regular mode {t['median_regular_ratio']:.2f}x " if t["median_regular_ratio"] is not None else "")
            + f"(need {MIN_PROXY_RATIO}); PASS: {t['pass']}")  # fmt: skip
    if "startup" in summary:
        s = summary["startup"]
        log(f"start-up: repost growth {s['repost_growth_mb']} MB, reverse {s['repost-reverse_growth_mb']} MB; PASS: {s['pass']}")
    if "stream" in summary:
        log(f"stream: repost first-event error {summary['stream']['repost']['median_offset_error_ms']:+.1f} ms; PASS: {summary['stream']['pass']}")
    if args.json:
        print(json.dumps(summary, indent=2))
    failed = any(not v["pass"] for k, v in summary.items() if isinstance(v, dict))
    return 1 if args.check and failed else 0


if __name__ == "__main__":
    sys.exit(main())
