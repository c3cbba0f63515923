"""Latency of the inspection commands (`repost list`, `repost show`) on a large store.

Builds (once, cached under /tmp) a database of --flows flows written through the
store's own write path: mitmproxy flows made with ``Request.make`` /
``Response.make`` (a few hundred templates, mutated per flow), captured with
``repost.store.capture.snapshot`` and written by ``BatchWriter.write`` in
batches of 500, with redaction on, as the recorder does. Then it times whole
commands (a subprocess of ``.venv/bin/repost``), several runs each, and checks
issue 3's targets. Run from the repository root:

    .venv/bin/python bench/inspect_latency.py                    # 1,000,000 flows, 7 runs
    .venv/bin/python bench/inspect_latency.py --flows 100000 --runs 5
    .venv/bin/python bench/inspect_latency.py --json             # JSON summary only on stdout
    .venv/bin/python bench/inspect_latency.py --regenerate       # rebuild the cached database
    .venv/bin/python bench/inspect_latency.py --reindex          # re-time the first FTS indexing

Exit status: 0 all targets met, 1 a target missed (with --check), 3 the bench failed.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import pty
import random
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
GEN_VERSION = 6  # bump when the generated data changes: cached databases are rebuilt
BATCH = 500
SEED = 20261126
PYCACHE = "/tmp/repost-bench-pycache"

RARE_WORD = "xylophonic"  # planted in RARE_COUNT flows (a few of them in gzip responses)
RARE_COUNT = 12
COMMON_WORD = "delivery"  # planted in ~40% of request bodies
COMMON_SHARE = 0.40
SPAN_S = 7 * 86400  # started_at spread over the last 7 days ...
NEWEST_AGO_S = 120  # ... the newest 2 minutes before generation

HOSTS = [
    ("api.shop.example.com", "https", 443), ("payments.example.com", "https", 443),
    ("api.openai.test", "https", 443), ("llm-gateway.internal", "http", 8080),
    ("orders.acme.test", "https", 443), ("users.acme.test", "https", 443),
    ("checkout.example.org", "https", 443), ("api.github.test", "https", 443),
    ("hooks.slack.test", "https", 443), ("inventory.local", "http", 8000),
    ("auth.example.com", "https", 443), ("search.example.net", "https", 443),
    ("billing.acme.test", "https", 443), ("api.stripe.test", "https", 443),
    ("notify.example.io", "https", 443), ("staging.shop.example.com", "https", 8443),
    ("localhost", "http", 5000), ("10.0.3.17", "http", 9000),
    ("analytics.example.com", "https", 443), ("cart.shop.example.com", "https", 443),
]  # fmt: skip

# (path template, weight, kind); {n} is a number
ROUTES = [
    ("/orders/{n}", 24, "order"), ("/orders", 8, "order"), ("/orders/{n}/cancel", 3, "order"),
    ("/v1/chat/completions", 20, "chat"), ("/v1/embeddings", 4, "chat"),
    ("/api/users/{n}/update", 14, "user"), ("/api/users", 3, "user"),
    ("/api/login", 2, "login"), ("/oauth/token", 1, "login"),
    ("/graphql", 6, "graphql"), ("/api/cart/{n}/items", 6, "order"),
    ("/api/payments", 4, "payment"), ("/webhooks/stripe", 3, "payment"),
    ("/v2/events?source=web&page={n}", 2, "event"),
]  # fmt: skip

STATUSES = [
    (200, "OK", 70), (201, "Created", 18), (202, "Accepted", 2), (204, "No Content", 1),
    (400, "Bad Request", 2), (401, "Unauthorized", 1), (403, "Forbidden", 0.5),
    (404, "Not Found", 1.5), (409, "Conflict", 0.5), (422, "Unprocessable Entity", 1),
    (429, "Too Many Requests", 0.7), (500, "Internal Server Error", 0.8),
    (502, "Bad Gateway", 0.6), (503, "Service Unavailable", 0.4),
]  # fmt: skip

METHODS = [("POST", 85), ("PUT", 6), ("PATCH", 6), ("DELETE", 3)]
GZIP_SHARE = 0.25  # responses sent with Content-Encoding: gzip
# Chat completions (POST /v1/chat/completions answered 2xx) that stream their answer as
# Server-Sent Events, as OpenAI-style SDKs do with stream=True: one event per token, ~200 B each.
STREAM_SHARE = 0.5
ERROR_SHARE = 0.003  # flows with no response (upstream down)

ENGLISH = """
the of and to in is you that it he was for on are as with his they at be this have from or one had
by word but not what all were we when your can said there use an each which she do how their if will
up other about out many then them these so some her would make like him into time has look two more
write go see number no way could people my than first water been call who oil its now find long down
day did get come made may part order item items customer address city street payment card invoice
total price amount currency quantity shipping status pending shipped cancelled refund discount coupon
product catalog cart checkout account user profile email phone name first last country region postal
message reply assistant system model temperature tokens stream prompt completion summary translate
explain question answer code python function error retry timeout latency request response server
client proxy record replay diff search index query filter header body json text gzip encoding
weather london paris berlin tokyo coffee tea chocolate book books library music guitar piano garden
mountain river ocean forest desert winter summer spring autumn monday friday morning evening night
""".split()
SYLLABLES = "ka lo mi ne ru sa ti vo ze ba de fi go hu ja ke li mo nu pa qui ra se to ul ve wa xi yo zu an el in or us".split()

SUMMARY_PATH_EXAMPLE = "/orders/123"


# ---------------------------------------------------------------------------
# data generation


class Generator:
    """Makes snapshots of realistic flows, cheaply, from mutated template flows."""

    def __init__(self, total: int, seed: int = SEED, now: float | None = None, stream_share: float = 0.0):
        from mitmproxy import flow as mflow
        from mitmproxy import http

        self.total = total
        self.stream_share = stream_share
        self.rng = rng = random.Random(seed)
        self.now = time.time() if now is None else now
        self.t_newest = self.now - NEWEST_AGO_S
        self.t_oldest = self.t_newest - SPAN_S
        self.step = (self.t_newest - self.t_oldest) / max(total - 1, 1)

        pseudo = sorted({"".join(rng.choice(SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(30000)})
        rng.shuffle(pseudo)
        vocab = [w for w in ENGLISH if w != COMMON_WORD] + [w for w in pseudo if w not in (RARE_WORD, COMMON_WORD)]
        self.vocab = vocab
        cum, acc = [], 0.0
        for k in range(len(vocab)):  # Zipf-like: a few words everywhere, a long tail of rare ones
            acc += 1.0 / (k + 8) ** 1.05
            cum.append(acc)
        self.cum = cum
        self.text = " ".join(rng.choices(vocab, cum_weights=cum, k=1_500_000))  # ~10 MB of text
        self.rare_at = set(rng.sample(range(total), min(RARE_COUNT, total)))

        self.host_cum = _cum([1.0 / (k + 2) for k in range(len(HOSTS))])  # a few busy hosts, a tail of quiet ones
        self.route_list = ROUTES
        self.route_cum = _cum([w for _, w, _ in ROUTES])
        self.status_list = STATUSES
        self.status_cum = _cum([w for *_, w in STATUSES])
        self.method_list = [m for m, _ in METHODS]
        self.method_cum = _cum([w for _, w in METHODS])
        self.user_agents = [
            b"okhttp/4.12.0", b"python-httpx/0.27.0", b"OpenAI/Python 1.40.0", b"curl/8.5.0",
            b"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)", b"axios/1.7.2", b"Go-http-client/2.0",
        ]  # fmt: skip
        self.servers = [b"nginx/1.25.3", b"uvicorn", b"cloudflare", b"envoy", b"gunicorn"]
        self.models = ["gpt-4o-mini", "gpt-4o", "claude-3-5-sonnet", "llama-3.1-70b", "mistral-large"]
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode

        # A few hundred template flows made the public way; each generated flow mutates one.
        self.templates = []
        self.error_cls = mflow.Error
        for i in range(300):
            host, scheme, port = HOSTS[i % len(HOSTS)]
            method = self.method_list[i % len(self.method_list)]
            req = http.Request.make(
                method, f"{scheme}://{host}:{port}/", b"{}", {"Content-Type": "application/json"}
            )
            resp = http.Response.make(200, b"{}", {"Content-Type": "application/json"})
            f = http.HTTPFlow(None, None)
            f.request, f.response = req, resp
            self.templates.append(f)

    # -- words and bodies

    def words(self, n: int) -> str:
        return " ".join(self.rng.choices(self.vocab, cum_weights=self.cum, k=n))

    def sized_words(self, nbytes: int) -> str:
        """About ``nbytes`` of text: a slice of a long Zipf-distributed word stream, at a random place."""
        text = self.text
        a = text.find(" ", self.rng.randrange(len(text) - nbytes - 64)) + 1
        b = text.rfind(" ", a, a + nbytes)
        return text[a:b] if b > a else text[a : text.find(" ", a)]

    def request_body(self, kind: str, n: int, target: int, plant: str | None, stream: bool = False) -> str:
        rng = self.rng
        note = self.sized_words(max(target - 180, 20))
        if plant:
            note = f"{note} {plant}"
        if kind == "chat":
            obj = {
                "model": rng.choice(self.models),
                "messages": [
                    {"role": "system", "content": "You are a helpful assistant."},
                    {"role": "user", "content": note},
                ],
                "temperature": round(rng.random(), 2), "max_tokens": rng.choice((256, 512, 1024)), "stream": stream,
            }  # fmt: skip
        elif kind == "user":
            obj = {"name": f"{rng.choice(ENGLISH).title()} {rng.choice(ENGLISH).title()}",
                   "email": f"user{n}@example.com", "bio": note,
                   "preferences": {"newsletter": rng.random() < 0.5, "language": rng.choice(("en", "de", "fr"))}}  # fmt: skip
        elif kind == "login":
            obj = {"username": f"user{n}", "password": f"hunter{n}", "remember": True, "device": note}
        elif kind == "graphql":
            obj = {"query": "mutation AddItem($id: ID!, $note: String) { addItem(id: $id, note: $note) { id } }",
                   "variables": {"id": n, "note": note}}  # fmt: skip
        elif kind == "payment":
            obj = {"amount": rng.randint(100, 99999), "currency": rng.choice(("eur", "usd", "gbp")),
                   "customer": f"cus_{n:08d}", "description": note, "metadata": {"order_id": n}}  # fmt: skip
        elif kind == "event":
            obj = {"type": rng.choice(("page_view", "click", "purchase")), "user_id": n, "props": {"text": note}}
        else:  # order
            k = rng.randint(1, 3)
            obj = {
                "customer_id": n,
                "currency": rng.choice(("EUR", "USD")),
                "items": [{"sku": f"SKU-{rng.randint(1000, 9999)}", "qty": rng.randint(1, 5),
                           "price": round(rng.uniform(1, 300), 2), "title": self.words(3)} for _ in range(k)],
                "shipping": {"street": self.words(2), "city": rng.choice(("London", "Paris", "Berlin", "Tokyo"))},
                "note": note,
            }  # fmt: skip
        if rng.random() < COMMON_SHARE:
            obj["tags"] = [COMMON_WORD, rng.choice(self.vocab)]
        return self._encode(obj)

    def response_body(self, kind: str, n: int, status: int, target: int, plant: str | None) -> str:
        rng = self.rng
        text = self.sized_words(max(target - 120, 10))
        if plant:
            text = f"{text} {plant}"
        if status >= 400:
            obj = {"error": {"code": status, "type": "invalid_request" if status < 500 else "server_error", "message": text}}
        elif kind == "chat":
            obj = {
                "id": f"chatcmpl-{n:x}", "object": "chat.completion", "created": int(self.now), "model": rng.choice(self.models),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": rng.randint(10, 900), "completion_tokens": rng.randint(5, 900)},
            }  # fmt: skip
        elif kind == "login":
            obj = {"access_token": f"eyJ{n:x}.{rng.getrandbits(64):x}", "token_type": "bearer", "expires_in": 3600, "scope": text[:100]}
        else:
            obj = {"id": n, "ok": True, "status": rng.choice(("created", "updated", "queued")), "message": text}
        return self._encode(obj)

    def sse_response(self, n: int, target: int, plant: str | None) -> tuple[bytes, tuple]:
        """An OpenAI-style chat completion stream of about ``target`` bytes of answer text,
        one event per word, and when each event arrived (ms since the response began)."""
        rng = self.rng
        words = self.sized_words(max(target - 120, 10)).split(" ")
        if plant:
            words.append(plant)
        head = (
            f'data: {{"id":"chatcmpl-{n:x}","object":"chat.completion.chunk","created":{int(self.now)},'
            f'"model":"{rng.choice(self.models)}","system_fingerprint":"fp_{rng.getrandbits(40):010x}","choices":[{{"index":0,'
        )
        events = [head + '"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}\n\n']
        for i, word in enumerate(words):
            piece = json.dumps(word if i == 0 else " " + word, ensure_ascii=False)
            events.append(head + f'"delta":{{"content":{piece}}},"logprobs":null,"finish_reason":null}}]}}\n\n')
        events.append(head + '"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n')
        events.append("data: [DONE]\n\n")
        t, chunks = rng.uniform(150, 600), []
        for e in events:
            chunks.append((round(t, 3), len(e.encode())))
            t += rng.uniform(8, 40)
        return "".join(events).encode(), tuple(chunks)

    # -- flows

    def snapshots(self, start: int, count: int) -> list[tuple]:
        """Snapshots of flows start .. start+count-1 (ids are assigned by SQLite in that order)."""
        from repost.store.capture import Streamed, snapshot

        rng = self.rng
        out = []
        for i in range(start, min(start + count, self.total)):
            f = self.templates[i % len(self.templates)]
            host, scheme, port = HOSTS[_pick(rng, self.host_cum)]
            path_t, _, kind = self.route_list[_pick(rng, self.route_cum)]
            n = rng.randint(1, 100_000)
            path = path_t.format(n=n)
            method = "POST" if "{n}" not in path_t else self.method_list[_pick(rng, self.method_cum)]
            plant = RARE_WORD if i in self.rare_at else None
            plant_resp = plant if plant and i % 2 == 0 else None
            # (no draw at all without streams: the same seed gives the same flows as before)
            stream = bool(self.stream_share) and path == "/v1/chat/completions" and rng.random() < self.stream_share
            body = self.request_body(kind, n, rng.randint(200, 1500), None if plant_resp else plant, stream).encode()
            started = self.t_oldest + i * self.step + rng.random() * self.step * 0.5

            rd = f.request.data
            rd.method = method.encode()
            rd.scheme = scheme.encode()
            rd.host = host
            rd.port = port
            rd.authority = b""
            rd.path = path.encode()
            rd.timestamp_start = started
            rd.timestamp_end = started + 0.001
            rd.content = body
            req_fields = [
                (b"Host", host.encode() if port in (80, 443) else f"{host}:{port}".encode()),
                (b"User-Agent", rng.choice(self.user_agents)),
                (b"Accept", b"application/json"),
                (b"Content-Type", b"application/json"),
                (b"Content-Length", str(len(body)).encode()),
            ]
            r = rng.random()
            if r < 0.35:
                req_fields.append((b"Authorization", f"Bearer sk-{rng.getrandbits(96):024x}".encode()))
            if r > 0.8:
                req_fields.append((b"Idempotency-Key", f"{rng.getrandbits(128):032x}".encode()))
            req_fields.append((b"X-Request-Id", f"req_{i:x}{rng.getrandbits(32):08x}".encode()))
            rd.headers.fields = tuple(req_fields)
            f.id = f"{rng.getrandbits(128):032x}"

            if rng.random() < ERROR_SHARE:
                saved = f.response
                f.response = None
                f.error = self.error_cls("Connection refused: upstream unreachable", started + 0.05)
                out.append(snapshot(f))
                f.response, f.error = saved, None
                continue

            status, reason, _ = self.status_list[_pick(rng, self.status_cum)]
            sd = f.response.data
            f.metadata.pop("repost_tees", None)
            if stream and 200 <= status < 300 and status != 204:
                content, chunks = self.sse_response(n, rng.randint(100, 2000), plant_resp)
                sd.status_code, sd.reason, sd.content = status, reason.encode(), b""
                sd.headers.fields = (
                    (b"Server", rng.choice(self.servers)), (b"Date", b"Thu, 26 Nov 2026 10:00:00 GMT"),
                    (b"Content-Type", b"text/event-stream; charset=utf-8"), (b"Cache-Control", b"no-cache"),
                    (b"Transfer-Encoding", b"chunked"), (b"X-Request-Id", f"req_{i:x}".encode()),
                )  # fmt: skip
                # What the recorder's tee hands over for a stream (addons/streaming.py).
                whole = Streamed(content, len(content), hashlib.sha256(content).hexdigest(), True, chunks)
                f.metadata["repost_tees"] = {"response": _Recorded(whole)}
                sd.timestamp_start = started + rng.uniform(0.05, 0.3)
                sd.timestamp_end = sd.timestamp_start + chunks[-1][0] / 1000
                out.append(snapshot(f))
                continue
            resp_fields = [(b"Server", rng.choice(self.servers)), (b"Date", b"Thu, 26 Nov 2026 10:00:00 GMT"),
                           (b"Content-Type", b"application/json; charset=utf-8")]  # fmt: skip
            if status == 204:
                content = b""
            else:
                content = self.response_body(kind, n, status, rng.randint(100, 2000), plant_resp).encode()
                if rng.random() < GZIP_SHARE:
                    content = gzip.compress(content, compresslevel=6, mtime=0)
                    resp_fields.append((b"Content-Encoding", b"gzip"))
            resp_fields.append((b"Content-Length", str(len(content)).encode()))
            resp_fields.append((b"X-Request-Id", f"req_{i:x}".encode()))
            sd.status_code = status
            sd.reason = reason.encode()
            sd.content = content
            sd.headers.fields = tuple(resp_fields)
            sd.timestamp_start = started + rng.uniform(0.005, 0.4) * (8 if kind == "chat" else 1)
            sd.timestamp_end = sd.timestamp_start + 0.002
            out.append(snapshot(f))
        return out


class _Recorded:
    """A finished tee: what ``snapshot`` takes from ``flow.metadata["repost_tees"]``."""

    def __init__(self, whole):
        self.whole = whole

    def result(self):
        return self.whole


def _cum(weights):
    acc, out = 0.0, []
    for w in weights:
        acc += w
        out.append(acc)
    return out


def _pick(rng: random.Random, cum: list[float]) -> int:
    x = rng.random() * cum[-1]
    for k, c in enumerate(cum):
        if x < c:
            return k
    return len(cum) - 1


def _remove_db(path: Path) -> None:
    for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), Path(f"{path}.json")):
        p.unlink(missing_ok=True)


def generate(path: Path, total: int, log, stream_share: float = STREAM_SHARE) -> dict:
    """Write ``total`` flows to ``path`` through the store's write path; returns the sidecar info."""
    from repost.store.redact import Redactor
    from repost.store.writer import BatchWriter

    partial = Path(f"{path}.partial")
    _remove_db(partial)
    _remove_db(path)
    t0 = time.perf_counter()
    gen = Generator(total, stream_share=stream_share)
    writer = BatchWriter(str(partial), redactor=Redactor(b"bench-fingerprint-key"), max_body=10 * 1024 * 1024)
    t_snap = t_write = 0.0
    last = t0
    try:
        for start in range(0, total, BATCH):
            a = time.perf_counter()
            snaps = gen.snapshots(start, BATCH)
            b = time.perf_counter()
            if not writer.write(snaps):
                raise RuntimeError(f"BatchWriter.write failed: {writer.last_error}")
            c = time.perf_counter()
            t_snap += b - a
            t_write += c - b
            done = start + len(snaps)
            if c - last >= 5 or done == total:
                last = c
                rate = done / (c - t0)
                log(f"  generated {done:,}/{total:,} flows  {rate:,.0f}/s  eta {(total - done) / rate:,.0f} s")
    finally:
        writer.close()
    if writer.written != total or writer.lost:
        raise RuntimeError(f"wrote {writer.written} flows, lost {writer.lost}; expected {total}")
    elapsed = time.perf_counter() - t0
    move_into_place(partial, path)
    info = {
        "version": GEN_VERSION, "flows": total, "seed": SEED, "stream_share": stream_share, "generated_at": gen.now,
        "newest_started": gen.t_newest, "generate_s": round(elapsed, 1),
        "snapshot_s": round(t_snap, 1), "write_s": round(t_write, 1),
    }  # fmt: skip
    Path(f"{path}.json").write_text(json.dumps(info, indent=2))
    log(f"  {total:,} flows in {elapsed:.0f} s (snapshots {t_snap:.0f} s, BatchWriter.write {t_write:.0f} s)")
    return info


