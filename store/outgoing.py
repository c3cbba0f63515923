"""A stored request as it would go out again, for every output that re-sends it
(``export --format curl``, ``show --as curl|httpie|python``; replay shares NOT_COPIED).

One place decides which headers go: a header the client sets itself or a hop-by-hop
one never does, and neither does one redacted at capture (a ``REDACTED-...`` value
sent on as if it were real). Redacted query parameters and body values cannot be
left out without changing the request: they go as stored, and the notes say so.
"""

import re
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import parse_qsl

from .headers import headers_of
from .redact import REDACTED_PREFIX

# Set by the client for the connection it makes, or hop-by-hop: never copied.
NOT_COPIED = frozenset({
    "host", "content-length", "transfer-encoding", "connection", "keep-alive", "proxy-connection",
    "proxy-authorization", "te", "upgrade", "trailer",
})  # fmt: skip

# RFC 9110's token: a header name curl and httpie take as a name. ("@name" would make
# curl read a file.)
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


@lru_cache(maxsize=4096)
def _kind(name: str) -> str:
    """"skip" (set by the client, or hop-by-hop), "send", or "bad" (not a token)."""
    lname = name.lower()
    if lname in NOT_COPIED or lname.startswith(":"):
        return "skip"
    if lname == "content-encoding":
        return "content-encoding"
    return "send" if _TOKEN.match(name) else "bad"


class Outgoing(NamedTuple):
    method: str
    url: str
    headers: list  # [(name, value), ...] to send
    body: bytes  # the stored bytes
    left_out: list  # header names redacted at capture
    bad_names: list  # header names that are not tokens
    redacted_query: list  # query parameter names redacted at capture (sent as stored)
    redacted_body: bool  # secrets in the body were redacted at capture (sent as stored)
    truncated: bool  # only the body's first bytes were stored


def outgoing(row: dict) -> Outgoing:
    redacted_body = bool(row["request_redacted"])
    headers, left_out, bad = [], [], []
    for name, value in headers_of(row, "request"):
        kind = _kind(name)
        if kind == "skip" or (kind == "content-encoding" and redacted_body):
            continue  # a body that redaction changed is stored decoded: no Content-Encoding
        if value.startswith(REDACTED_PREFIX):
            left_out.append(name)
        elif kind == "bad":
            bad.append(name)
        else:
            headers.append((name, value))
    query = row["query"] or ""
    redacted_query = []
    if REDACTED_PREFIX in query:  # parse only what may hold one
        pairs = parse_qsl(query, keep_blank_values=True)
        redacted_query = list(dict.fromkeys(k for k, v in pairs if v.startswith(REDACTED_PREFIX)))
    return Outgoing(
        row["method"], row["url"], headers, bytes(row["request_body"] or b""), left_out, bad, redacted_query, redacted_body,
        bool(row.get("request_truncated")),
    )  # fmt: skip


def notes(o: Outgoing, flow_id: int) -> list[str]:
    """What a user must know before sending ``o``: one line each, for stderr."""
    out = []
    if o.left_out:
        names = list(dict.fromkeys(o.left_out))
        out.append(f"flow {flow_id}: left out, redacted at capture: {', '.join(names)}; add {'it' if len(names) == 1 else 'them'} yourself")
    if o.redacted_query:
        out.append(f"flow {flow_id}: query parameters redacted at capture, sent as stored: {', '.join(o.redacted_query)}")
    if o.redacted_body:
        out.append(f"flow {flow_id}: secrets in its body were redacted at capture and are sent redacted")
    if o.truncated:
        out.append(f"flow {flow_id}: its body was stored truncated; only the {len(o.body):,} bytes stored are sent")
    if o.bad_names:
        out.append(f"flow {flow_id}: left out, not valid header names: {', '.join(repr(n) for n in o.bad_names)}")
    return out
