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
import resource
import socket
import socketserver
import struct
import subprocess
import sys
import threading
import time
import zlib

import brotli
import httpx
import pytest
import yaml
import zstandard

from .helpers import RecordingProxy, list_json, repost, wait_for

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
        lines.append(name.encode() + b": " + (value if isinstance(value, bytes) else value.encode()))
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
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) + os.urandom(4000)
RANDOM = os.urandom(5000)


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
        [("Content-Type", b"multipart/form-data; boundary=" + ODD_BYTES)], multipart(ODD_BYTES, FIELDS), None,
    ),  # fmt: skip
    "multipart-no-boundary": ([("Content-Type", "multipart/form-data")], multipart(b"unannounced", FIELDS), None),
    "multipart-secret": (
        [("Content-Type", 'multipart/form-data; boundary="=_odd \'secret\' boundary"')],
        multipart(b"=_odd 'secret' boundary", [(b"user", b"ada"), (b"password", b"hunter2-CANARY")]), None,
    ),  # fmt: skip
    "empty-with-length": ([("Content-Type", "application/json")], b"", None),
}


# -- the module's proxy and upstream -------------------------------------------------


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


@pytest.fixture(autouse=True)
def _no_traceback_in_the_proxy(request):
    yield
    if "env" in request.fixturenames:
        out = request.getfixturevalue("env").proxy.output()
        assert "Traceback" not in out, out[-3000:]


# -- checks every case goes through -------------------------------------------------


def recorded(env: Env, path: str) -> dict:
    rows = wait_for(lambda: list_json(env.db, "--path", path), 10, interval=0.05, what=f"{path} recorded")
    assert len(rows) == 1, rows
    return rows[0]


def keeps_serving(env: Env, name: str) -> int:
    """A normal POST after the bad one gets through and is recorded; its id."""
    with env.client() as c:
        r = c.post(f"{env.upstream.url}/after/{name}", json={"after": name})
    assert r.status_code == 200, r.text
    assert r.json()["size"] == len(json.dumps({"after": name}).replace(" ", "")) or r.json()["size"] > 0
    return recorded(env, f"/after/{name}")["id"]


def shown_bytes(part: dict) -> bytes:
    if part["body"] is not None:
        return part["body"].encode("utf-8")
    return base64.b64decode(part["body_base64"]) if part["body_base64"] is not None else b""


def check_commands(env: Env, flow_id: int, other_id: int) -> dict:
    """show, show --json, diff --json and every export answer, no traceback; show's JSON."""
    db = str(env.db)
    human = repost("show", str(flow_id), "--db", db)
    assert human.exit_code == 0, human.output
    assert "Traceback" not in human.output
    result = repost("show", str(flow_id), "--db", db, "--json")
    assert result.exit_code == 0, result.output
    flow = json.loads(result.output)
    assert flow["id"] == flow_id

    for a, b in ((flow_id, other_id), (other_id, flow_id), (flow_id, flow_id)):
        d = repost("diff", str(a), str(b), "--db", db, "--json")
        assert d.exit_code in (0, 1), d.output
        doc = json.loads(d.output)
        assert doc["equal"] is (d.exit_code == 0)
    assert json.loads(repost("diff", str(flow_id), str(flow_id), "--db", db, "--json").output)["equal"] is True

    for fmt in ("har", "vcr", "curl", "mitm"):
        out = env.folder / f"{flow_id}.{fmt}"
        e = repost("export", "--format", fmt, str(flow_id), "--db", db, "-o", str(out))
        assert e.exit_code == 0, e.output
        assert "Traceback" not in e.output
        check_export(fmt, out, flow)
    return flow


def check_export(fmt: str, path, flow: dict) -> None:
    if fmt == "har":
        [entry] = json.loads(path.read_text())["log"]["entries"]
        assert entry["request"]["method"] == "POST"
    elif fmt == "vcr":
        doc = yaml.load(path.read_text(), Loader=yaml.Loader)  # vcrpy's own files: its tags
        assert len(doc["interactions"]) == (1 if flow["response"] is not None else 0)
    elif fmt == "curl":
        lines = path.read_text().splitlines()
        assert len(lines) == 1 and ("curl " in lines[0])
    else:
        from mitmproxy import io

        with open(path, "rb") as f:
            [back] = list(io.FlowReader(f).stream())
        assert back.request.method == "POST"


