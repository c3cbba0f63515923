"""Bad input through the real proxy: broken encodings, invalid UTF-8, binary, odd
multipart boundaries, empty bodies, Content-Length lies, a decompression bomb and a
40 MB upload, in requests and in responses.

One `repost record` and one raw-socket upstream for the whole module (the upstream
answers with exactly the bytes a case gives it, which no HTTP framework would send).
For every case: the flow is recorded, `show`, `show --json`, `diff --json` and every
export format answer without a traceback, and the proxy keeps serving.
"""

import base64
import hashlib
import json
import os
import random
import resource
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import brotli
import httpx
import pytest
import yaml
import zstandard

from .helpers import RecordingProxy, list_json, repost, show_json, wait_for

MB = 1024 * 1024
GB = 1024 * MB
MAX_BODY = 10 * MB  # repost record's default --max-body

TEXT = b"".join(b'{"line": %d, "text": "a body that compresses well"}\n' % i for i in range(400))


# -- a raw upstream: canned bytes per path ----------------------------------------


class _RawHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.request.settimeout(30)
        f = self.request.makefile("rb")
        try:
            while self._exchange(f):
                pass
        except (OSError, ValueError):
            pass
        finally:
            f.close()

    def _exchange(self, f) -> bool:
        line = f.readline(65536)
        if not line:
            return False
        method, target, _ = line.split(b" ", 2)
        headers = {}
        while True:
            h = f.readline(65536)
            if h in (b"\r\n", b"\n", b""):
                break
            name, _, value = h.partition(b":")
            headers[name.strip().lower()] = value.strip()
        digest, size = hashlib.sha256(), 0
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            while True:
                n = int(f.readline().split(b";")[0], 16)
                if n == 0:
                    while f.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data = f.read(n)
                f.read(2)
                digest.update(data)
                size += len(data)
        else:
            left = int(headers.get(b"content-length", b"0"))
            while left:
                data = f.read(min(left, MB))
                if not data:
                    return False
                digest.update(data)
                size += len(data)
                left -= len(data)
        path = target.split(b"?")[0].decode("latin-1")
        self.server.received[path] = (size, digest.hexdigest())
        canned = self.server.responses.get(path)
        if canned is None:
            body = json.dumps({"size": size, "sha256": digest.hexdigest()}).encode()
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
            self.request.sendall(head + body)
            return True
        wire, close = canned
        self.request.sendall(wire)
        return not close


class RawUpstream(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _RawHandler)
        self.responses: dict[str, tuple[bytes, bool]] = {}
        self.received: dict[str, tuple[int, str]] = {}
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join(10)


def http_response(body: bytes, headers: list[tuple[str, str | bytes]], status: bytes = b"200 OK",
                  length: int | None = -1) -> bytes:  # fmt: skip
    """A response's wire bytes; length -1: the body's length, None: no Content-Length."""
    lines = [b"HTTP/1.1 " + status]
    for name, value in headers:
        lines.append((name if isinstance(name, bytes) else name.encode()) + b": " + (value if isinstance(value, bytes) else value.encode()))
    if length is not None:
        lines.append(b"Content-Length: %d" % (len(body) if length == -1 else length))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


# -- bad bodies ------------------------------------------------------------------