def cached_info(path: Path, total: int, version=GEN_VERSION, stream_share: float = STREAM_SHARE) -> dict | None:
    """The sidecar of a cached database generated completely by this generator version, else None."""
    side = Path(f"{path}.json")
    if not path.exists() or not side.exists():
        return None
    try:
        info = json.loads(side.read_text())
    except ValueError:
        return None
    if info.get("version") != version or info.get("flows") != total or info.get("stream_share") != stream_share:
        return None
    return info if count_flows(path) == total else None


def count_flows(path: Path) -> int | None:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT count(*) FROM flows").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.Error:
        return None


# ---------------------------------------------------------------------------
# timing


def run_cmd(argv: list[str], env: dict, tty: bool) -> tuple[float, int, bytes, bytes]:
    if not tty:
        t = time.perf_counter()
        p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return (time.perf_counter() - t) * 1000, p.returncode, p.stdout, p.stderr
    master, slave = pty.openpty()
    chunks: list[bytes] = []

    def drain():
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    t = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=slave, stderr=subprocess.PIPE)
    ms = (time.perf_counter() - t) * 1000
    os.close(slave)
    reader.join(2)
    os.close(master)
    return ms, p.returncode, b"".join(chunks), p.stderr


def measure(label, args, target, repost, db, env, runs, tty, log) -> dict:
    argv = [str(repost), *args] if args[0].startswith("-") else [str(repost), args[0], "--db", str(db), *args[1:]]
    samples = []
    out = b""
    run_cmd(argv, env, tty)  # warm-up, not counted (page cache, .pyc)
    for _ in range(runs):
        ms, rc, out, err = run_cmd(argv, env, tty)
        if rc != 0:
            raise RuntimeError(f"{' '.join(args)} exited {rc}: {err.decode(errors='replace').strip()}")
        samples.append(ms)
    row = {
        "label": label, "args": args, "median_ms": round(statistics.median(samples), 1),
        "min_ms": round(min(samples), 1), "target_ms": target, "samples_ms": [round(s, 1) for s in samples],
    }  # fmt: skip
    row["ok"] = None if target is None else row["median_ms"] <= target
    if "--json" in args and args[0] == "list":
        row["rows"] = len(json.loads(out))
    log(f"  {label:<48} median {row['median_ms']:7.1f} ms  min {row['min_ms']:7.1f} ms"
        + (f"  ({row['rows']} rows)" if "rows" in row else ""))  # fmt: skip
    return row


