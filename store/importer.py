"""Flows in from HAR files, mitmproxy flow files and VCR.py cassettes, through the
recorder's own write path: redacted on the way in (unless told otherwise), stored
as recorded flows.

Every format becomes snapshots (``capture.make_snapshot``) straight from what the
file holds, without building mitmproxy flow objects: a HAR entry as mitmproxy's
HAR reader would read it (with what that leaves out put back), a mitmproxy flow
record from its tnetstring, a cassette's interaction through vcrpy's own loaders.
A flow record in a layout other than the one read here (another flow format
version, anything unexpected) goes through mitmproxy's own reader, which knows
every version and says what is wrong with a broken file.

An import is all or nothing: one transaction, rolled back at the first thing in
the file that cannot be read or stored, with one line naming it. Flows already in
the database (the same flow id: mitmproxy's, kept by every export, or for files
that carry none, one derived from the entry's content) are skipped and counted,
so importing a file twice adds nothing. What repost's own exports carry beside a
flow (HAR ``_repost``, a flow file's ``metadata["repost"]``: which flow it
replays, a stream's chunk times, a cut-off stream, an unknown duration) comes
back with it.
"""

import base64
import io
import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from hashlib import sha256
from pathlib import Path
from typing import NamedTuple

from . import tnetstring_fast as tnet
from .capture import Streamed, make_snapshot, snapshot
from .errors import StoreError

# Text from a file shown in an error line: control and direction characters escaped,
# so that a crafted file cannot write escape sequences to the user's terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


class ImportError_(StoreError):
    def __init__(self, message: str):
        super().__init__(_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", message))


class Imported(NamedTuple):
    imported: int
    skipped: int  # already in the database (same flow id), or twice in the file


class Incoming(NamedTuple):
    """A flow read from a file: its snapshot, the flow id of the flow it replays (when
    the file says), and where it is in the file, for error messages."""

    snap: tuple
    replay_of: str | None
    where: str


# -- which format ------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"
FORMATS = ("har", "vcr", "mitm")
_CASSETTE_KEYS = (b"interactions", b"version", b"metadata")
# A YAML cassette: vcrpy writes "interactions:" first; allow a directive, "---", comments.
_YAML_CASSETTE = re.compile(rb"(?:%YAML[^\n]*\n)?(?:---[ \t]*\n)?(?:[ \t]*(?:#[^\n]*)?\r?\n)*(?:interactions|version|metadata)[ \t]*:")


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096)
    head = head.removeprefix(BOM).lstrip()
    if head.startswith(b"{"):
        m = re.match(rb'\{\s*"([a-z]*)"', head)
        return "vcr" if m and m.group(1) in _CASSETTE_KEYS else "har"
    if head[:1].isdigit() and b":" in head[:12]:
        return "mitm"  # a tnetstring: length, colon, payload
    if _YAML_CASSETTE.match(head):
        return "vcr"
    raise ImportError_(
        f"{path}: not a HAR file, a VCR.py cassette or a mitmproxy flow file (give --format har, vcr or mitm to say which)"
    )


# -- what every format shares --------------------------------------------------------


def _time(value) -> float | None:
    """A timestamp, or None for "no time": 0, negative, not a number, not finite."""
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def _content_id(item, seen: Counter) -> str:
    """A flow id for an entry whose file gives none: derived from its content (and how
    many identical ones came before it), so the same file imported twice adds nothing."""
    digest = sha256(repr(item).encode("utf-8", "surrogatepass")).hexdigest()
    seen[digest] += 1
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"repost-import:{digest}:{seen[digest]}"))


def _extras(meta) -> dict:
    """What repost's own export wrote beside a flow (HAR ``_repost``, a flow file's
    ``metadata["repost"]``), the parts that are what they claim to be."""
    if not isinstance(meta, dict):
        return {}
    out = {}
    for key in ("flow_id", "replay_of_flow_id"):
        value = meta.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200:
            out[key] = value
    if meta.get("incomplete") is True:
        out["incomplete"] = True
    chunks = meta.get("chunks")
    if isinstance(chunks, list) and all(
        isinstance(c, list) and len(c) == 2 and type(c[0]) in (int, float) and math.isfinite(c[0])
        and type(c[1]) is int and c[1] >= 0
        for c in chunks
    ):  # fmt: skip
        out["chunks"] = tuple((float(t), size) for t, size in chunks)
    if "duration_ms" in meta:
        d = meta["duration_ms"]
        out["duration_ms"] = d if type(d) in (int, float) and math.isfinite(d) and d >= 0 else None
    return out