def gzip_bomb(total: int, chunk: int = 16 * MB) -> bytes:
    """`total` zero bytes as gzip, without ever compressing more than one chunk: each
    chunk is a fresh raw-deflate run ending in a full flush (byte-aligned, no
    references across it), so the same compressed block repeats."""
    zeros = bytes(chunk)
    c = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    block = c.compress(zeros) + c.flush(zlib.Z_FULL_FLUSH)
    n = total // chunk
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(zeros, crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + block * n + b"\x03\x00" + struct.pack("<II", crc, (n * chunk) & 0xFFFFFFFF)


GARBAGE = b"\x1f\x8b\x08\x00 not a compressed stream at all \xff\xfe\x00\x01" * 8
_gz = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
GZ = _gz.compress(TEXT) + _gz.flush()
BR = brotli.compress(TEXT)
ZS = zstandard.ZstdCompressor().compress(TEXT)
BAD_UTF8 = b"caf\xc3\xa9 then \xff\xfe and a lone \xc3( and \xed\xa0\x80 (a surrogate) end"
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + random.Random(1).randbytes(4000)
RANDOM = random.Random(2).randbytes(5000)  # seeded: the same bytes every run


def multipart(boundary: bytes, fields: list[tuple[bytes, bytes]]) -> bytes:
    out = b""
    for name, value in fields:
        out += b"--" + boundary + b'\r\nContent-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


ODD_QUOTED = b"b o:u=n;d,a'r(y)?+_./"  # every bchar RFC 2046 allows, needing the quotes
ODD_LONG = b"-" * 20 + b"x" * 180  # far past RFC 2046's 70 characters
ODD_BYTES = b"\xe9t\xe9-\xff\x80-boundary"  # not ASCII at all
FIELDS = [(b"name", b"Ada"), (b"note", b"line one\r\nline two"), (b"blob", b"\x00\x01\x02\xff")]

# name -> (headers, body bytes, what show's note must mention or None)
BODIES = {
    "gzip-garbage": ([("Content-Type", "application/json"), ("Content-Encoding", "gzip")], GARBAGE, "gzip"),
    "gzip-truncated": ([("Content-Type", "application/json"), ("Content-Encoding", "gzip")], GZ[: len(GZ) // 2], "gzip"),
    "br-garbage": ([("Content-Type", "application/json"), ("Content-Encoding", "br")], GARBAGE, "br"),
    "br-truncated": ([("Content-Type", "application/json"), ("Content-Encoding", "br")], BR[: len(BR) // 2], "br"),
    "zstd-garbage": ([("Content-Type", "application/json"), ("Content-Encoding", "zstd")], GARBAGE, "zstd"),
    "zstd-truncated": ([("Content-Type", "application/json"), ("Content-Encoding", "zstd")], ZS[: len(ZS) // 2], "zstd"),
    "utf8-invalid-text": ([("Content-Type", "text/plain; charset=utf-8")], BAD_UTF8, "utf-8"),
    "utf8-invalid-json": ([("Content-Type", "application/json; charset=utf-8")], b'{"a": "' + BAD_UTF8 + b'"}', "utf-8"),
    "binary-random": ([("Content-Type", "application/octet-stream")], RANDOM, None),
    "binary-png": ([("Content-Type", "image/png")], PNG, None),
    "multipart-quoted": (
        [("Content-Type", 'multipart/form-data; boundary="' + ODD_QUOTED.decode() + '"')],
        multipart(ODD_QUOTED, FIELDS), None,
    ),  # fmt: skip
    "multipart-long": (
        [("Content-Type", "multipart/form-data; boundary=" + ODD_LONG.decode())], multipart(ODD_LONG, FIELDS), None,
    ),  # fmt: skip
    "multipart-bytes": (
        [(b"Content-Type", b"multipart/form-data; boundary=" + ODD_BYTES)], multipart(ODD_BYTES, FIELDS), None,
    ),  # fmt: skip
    "multipart-no-boundary": ([("Content-Type", "multipart/form-data")], multipart(b"unannounced", FIELDS), None),
    "multipart-secret": (
        [("Content-Type", 'multipart/form-data; boundary="=_odd \'secret\' boundary"')],
        multipart(b"=_odd 'secret' boundary", [(b"user", b"ada"), (b"password", b"hunter2-CANARY")]), None,
    ),  # fmt: skip
    "empty-with-length": ([("Content-Type", "application/json")], b"", None),
}


# -- the cases ---------------------------------------------------------------------------


@dataclass
class Case:
    side: str  # the side with the bad body: "request" or "response"
    send: Callable  # send(env, path) does the exchange and checks what the client saw
    wire: bytes | None  # that side's body as sent (None: no body recorded, the flow has an error)
    note: str | None = None  # a word show's note must hold (the encoding, the charset)
    error: bool = False  # recorded with an error
    truncated: bool = False  # above the 10 MB cap: stored as a prefix


def httpx_request(headers, body):
    def send(env, path):
        with env.client() as c:
            r = c.post(f"{env.upstream.url}{path}", content=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}  # passed through intact

    return send


def canned_response(wire: bytes, body: bytes, close: bool = False):
    def send(env, path):
        env.upstream.responses[path] = (wire, close)
        got = raw_response(env, path)
        assert got == body  # the client gets the bytes the server sent

    return send


def raw_response(env, path: str) -> bytes:
    """POST through the proxy; the response's bytes as they came (httpx would decode them)."""
    with env.client() as c:
        with c.stream("POST", f"{env.upstream.url}{path}", json={"case": path}) as r:
            return b"".join(r.iter_raw())


def raw_exchange(env, request: bytes, shut_write: bool = False) -> bytes:
    """Send bytes to the proxy as a client would; read until it closes (socket timeouts bound it)."""
    with socket.create_connection(("127.0.0.1", env.proxy.port), timeout=20) as s:
        s.sendall(request)
        if shut_write:
            s.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                data = s.recv(65536)
            except ConnectionResetError:
                break
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def send_without_length(env, path):
    """httpx always sends Content-Length: 0 for an empty POST; a raw client need not."""
    host = env.upstream.url.removeprefix("http://")
    request = f"POST {env.upstream.url}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    answer = raw_exchange(env, request.encode())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]


def send_short_request(env, path):
    """Content-Length: 100, 50 bytes, then the client is gone."""
    host = env.upstream.url.removeprefix("http://")
    head = f"POST {env.upstream.url}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
    raw_exchange(env, head.encode() + b"x" * 50, shut_write=True)


def send_short_response(env, path):
    """The server says Content-Length: 100, sends 50 bytes and closes."""
    env.upstream.responses[path] = (http_response(b"y" * 50, [("Content-Type", "text/plain")], length=100), True)
    with env.client() as c:
        try:
            r = c.post(f"{env.upstream.url}{path}", json={"short": True})
        except httpx.HTTPError:
            return
    assert r.status_code == 502 or len(r.content) < 100


UPLOAD = os.urandom(MB) * 40

CASES: dict[str, Case] = {}
for _name, (_headers, _body, _note) in BODIES.items():
    CASES[f"req-{_name}"] = Case("request", httpx_request(_headers, _body), _body, _note)
for _name, (_headers, _body, _note) in BODIES.items():
    CASES[f"resp-{_name}"] = Case("response", canned_response(http_response(_body, _headers), _body), _body, _note)
CASES.update({
    "req-empty-no-length": Case("request", send_without_length, b""),
    "resp-empty-no-length-204": Case(
        "response", canned_response(http_response(b"", [], b"204 No Content", length=None), b""), b""),
    "resp-empty-no-length-close": Case("response", canned_response(
        http_response(b"", [("Content-Type", "text/plain"), ("Connection", "close")], length=None), b"", close=True), b""),
    "resp-body-until-close": Case("response", canned_response(
        http_response(BAD_UTF8, [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")], length=None),
        BAD_UTF8, close=True), BAD_UTF8, "utf-8"),
    "req-short-body": Case("request", send_short_request, None, error=True),
    "resp-short-body": Case("response", send_short_response, None, error=True),
    "req-upload-40mb": Case(
        "request", httpx_request({"Content-Type": "application/octet-stream"}, UPLOAD), UPLOAD, truncated=True),
})  # fmt: skip


# -- the module's proxy and upstream, and every case sent through them -------------------


class Env:
    def __init__(self, proxy: RecordingProxy, upstream: RawUpstream, folder):
        self.proxy, self.upstream, self.folder = proxy, upstream, folder
        self.db = proxy.db

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(proxy=self.proxy.url, timeout=20, trust_env=False, **kw)


@pytest.fixture(scope="module")
def env(tmp_path_factory, confdir):
    folder = tmp_path_factory.mktemp("bad-input")
    key = tmp_path_factory.getbasetemp() / "fingerprint.key"
    upstream = RawUpstream()
    proxy = RecordingProxy(folder / "bad.db", confdir, env={"REPOST_KEY_FILE": str(key)})
    yield Env(proxy, upstream, folder)
    proxy.stop()
    upstream.stop()


def recorded(env: Env, path: str) -> dict:
    rows = wait_for(lambda: list_json(env.db, "--path", path), 10, interval=0.05, what=f"{path} recorded")
    assert len(rows) == 1, rows
    return rows[0]


@dataclass
class Outcome:
    problem: str | None = None  # what went wrong sending it (the client's view), if anything
    row: dict | None = None  # its row in list --json
    after: int | None = None  # the id of the normal POST sent after it


@pytest.fixture(scope="module")
def sent(env) -> dict[str, Outcome]:
    """Every case through the proxy, each followed by a normal POST."""
    outcomes = {}
    for name, case in CASES.items():
        outcome = outcomes[name] = Outcome()
        path = f"/case/{name}"
        try:
            case.send(env, path)
        except Exception:
            outcome.problem = traceback.format_exc()
        try:
            outcome.row = recorded(env, path)
            with env.client() as c:
                r = c.post(f"{env.upstream.url}/after/{name}", json={"after": name})
            assert r.status_code == 200, r.text
            outcome.after = recorded(env, f"/after/{name}")["id"]
        except Exception:
            outcome.problem = (outcome.problem or "") + traceback.format_exc()
    return outcomes


def flow_of(sent, name) -> tuple[int, int]:
    outcome = sent[name]
    assert outcome.row is not None and outcome.after is not None, outcome.problem
    return outcome.row["id"], outcome.after


@pytest.fixture(autouse=True)
def _no_traceback_in_the_proxy(request):
    yield
    if "env" in request.fixturenames:
        out = request.getfixturevalue("env").proxy.output()
        assert "Traceback" not in out, out[-3000:]


def shown_bytes(part: dict) -> bytes:
    if part["body"] is not None:
        return part["body"].encode("utf-8")
    return base64.b64decode(part["body_base64"]) if part["body_base64"] is not None else b""


# -- every case: recorded, shown, diffed, exported -----------------------------------------


@pytest.mark.parametrize("name", CASES)
def test_recorded_and_the_proxy_keeps_serving(env, sent, name):
    case, outcome = CASES[name], sent[name]
    assert outcome.problem is None, outcome.problem
    row = outcome.row
    if case.error:
        assert row["error"], row
    else:
        assert row["error"] is None and row["status"] in (200, 204), row
        assert row[f"{case.side}_size"] == len(case.wire)


@pytest.mark.parametrize("name", CASES)
def test_show_json(env, sent, name):
    case = CASES[name]
    flow_id, _ = flow_of(sent, name)
    result = repost("show", str(flow_id), "--db", str(env.db), "--json")
    assert result.exit_code == 0, result.output
    flow = json.loads(result.output)
    assert flow["id"] == flow_id
    if case.error:
        assert flow["error"]
        return
    part = flow[case.side]
    wire = case.wire
    assert part["size"] == len(wire)
    if wire:
        assert part["sha256"] == hashlib.sha256(wire).hexdigest()
    assert part["truncated"] is case.truncated
    if name.endswith("multipart-secret"):
        assert part["redacted"] is True and b"hunter2-CANARY" not in shown_bytes(part)
        return
    if name.endswith("-garbage"):
        # Changed (issue 12): a body whose encoding does not decode may hold a secret that could
        # not be redacted, so it is not stored as it came; its size and SHA-256 still describe it.
        assert part["redacted"] is True and shown_bytes(part) == b"" and "not stored" in part["note"]
        return
    assert part["redacted"] is False
    assert shown_bytes(part) == (wire[:MAX_BODY] if case.truncated else wire)  # a broken encoding: the raw bytes
    if case.note:
        assert part["note"] and case.note in part["note"].lower(), part["note"]


@pytest.mark.parametrize("name", CASES)
def test_show(env, sent, name):
    flow_id, _ = flow_of(sent, name)
    result = repost("show", str(flow_id), "--db", str(env.db))
    assert result.exit_code == 0, result.output
    if CASES[name].truncated:
        assert f"truncated: the first {MAX_BODY:,} of {len(UPLOAD):,} bytes" in result.output
    if name.endswith("multipart-secret"):
        assert "hunter2-CANARY" not in result.output


@pytest.mark.parametrize("name", CASES)
def test_diff(env, sent, name):
    flow_id, other = flow_of(sent, name)
    for a, b in ((flow_id, other), (other, flow_id), (flow_id, flow_id)):
        result = repost("diff", str(a), str(b), "--db", str(env.db), "--json")
        assert result.exit_code in (0, 1), result.output
        doc = json.loads(result.output)
        assert doc["equal"] is (result.exit_code == 0)
        if a == b:
            assert doc["equal"] is True, doc


EXPORT_XFAIL: dict[tuple[str, str], str] = {}  # known bugs, as (format, case): reason; none left


def export_params():
    for fmt in ("har", "vcr", "curl", "mitm"):
        for name in CASES:
            reason = EXPORT_XFAIL.get((fmt, name))
            marks = [pytest.mark.xfail(reason=reason, strict=True)] if reason else []
            yield pytest.param(fmt, name, id=f"{fmt}-{name}", marks=marks)


@pytest.mark.parametrize("fmt, name", list(export_params()))
def test_export(env, sent, fmt, name):
    flow_id, _ = flow_of(sent, name)
    path = env.folder / f"{flow_id}.{fmt}"
    result = repost("export", "--format", fmt, str(flow_id), "--db", str(env.db), "-o", str(path))
    assert result.exit_code == 0, result.output
    if fmt == "har":
        [entry] = json.loads(path.read_text())["log"]["entries"]
        assert entry["request"]["method"] == "POST"
    elif fmt == "vcr":
        doc = yaml.load(path.read_text(), Loader=yaml.Loader)  # vcrpy's own tags
        assert len(doc["interactions"]) == (0 if sent[name].row["status"] is None else 1)
    elif fmt == "curl":
        command = path.read_text()
        assert command.startswith(("curl ", "printf ")) and command.count("\n") >= 1
        subprocess.run(["sh", "-n", str(path)], check=True, timeout=20)  # a well-formed shell script
        flow = show_json(env.db, flow_id)
        if not (flow["error"] or flow["request"]["truncated"] or flow["request"]["redacted"]):
            # It re-sends the stored bytes: the upstream sees the same size and SHA-256.
            env.upstream.received.pop(f"/case/{name}", None)
            subprocess.run(["sh", str(path)], check=True, capture_output=True, timeout=20)
            size, digest = env.upstream.received[f"/case/{name}"]
            assert (size, digest) == (flow["request"]["size"], flow["request"]["sha256"] or hashlib.sha256(b"").hexdigest())
    else:
        from mitmproxy import io

        with open(path, "rb") as f:
            [back] = list(io.FlowReader(f).stream())
        assert back.request.method == "POST"


# -- a decompression bomb ---------------------------------------------------------------

BOMB_SIZE = 2 * GB


def run_cli(args: list[str], out_path, timeout: float = 20, address_space: int = 3 * GB):
    """`repost ARGS` in a child with its address space limited; (exit code, stderr, seconds, peak RSS bytes)."""

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))

    err_path = str(out_path) + ".err"
    t0 = time.monotonic()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "repost.cli", *args], stdout=out, stderr=err, preexec_fn=limit)
    reaped = []

    def done():
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            reaped.append((status, usage))
        return bool(reaped)

    try:
        wait_for(done, timeout, interval=0.02, what=f"repost {' '.join(args)}")
    except AssertionError:
        proc.kill()
        os.wait4(proc.pid, 0)
        proc.returncode = -9
        raise
    elapsed = time.monotonic() - t0
    status, usage = reaped[0]
    proc.returncode = os.waitstatus_to_exitcode(status)
    with open(err_path, "rb") as f:
        stderr = f.read().decode(errors="replace")
    return proc.returncode, stderr, elapsed, usage.ru_maxrss * 1024


@pytest.fixture(scope="module")
def bomb_flow(env):
    body = gzip_bomb(BOMB_SIZE)
    assert len(body) < 3 * MB
    path = "/case/resp-gzip-bomb"
    wire = http_response(body, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
    canned_response(wire, body)(env, path)
    row = recorded(env, path)
    with env.client() as c:
        assert c.post(f"{env.upstream.url}/after/bomb", json={"after": "bomb"}).status_code == 200
    return row, body, recorded(env, "/after/bomb")["id"]


def test_bomb_is_recorded_as_sent(env, bomb_flow):
    row, body, _ = bomb_flow
    assert row["status"] == 200 and row["response_size"] == len(body)


BOMB_XFAIL: dict[str, str] = {}  # known bugs, command: reason; none left


@pytest.mark.parametrize(
    "command",
    [pytest.param(c, marks=[pytest.mark.xfail(reason=BOMB_XFAIL[c], strict=True)] if c in BOMB_XFAIL else [])
     for c in ("show", "show-json", "diff", "har", "vcr", "curl", "mitm")],
)  # fmt: skip
def test_bomb_commands_are_quick_capped_and_bounded(env, bomb_flow, command):
    """Each command in a child of its own, so that its time and peak memory are its own."""
    row, body, other = bomb_flow
    out = env.folder / f"bomb-{command}.out"
    db = ["--db", str(env.db)]
    args = {
        "show": ["show", str(row["id"]), *db],
        "show-json": ["show", str(row["id"]), *db, "--json"],
        "diff": ["diff", str(row["id"]), str(other), *db, "--json"],
    }.get(command) or ["export", "--format", command, str(row["id"]), *db, "-o", f"{out}.{command}"]
    code, stderr, elapsed, peak = run_cli(args, out)
    assert code in ((0, 1) if command == "diff" else (0,)) and "Traceback" not in stderr, stderr[-2000:]
    assert elapsed < 10, f"{elapsed:.1f} s"
    # Half of what expanding the body takes: a capped decoder stays far below that.
    assert peak < BOMB_SIZE // 2, f"peak RSS {peak / MB:.0f} MB"
    if command == "show-json":
        part = json.loads(out.read_bytes())["response"]
        assert part["size"] == len(body) and part["sha256"] == hashlib.sha256(body).hexdigest()
        assert part["note"] and "cut off" in part["note"]
        shown = shown_bytes(part)
        assert 0 < len(shown) < BOMB_SIZE // 8 and shown.count(0) == len(shown)
    elif command == "show":
        assert "cut off" in out.read_text(errors="replace")
    elif command == "diff":
        assert json.loads(out.read_bytes())["equal"] is False


# -- last: the proxy stops cleanly after all of it ------------------------------------------


def test_proxy_stops_cleanly_after_all_of_it(env, sent, bomb_flow):
    assert env.proxy.stop() == 0
    out = env.proxy.output()
    assert "Traceback" not in out, out[-3000:]
    assert "could NOT be recorded" not in out
