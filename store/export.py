"""Stored flows out, in the formats people already use: HAR 1.2, VCR.py cassettes,
curl commands and mitmproxy flow files. Each writer takes an iterator of rows and
writes as it goes, so memory stays flat whatever the number of flows.

Redacted values stay redacted: what the database holds is what goes out.
"""

import base64
import json
import shlex
from collections.abc import Iterable, Iterator
from typing import BinaryIO, TextIO

from .bodies import decode_content, to_text
from .flowmodel import row_to_flow

FORMATS = ("har", "vcr", "curl", "mitm")


def _headers(row: dict, side: str) -> list:
    value = row[f"{side}_headers"]
    return json.loads(value) if isinstance(value, str) else (value or [])


# -- HAR 1.2 -------------------------------------------------------------------


def write_har(rows: Iterable[dict], out: TextIO) -> int:
    """mitmproxy's own HAR entries (its SaveHar addon), one flow at a time."""
    from mitmproxy import version
    from mitmproxy.addons.savehar import SaveHar

    har = SaveHar()
    servers_seen: set = set()
    creator = {"name": "repost", "version": "0.1.0", "comment": f"entries by mitmproxy {version.VERSION}"}
    out.write('{"log": {"version": "1.2", "creator": ' + json.dumps(creator) + ', "pages": [], "entries": [\n')
    n = 0
    for row in rows:
        flow = row_to_flow(row)
        entry = har.flow_entry(flow, servers_seen)
        _har_fix_entry(entry, row, flow)
        out.write((",\n" if n else "") + json.dumps(entry, ensure_ascii=False))
        n += 1
    out.write("\n]}}\n")
    return n


def _har_fix_entry(entry: dict, row: dict, flow) -> None:
    # HAR 1.2 wants an offset in startedDateTime (mitmproxy gives +00:00: fine),
    # postData for any request with a body, and a text postData: a binary body goes
    # base64 with "encoding" (as response content does), so it survives a round trip.
    body = flow.request.raw_content or b""
    if body and "postData" not in entry["request"]:
        entry["request"]["postData"] = {"mimeType": flow.request.headers.get("content-type", ""), "params": [], "text": ""}
    if body:
        decoded = decode_content(body, flow.request.headers.get("content-encoding"), partial_ok=True).data
        text, _ = to_text(decoded, flow.request.headers.get("content-type"))
        if text is None:
            entry["request"]["postData"]["text"] = base64.b64encode(decoded).decode()
            entry["request"]["postData"]["encoding"] = "base64"
    entry["response"].setdefault("content", {}).setdefault("size", 0)
    entry["response"]["content"].setdefault("mimeType", "")
    entry["_repost"] = {"id": row["id"], "truncated": bool(row["request_truncated"] or row["response_truncated"])}
    if row.get("replay_of"):
        entry["_repost"]["replay_of"] = row["replay_of"]


# -- VCR.py cassettes ------------------------------------------------------------


def write_vcr(rows: Iterable[dict], out: TextIO, batch: int = 500) -> int:
    """A cassette as vcrpy writes it (version 1), written in batches of interactions."""
    import yaml
    from vcr.serializers import compat

    try:
        from yaml import CDumper as Dumper
    except ImportError:  # pragma: no cover
        from yaml import Dumper

    pending, n = [], 0

    def flush():
        # A block sequence at the key's own indentation is what PyYAML writes too.
        out.write(("interactions:\n" if n == len(pending) else "") + yaml.dump(pending, Dumper=Dumper))

    for row in rows:
        if row["status"] is None:
            continue  # vcrpy has no way to play back "no response"
        pending.append(compat.convert_to_unicode(_vcr_interaction(row)))
        n += 1
        if len(pending) >= batch:
            flush()
            pending = []
    if pending:
        flush()
    if n == 0:
        out.write("interactions: []\n")
    out.write("version: 1\n")
    return n