def reset_fts(db: Path) -> None:
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("INSERT INTO flows_fts (flows_fts) VALUES ('delete-all')")
        conn.execute("DELETE FROM repost_meta WHERE key = 'fts_indexed_upto'")
    conn.close()


def fts_state(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        row = conn.execute("SELECT value FROM repost_meta WHERE key = 'fts_indexed_upto'").fetchone()
        return int(row[0]) if row else 0
    finally:
        conn.close()


def move_into_place(partial: Path, path: Path) -> None:
    """A generated database, checkpointed, renamed to its cached name (with its side files)."""
    conn = sqlite3.connect(partial)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{partial}{suffix}")
        if src.exists():
            src.rename(f"{path}{suffix}")


def sizes(db: Path) -> dict:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        wire, stored, n = conn.execute(
            "SELECT sum(coalesce(request_size, 0) + coalesce(response_size, 0)),"
            " sum(coalesce(length(request_body), 0) + coalesce(length(response_body), 0)), count(*) FROM flows"
        ).fetchone()
        streams, stream_bytes = conn.execute(
            "SELECT count(*), coalesce(sum(length(response_body)), 0) FROM flows WHERE response_chunks IS NOT NULL"
        ).fetchone()
        by_obj, fill = {}, None
        try:
            for name, size in conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"):
                by_obj[name] = size
            pages, cells, payload, pgsize = conn.execute(
                "SELECT count(*), sum(ncell), sum(payload), sum(pgsize) FROM dbstat WHERE name = 'flows' AND pagetype = 'leaf'"
            ).fetchone()
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
            fill = {"page_size": page_size, "leaf_pages": pages, "rows_per_leaf": round(cells / pages, 2),
                    "leaf_fill": round(payload / pgsize, 3), "avg_row_bytes": round(payload / cells)}  # fmt: skip
        except sqlite3.Error:
            pass
    finally:
        conn.close()
    file_size = sum(Path(f"{db}{s}").stat().st_size for s in ("", "-wal") if Path(f"{db}{s}").exists())
    fts = sum(v for k, v in by_obj.items() if k.startswith("flows_fts"))
    # The database is bodies + a per-flow overhead (metadata, indexes) + a search index
    # that grows with the bodies' text: at what average body size would it be 1.5x?
    per_flow = (file_size - fts - stored) / n if n else 0
    fts_share = fts / wire if wire else 0
    breakeven = per_flow / (0.5 - fts_share) if fts_share < 0.5 else None
    return {
        "db_bytes": file_size, "wire_body_bytes": wire, "stored_body_bytes": stored, "flows": n,
        "ratio_vs_wire": round(file_size / wire, 3), "ratio_vs_stored": round(file_size / stored, 3),
        "fts_bytes": fts, "ratio_without_fts_vs_wire": round((file_size - fts) / wire, 3),
        "objects": by_obj, "flows_leaves": fill, "stream_flows": streams, "stream_body_bytes": stream_bytes,
        "avg_body_bytes": round(wire / n) if n else 0, "overhead_per_flow_bytes": round(per_flow),
        "fts_vs_wire": round(fts_share, 3), "body_bytes_for_1_5x": round(breakeven) if breakeven else None,
    }  # fmt: skip


def pick_id(db: Path, condition: str) -> int | None:
    """The first flow from the middle of the store on that meets ``condition`` (SQL), if any."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        mx = conn.execute("SELECT max(id) FROM flows").fetchone()[0]
        row = conn.execute(f"SELECT id FROM flows WHERE id >= ? AND {condition} ORDER BY id LIMIT 1", [mx // 2]).fetchone()
        return row[0] if row else None
    finally:
        conn.close()


def newest_age_s(db: Path) -> float:
    from datetime import datetime

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        newest = conn.execute("SELECT started_at FROM flows ORDER BY id DESC LIMIT 1").fetchone()[0]
    finally:
        conn.close()
    return time.time() - datetime.fromisoformat(newest.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=7, help="timed runs per command (after one warm-up run)")
    ap.add_argument("--db", help="database path (default /tmp/repost-bench-<flows>.db, cached)")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the cached database")
    ap.add_argument("--reindex", action="store_true", help="drop the FTS index and time the first indexing again")
    ap.add_argument("--tty", action="store_true", help="run the commands on a pseudo-terminal (rich tables, colour)")
    ap.add_argument("--stream-share", type=float, default=STREAM_SHARE,
                    help=f"share of chat completions that stream SSE (default {STREAM_SHARE}; 0: no streams)")  # fmt: skip
    ap.add_argument("--no-pyc", action="store_true", help="keep the caller's PYTHONDONTWRITEBYTECODE (no bytecode cache)")
    ap.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    ap.add_argument("--repost", default=str(VENV_BIN / "repost"))
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    mix = "" if args.stream_share == STREAM_SHARE else f"-streams{args.stream_share:g}"
    db = Path(args.db) if args.db else Path(f"/tmp/repost-bench-{_short(args.flows)}{mix}.db")
    if not Path(args.repost).exists():
        log(f"no repost executable at {args.repost} (pip install -e .)")
        return 3
    if REPO_DIR in db.resolve().parents:
        log("refusing to put the bench database inside the repository")
        return 3

    info = None if args.regenerate else cached_info(db, args.flows, stream_share=args.stream_share)
    if info is None:
        log(f"generating {args.flows:,} flows into {db} (cached for later runs) ...")
        info = generate(db, args.flows, log, args.stream_share)
    else:
        log(f"reusing {db} ({args.flows:,} flows, generated {time.ctime(info['generated_at'])}; --regenerate to rebuild)")

    env = {k: v for k, v in os.environ.items() if k not in ("REPOST_DB", "REPOST_DEBUG", "FORCE_COLOR")}
    env["NO_COLOR"] = "1"
    if not args.no_pyc:
        # An installed repost has its bytecode compiled; a PYTHONDONTWRITEBYTECODE=1 environment
        # (as here) would recompile every module on every run (~10 ms). Cache it outside the repo.
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env.setdefault("COLUMNS", "160")
    repost = Path(args.repost)

    # Apply any migration the code gained since the database was generated, untimed.
    t = time.perf_counter()
    p = subprocess.run([str(repost), "list", "--db", str(db), "--limit", "1"], env=env, capture_output=True)
    if p.returncode != 0:
        log(f"repost list failed: {p.stderr.decode(errors='replace').strip()}")
        return 3
    log(f"  first open (migrations if any): {(time.perf_counter() - t) * 1000:.0f} ms")

    if fts_state(db) == 0 or "size_before_fts" not in info:
        info["size_before_fts"] = sizes(db) if fts_state(db) == 0 else None
        Path(f"{db}.json").write_text(json.dumps(info, indent=2))
    size_before_fts = info["size_before_fts"]

    if args.reindex and fts_state(db):
        log("  dropping the FTS index (--reindex)")
        reset_fts(db)
    index = {}
    if fts_state(db) < args.flows:
        log("  building the FTS index: repost list --search x (first search) ...")
        ms, rc, _, err = run_cmd([str(repost), "list", "--db", str(db), "--search", "x"], env, False)
        if rc != 0:
            log(f"repost list --search failed: {err.decode(errors='replace').strip()}")
            return 3
        index = {"first_search_ms": round(ms, 1), "measured_now": True}
        info["first_search_ms"] = index["first_search_ms"]
        Path(f"{db}.json").write_text(json.dumps(info, indent=2))
        log(f"  first search (indexes {args.flows:,} flows): {ms / 1000:.1f} s")
    else:
        index = {"first_search_ms": info.get("first_search_ms"), "measured_now": False}
        log(f"  FTS index already built; first indexing took {info.get('first_search_ms', 0) / 1000:.1f} s when measured (--reindex to re-time)")
    size_after_fts = sizes(db)

    show_id = pick_id(db, "response_content_encoding = 'gzip'")  # a gzip-encoded JSON response
    age = newest_age_s(db)
    since = "10m"
    if age > 5 * 60:  # a cached database ages: keep "the last 10 minutes of traffic"
        since = f"{int(age + 600)}s"
    # An empty window (nothing recorded lately: "--since 10m" the next morning).
    after_newest = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - age + 1))
    rare_n, common_n = _count_matches(db)

    cases = [
        ("repost --help (start-up floor)", ["--help"], None),
        ("list", ["list"], 100),
        ("list --json", ["list", "--json"], 100),
        (f"list --path {SUMMARY_PATH_EXAMPLE}", ["list", "--path", SUMMARY_PATH_EXAMPLE], 200),
        ("list --path '/orders/*'", ["list", "--path", "/orders/*"], 200),
        ("list --status 404", ["list", "--status", "404"], 200),
        ("list --status 5xx", ["list", "--status", "5xx"], 200),
        (f"list --since {since}" + ("" if since == "10m" else " (=10m before newest)"), ["list", "--since", since], 200),
        ("list --since <after newest> (0 rows)", ["list", "--since", after_newest], 200),  # nothing lately
        (f"list --search {RARE_WORD} ({rare_n} flows)", ["list", "--search", RARE_WORD], 300),
        (f"list --search {COMMON_WORD} ({common_n:,} flows)", ["list", "--search", COMMON_WORD], 300),
        (f"show {show_id}", ["show", str(show_id)], 50),
        (f"show {show_id} --json", ["show", str(show_id), "--json"], 50),
    ]
    stream_id = pick_id(db, "response_chunks IS NOT NULL")  # a streamed chat completion
    if stream_id is not None:
        cases += [
            (f"show {stream_id} (a stream)", ["show", str(stream_id)], 50),
            (f"show {stream_id} --json (a stream)", ["show", str(stream_id), "--json"], 50),
        ]
    log(f"timing {len(cases)} commands, {args.runs} runs each (+1 warm-up){' on a pty' if args.tty else ''} ...")
    results = [measure(label, a, target, repost, db, env, args.runs, args.tty, log) for label, a, target in cases]

    summary = {
        "flows": args.flows, "db": str(db), "runs": args.runs, "tty": args.tty,
        "generate_s": info.get("generate_s"), "first_index": index, "since_arg": since,
        "results": results, "size_before_fts": size_before_fts, "size_after_fts": size_after_fts,
        "size_target_ratio": 1.5,
    }  # fmt: skip
    ok_size = size_after_fts["ratio_vs_wire"] <= 1.5
    failed = [r["label"] for r in results if r["ok"] is False] + ([] if ok_size else ["size ratio"])
    summary["failed"] = failed
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary, ok_size)
    return 1 if failed and args.check else 0


def _count_matches(db: Path) -> tuple[int, int]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        q = "SELECT count(*) FROM flows_fts WHERE flows_fts MATCH ?"
        return conn.execute(q, [f'"{RARE_WORD}"']).fetchone()[0], conn.execute(q, [f'"{COMMON_WORD}"']).fetchone()[0]
    finally:
        conn.close()


def _short(n: int) -> str:
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB"


def print_table(s: dict, ok_size: bool) -> None:
    print()
    print(f"repost inspect latency: {s['flows']:,} flows in {s['db']}, {s['runs']} runs per command (median / min, ms)")
    print(f"{'command':<48} {'median':>8} {'min':>8} {'target':>8}  result")
    for r in s["results"]:
        target = f"<{r['target_ms']}" if r["target_ms"] else "-"
        verdict = "-" if r["ok"] is None else "ok" if r["ok"] else "FAIL"
        print(f"{r['label']:<48} {r['median_ms']:>8.1f} {r['min_ms']:>8.1f} {target:>8}  {verdict}")
    fi = s["first_index"]
    if fi.get("first_search_ms") is not None:
        note = "" if fi["measured_now"] else " (measured on an earlier run; --reindex to re-time)"
        print(f"{'first list --search (builds the FTS index)':<48} {fi['first_search_ms'] / 1000:>7.1f}s{note}")
    a, b = s["size_before_fts"] or {}, s["size_after_fts"]
    print()
    print(f"bodies: {_mb(b['wire_body_bytes'])} as sent (request_size + response_size), {_mb(b['stored_body_bytes'])} stored")
    before = f"{_mb(a['db_bytes'])} before the FTS index, " if a else ""
    print(f"database: {before}{_mb(b['db_bytes'])} with it (FTS {_mb(b['fts_bytes'])})")
    print(f"size ratio db/bodies: {b['ratio_vs_wire']:.2f}x (vs stored bytes {b['ratio_vs_stored']:.2f}x; "
          f"without FTS {b['ratio_without_fts_vs_wire']:.2f}x)  target <=1.5x  {'ok' if ok_size else 'FAIL'}")  # fmt: skip
    if b.get("stream_flows"):
        print(f"streams: {b['stream_flows']:,} flows ({b['stream_flows'] / b['flows']:.1%}) hold {_mb(b['stream_body_bytes'])} "
              f"({b['stream_body_bytes'] / b['stored_body_bytes']:.0%}) of the stored bodies")  # fmt: skip
    flows = b["objects"].get("flows")
    if flows:
        f = b["flows_leaves"] or {}
        print(f"flows table {_mb(flows)} for {_mb(b['stored_body_bytes'])} of bodies: page_size {f.get('page_size')}, "
              f"avg row {f.get('avg_row_bytes')} B, {f.get('rows_per_leaf')} rows per leaf page, leaf pages {f.get('leaf_fill', 0):.0%} full")  # fmt: skip
    if b.get("overhead_per_flow_bytes") is not None:
        print(f"per flow: {b['avg_body_bytes']:,} B of bodies on average, {b['overhead_per_flow_bytes']:,} B of metadata and indexes;"
              f" FTS {b['fts_vs_wire']:.2f}x of the bodies; 1.5x holds from ~{b['body_bytes_for_1_5x']:,} B of bodies a flow")  # fmt: skip
    top = sorted(b["objects"].items(), key=lambda kv: -kv[1])[:8]
    if top:
        print("largest objects: " + ", ".join(f"{k} {_mb(v)}" for k, v in top))
    print("FAILED: " + ", ".join(s["failed"]) if s["failed"] else "all targets met")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
