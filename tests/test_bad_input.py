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


# -- imported files (issue 12, and issue 13 points 8 and 9) ---------------------------------
# A crafted HAR, flow file or cassette: one line naming what is wrong, exit 1, no traceback,
# and nothing of the file in the database.

HAR_DATA = __import__("pathlib").Path(__file__).parent / "data" / "chromium.har"


def _refused(path, db, *args) -> str:
    from .helpers import count_flows

    result = repost("import", str(path), "--db", str(db), *args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert count_flows(db) == 0  # all or nothing
    return result.output


def _streamed_har(tmp_path) -> str:
    """repost's own HAR (one entry a line) of the two flows of chromium.har."""
    db = tmp_path / "source.db"
    assert repost("import", str(HAR_DATA), "--db", str(db)).exit_code == 0
    result = repost("export", "--format", "har", "--db", str(db))
    assert result.exit_code == 0
    return result.stdout


def test_a_deeply_nested_import_file_is_refused_in_one_line(tmp_path):
    deep = tmp_path / "deep.har"
    deep.write_text('{"log": {"entries": [' + "[" * 200_000 + "]" * 200_000 + "]}}")
    assert "nested too deeply" in _refused(deep, tmp_path / "x.db")
    own = _streamed_har(tmp_path).splitlines()
    own[1] = '{"request": ' + "[" * 200_000 + "]" * 200_000 + "},"
    nested = tmp_path / "nested-entry.har"
    nested.write_text("\n".join(own))
    assert "nested too deeply" in _refused(nested, tmp_path / "y.db")
    cassette = tmp_path / "deep.yaml"
    cassette.write_text("interactions: " + "[" * 100_000 + "]" * 100_000 + "\nversion: 1\n")
    assert "nest" in _refused(cassette, tmp_path / "z.db")  # libyaml's own limit, or Python's
    cassette.write_text('{"interactions": ' + "[" * 200_000 + "]" * 200_000 + ', "version": 1}')
    assert "nested too deeply" in _refused(cassette, tmp_path / "w.db")
    flows = b"0:]"
    for _ in range(5000):
        flows = b"%d:%s]" % (len(flows), flows)
    deep_flows = tmp_path / "deep.mitm"
    deep_flows.write_bytes(flows)
    assert "not a readable mitmproxy flow file" in _refused(deep_flows, tmp_path / "v.db")


def test_a_bad_entry_in_reposts_own_har_is_named_and_nothing_is_imported(tmp_path):
    lines = _streamed_har(tmp_path).splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]  # the second entry cut in half
    broken = tmp_path / "broken.har"
    broken.write_text("\n".join(lines))
    assert "log.entries[1] is not valid JSON" in _refused(broken, tmp_path / "x.db")


def test_an_entry_that_cannot_be_read_is_named_by_index_and_url(tmp_path):
    doc = json.loads(HAR_DATA.read_text())
    del doc["log"]["entries"][1]["request"]["headers"]
    har = tmp_path / "no-headers.har"
    har.write_text(json.dumps(doc))
    out = _refused(har, tmp_path / "x.db")
    url = doc["log"]["entries"][1]["request"]["url"]
    assert f"log.entries[1] (POST {url})" in out or f"log.entries[1] (GET {url})" in out
    assert "no 'headers' field" in out and "KeyError" not in out
    doc = json.loads(HAR_DATA.read_text())
    doc["log"]["entries"][0]["startedDateTime"] = "yesterday"
    har.write_text(json.dumps(doc))
    assert "log.entries[0] (POST http://127.0.0.1:8000/api/orders?source=web)" in _refused(har, tmp_path / "y.db")


def test_a_file_that_is_not_utf8_given_as_har_is_not_a_har_file(tmp_path):
    latin = tmp_path / "latin.har"
    latin.write_bytes('{"log": {"entries": [{"comment": "caf\u00e9"}]}}'.encode("latin-1"))
    out = _refused(latin, tmp_path / "x.db", "--format", "har")
    assert "not a HAR file (not UTF-8 text)" in out and "codec" not in out
    binary = tmp_path / "binary.har"
    binary.write_bytes(bytes(range(256)))
    assert "not a HAR file (not UTF-8 text)" in _refused(binary, tmp_path / "y.db", "--format", "har")
    assert "not a VCR.py cassette (not UTF-8 text)" in _refused(binary, tmp_path / "z.db", "--format", "vcr")


