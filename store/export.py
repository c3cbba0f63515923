"""Stored flows out, in the formats people already use: HAR 1.2, VCR.py cassettes,
curl commands and mitmproxy flow files. Each writer takes an iterator of rows and
writes as it goes, so memory stays flat whatever the number of flows.

Redacted values stay redacted: what the database holds is what goes out. A curl
command, which re-sends, leaves headers redacted at capture out (store/outgoing.py).
"""

import base64
import json
from collections.abc import Iterable
from typing import BinaryIO, NamedTuple, TextIO

from .bodies import decode_content, to_text
from .formats import BINARY, EXPORT
from .flowmodel import repost_fields
from .headers import header, headers_of


# -- HAR 1.2 -------------------------------------------------------------------


def write_har(rows: Iterable[dict], out: TextIO) -> int:
    """HAR 1.2, one entry a line, built straight from the stored rows.

    (mitmproxy's SaveHar builds entries from flow objects; making 100,000 flow
    objects only to read them back cost three quarters of an export's time.)"""
    creator = {"name": "repost", "version": "0.1.0"}
    out.write('{"log": {"version": "1.2", "creator": ' + json.dumps(creator) + ', "pages": [], "entries": [\n')
    n = 0
    for row in rows:
        out.write((",\n" if n else "") + json.dumps(har_entry(row), ensure_ascii=False))
        n += 1
    out.write("\n]}}\n")
    return n


def _pairs(pairs) -> list[dict]:
    return [{"name": k, "value": v} for k, v in pairs]


def _cookies(headers: list, name: str) -> list[dict]:
    out = []
    for k, v in headers:
        if k.lower() != name:
            continue
        for part in v.split(";") if name == "cookie" else [v.split(";", 1)[0]]:
            key, sep, value = part.strip().partition("=")
            if sep:
                out.append({"name": key, "value": value})
    return out


def _har_body(row: dict, side: str) -> tuple[str | None, bool, bytes, bool]:
    """(text or base64, is_base64, decoded bytes, exact): ``exact`` is whether a HAR reader
    gets the decoded bytes back from the text."""
    raw = bytes(row[f"{side}_body"] or b"")
    decoded = decode_content(raw, row[f"{side}_content_encoding"], partial_ok=True).data if raw else b""
    # Every Content-Type value, joined as the readers join them.
    ctype = ", ".join(v for k, v in headers_of(row, side) if k.lower() == "content-type")
    text, _ = to_text(decoded, ctype)
    if text is None and decoded:
        return base64.b64encode(decoded).decode(), True, decoded, True
    return text or "", False, decoded, not decoded or _comes_back(text, decoded, ctype)


def _comes_back(text: str, data: bytes, ctype: str) -> bool:
    """Whether a HAR reader gets ``data`` back from ``text``. Readers (repost's import,
    mitmproxy's) encode HAR text in the Content-Type's charset, else UTF-8 for JSON and
    Latin-1 for the rest."""
    from mitmproxy.net.http.headers import infer_content_encoding

    try:
        return text.encode(infer_content_encoding(ctype)) == data
    except (UnicodeEncodeError, LookupError):
        return False