def _with_extras(snap: tuple, extras: dict) -> tuple:
    """The snapshot with repost's own fields applied: a stream's chunk times and its
    being cut off; no end times where the duration was unknown."""
    flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of = snap
    unknown = "duration_ms" in extras and extras["duration_ms"] is None
    if resp is not None:
        status, reason, rversion, rfields, raw, ended = resp
        if extras.get("chunks") or extras.get("incomplete"):
            raw = raw or b""
            raw = Streamed(raw, len(raw), sha256(raw).hexdigest(), not extras.get("incomplete"), extras.get("chunks", ()))
        resp = (status, reason, rversion, rfields, raw, None if unknown else ended)
    if err is not None and unknown:
        err = (err[0], None)
    return (flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of)


def _reason(e: BaseException) -> str:
    """Why an entry could not be read, in words (an exception's name means little)."""
    if isinstance(e, KeyError):
        return f"no {e.args[0]!r} field" if e.args else "a field is missing"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, (TypeError, AttributeError, IndexError)):
        return f"a field of the wrong type or shape ({_short(str(e))})"
    return _short(str(e)) or type(e).__name__


def _short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


_ENTRY_ERRORS = (KeyError, ValueError, TypeError, AttributeError, IndexError, RecursionError, OverflowError)


def _read_text(path: Path, what: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_(f"{path}: not {what} (not UTF-8 text)") from None


# -- HAR -------------------------------------------------------------------------

_REPOST_HAR_HEAD = '{"log": {"version": "1.2", "creator": {"name": "repost"'


def har_entries(path: Path) -> Iterator[tuple[int, object]]:
    """(index, entry) for the entries of a HAR file. repost writes one entry a line,
    read as a stream; any other HAR (a browser's, or one of repost's edited out of
    that shape) is read whole."""
    try:
        yield from _har_entries(path)
    except UnicodeDecodeError:
        raise ImportError_(f"{path}: not a HAR file (not UTF-8 text)") from None


def _har_entries(path: Path) -> Iterator[tuple[int, object]]:
    with open(path, encoding="utf-8-sig") as f:  # "-sig": a byte order mark, as Windows tools write, is skipped
        first = f.readline()
        n = 0
        line_error = None
        if first.startswith(_REPOST_HAR_HEAD) and first.rstrip().endswith('"entries": ['):
            for line in f:
                text = line.strip()
                if text.startswith("{"):
                    try:
                        entry = json.loads(text[:-1] if text.endswith(",") else text)
                    except (ValueError, RecursionError) as e:
                        line_error = f"log.entries[{n}] is not valid JSON ({_reason(e)})"
                        break
                    yield n, entry
                    n += 1
                elif text == "]}}":
                    if not f.read().strip():
                        return
                    break
                elif text:
                    break
            # Not in the shape repost writes (edited, cut short): read it whole, and go
            # on after the entries already read (each was a whole entry on its line).
        f.seek(0)
        try:
            doc = json.load(f)
        except RecursionError:
            raise ImportError_(f"{path}: not a HAR file (JSON nested too deeply)") from None
        except ValueError as e:
            raise ImportError_(f"{path}: {line_error or f'not valid JSON ({e})'}") from None
    try:
        entries = doc["log"]["entries"]
    except (KeyError, TypeError):
        raise ImportError_(f"{path}: not a HAR file (no log.entries)") from None
    if not isinstance(entries, list):
        raise ImportError_(f"{path}: not a HAR file (log.entries is not a list)")
    yield from enumerate(entries[n:], n)


def har_incoming(path: Path) -> Iterator[Incoming]:
    seen: Counter = Counter()
    for i, entry in har_entries(path):
        where = f"log.entries[{i}]"
        try:
            extras = _extras(entry.get("_repost")) if isinstance(entry, dict) else {}
            flow_id = extras.get("flow_id") or _content_id(entry, seen)
            snap = _with_extras(har_entry_to_snapshot(entry, flow_id), extras)
        except _ENTRY_ERRORS as e:
            raise ImportError_(f"{path}: {where}{_request_note(entry, 'url')} could not be read: {_reason(e)}") from None
        yield Incoming(snap, extras.get("replay_of_flow_id"), where)


def _request_note(item, url_key: str) -> str:
    """" (METHOD URL)" of an entry or interaction, for an error message; "" when it has none."""
    try:
        method, url = item["request"]["method"], item["request"][url_key]
    except Exception:  # noqa: BLE001 - a note only: whatever the entry holds, say nothing
        return ""
    if not isinstance(method, str) or not isinstance(url, str):
        return ""
    return f" ({_short(method, 20)} {_short(url, 120)})"


def har_entry_to_snapshot(entry: dict, flow_id: str | None = None) -> tuple:
    """A snapshot of one HAR entry, read as mitmproxy's HAR reader (``request_to_flow``)
    reads it, with what that leaves out put back: a base64 request body, the HTTP
    versions, the status text, the error, and "no response" (status 0, or no response).

    Bodies become the bytes on the wire: text encoded per its charset, then with the
    message's Content-Encoding. Differences from mitmproxy's reader: a request's
    Content-Length (when it has one) is the stored body's length, none is added;
    HTTP/2 pseudo-headers (":authority", ...) are dropped; the Host header is kept as
    the file has it. A start of 0 (1970) is no start, a negative or missing ``time``
    no duration."""
    from mitmproxy.net import encoding
    from mitmproxy.net.http import status_codes, url
    from mitmproxy.net.http.headers import infer_content_encoding

    started = _time(datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp())
    duration = entry.get("time")
    known = type(duration) in (int, float) and math.isfinite(duration) and duration >= 0
    ended = started + duration / 1000.0 if started and known else None
    req = entry["request"]
    scheme, host, port, target = url.parse(req["url"])
    headers = _har_headers(req["headers"])

    post = req.get("postData") or {}
    text = post.get("text") or ""
    if post.get("_base64"):  # repost's own export: the exact bytes, where the text would not give them
        body = base64.b64decode(post["_base64"])
    elif post.get("encoding") == "base64":
        body = base64.b64decode(text)
    else:
        body = _encode_text(text, headers, encoding, infer_content_encoding) if text else b""
    ce = _header(headers, "content-encoding")
    if body and ce:  # HAR bodies are decoded: put the wire's encoding back
        try:
            body = encoding.encode(body, ce)
        except ValueError:  # an encoding mitmproxy cannot apply: the body is what the header must not claim
            headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
    headers = [(k, str(len(body))) if k.lower() == "content-length" else (k, v) for k, v in headers]

    resp = entry.get("response") or {}
    status = resp.get("status")
    message = resp.get("_error")
    message = message if isinstance(message, str) and message else None
    if not status:
        response = None
        error = (message or "no response", ended)
    else:
        if type(status) is not int:
            raise TypeError(f"status {status!r} is not a number")
        resp_headers = _har_headers(resp.get("headers") or [])
        content = resp.get("content") or {}
        raw = content.get("text", "")
        content_encoding = content.get("encoding")
        if content_encoding == "base64":
            raw = base64.b64decode(raw)
        elif isinstance(raw, str):
            try:
                raw = encoding.encode(raw, content_encoding or infer_content_encoding(_header(resp_headers, "content-type") or ""))
            except ValueError:
                raw = raw.encode("utf-8", "surrogateescape")
        raw = encoding.encode(raw, _header(resp_headers, "content-encoding") or "identity")
        fields = tuple((k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in resp_headers)
        reason = resp.get("statusText") or status_codes.RESPONSES.get(status, "")
        response = (status, reason, _har_version(resp.get("httpVersion")), fields, raw, ended)
        error = (message, ended) if message else None  # a stream cut off after its response began
    return make_snapshot(
        flow_id=flow_id or str(uuid.uuid4()), started=started, method=req["method"], scheme=scheme.decode(),
        host=host.decode("idna"), port=port, target=target.decode("utf-8", "surrogateescape"), headers=headers,
        body=body, response=response, error=error, http_version=_har_version(req.get("httpVersion")),
    )  # fmt: skip


def _har_headers(items) -> list[tuple[str, str]]:
    """(name, value) pairs from HAR's ``{"name", "value"}`` objects (or ``[name, value]``
    pairs, as Slack writes them), without HTTP/2 pseudo-headers."""
    pairs = []
    for h in items:
        if isinstance(h, dict):
            name, value = h["name"], h["value"]
        else:
            name, value = h[0], h[1]
        if not isinstance(name, str) or not isinstance(value, str):
            raise TypeError(f"header {name!r}: name and value must be text")
        if not name.startswith(":"):
            pairs.append((name, value))
    return pairs


def _header(pairs: list[tuple[str, str]], name: str) -> str | None:
    """A header's value, several joined with ", " (as mitmproxy's ``Headers.get``)."""
    values = [v for k, v in pairs if k.lower() == name]
    return ", ".join(values) if values else None


def _encode_text(text: str, headers: list, encoding, infer_content_encoding) -> bytes:
    """Request text as bytes, as mitmproxy's ``Message.set_text``: in the Content-Type's
    charset (UTF-8 for JSON, else Latin-1); text the charset cannot hold goes UTF-8,
    and the Content-Type says so."""
    ctype = _header(headers, "content-type") or ""
    try:
        return encoding.encode(text, infer_content_encoding(ctype))
    except ValueError:
        from mitmproxy.net.http.headers import assemble_content_type, parse_content_type

        ct = parse_content_type(ctype) or ("text", "plain", {})
        ct[2]["charset"] = "utf-8"
        value = assemble_content_type(*ct)
        i = next((i for i, (k, _) in enumerate(headers) if k.lower() == "content-type"), None)
        if i is None:
            headers.append(("content-type", value))
        else:
            headers[i] = (headers[i][0], value)
            headers[i + 1 :] = [(k, v) for k, v in headers[i + 1 :] if k.lower() != "content-type"]
        return text.encode("utf-8", "surrogateescape")


def _har_version(value) -> str:
    value = (value if isinstance(value, str) else "").upper()
    return value if value.startswith("HTTP/") else "HTTP/1.1"


# -- VCR.py cassettes --------------------------------------------------------------


def vcr_incoming(path: Path) -> Iterator[Incoming]:
    """The interactions of a cassette (format version 1, YAML or JSON), loaded with
    vcrpy's own serializers and read as vcrpy reads them (``vcr.serialize``).

    A cassette has no times: each flow starts when it is imported, its duration unknown."""
    data = _load_cassette(path, _read_text(path, "a VCR.py cassette"))
    if isinstance(data, list) and data and isinstance(data[0], dict) and "request" in data[0]:
        raise ImportError_(f"{path}: a cassette of a VCR.py older than 1.0 (no format version); migrate it with vcrpy first")
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise ImportError_(f"{path}: not a VCR.py cassette (no interactions)")
    version = data.get("version")
    if version != 1:
        raise ImportError_(f"{path}: a cassette of format version {_short(repr(version), 40)}; repost reads version 1")
    seen: Counter = Counter()
    for i, interaction in enumerate(data["interactions"]):
        where = f"interactions[{i}]"
        try:
            snap = _interaction_snapshot(interaction, _content_id(interaction, seen))
        except _ENTRY_ERRORS as e:
            raise ImportError_(f"{path}: {where}{_request_note(interaction, 'uri')} could not be read: {_reason(e)}") from None
        yield Incoming(snap, None, where)


def _load_cassette(path: Path, text: str):
    """The cassette's data, as vcrpy's serializer for its format loads it. YAML only
    through a safe loader: a cassette is a file from anywhere, and an older vcrpy's
    YAML serializer uses PyYAML's full loader, which builds any Python object a file
    names (running code)."""
    import yaml
    from vcr.serializers import jsonserializer, yamlserializer

    try:
        if text.lstrip().startswith("{"):
            return jsonserializer.deserialize(text)
        loader = getattr(yamlserializer, "_CassetteLoader", None)
        safe = (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if isinstance(loader, type) and issubclass(loader, safe):
            return yamlserializer.deserialize(text)
        return yaml.load(text, Loader=safe[-1])  # noqa: S506 - a safe loader
    except RecursionError:
        raise ImportError_(f"{path}: not a VCR.py cassette (nested too deeply)") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ImportError_(f"{path}: not a VCR.py cassette (YAML: {_short(str(e.problem or e.context))}{at})") from None
    except (yaml.YAMLError, ValueError) as e:
        raise ImportError_(f"{path}: not a VCR.py cassette ({_short(str(e))})") from None


def _interaction_snapshot(interaction: dict, flow_id: str) -> tuple:
    """One interaction as a snapshot: the request as ``vcr.request.Request`` reads it
    (its body as vcrpy sends it), every header value of it kept (vcrpy's Request keeps
    the first); the response as vcrpy plays it back (``convert_to_bytes``), in the
    layout of vcrpy's current stubs or of its older httpx one."""
    from mitmproxy.net.http import status_codes, url
    from vcr.request import Request
    from vcr.serializers import compat
    from vcr.util import read_body

    request = Request._from_dict(dict(interaction["request"]))
    body = read_body(request)
    if body is None:
        body = b""
    elif not isinstance(body, bytes):
        raise TypeError(f"request body of type {type(body).__name__}")
    scheme, host, port, target = url.parse(request.uri)
    headers = _cassette_headers(interaction["request"].get("headers") or {})

    response = compat.convert_to_bytes(dict(interaction["response"]))
    if "status_code" in response:  # the layout of vcrpy's old httpx stub
        status, reason = response["status_code"], ""
        raw = response.get("content") or b""
        raw = raw.encode("utf-8") if isinstance(raw, str) else raw
    else:
        status, reason = response["status"]["code"], response["status"].get("message") or ""
        raw = response["body"]["string"] or b""
    if type(status) is not int or not isinstance(raw, bytes) or not isinstance(reason, str):
        raise TypeError("status code, reason or body of the wrong type")
    reason = reason or status_codes.RESPONSES.get(status, "")
    fields = tuple((k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in _cassette_headers(response.get("headers") or {}))
    return make_snapshot(
        flow_id=flow_id, started=None, method=request.method, scheme=scheme.decode(), host=host.decode("idna"),
        port=port, target=target.decode("utf-8", "surrogateescape"), headers=headers, body=body,
        response=(status, reason, "HTTP/1.1", fields, raw, None), error=None,
    )  # fmt: skip


def _cassette_headers(headers: dict) -> list[tuple[str, str]]:
    """A cassette's ``{name: [value, ...]}`` (or ``{name: value}``) as (name, value) pairs."""
    pairs = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header {name!r}: name and value must be text")
            pairs.append((name, value))
    return pairs


# -- mitmproxy flow files ----------------------------------------------------------

FLOW_FORMAT_VERSION = 21  # the layout read below: what mitmproxy 11 and 12 write
_FLOW_KEYS = frozenset({
    "version", "type", "id", "request", "response", "error", "client_conn", "server_conn", "intercepted",
    "is_replay", "marked", "metadata", "comment", "timestamp_created", "websocket",
})  # fmt: skip
# and "backup", optionally
_WANTED = frozenset({"version", "type", "id", "request", "response", "error", "metadata"})
_REQUEST_KEYS = frozenset({
    "host", "port", "method", "scheme", "authority", "path", "http_version", "headers", "content", "trailers",
    "timestamp_start", "timestamp_end",
})  # fmt: skip
_RESPONSE_KEYS = frozenset({
    "http_version", "status_code", "reason", "headers", "content", "trailers", "timestamp_start", "timestamp_end",
})  # fmt: skip


def mitm_incoming(path: Path) -> Iterator[Incoming]:
    """The HTTP flows of a mitmproxy flow file, read record by record.

    A record in the layout of flow format version 21 becomes a snapshot directly
    (when the mitmproxy installed reads that version as its own); any other record
    goes through mitmproxy's reader, which migrates older versions and rejects what
    it cannot read; where the file stops being a sequence of records, mitmproxy's
    reader takes the rest of it."""
    from mitmproxy import version

    fast = version.FLOW_FORMAT_VERSION == FLOW_FORMAT_VERSION
    n = 0
    with open(path, "rb") as f:
        try:
            for _, buf, start, end in tnet.records(f):
                try:
                    found = _record_snapshot(buf, start, end) if fast else None
                except (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError):
                    found = None
                if found is None:
                    for flow in _flows(path, io.BytesIO(buf[start:end])):
                        yield _flow_incoming(*_flow_snapshot(path, flow, n), n)
                        n += 1
                else:
                    yield _flow_incoming(*found, n)
                    n += 1
        except tnet.Unframed as e:
            f.seek(e.offset)
            for flow in _flows(path, f):
                yield _flow_incoming(*_flow_snapshot(path, flow, n), n)
                n += 1


def _flow_snapshot(path: Path, flow, n: int) -> tuple:
    """(snapshot, repost's metadata) of a flow mitmproxy's reader made (which checks
    few of the types a file gives it: an error may be a dict)."""
    try:
        if not isinstance(flow.metadata, dict):
            flow.metadata = {}
        # "repost_tees" is the recorder's own note on a live flow, never a file's to give.
        flow.metadata.pop("repost_tees", None)
        return snapshot(flow), flow.metadata.get("repost")
    except _ENTRY_ERRORS as e:
        raise ImportError_(f"{path}: flow {n} could not be read: {_reason(e)}") from None


def _flow_incoming(snap: tuple, meta, n: int) -> Incoming:
    extras = _extras(meta)
    return Incoming(_with_extras(_no_zero_times(snap), extras), extras.get("replay_of_flow_id"), f"flow {n}")


def _no_zero_times(snap: tuple) -> tuple:
    """A flow file's times, 0 (or junk) being no time."""
    flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of = snap
    if resp is not None:
        resp = resp[:5] + (_time(resp[5]),)
    if err is not None:
        err = (err[0], _time(err[1]))
    return (flow_id, _time(started), method, scheme, host, port, target, version, fields, body, resp, err, replay_of)


def _record_snapshot(b: bytes, start: int, end: int):
    """(snapshot, metadata) of one flow record (version 21, HTTP), or None for mitmproxy's reader."""
    state, keys = tnet.top_dict(b, start, end, _WANTED)
    if state.get("version") != FLOW_FORMAT_VERSION or state.get("type") != "http":
        return None
    if len(keys) != len(set(keys)) or set(keys) - {"backup"} != _FLOW_KEYS:
        return None
    flow_id = state["id"]
    rq = state["request"]
    rs = state["response"]
    er = state["error"]
    if type(flow_id) is not str or type(rq) is not dict or rq.keys() != _REQUEST_KEYS:
        return None
    host, port, method, scheme, path, version = rq["host"], rq["port"], rq["method"], rq["scheme"], rq["path"], rq["http_version"]
    content, started, fields = rq["content"], rq["timestamp_start"], rq["headers"]
    if not (
        type(host) is str and type(port) is int and type(method) is bytes and type(scheme) is bytes
        and type(path) is bytes and type(version) is bytes and type(rq["authority"]) is bytes
        and type(fields) is tuple and (content is None or type(content) is bytes)
        and type(started) in _NUMBER and (rq["timestamp_end"] is None or type(rq["timestamp_end"]) in _NUMBER)
        and (rq["trailers"] is None or type(rq["trailers"]) is tuple)
    ):  # fmt: skip
        return None
    response = None
    if rs is not None:
        if type(rs) is not dict or rs.keys() != _RESPONSE_KEYS:
            return None
        status, reason, rversion, rfields = rs["status_code"], rs["reason"], rs["http_version"], rs["headers"]
        rcontent, rstart, rend = rs["content"], rs["timestamp_start"], rs["timestamp_end"]
        if not (
            type(status) is int and type(reason) is bytes and type(rversion) is bytes and type(rfields) is tuple
            and (rcontent is None or type(rcontent) is bytes) and type(rstart) in _NUMBER
            and (rend is None or type(rend) in _NUMBER) and (rs["trailers"] is None or type(rs["trailers"]) is tuple)
        ):  # fmt: skip
            return None
        response = (status, reason.decode(), rversion.decode(), rfields, rcontent, rend or rstart)
    error = None
    if er is not None:
        if type(er) is not dict or er.keys() != {"msg", "timestamp"} or type(er["msg"]) is not str:
            return None
        if type(er["timestamp"]) not in _NUMBER:
            return None
        error = (er["msg"], float(er["timestamp"]))
    metadata = state.get("metadata")
    snap = make_snapshot(
        flow_id=flow_id, started=started, method=method.decode(), scheme=scheme.decode(), host=host, port=port,
        target=path.decode("utf-8", "surrogateescape"),
        headers=[(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in fields],
        body=content, response=response, error=error, http_version=version.decode(),
    )  # fmt: skip
    return snap, metadata.get("repost") if isinstance(metadata, dict) else None


_NUMBER = (float, int)


def _flows(path: Path, f) -> Iterator:
    """The HTTP flows mitmproxy's own reader finds in ``f``."""
    from mitmproxy import exceptions, http
    from mitmproxy import io as mio

    flows = mio.FlowReader(f).stream()
    while True:
        try:
            flow = next(flows)
        except StopIteration:
            return
        except exceptions.FlowReadException as e:
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({_short(str(e))})") from None
        except (AssertionError, AttributeError, KeyError, TypeError, ValueError, IndexError, RecursionError) as e:  # what its reader lets through
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({type(e).__name__}: {_short(str(e))})") from None
        if isinstance(flow, http.HTTPFlow):
            yield flow


# -- importing ---------------------------------------------------------------------


def read_incoming(path: Path, fmt: str) -> Iterator[Incoming]:
    readers = {"har": har_incoming, "vcr": vcr_incoming, "mitm": mitm_incoming}
    if fmt not in readers:
        raise ImportError_(f"unknown format {fmt!r}")
    return readers[fmt](path)


def import_file(path: Path, db: Path, *, fmt: str | None = None, keep_secrets: bool = False, max_body: int = 10 * 1024 * 1024) -> Imported:
    """Import every flow of the file at ``path``, or none: one transaction."""
    from .database import open_database
    from .redact import Redactor, load_key

    path = Path(path)
    if not path.exists():
        raise ImportError_(f"no file at {path}")
    if path.is_dir():
        raise ImportError_(f"{path} is a folder, not a file")
    fmt = fmt or detect_format(path)
    incoming = read_incoming(path, fmt)
    redactor = None if keep_secrets else Redactor(load_key())
    conn = open_database(db, create=True)
    try:
        return _store(conn, incoming, redactor, max_body, path)
    finally:
        conn.close()


def _store(conn, incoming: Iterator[Incoming], redactor, max_body: int, path: Path) -> Imported:
    """Convert and insert, in one transaction; a flow whose id the database (or this
    file, earlier) already holds is skipped. A replay is linked to its original by the
    original's flow id, wherever in the database or the file that is."""
    from .capture import INSERT_SQL, row_from_snapshot
    from .writer import ROW_ERRORS

    def local_id(flow_id: str) -> int | None:
        found = conn.execute("SELECT id FROM flows WHERE flow_id = ? ORDER BY id LIMIT 1", [flow_id]).fetchone()
        return found[0] if found else None

    imported = skipped = 0
    later = []  # (local id, the original's flow id): replays read before their original
    conn.execute("BEGIN IMMEDIATE")
    try:
        for item in incoming:
            flow_id = item.snap[0]
            if local_id(flow_id) is not None:
                skipped += 1
                continue
            replay_of = None
            if item.replay_of and item.replay_of != flow_id:
                replay_of = local_id(item.replay_of)
            snap = item.snap[:-1] + (replay_of,)
            try:
                row = row_from_snapshot(snap, redactor, max_body)
                rowid = conn.execute(INSERT_SQL, row).lastrowid
            except (*ROW_ERRORS, *_ENTRY_ERRORS) as e:
                raise ImportError_(f"{path}: {item.where} ({_target(snap)}) could not be stored: {_reason(e)}") from e
            if item.replay_of and replay_of is None and item.replay_of != flow_id:
                later.append((rowid, item.replay_of))
            imported += 1
        for rowid, original in later:
            conn.execute("UPDATE flows SET replay_of = ? WHERE id = ?", [local_id(original), rowid])
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return Imported(imported, skipped)


def _target(snap: tuple) -> str:
    try:
        method, scheme, host, port, target = snap[2].decode("latin-1"), snap[3].decode("latin-1"), snap[4], snap[5], snap[6].decode("latin-1")
        return _short(f"{method} {scheme}://{host}:{port}{target}", 160)
    except Exception:  # noqa: BLE001 - a note only
        return "?"
