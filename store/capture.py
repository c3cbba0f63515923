"""A finished mitmproxy flow as one row of the ``flows`` table.

Runs on the writer thread, never on the proxy's event loop. Duck-typed on
mitmproxy's flow objects so that the store imports no mitmproxy code. Every
bit of Python here costs proxy throughput (the GIL), so the common case, a body
with nothing secret in it, is one regex search and one hash.
"""

import json
import time
from hashlib import sha256

from .bodies import decode_content
from .redact import Redactor
from .timefmt import iso_utc

COLUMNS = (
    "flow_id", "started_at", "method", "url", "scheme", "host", "port", "path", "query",
    "http_version", "request_headers", "request_body", "request_content_encoding",
    "request_size", "request_sha256", "request_truncated", "request_redacted", "idempotency_key",
    "status", "reason", "response_http_version", "response_headers", "response_body",
    "response_content_encoding", "response_size", "response_sha256", "response_truncated",
    "response_redacted", "duration_ms", "error", "replay_of",
)  # fmt: skip
INSERT_SQL = f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def flow_to_row(flow, redactor: Redactor | None, max_body: int, replay_of: int | None = None) -> tuple:
    req = flow.request
    rd = req.data
    scheme = rd.scheme.decode()
    host, port = rd.host, rd.port
    target = _text_of_target(rd.path)
    path, sep, query = target.partition("?")
    if redactor and sep and redactor.may_hold_secret(rd.path):
        query = redactor.query(query)
    url = f"{scheme}://{_authority(scheme, host, port)}{path}{sep}{query}"
    req_headers, ikey = _headers(rd.headers.fields, redactor)
    req_ctype = rd.headers.get("content-type", "")
    req_body = _body(rd.content, rd.headers.get("content-encoding"), req_ctype, redactor, max_body)

    resp = flow.response
    error = flow.error.msg if flow.error else None
    if resp is not None:
        sd = resp.data
        resp_part = (
            sd.status_code,
            sd.reason.decode("utf-8", "replace"),
            sd.http_version.decode(),
            _headers(sd.headers.fields, redactor)[0],
            *_body(sd.content, sd.headers.get("content-encoding"), sd.headers.get("content-type", ""), redactor, max_body),
        )
        ended = sd.timestamp_end or sd.timestamp_start or time.time()
    else:
        resp_part = (None,) * 8 + (0, 0)  # no status, headers or body; not truncated or redacted
        ended = flow.error.timestamp if flow.error else time.time()
    started = rd.timestamp_start
    return (
        flow.id, iso_utc(started), rd.method.decode(), url, scheme, host, port, path, query,
        rd.http_version.decode(), req_headers, *req_body, ikey,
        *resp_part, round((ended - started) * 1000, 3), error, replay_of,
    )  # fmt: skip


def _text_of_target(raw: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:  # keep every byte: percent-encode what is not UTF-8
        return "".join(chr(b) if b < 0x80 else f"%{b:02X}" for b in raw)


def _authority(scheme: str, host: str, port: int) -> str:
    if ":" in host:
        host = f"[{host}]"
    if (scheme, port) in (("http", 80), ("https", 443)):
        return host
    return f"{host}:{port}"


def _headers(fields, redactor: Redactor | None) -> tuple[str, str | None]:
    """Headers as JSON ``[[name, value], ...]`` (redacted) and the Idempotency-Key, if any."""

    pairs = []
    ikey = None
    for k, v in fields:
        name = k.decode("latin-1")
        try:
            value = v.decode()
        except UnicodeDecodeError:
            value = v.decode("latin-1")
        if redactor:
            value = redactor.header_value(name, value)
        if name.lower() == "idempotency-key":
            ikey = value
        pairs.append([name, value])
    return json.dumps(pairs, ensure_ascii=False), ikey


def _body(raw: bytes | None, encoding: str | None, content_type: str, redactor, max_body: int) -> tuple:
    """(stored bytes, stored encoding, size, sha256, truncated, redacted)."""
    if raw is None:  # streamed or never received
        return (None, None, None, None, 0, 0)
    size = len(raw)
    digest = sha256(raw).hexdigest()
    truncated = size > max_body
    stored = raw[:max_body] if truncated else raw
    redacted = 0
    if redactor and stored:
        decoded = decode_content(stored, encoding, cap=max_body, partial_ok=True).data if encoding else stored
        new = redactor.body(decoded, content_type)
        if new is not None:
            # Stored decoded: redacting inside a compressed stream is not possible.
            stored, encoding, redacted = new, None, 1
    return (stored, encoding or None, size, digest, int(truncated), redacted)
