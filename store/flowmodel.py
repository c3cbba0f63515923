"""A stored row as a ``mitmproxy.http.HTTPFlow``, so mitmproxy's own tools work on it:
its filter language (``list --filter``), its curl and httpie export (``show --as``).

Imports mitmproxy only when called: read commands that do not need it stay fast.
"""

import json


def _headers(pairs: list, body_was_decoded: bool, stored_len: int | None):
    from mitmproxy import http

    fields = []
    for name, value in pairs:
        lname = name.lower()
        if body_was_decoded and lname == "content-encoding":
            continue  # the body is stored decoded (redacted): the header would lie
        if body_was_decoded and lname == "content-length" and stored_len is not None:
            value = str(stored_len)
        fields.append((name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")))
    return http.Headers(fields)


def _parse_time(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def row_to_flow(row: dict):
    """An HTTPFlow from a row of ``flows`` (as ``queries.get_flow`` returns it)."""
    from mitmproxy import connection, flow, http

    def pairs(side):
        value = row[f"{side}_headers"]
        return json.loads(value) if isinstance(value, str) else (value or [])

    def decoded(side):
        encoded_header = any(k.lower() == "content-encoding" for k, _ in pairs(side))
        return bool(row[f"{side}_redacted"]) or (encoded_header and not row[f"{side}_content_encoding"])

    started = _parse_time(row["started_at"])
    ended = started + (row["duration_ms"] or 0) / 1000
    target = row["path"] + (f"?{row['query']}" if row["query"] else "")
    req_body = bytes(row["request_body"]) if row["request_body"] is not None else b""
    request = http.Request(
        host=row["host"],
        port=row["port"],
        method=row["method"].encode(),
        scheme=row["scheme"].encode(),
        authority=b"",
        path=target.encode("utf-8", "surrogateescape"),
        http_version=(row["http_version"] or "HTTP/1.1").encode(),
        headers=_headers(pairs("request"), decoded("request"), len(req_body)),
        content=req_body,
        trailers=None,
        timestamp_start=started,
        timestamp_end=started,
    )
    # Ids given, so that no uuid4() is drawn per connection (an export makes 100,000).
    conn_id = row.get("flow_id") or str(row["id"])
    client = connection.Client(
        id=conn_id, peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=started
    )
    server = connection.Server(id=conn_id, address=(row["host"], row["port"]))
    f = http.HTTPFlow(client, server)
    f.request = request
    if row.get("flow_id"):
        f.id = row["flow_id"]
    if row["status"] is not None:
        resp_body = bytes(row["response_body"]) if row["response_body"] is not None else b""
        f.response = http.Response(
            http_version=(row["response_http_version"] or "HTTP/1.1").encode(),
            status_code=row["status"],
            reason=(row["reason"] or "").encode(),
            headers=_headers(pairs("response"), decoded("response"), len(resp_body)),
            content=resp_body,
            trailers=None,
            timestamp_start=ended,
            timestamp_end=ended,
        )
    if row["error"]:
        f.error = flow.Error(row["error"], ended)
    return f