def check_body(part: dict, wire: bytes, note_word: str | None) -> None:
    assert part["size"] == len(wire)
    if wire:
        assert part["sha256"] == hashlib.sha256(wire).hexdigest()
    assert part["truncated"] is False
    if part["redacted"]:
        return  # stored decoded and redacted: the bytes differ on purpose
    assert shown_bytes(part) == wire  # a broken encoding shows the raw bytes
    if note_word:
        assert part["note"] and note_word in part["note"].lower(), part["note"]


# -- request bodies ----------------------------------------------------------------


@pytest.mark.parametrize("name", BODIES)
def test_bad_request_body(env, name):
    headers, body, note_word = BODIES[name]
    path = f"/req/{name}"
    with env.client() as c:
        r = c.post(f"{env.upstream.url}{path}", content=body, headers=headers)
    assert r.status_code == 200
    assert r.json() == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}  # passed through intact
    row = recorded(env, path)
    assert row["status"] == 200 and row["request_size"] == len(body)
    flow = check_commands(env, row["id"], keeps_serving(env, f"req-{name}"))
    check_body(flow["request"], body, note_word)
    if name == "multipart-secret":
        assert flow["request"]["redacted"] is True
        assert b"hunter2-CANARY" not in shown_bytes(flow["request"])


def raw_exchange(env: Env, request: bytes, shut_write: bool = False) -> bytes:
    """Send bytes to the proxy as a client would, read until it closes (deadline: timeouts)."""
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


def test_request_without_body_or_content_length(env):
    """httpx always sends Content-Length: 0 for an empty POST; a raw client need not."""
    path = "/req/empty-no-length"
    host = env.upstream.url.removeprefix("http://")
    answer = raw_exchange(
        env, f"POST {env.upstream.url}{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
    )
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    row = recorded(env, path)
    flow = check_commands(env, row["id"], keeps_serving(env, "req-empty-no-length"))
    assert flow["request"]["size"] == 0
    assert shown_bytes(flow["request"]) == b""


def test_client_sends_less_than_its_content_length(env):
    """Content-Length: 100, 50 bytes, then the client is gone: recorded with an error."""
    path = "/req/short-body"
    host = env.upstream.url.removeprefix("http://")
    head = f"POST {env.upstream.url}{path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n"
    raw_exchange(env, head.encode() + b"x" * 50, shut_write=True)
    row = recorded(env, path)
    assert row["status"] is None and row["error"], row
    flow = check_commands(env, row["id"], keeps_serving(env, "req-short-body"))
    assert flow["response"] is None and flow["error"]


# -- response bodies ---------------------------------------------------------------


RESPONSES = {name: (http_response(body, headers), body, note) for name, (headers, body, note) in BODIES.items()}
RESPONSES["empty-no-length-204"] = (http_response(b"", [], b"204 No Content", length=None), b"", None)
RESPONSES["empty-no-length-close"] = (
    http_response(b"", [("Content-Type", "text/plain"), ("Connection", "close")], length=None), b"", None,
)  # fmt: skip
RESPONSES["body-until-close"] = (
    http_response(BAD_UTF8, [("Content-Type", "text/plain; charset=utf-8"), ("Connection", "close")], length=None),
    BAD_UTF8, "utf-8",
)  # fmt: skip


def raw_response(env: Env, path: str) -> httpx.Response:
    """POST through the proxy; the response's bytes as they came (httpx would decode them)."""
    with env.client() as c:
        with c.stream("POST", f"{env.upstream.url}{path}", json={"case": path}) as r:
            r.raw_bytes = b"".join(r.iter_raw())
    return r


@pytest.mark.parametrize("name", RESPONSES)
def test_bad_response_body(env, name):
    wire, body, note_word = RESPONSES[name]
    path = f"/resp/{name}"
    env.upstream.responses[path] = (wire, "close" in name)
    r = raw_response(env, path)
    assert r.raw_bytes == body  # the client gets the bytes the server sent
    row = recorded(env, path)
    assert row["status"] == r.status_code and row["response_size"] == len(body)
    flow = check_commands(env, row["id"], keeps_serving(env, f"resp-{name}"))
    check_body(flow["response"], body, note_word)