def test_a_hostile_cassette_runs_no_code_and_is_refused_in_one_line(tmp_path):
    marker = tmp_path / "ran"
    evil = tmp_path / "evil.yaml"
    evil.write_text(
        "interactions:\n- request: !!python/object/apply:os.system ['touch " + str(marker) + "']\n  response: {}\nversion: 1\n"
    )
    assert "not a VCR.py cassette" in _refused(evil, tmp_path / "x.db")
    assert not marker.exists()
    old = tmp_path / "old.yaml"
    old.write_text("- request: {method: GET, uri: 'http://a.test/', body: null, headers: {}}\n  response: {}\n")
    assert "older than 1.0" in _refused(old, tmp_path / "y.db", "--format", "vcr")
    escape = tmp_path / "escape.yaml"
    escape.write_text('interactions:\n- request: {method: "\\e]0;owned\\a", uri: "http://a.test/\\e[2J"}\n  response: 7\nversion: 1\n')
    out = _refused(escape, tmp_path / "z.db")
    assert "interactions[0]" in out and "\x1b" not in out and "\x07" not in out


def _mutations(rng: random.Random, doc):
    """A copy of a JSON-like document with one value somewhere replaced, removed or nested."""
    import copy

    doc = copy.deepcopy(doc)
    containers = []

    def walk(node):
        if isinstance(node, dict):
            containers.append(node)
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            containers.append(node)
            for v in node:
                walk(v)

    walk(doc)
    for _ in range(rng.randint(1, 3)):
        node = rng.choice(containers)
        if not node:
            continue
        key = rng.choice(list(node.keys()) if isinstance(node, dict) else range(len(node)))
        choice = rng.random()
        if choice < 0.2 and isinstance(node, dict):
            del node[key]
            continue
        node[key] = rng.choice([
            None, True, 0, -1, 2**70, 1e308, float("nan"), "", "\x1b[2J", "\udc80", "REDACTED-", "HTTP/9",
            "http://[::1", "1970-01-01T00:00:00Z", "9999-12-31T23:59:59Z", [], {}, [[[]]], {"name": 1},
            [{"name": "a", "value": 1}], "a" * 70_000, "gzip", "base64", "%%%", "text/event-stream",
        ])  # fmt: skip
    return doc


@pytest.mark.parametrize("fmt", ["har", "vcr-yaml", "vcr-json", "mitm-bytes", "mitm"])
def test_mutated_import_files_never_give_a_traceback(tmp_path, fmt):
    """A seeded fuzz: files repost wrote, a value (or a byte) changed; every import
    succeeds or is refused in one line. A fresh database each time, so that no flow is
    skipped as already present before it is converted."""
    import io

    from mitmproxy.io import tnetstring
    from mitmproxy.test import tflow

    from .helpers import post_flow, store_flows

    source = tmp_path / "source.db"
    assert repost("import", str(HAR_DATA), "--db", str(source)).exit_code == 0
    store_flows(source, [tflow.tflow(resp=True), tflow.tflow(err=True),
                         post_flow(body=b'{"password": "pw"}', headers={"content-type": "application/json"})])  # fmt: skip
    rng = random.Random(f"repost-import-{fmt}")
    kind = fmt.split("-")[0]
    exported = repost("export", "--format", kind, "--db", str(source), "-o", str(tmp_path / "exported"))
    assert exported.exit_code == 0
    data = (tmp_path / "exported").read_bytes()
    if kind == "har":
        doc = json.loads(data)
    elif kind == "vcr":
        doc = yaml.safe_load(data)
    else:
        f, doc = io.BytesIO(data), []
        while f.tell() < len(data):
            doc.append(tnetstring.load(f))
    path = tmp_path / "fuzzed"
    codes = []
    for i in range(60):
        if fmt == "mitm-bytes":
            b = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(len(b))
                if rng.random() < 0.7:
                    b[at] = rng.randrange(256)
                else:
                    del b[at : at + rng.randint(1, 50)]
            path.write_bytes(bytes(b))
        else:
            mutated = _mutations(rng, doc)
            if fmt == "mitm":
                out = io.BytesIO()
                try:
                    for state in mutated:
                        tnetstring.dump(state, out)
                except (ValueError, TypeError):  # a value tnetstrings cannot hold (a lone surrogate)
                    continue
                path.write_bytes(out.getvalue())
            elif fmt == "vcr-yaml":
                path.write_text(yaml.safe_dump(mutated), encoding="utf-8", errors="surrogatepass")
            else:
                text = json.dumps(mutated, default=lambda b: b.decode("latin-1"))  # a cassette's binary body
                path.write_text(text, encoding="utf-8", errors="surrogatepass")
        result = repost("import", str(path), "--db", str(tmp_path / f"{i}.db"), "--format", kind)
        assert result.exit_code in (0, 1) and "Traceback" not in result.output, result.output
        if result.exit_code == 1:
            assert len(result.output.strip().splitlines()) == 1, result.output
        codes.append(result.exit_code)
    assert 0 in codes and 1 in codes  # the fuzz reached both of the importer's ends
