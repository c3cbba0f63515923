"""A finished mitmproxy flow as one row of the ``flows`` table.

Runs in the writer process (store/writer_process.py), never on the proxy's event loop. Duck-typed on
mitmproxy's flow objects so that the store imports no mitmproxy code. Every
bit of Python here costs proxy throughput (the GIL), so the common case, a body
with nothing secret in it, is one regex search and one hash.
"""

import json
import time
from hashlib import sha256
from typing import NamedTuple

from .addresses import authority
from .bodies import decode_content
from .redact import CannotRedact, Redactor
from .sse import rebase_chunks
from .timefmt import iso_utc

COLUMNS = (
    "flow_id", "started_at", "method", "url", "scheme", "host", "port", "path", "query",
    "http_version", "request_headers", "request_body", "request_content_encoding",
    "request_size", "request_sha256", "request_truncated", "request_redacted", "idempotency_key",
    "status", "reason", "response_http_version", "response_headers", "response_body",
    "response_content_encoding", "response_size", "response_sha256", "response_truncated",
    "response_redacted", "duration_ms", "error", "replay_of", "response_incomplete", "response_chunks",
    "request_graphql",
)  # fmt: skip
INSERT_SQL = f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


class Streamed(NamedTuple):
    """A body that went through unbuffered (a stream, or one above the size cap),
    as the tee in addons/streaming.py saw it: its first bytes, and the whole's
    size and SHA-256."""

    prefix: bytes
    size: int
    sha256: str
    complete: bool
    chunks: tuple = ()  # ((t_ms, size), ...) since the response began, for event streams


class ResponseSnapshot(NamedTuple):
    status: int
    reason: bytes
    http_version: bytes
    fields: tuple  # ((name bytes, value bytes), ...)
    content: object  # bytes, a Streamed, or None
    ended: float | None


class Snapshot(NamedTuple):
    """A finished flow's raw values, as the proxy hands them to the writer process (pickled:
    a named tuple pickles as a tuple does, by position)."""

    flow_id: str
    started: float | None
    method: bytes
    scheme: bytes
    host: str
    port: int
    target: bytes  # path and query, as sent
    http_version: bytes
    fields: tuple  # ((name bytes, value bytes), ...)
    content: object  # bytes, a Streamed, or None
    response: ResponseSnapshot | None
    error: tuple | None  # (message, timestamp)
    replay_of: int | None


def snapshot(flow, replay_of: int | None = None) -> Snapshot:
    """The raw values of a finished flow, taken on the proxy's event loop.

    Only immutable bytes, ints and tuples of bytes: cheap to take, safe to read
    from another thread, and invisible to the garbage collector (holding the
    flow objects themselves until the writer's next batch measured ~10% slower).
    """
    rd = flow.request.data
    resp = flow.response
    err = flow.error
    sd = resp.data if resp is not None else None
    tees = flow.metadata.get("repost_tees")  # set only for bodies that may stream
    return Snapshot(
        flow.id, rd.timestamp_start, rd.method, rd.scheme, rd.host, rd.port, rd.path, rd.http_version,
        rd.headers.fields, _teed(rd.content, tees, "request") if tees else rd.content,
        None if sd is None else ResponseSnapshot(
            sd.status_code, sd.reason, sd.http_version, sd.headers.fields,
            _teed(sd.content, tees, "response") if tees else sd.content,
            sd.timestamp_end or (tees and _last_arrival(tees)) or sd.timestamp_start,
        ),
        None if err is None else (err.msg, err.timestamp),
        replay_of,
    )  # fmt: skip


def _teed(content, tees, side: str):
    """What went through the side's tee; but a body that turned out not to stream
    (none at all, say: mitmproxy then skips the tee) is the one mitmproxy kept."""
    if content is None and side in tees:
        return tees[side].result()
    return content


def _last_arrival(tees) -> float | None:
    """When the last chunk of a streamed response arrived: the end of one that was
    cut off (mitmproxy gives it no end time; its headers' time would make a long
    stream look instant)."""
    tee = tees.get("response")
    return tee.last if tee is not None else None


