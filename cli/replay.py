"""The replay engine: plan each request, then send them with aiohttp and keep what came back.

aiohttp's client, because it is fast: 1,000 POSTs at concurrency 16 to a local
server took about 0.2 s with it, 2 s with httpx's AsyncClient, 3.5-4 s with
``mitmdump -nC``. It speaks HTTP/1.1 with keep-alive; it never retries.
"""

import asyncio
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from repost.store.addresses import authority
from repost.store.headers import headers_of
from repost.store.outgoing import _TOKEN as HTTP_TOKEN  # RFC 9110's token: what a method or header name may be
from repost.store.outgoing import NOT_COPIED  # one list for replay and every command written out
from repost.store.redact import REDACTED_PREFIX
from repost.store.safety import replay_safety
from repost.store.sizes import DEFAULT_MAX_BODY


@dataclass
class Target:
    scheme: str
    host: str
    port: int


def parse_target(text: str) -> Target:
    """``--to http://staging:8000`` -> Target; a path other than / is refused."""
    parts = urlsplit(text if "://" in text else f"http://{text}")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{text!r} is not a target URL such as http://127.0.0.1:8000")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("--to takes scheme://host[:port] only; the path and query come from each flow")
    return Target(parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or unsendable_header(name.strip(), value.strip()):
        raise ValueError(f"{text!r} is not a header: give -H 'Name: value' (a token, and a value on one line)")
    return name.strip(), value.strip()


def unsendable_header(name: str, value: str) -> bool:
    """A name that is not a token, or a value with CR, LF or NUL: it would split into
    another header on the wire (aiohttp refuses it with a ValueError, mid-send)."""
    return not HTTP_TOKEN.match(name) or any(c in value for c in "\r\n\0")


@dataclass
class Plan:
    flow: dict
    safety: str
    method: str
    scheme: str
    host: str
    port: int
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes
    left_out: list[str] = field(default_factory=list)  # headers redacted at capture, not supplied
    left_out_query: list[str] = field(default_factory=list)  # query parameters redacted at capture: not sent
    problem: str | None = None  # why it cannot be sent

    @property
    def url(self) -> str:
        return f"{self.scheme}://{authority(self.scheme, self.host, self.port)}{self.target}"


def plan(flow: dict, *, to: Target | None, extra: list[tuple[str, str]], new_key: bool, rules=(), edits=(),
         new_body: bytes | None = None) -> Plan:  # fmt: skip
    """The request a replay of ``flow`` will send, and its safety class: classified after
    every override (``-H``, ``--to``, a new key, ``--set``, ``--body``), as it will go out,
    not as it was recorded."""
    overridden = {name.lower() for name, _ in extra}
    redacted_body = bool(flow["request_redacted"])
    headers, left_out = [], []
    for name, value in headers_of(flow, "request"):
        lname = name.lower()
        if lname in NOT_COPIED or lname.startswith(":") or lname in overridden:
            continue
        if lname == "content-encoding" and redacted_body:
            continue  # the body is stored decoded
        if value.startswith(REDACTED_PREFIX):
            left_out.append(name)
            continue
        if lname == "idempotency-key" and new_key:
            value = str(uuid.uuid4())
        headers.append((name, value))
    headers += extra
    query, left_out_query = without_redacted_params(flow["query"] or "")
    target = flow["path"] + (f"?{query}" if query else "")
    body = bytes(flow["request_body"] or b"")
    problem = None
    if edits or new_body is not None:
        from repost.store.edits import EditError, apply_edits

        encoding = None if redacted_body else flow["request_content_encoding"]
        try:
            target, headers, body = apply_edits(target, headers, body, encoding, list(edits), new_body)
        except EditError as e:
            problem = f"cannot edit it: {e}"
    p = Plan(
        flow=flow, safety="unsafe", method=flow["method"],
        scheme=to.scheme if to else flow["scheme"], host=to.host if to else flow["host"],
        port=to.port if to else flow["port"], target=target, headers=headers,
        body=body, left_out=left_out, left_out_query=left_out_query, problem=problem,
    )  # fmt: skip
    p.safety = plan_safety(p, rules)
    if flow["request_truncated"] and new_body is None:
        p.problem = f"its request body was stored truncated ({flow['request_size']:,} bytes sent); it cannot be re-sent"
    # An imported file can carry any text; what HTTP cannot carry is not sent (nor half sent).
    if not HTTP_TOKEN.match(p.method or ""):
        p.problem = f"its method {p.method!r} is not an HTTP token; it cannot be sent"
    bad = next((name for name, value in p.headers if unsendable_header(name, value)), None)
    if bad is not None:
        p.problem = f"its header {bad!r} has a name or value HTTP cannot carry (a control character); it cannot be sent"
    return p


def without_redacted_params(query: str) -> tuple[str, list[str]]:
    """The query string without the parameters redacted at capture (a fingerprint is not the
    value: it is never sent as if it were), the others byte for byte; and the names left out."""
    from urllib.parse import unquote_plus

    kept, left_out = [], []
    for pair in query.split("&") if query else []:
        name, _, value = pair.partition("=")
        if unquote_plus(value).startswith(REDACTED_PREFIX):
            left_out.append(unquote_plus(name))
        else:
            kept.append(pair)
    return "&".join(kept), left_out


def plan_safety(p: Plan, rules=()) -> str:
    """The safety class of what ``p`` will send (store/safety.py decides; this says what is sent)."""
    flow = p.flow
    as_recorded = not flow["request_redacted"] and not flow["request_truncated"]
    host_header = next((v for k, v in p.headers if k.lower() == "host"), None)
    return replay_safety(
        recorded_method=flow["method"], recorded_key=flow["idempotency_key"],
        recorded_body=bytes(flow["request_body"] or b"") if as_recorded else None,
        recorded_origin=(flow["scheme"], flow["host"], flow["port"], None),
        method=p.method, headers=p.headers, body=p.body, origin=(p.scheme, p.host, p.port, host_header),
        url=p.url, path=flow["path"] or "", rules=rules,
    )  # fmt: skip


@dataclass
class Outcome:
    plan: Plan
    snapshot: tuple  # what to store, as capture.make_snapshot builds it
    status: int | None
    error: str | None
    elapsed_ms: float


def tls_context(*, insecure: bool = False, cacert: str | None = None):
    """What aiohttp's ``ssl=`` takes: False (no verification), None (the system's CAs), or a context
    trusting ``cacert`` as well. A file that holds no certificate is a ValueError."""
    if insecure:
        return False
    if not cacert:
        return None
    import ssl

    context = ssl.create_default_context()
    try:
        context.load_verify_locations(cafile=cacert)
    except (ssl.SSLError, OSError) as e:
        raise ValueError(f"{cacert} holds no CA certificate that can be read ({getattr(e, 'reason', None) or e})") from None
    return context


async def send_all(plans: list[Plan], *, concurrency: int, timeout: float, tls=None, on_done=None) -> list[Outcome]:
    import aiohttp

    connector = aiohttp.TCPConnector(limit=concurrency, ssl=tls)
    async with aiohttp.ClientSession(
        connector=connector,
        auto_decompress=False,  # keep the wire bytes, as the recorder does
        cookie_jar=aiohttp.DummyCookieJar(),  # each replay sends the cookies it was recorded with
        timeout=aiohttp.ClientTimeout(total=timeout),
    ) as session:
        gate = asyncio.Semaphore(concurrency)

        async def one(p: Plan) -> Outcome:
            async with gate:
                outcome = await _send(session, p)
            if on_done:
                on_done(outcome)
            return outcome

        return await asyncio.gather(*(one(p) for p in plans))


async def _send(session, p: Plan) -> Outcome:
    import aiohttp
    from multidict import CIMultiDict

    from repost.store.capture import make_snapshot

    started = time.time()
    t0 = time.perf_counter()
    response = error = None
    status = None
    try:
        async with session.request(
            p.method, p.url, headers=CIMultiDict(p.headers), data=p.body or None, allow_redirects=False,
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
        ) as resp:  # fmt: skip
            raw = await _read_body(resp)
            status = resp.status
            version = f"HTTP/{resp.version.major}.{resp.version.minor}"
            response = (status, resp.reason or "", version, list(resp.raw_headers), raw, time.time())
    except asyncio.TimeoutError:
        error = (f"no response within the timeout ({session.timeout.total:g} s)", time.time())
    except (aiohttp.ClientError, OSError) as e:
        error = (connection_error(e, p), time.time())
    except ValueError as e:  # aiohttp refuses what HTTP cannot carry (plan() stops what it knows of)
        error = (f"{_authority(p)}: cannot be sent: {e}", time.time())
    elapsed = (time.perf_counter() - t0) * 1000
    snap = make_snapshot(
        flow_id=str(uuid.uuid4()), started=started, method=p.method, scheme=p.scheme, host=p.host, port=p.port,
        target=p.target, headers=[("Host", _authority(p))] + p.headers, body=p.body, response=response,
        error=error, replay_of=p.flow["id"],
    )  # fmt: skip
    return Outcome(p, snap, status, error[0] if error else None, elapsed)


def connection_error(e: BaseException, p: "Plan") -> str:
    """One line a user understands, instead of aiohttp's class names."""
    import ssl

    import aiohttp

    where = _authority(p)
    if isinstance(e, aiohttp.ClientConnectorCertificateError) or isinstance(getattr(e, "os_error", None), ssl.SSLCertVerificationError):
        reason = getattr(getattr(e, "certificate_error", None), "verify_message", None) or "certificate verify failed"
        return f"{where}'s TLS certificate is not trusted ({reason}): give its CA with --cacert PATH, or --insecure"
    if isinstance(e, aiohttp.ClientSSLError):
        return f"TLS handshake with {where} failed: {_os_reason(e)}"
    if isinstance(e, aiohttp.ClientConnectorDNSError if hasattr(aiohttp, "ClientConnectorDNSError") else ()):
        return f"cannot resolve {p.host}"
    if isinstance(e, aiohttp.ClientConnectorError):
        return f"cannot connect to {where}: {_os_reason(e)}"
    if isinstance(e, aiohttp.ServerDisconnectedError):
        return f"{where} closed the connection without an answer"
    if isinstance(e, aiohttp.ClientPayloadError):
        return f"{where}'s answer was cut off: {e}"
    if isinstance(e, aiohttp.ClientResponseError):
        return f"{where} answered with something that is not HTTP: {e.message}"
    if isinstance(e, OSError):
        return f"cannot reach {where}: {e.strerror or e}"
    return f"{where}: {e}"


def _os_reason(e: BaseException) -> str:
    import os

    os_error = getattr(e, "os_error", None) or (e if isinstance(e, OSError) else None)
    if getattr(os_error, "errno", None):
        return os.strerror(os_error.errno).lower()  # "connection refused", not asyncio's "Connect call failed (...)"
    reason = getattr(os_error, "strerror", None) or getattr(os_error, "reason", None) or str(os_error or e)
    return str(reason).rstrip(".").lower() if reason else "unknown error"


async def _read_body(resp):
    """The raw body; an event stream is read as it arrives, with each chunk's time."""
    from repost.store.tee import BodyTee
    from repost.store.sse import is_stream_type

    if not is_stream_type(resp.headers.get("content-type")):
        return await resp.read()
    tee = BodyTee(STREAM_CAP, t0=time.time())
    async for data in resp.content.iter_any():
        tee(data)
    tee(b"")
    return tee.result()


STREAM_CAP = DEFAULT_MAX_BODY  # a streamed answer is kept as the recorder keeps one


def _authority(p: Plan) -> str:
    return authority(p.scheme, p.host, p.port)