def test_server_sends_less_than_its_content_length(env):
    """Content-Length: 100, 50 bytes, close: the client gets an error, the flow is recorded with it."""
    path = "/resp/short-body"
    wire = http_response(b"y" * 50, [("Content-Type", "text/plain")], length=100)
    env.upstream.responses[path] = (wire, True)
    with env.client() as c:
        try:
            r = c.post(f"{env.upstream.url}{path}", json={"short": True})
        except httpx.HTTPError:
            r = None
    assert r is None or r.status_code == 502 or len(r.content) < 100
    row = recorded(env, path)
    assert row["error"], row
    check_commands(env, row["id"], keeps_serving(env, "resp-short-body"))


# -- a decompression bomb ------------------------------------------------------------

BOMB_SIZE = 2 * GB


def run_cli(args: list[str], out_path, timeout: float = 20, address_space: int = 4 * GB):
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
    path = "/resp/gzip-bomb"
    wire = http_response(body, [("Content-Type", "application/json"), ("Content-Encoding", "gzip")])
    env.upstream.responses[path] = (wire, False)
    r = raw_response(env, path)
    assert r.raw_bytes == body
    row = recorded(env, path)
    return row, body, keeps_serving(env, "resp-gzip-bomb")


def test_bomb_is_recorded_as_sent(env, bomb_flow):
    row, body, _ = bomb_flow
    assert row["status"] == 200 and row["response_size"] == len(body)


@pytest.mark.parametrize("command", ["show", "show-json"])
def test_bomb_show_is_quick_capped_and_says_so(env, bomb_flow, command):
    row, body, _ = bomb_flow
    out = env.folder / f"bomb-{command}.out"
    args = ["show", str(row["id"]), "--db", str(env.db)] + (["--json"] if command == "show-json" else [])
    code, stderr, elapsed, peak = run_cli(args, out)
    assert code == 0 and "Traceback" not in stderr, stderr[-2000:]
    assert elapsed < 15, f"{elapsed:.1f} s"
    assert peak < 1 * GB, f"peak RSS {peak / MB:.0f} MB"
    if command == "show-json":
        part = json.loads(out.read_bytes())["response"]
        assert part["size"] == len(body) and part["sha256"] == hashlib.sha256(body).hexdigest()
        assert part["note"] and "cut off" in part["note"]
        assert 0 < len(shown_bytes(part)) < BOMB_SIZE // 8
        assert set(shown_bytes(part)[:MB]) == {0}
    else:
        assert "cut off" in out.read_text(errors="replace")


@pytest.mark.parametrize("command", ["diff", "har", "vcr", "curl", "mitm"])
def test_bomb_diff_and_export_are_quick_and_bounded(env, bomb_flow, command):
    row, body, other = bomb_flow
    out = env.folder / f"bomb-{command}.out"
    if command == "diff":
        args = ["diff", str(row["id"]), str(other), "--db", str(env.db), "--json"]
    else:
        args = ["export", "--format", command, str(row["id"]), "--db", str(env.db), "-o", str(out) + ".file"]
    code, stderr, elapsed, peak = run_cli(args, out)
    assert code in ((0, 1) if command == "diff" else (0,)) and "Traceback" not in stderr, stderr[-2000:]
    assert elapsed < 15, f"{elapsed:.1f} s"
    assert peak < 1 * GB, f"peak RSS {peak / MB:.0f} MB"
    if command == "diff":
        json.loads(out.read_bytes())


# -- a 40 MB upload -------------------------------------------------------------------


def test_40mb_upload_is_recorded_truncated_with_size_and_hash(env):
    upload = os.urandom(MB) * 40
    path = "/req/upload-40mb"
    with env.client() as c:
        r = c.post(f"{env.upstream.url}{path}", content=upload, headers={"Content-Type": "application/octet-stream"})
    digest = hashlib.sha256(upload).hexdigest()
    assert r.json() == {"size": len(upload), "sha256": digest}  # the upstream got every byte
    row = recorded(env, path)
    assert row["request_size"] == len(upload)
    flow = check_commands(env, row["id"], keeps_serving(env, "req-upload-40mb"))
    part = flow["request"]
    assert part["size"] == len(upload) and part["sha256"] == digest and part["truncated"] is True
    assert shown_bytes(part) == upload[:MAX_BODY]
    human = repost("show", str(row["id"]), "--db", str(env.db)).output
    assert f"truncated: the first {MAX_BODY:,} of {len(upload):,} bytes" in human


# -- last: the proxy stops cleanly after all of it ---------------------------------------


def test_proxy_stops_cleanly_after_all_of_it(env):
    assert env.proxy.stop() == 0
    out = env.proxy.output()
    assert "Traceback" not in out, out[-3000:]
    assert "could NOT be recorded" not in out