def _vcr_interaction(row: dict) -> dict:
    def header_map(pairs):
        out: dict = {}
        for name, value in pairs:
            out.setdefault(name, []).append(value)
        return out

    req_headers = _headers(row, "request")
    body = bytes(row["request_body"]) if row["request_body"] else None
    if body is not None and row["request_content_encoding"] is None and row["request_redacted"]:
        req_headers = [[k, v] for k, v in req_headers if k.lower() != "content-encoding"]
    # Response bodies go in decoded, as vcrpy's decode_compressed_response writes them:
    # its stubs hand clients the stored bytes without undoing a Content-Encoding.
    resp_body = bytes(row["response_body"] or b"")
    if row["response_content_encoding"]:
        resp_body = decode_content(resp_body, row["response_content_encoding"]).data
    resp_headers = [
        [k, str(len(resp_body)) if k.lower() == "content-length" else v]
        for k, v in _headers(row, "response")
        if k.lower() != "content-encoding"
    ]
    req_encoded = any(k.lower() == "content-encoding" for k, _ in req_headers)
    return {
        "request": {
            "method": row["method"], "uri": row["url"], "headers": header_map(req_headers),
            "body": _readable(body, req_encoded),
        },
        "response": {
            "status": {"code": row["status"], "message": row["reason"] or ""},
            "headers": header_map(resp_headers),
            "body": {"string": _readable(resp_body, False)},
        },
    }  # fmt: skip


def _readable(body: bytes | None, encoded: bool):
    """Text stays text in the cassette (people read fixtures); other bytes stay bytes."""
    if body is None or encoded:
        return body
    try:
        return body.decode()
    except UnicodeDecodeError:
        return body


# -- curl ----------------------------------------------------------------------

# curl sets these itself, from the URL and the body it sends.
CURL_SETS = frozenset({"host", "content-length", "transfer-encoding", "connection", "proxy-connection", "keep-alive"})


def curl_command(row: dict) -> str:
    """A shell command that re-sends the stored request, body bytes included.

    A text body goes in --data-binary; a binary one through printf with octal
    escapes on a pipe (a NUL byte cannot live in a shell word)."""
    headers = _headers(row, "request")
    names = {k.lower() for k, _ in headers}
    args = ["curl", "--silent", "--show-error", "--request", row["method"], "--url", row["url"]]
    for name, value in headers:
        lname = name.lower()
        if lname in CURL_SETS or lname.startswith(":"):
            continue
        if lname == "content-encoding" and row["request_redacted"]:
            continue  # the body is stored decoded
        args += ["--header", f"{name}: {value}"]
    for own in ("user-agent", "accept", "content-type"):
        if own not in names:
            args += ["--header", f"{own.title()}:"]  # "Name:" stops curl adding its own
    body = bytes(row["request_body"] or b"")
    if not body:
        return " ".join(shlex.quote(a) for a in args)
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and "\x00" not in text:
        return " ".join(shlex.quote(a) for a in args + ["--data-binary", text])
    escaped = "".join(chr(b) if 32 <= b < 127 and chr(b) not in "\\'%" else f"\\{b:03o}" for b in body)
    return f"printf '{escaped}' | " + " ".join(shlex.quote(a) for a in args + ["--data-binary", "@-"])


def write_curl(rows: Iterable[dict], out: TextIO) -> int:
    n = 0
    for row in rows:
        out.write(curl_command(row) + "\n")
        n += 1
    return n


# -- mitmproxy flow files ---------------------------------------------------------


def write_mitm(rows: Iterable[dict], out: BinaryIO) -> int:
    from mitmproxy import io

    writer = io.FlowWriter(out)
    n = 0
    for row in rows:
        writer.add(row_to_flow(row))
        n += 1
    return n


def rows_with_events(conn, rows: Iterator[dict]) -> Iterator[dict]:
    from .queries import events_of

    for row in rows:
        row["events"] = events_of(conn, row["id"])
        yield row
