"""A stored row as a mitmproxy flow, so mitmproxy's own tools work on it: its
filter language (``list --filter``), its curl and httpie export (``show --as``),
its flow files (``export --format mitm``).

One function builds the flow's *state* (the dict mitmproxy serialises); a flow
object is made from it with mitmproxy's own ``Flow.from_state``, and a flow file
is written from it directly (making 100,000 flow objects only to serialise them
again was most of an export's time). The shape of the state comes from the
installed mitmproxy, so mitmproxy 11 and 12 each get their own.

Imports mitmproxy only when called: read commands that do not need it stay fast.
"""

import json
from functools import lru_cache

from .headers import headers_of


def _fields(pairs: list, body_was_decoded: bool, stored_len: int) -> tuple:
    """Header fields as mitmproxy keeps them: ((name bytes, value bytes), ...)."""
    fields = []
    for name, value in pairs:
        lname = name.lower()
        if body_was_decoded and lname == "content-encoding":
            continue  # the body is stored decoded (redacted): the header would lie
        if body_was_decoded and lname == "content-length":
            value = str(stored_len)
        fields.append((name.encode("utf-8", "surrogateescape"), value.encode("utf-8", "surrogateescape")))
    return tuple(fields)


def _parse_time(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=1)
def _template() -> dict:
    """The state of an empty HTTP flow, from the installed mitmproxy."""
    from mitmproxy import connection, http

    client = connection.Client(id="", peername=("127.0.0.1", 0), sockname=("127.0.0.1", 0), timestamp_start=0.0)
    server = connection.Server(id="", address=None)
    f = http.HTTPFlow(client, server)
    f.request = http.Request.make("GET", "http://template.invalid/")
    return f.get_state()


def flow_state(row: dict) -> dict:
    """The state of an HTTPFlow for a row of ``flows``: what ``Flow.get_state()`` would give."""
    def decoded(side, headers):
        encoded_header = any(k.lower() == "content-encoding" for k, _ in headers)
        return bool(row[f"{side}_redacted"]) or (encoded_header and not row[f"{side}_content_encoding"])

    template = _template()
    started = _parse_time(row["started_at"])
    duration = row["duration_ms"]
    ended = started + (duration or 0) / 1000
    flow_id = row.get("flow_id") or str(row["id"])
    target = row["path"] + (f"?{row['query']}" if row["query"] else "")
    req_headers = headers_of(row, "request")
    req_body = bytes(row["request_body"]) if row["request_body"] is not None else b""
    state = dict(template)
    state.update(
        id=flow_id,
        timestamp_created=started,
        # The connections' ids are given, so that no uuid4() is drawn for each.
        client_conn=dict(template["client_conn"], id=flow_id, timestamp_start=started),
        server_conn=dict(template["server_conn"], id=flow_id, address=(row["host"], row["port"])),
        request={
            "http_version": (row["http_version"] or "HTTP/1.1").encode(),
            "headers": _fields(req_headers, decoded("request", req_headers), len(req_body)),
            "content": req_body,
            "trailers": None,
            "timestamp_start": started,
            "timestamp_end": started,
            "host": row["host"],
            "port": row["port"],
            "method": row["method"].encode(),
            "scheme": row["scheme"].encode(),
            "authority": b"",
            "path": target.encode("utf-8", "surrogateescape"),
        },
        response=None,
        error={"msg": row["error"], "timestamp": ended} if row["error"] else None,
    )
    if duration is None or any(row.get(k) for k in ("replay_of_flow_id", "response_incomplete", "response_chunks", "tags")):
        # What a flow file has no place for, kept where mitmproxy keeps what addons note
        # (and writes back): `repost import` reads it.
        state["metadata"] = {"repost": repost_fields(row)}
    if row["status"] is not None:
        resp_headers = headers_of(row, "response")
        resp_body = bytes(row["response_body"]) if row["response_body"] is not None else b""
        state["response"] = {
            "http_version": (row["response_http_version"] or "HTTP/1.1").encode(),
            "headers": _fields(resp_headers, decoded("response", resp_headers), len(resp_body)),
            "content": resp_body,
            "trailers": None,
            "timestamp_start": ended,
            "timestamp_end": ended if duration is not None else None,
            "status_code": row["status"],
            "reason": (row["reason"] or "").encode(),
        }
    return state


def repost_fields(row: dict) -> dict:
    """What a round trip through HAR (``_repost``) or a flow file (``metadata["repost"]``)
    must keep that the format has no place for: the flow's id and its original's (an
    import links a replay to its original again), a stream's chunk times, a stream cut
    off, an unknown duration."""
    fields = {"truncated": bool(row["request_truncated"] or row["response_truncated"]), "duration_ms": row["duration_ms"]}
    if row.get("flow_id"):
        fields["flow_id"] = row["flow_id"]
    if row.get("replay_of_flow_id"):
        fields["replay_of_flow_id"] = row["replay_of_flow_id"]
    if row.get("response_incomplete"):
        fields["incomplete"] = True
    if row.get("response_chunks"):
        fields["chunks"] = json.loads(row["response_chunks"])
    if row.get("tags"):
        fields["tags"] = list(row["tags"])
    return fields


def row_to_flow(row: dict):
    """An HTTPFlow from a row of ``flows`` (as ``queries.get_flow`` returns it)."""
    from mitmproxy import flow

    return flow.Flow.from_state(flow_state(row))
