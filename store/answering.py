"""Recordings answering as the server: an aiohttp app over a Matcher (``repost serve``).

aiohttp's server, because a stream must be written as its recorded times come
(``StreamResponse.write`` chunk by chunk); a response set inside mitmproxy's
``request`` hook goes out at once. The proxy modes send their requests here.
"""

import asyncio
import json
import time
from dataclasses import dataclass, field

from .headers import header
from .matching import IncomingRequest, Matcher
from .sse import is_stream_type

# Never copied from a recording: the connection's own business, or recomputed for the bytes sent.
NOT_SERVED = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "content-length", "proxy-authenticate",
})  # fmt: skip
FLOW_HEADER = "Repost-Flow"
# In the proxy modes, the request's own scheme and authority travel in this header (set by
# addons/serve.py), since the request itself now goes to this server.
ORIGIN_HEADER = "Repost-Origin"
MISS_ERROR = "no recording matches"


@dataclass
class Served:
    """One request's outcome, for the log line and the summary."""

    method: str
    target: str
    flow_id: int | None
    status: int | None = None
    events: int | None = None
    miss: str | None = None
    closest: dict | None = None
    redacted: bool = False
    forwarded: bool = False  # answered by the real server (--on-miss forward; the plugin's record mode)

    def as_json(self) -> dict:
        return {
            "method": self.method, "path": self.target, "flow": self.flow_id, "status": self.status,
            "events": self.events, "miss": self.miss, "closest": self.closest,
        }  # fmt: skip


@dataclass
class Summary:
    served: int = 0
    misses: int = 0
    recordings: set = field(default_factory=set)
    redacted: int = 0  # responses served with redacted values in them


class Answerer:
    """Turns aiohttp requests into recorded answers; ``on_served`` hears about each one."""

    def __init__(self, matcher: Matcher, *, speed: float = 1.0, latency: bool = False, on_served=None, forwarder=None,
                 origin: str | None = None):  # fmt: skip
        self.matcher = matcher
        # A reverse proxy's target (``http://host:port``): every request is taken as sent there, as
        # mitmproxy's reverse mode rewrites it (``repost serve --mode reverse:http://...``).
        self.origin = origin
        self.speed = speed
        self.latency = latency
        self.on_served = on_served
        self.forwarder = forwarder  # on a miss: forward and record (--on-miss forward)
        self.always_forward = False  # every request to the real server, recorded (the plugin's record mode)
        self.summary = Summary()

    async def handle(self, request):
        """One answer; a recording that went away meanwhile (deleted, pruned) or a store that
        fails is a 502 that says so, never a traceback in the client's face."""
        import sqlite3

        from aiohttp import web

        from .errors import StoreError

        try:
            return await self._answer(request)
        except (StoreError, sqlite3.Error) as e:
            self.summary.misses += 1
            self._tell(Served(request.method, request.raw_path, None, 502, miss=f"the store failed: {e}"))
            return web.json_response({"error": MISS_ERROR, "reason": f"the store failed: {e}", "closest": None}, status=502)

    async def _answer(self, request):
        from aiohttp import web

        from .queries import get_flow

        req = await _incoming(request, self.origin)
        if self.always_forward and self.forwarder is not None:
            from .matching import Match

            match = Match(None, None, "recording")
        else:
            match = self.matcher.match(req)
        forwarded = False
        flow = get_flow(self.matcher.conn, match.flow_id) if match.flow_id is not None else None
        if flow is not None and flow["response_truncated"]:
            match.flow_id, match.reason, flow = None, f"recording {flow['id']} was stored truncated: it cannot be served whole", None
        if flow is None and self.forwarder is not None:
            forwarded = await self.forwarder.forward(req)
            if forwarded.flow_id is not None:
                self.matcher.forget(req)
                flow = get_flow(self.matcher.conn, forwarded.flow_id)
                match.reason = None
                forwarded = True
            else:
                match.reason = f"{match.reason}; not forwarded: {forwarded.reason}"
        if flow is None:
            self.summary.misses += 1
            body = {"error": MISS_ERROR, "reason": match.reason, "closest": match.closest}
            self._tell(Served(req.method, req.target, None, 502, miss=match.reason, closest=match.closest))
            return web.json_response(body, status=502)
        outcome = Served(req.method, req.target, flow["id"], flow["status"], forwarded=forwarded)
        self.summary.served += 1
        self.summary.recordings.add(flow["id"])
        if _holds_redacted(flow):
            self.summary.redacted += 1
            outcome.redacted = True
        chunks = json.loads(flow["response_chunks"]) if flow["response_chunks"] else None
        ctype = header(flow["response_headers"], "content-type")
        if chunks and is_stream_type(ctype):
            outcome.events = len(flow["events"])
            self._tell(outcome)
            return await self._stream(request, flow, chunks)
        self._tell(outcome)
        if self.latency and self.speed and flow["duration_ms"]:
            await asyncio.sleep(flow["duration_ms"] / 1000 / self.speed)
        return web.Response(status=flow["status"], reason=_reason(flow["reason"]), headers=_headers(flow),
                            body=bytes(flow["response_body"] or b""))  # fmt: skip

    async def _stream(self, request, flow: dict, chunks: list):
        """The stream chunk by chunk, each at its recorded offset (scaled by --speed); a stream
        that was cut off when recorded is cut off here after its last recorded chunk."""
        from aiohttp import web

        response = web.StreamResponse(status=flow["status"], reason=_reason(flow["reason"]), headers=_headers(flow))
        response.enable_chunked_encoding()
        start = time.monotonic()
        await response.prepare(request)
        body = bytes(flow["response_body"] or b"")
        pos = 0
        for t_ms, size in chunks:
            if self.speed:
                delay = start + t_ms / 1000 / self.speed - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            await response.write(body[pos : pos + size])
            pos += size
        if pos < len(body):
            await response.write(body[pos:])
        if flow["response_incomplete"]:
            request.transport.close()  # as the recorded stream ended: without its last chunk
            return response
        await response.write_eof()
        return response

    def _tell(self, outcome: Served) -> None:
        if self.on_served is not None:
            self.on_served(outcome)