def make_snapshot(
    *, flow_id: str, started: float, method: str, scheme: str, host: str, port: int, target: str,
    headers: list[tuple[str, str]], body: bytes, response: tuple | None, error: tuple | None,
    replay_of: int | None = None, http_version: str = "HTTP/1.1",
) -> Snapshot:
    """A snapshot of a flow repost made itself (a replay): same layout as snapshot().

    ``response`` is (status, reason, http_version, [(name, value) bytes pairs], raw body, ended);
    ``error`` is (message, timestamp).
    """
    fields = tuple((k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in headers)
    resp = None
    if response is not None:
        status, reason, version, resp_fields, raw, ended = response
        resp = ResponseSnapshot(status, reason.encode("utf-8", "replace"), version.encode(), tuple(resp_fields), raw, ended)
    return Snapshot(
        flow_id, started, method.encode(), scheme.encode(), host, port, target.encode("utf-8", "surrogateescape"),
        http_version.encode(), fields, body, resp, error, replay_of,
    )  # fmt: skip


def row_from_snapshot(snap: Snapshot, redactor: Redactor | None, max_body: int) -> tuple:
    flow_id, started, method, scheme, host, port, raw_target, http_version, fields, content, resp, err, replay_of = snap
    scheme = scheme.decode()
    target = _text_of_target(raw_target)
    path, sep, query = target.partition("?")
    # One look at the target and every header value at once: most flows have nothing there
    # worth a closer look (one call, not one per header or per part).
    suspect = bool(redactor) and redactor.may_hold_secret(
        b"\n".join([raw_target, *(v for _, v in fields), *(v for _, v in resp[3])] if resp else [raw_target, *(v for _, v in fields)])
    )
    if suspect:
        path = redactor.path(path)  # path parameters (";jsessionid=") and token shapes
        if sep:
            query = redactor.query(query)
    url = f"{scheme}://{authority(scheme, host, port)}{path}{sep}{query}"
    req_headers, ikey, req_ctype, req_encoding = _headers(fields, redactor, suspect)
    req_body = _body(content, req_encoding, req_ctype, redactor, max_body)

    if resp is not None:
        status, reason, resp_version, resp_fields, resp_content, ended = resp
        resp_headers, _, resp_ctype, resp_encoding = _headers(resp_fields, redactor, suspect)
        resp_part = (
            status,
            reason.decode("utf-8", "replace"),
            resp_version.decode(),
            resp_headers,
            *_body(resp_content, resp_encoding, resp_ctype, redactor, max_body),
        )
        if isinstance(resp_content, Streamed):
            chunks = resp_content.chunks
            if chunks and resp_part[-1] == WITHHELD:
                chunks = None
            elif chunks and resp_part[-1]:  # redacted: stored decoded and changed, so the chunks must follow
                was = resp_content.prefix[:max_body]  # what was redacted: the prefix as stored
                chunks = None if resp_encoding else rebase_chunks(was, resp_part[4], resp_ctype, chunks)
            stream_part = (int(not resp_content.complete), _encode_json(chunks) if chunks else None)
        else:
            stream_part = (0, None)
    else:
        resp_part = (None,) * 8 + (0, 0)  # no status, headers or body; not truncated or redacted
        stream_part = (0, None)
        ended = None
    if not ended:
        ended = err[1] if err else None
    # A time of 0 (or none) is no time: an imported flow that never finished, or a file
    # that left its times out, has no duration, and starts when it ended, else now.
    duration = round((ended - started) * 1000, 3) if started and ended else None
    if not started:
        started = ended or time.time()
    return (
        flow_id, iso_utc(started), method.decode(), url, scheme, host, port, path, query,
        http_version.decode(), req_headers, *req_body, ikey,
        *resp_part, duration, err[0] if err else None, replay_of, *stream_part,
        _graphql_operation(method, req_body, req_ctype, query),
    )  # fmt: skip


def _graphql_operation(method: bytes, req_body: tuple, content_type: str, query: str) -> str:
    """The GraphQL operation a POST runs, decided once here (in the writer process) by
    graphql-core, so that reading it (list's safety column) never imports the parser:
    "query", "mutation", "subscription", "unknown" (GraphQL that cannot be told), "" (not GraphQL).
    Most bodies say no at one bytes test."""
    body, encoding = req_body[0], req_body[1]
    if method.upper() != b"POST":
        return ""
    data = decode_content(bytes(body), encoding, partial_ok=True).data if encoding and body else body
    if "graphql" not in content_type.lower() and "query=" not in query and not (data and b"query" in data[:65536]):
        return ""
    from .safety import graphql_operation

    op = graphql_operation(data[:65536] if data else data, content_type, query)
    return op or ("unknown" if _graphql_shaped(data, content_type, query) else "")


def _graphql_shaped(data, content_type: str, query: str) -> bool:
    """Whether a request looks like GraphQL even though its operation could not be told (then it
    must count as unsafe): a GraphQL media type, a query parameter, a JSON body with "query"."""
    if "graphql" in content_type.lower() or "query=" in query:
        return True
    return bool(data) and b'"query"' in data[:65536]


def _text_of_target(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:  # keep every byte: percent-encode what is not UTF-8
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def _headers(fields, redactor: Redactor | None, suspect: bool = True) -> tuple[str, str | None, str, str | None]:
    """(headers as JSON ``[[name, value], ...]``, redacted; Idempotency-Key; Content-Type; Content-Encoding).

    One pass over the raw fields: mitmproxy's own ``headers.get`` costs more than all of this.
    """
    pairs = []
    noted = {}
    encodings = []
    for k, v in fields:
        name = k.decode("latin-1")
        try:
            value = v.decode()
        except UnicodeDecodeError:
            value = v.decode("latin-1")
        if redactor:
            value = redactor.header_value(name, value, suspect)
        lname = name.lower()
        if lname == "content-encoding":
            encodings.append(value)  # two lines are one list (RFC 9110 5.3): every coding is undone
        elif lname in _NOTED_HEADERS and lname not in noted:
            noted[lname] = value
        pairs.append([name, value])
    return (
        _encode_json(pairs),
        noted.get("idempotency-key"),
        noted.get("content-type", ""),
        ", ".join(encodings) or None,
    )


# Compact separators: headers are ~a quarter of a flow's row, and ", " costs 2 bytes
# a header. One encoder, made once: json.dumps(**kw) builds an encoder per call.
_encode_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_NOTED_HEADERS = frozenset({"idempotency-key", "content-type", "content-encoding"})


# *_redacted: 1 when the body is stored decoded (and redacted); WITHHELD when it may hold a
# secret that could not be redacted (an encoding or charset that does not decode), so
# nothing of it is stored: its size and SHA-256 still describe what was sent.
WITHHELD = 2


def _body(raw, encoding: str | None, content_type: str, redactor, max_body: int) -> tuple:
    """(stored bytes, stored encoding, size, sha256, truncated, redacted)."""
    if raw is None:  # streamed by mitmproxy itself, or never received
        return (None, None, None, None, 0, 0)
    if isinstance(raw, Streamed):
        size, digest = raw.size, raw.sha256
        stored = raw.prefix[:max_body]
        truncated = size > len(stored)
    else:
        size = len(raw)
        digest = sha256(raw).hexdigest()
        truncated = size > max_body
        stored = raw[:max_body] if truncated else raw
    redacted = 0
    if redactor and stored:
        stored, encoding, redacted, cut = _redacted(stored, encoding, content_type, redactor, max_body, truncated)
        truncated = truncated or cut
    return (stored, encoding or None, size, digest, int(truncated), redacted)


def _redacted(stored: bytes, encoding: str | None, content_type: str, redactor, max_body: int, truncated: bool) -> tuple:
    """(stored bytes, encoding, redacted, cut off by decoding) for a body redaction has seen.

    Redacting inside a compressed stream is not possible, so a redacted body is stored
    decoded. The compressed bytes are kept only when they decoded completely and held
    nothing to redact: a body decoded only in part (past the cap, a prefix) is stored as
    its decoded and redacted prefix, and one that does not decode at all (an unknown or
    broken encoding, a charset that does not decode) is withheld."""
    if encoding and encoding.strip().lower() != "identity":
        decoded = decode_content(stored, encoding, cap=max_body, partial_ok=True)
        if decoded.note and not decoded.capped:
            return b"", None, WITHHELD, False
        data, complete = decoded.data, not (decoded.capped or truncated)
    else:
        data, complete = stored, True
    try:
        new = redactor.body(data, content_type)
    except CannotRedact:
        return b"", None, WITHHELD, False
    if new is not None:
        return new, None, 1, not complete
    if complete:
        return stored, encoding, 0, False
    return data, None, 1, True