def har_entry(row: dict) -> dict:
    from urllib.parse import parse_qsl

    req_headers = headers_of(row, "request")
    request = {
        "method": row["method"],
        "url": row["url"],
        "httpVersion": row["http_version"] or "HTTP/1.1",
        "cookies": _cookies(req_headers, "cookie"),
        "headers": _pairs(req_headers),
        "queryString": _pairs(parse_qsl(row["query"] or "", keep_blank_values=True)),
        "headersSize": -1,
        "bodySize": row["request_size"] or 0,
    }
    if row["request_body"]:
        text, is_b64, decoded, exact = _har_body(row, "request")
        ctype = header(req_headers, "content-type") or ""
        post = {"mimeType": ctype, "text": text, "params": []}
        if "x-www-form-urlencoded" in ctype.lower() and not is_b64:
            post["params"] = _pairs(parse_qsl(text, keep_blank_values=True))
        if is_b64:
            post["encoding"] = "base64"
        elif not exact:
            # HAR 1.2 has no encoding for postData, and readers encode its text by their own
            # rules (Latin-1 for a type without a charset): the text stays for people and
            # tools, and the exact bytes ride along in a custom field that repost's import reads.
            post["_base64"] = base64.b64encode(decoded).decode()
        request["postData"] = post
    duration = row["duration_ms"]  # None: not known (HAR has no way to say so; _repost does)
    if row["status"] is None:
        response = {
            "status": 0, "statusText": "", "httpVersion": "", "cookies": [], "headers": [],
            "content": {"size": 0, "mimeType": ""}, "redirectURL": "", "headersSize": -1, "bodySize": -1,
            "_error": row["error"],
        }  # fmt: skip
        receive = 0
    else:
        resp_headers = headers_of(row, "response")
        text, is_b64, decoded, exact = _har_body(row, "response")
        if not exact:  # content.encoding is HAR 1.2's own: base64 is exact for every reader
            text, is_b64 = base64.b64encode(decoded).decode(), True
        content = {
            "size": len(decoded),
            "compression": len(decoded) - len(bytes(row["response_body"] or b"")),
            "mimeType": header(resp_headers, "content-type") or "",
            "text": text,
        }
        if is_b64:
            content["encoding"] = "base64"
        response = {
            "status": row["status"],
            "statusText": row["reason"] or "",
            "httpVersion": row["response_http_version"] or "HTTP/1.1",
            "cookies": _cookies(resp_headers, "set-cookie"),
            "headers": _pairs(resp_headers),
            "content": content,
            "redirectURL": next((v for k, v in resp_headers if k.lower() == "location"), ""),
            "headersSize": -1,
            "bodySize": row["response_size"] or 0,
        }
        if row["error"]:
            response["_error"] = row["error"]
        # A stream's time to its last chunk is its receive time.
        chunks = json.loads(row["response_chunks"]) if row.get("response_chunks") else []
        receive = chunks[-1][0] if chunks else 0
    if duration is None:
        # HAR 1.2: send, wait and receive are not optional and never negative, and time is
        # their sum: an unknown duration is 0 there, and null in repost's own duration_ms.
        receive = 0
    entry = {
        "startedDateTime": row["started_at"].replace("Z", "+00:00"),  # an explicit offset, as HAR readers expect
        "time": duration or 0,
        "request": request,
        "response": response,
        "cache": {},
        "timings": {"blocked": -1, "dns": -1, "connect": -1, "ssl": -1, "send": 0,
                    "wait": max((duration or 0) - receive, 0), "receive": receive},  # fmt: skip
        "_repost": {"id": row["id"], **repost_fields(row)},
    }
    if row.get("replay_of"):
        entry["_repost"]["replay_of"] = row["replay_of"]
    return entry


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

    req_headers = headers_of(row, "request")
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
        for k, v in headers_of(row, "response")
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


def write_curl(rows: Iterable[dict], out: TextIO, on_notes=None) -> int:
    """One command per line (store/commands.py's, as ``show --as curl`` prints them);
    what the user must know about a flow (redacted values) goes to ``on_notes``."""
    from .commands import curl_command
    from .outgoing import notes, outgoing

    n = 0
    for row in rows:
        o = outgoing(row)
        out.write(curl_command(row, o) + "\n")
        if on_notes:
            on_notes(notes(o, row["id"]))
        n += 1
    return n


# -- mitmproxy flow files ---------------------------------------------------------


def write_mitm(rows: Iterable[dict], out: BinaryIO) -> int:
    """A mitmproxy flow file: each flow's state, serialised as mitmproxy's FlowWriter does."""
    from mitmproxy.io import tnetstring

    from .flowmodel import flow_state

    n = 0
    for row in rows:
        tnetstring.dump(flow_state(row), out)
        n += 1
    return n


# -- the registry: one writer per name in store/formats.py -------------------------------


class Format(NamedTuple):
    name: str
    write: object  # (rows, out, on_notes) -> how many flows were written
    binary: bool  # bytes out (a flow file), not text


_WRITERS = {
    "har": lambda rows, out, on_notes=None: write_har(rows, out),
    "vcr": lambda rows, out, on_notes=None: write_vcr(rows, out),
    "curl": write_curl,
    "mitm": lambda rows, out, on_notes=None: write_mitm(rows, out),
}
FORMATS = {name: Format(name, _WRITERS[name], name in BINARY) for name in EXPORT}