async def _incoming(request, fixed_origin: str | None = None) -> IncomingRequest:
    body = await request.read()
    headers = [(k.decode("latin-1"), v.decode("utf-8", "surrogateescape")) for k, v in request.raw_headers]
    origin = fixed_origin or request.headers.get(ORIGIN_HEADER)
    target = request.raw_path
    if not fixed_origin and is_absolute(target):  # an HTTP proxy's request: http://host[:port]/path
        url = request.url
        scheme, host, port = url.scheme, url.host or "", url.port
        headers = [(k, v) for k, v in headers if k.lower() != ORIGIN_HEADER.lower()]
        return IncomingRequest(
            method=request.method, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80),
            target=url.raw_path_qs, headers=headers, body=body,
            http_version=f"HTTP/{request.version.major}.{request.version.minor}",
        )  # fmt: skip
    if origin:  # a proxy mode sent it (or a reverse proxy's target): the request's own scheme and authority
        scheme, _, authority = origin.partition("://")
        headers = [(k, v) for k, v in headers if k.lower() != ORIGIN_HEADER.lower()]
        if fixed_origin:  # as mitmproxy's reverse mode rewrites it (keep_host_header off)
            headers = [(k, authority if k.lower() == "host" else v) for k, v in headers]
    else:
        scheme, authority = request.scheme, request.host or ""
    host, port = _split_authority(authority, scheme)
    return IncomingRequest(
        method=request.method, scheme=scheme, host=host, port=port, target=request.raw_path,
        headers=headers, body=body, http_version=f"HTTP/{request.version.major}.{request.version.minor}",
    )  # fmt: skip


def is_absolute(target: str) -> bool:
    """An absolute-form request target (``http://host/path``), as clients send to an HTTP proxy."""
    head = target[:8].lower()
    return head.startswith("http://") or head == "https://"


def _split_authority(authority: str, scheme: str) -> tuple[str, int]:
    default = 443 if scheme == "https" else 80
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, _, port = authority.partition(":")
    return host, int(port) if port.isdigit() else default


def _headers(flow: dict):
    from multidict import CIMultiDict

    out = CIMultiDict()
    for name, value in flow["response_headers"]:
        lname = name.lower()
        if lname in NOT_SERVED or lname.startswith(":"):
            continue
        if lname == "content-encoding" and flow["response_redacted"]:
            continue  # stored decoded (and redacted)
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            continue  # never a header a client would split into two
        out.add(name, value)
    out[FLOW_HEADER] = str(flow["id"])
    return out


def _reason(reason: str | None) -> str | None:
    if not reason or any(c in reason for c in "\r\n") or not reason.isascii():
        return None  # aiohttp then sends the standard phrase
    return reason



def _holds_redacted(flow: dict) -> bool:
    from .redact import REDACTED_PREFIX

    prefix = REDACTED_PREFIX.encode()
    return any(v.startswith(REDACTED_PREFIX) for _, v in flow["response_headers"]) or prefix in bytes(
        flow["response_body"] or b""
    )


def make_app(answerer: Answerer):
    from aiohttp import web

    app = web.Application(client_max_size=1024**3)
    app.router.add_route("*", "/{tail:.*}", answerer.handle)
    return app


async def start(answerer: Answerer, host: str, port: int):
    """Listen; returns (runner, the port bound: ``port`` 0 picks a free one)."""
    from aiohttp import web

    runner = web.AppRunner(make_app(answerer), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1] if site._server and site._server.sockets else port
    return runner, bound
