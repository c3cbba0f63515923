"""Flows in from HAR files and mitmproxy flow files, through the recorder's own
write path: redacted on the way in (unless told otherwise), stored as recorded flows.

Both formats become snapshots (``capture.make_snapshot``) straight from what the
file holds, without building mitmproxy flow objects: a HAR entry as mitmproxy's
HAR reader would read it (with what that leaves out put back), a mitmproxy flow
record from its tnetstring. A flow record in a layout other than the one read
here (another flow format version, anything unexpected) goes through mitmproxy's
own reader, which knows every version and says what is wrong with a broken file.
"""

import base64
import io
import json
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from . import tnetstring_fast as tnet
from .capture import make_snapshot, snapshot
from .errors import StoreError

BATCH = 500


class ImportError_(StoreError):
    pass


def detect_format(path: Path) -> str:
    with open(path, "rb") as f:
        head = f.read(4096).lstrip()
    if head.startswith(b"{"):
        return "har"
    if head[:1].isdigit() and b":" in head[:12]:
        return "mitm"  # a tnetstring: length, colon, payload
    raise ImportError_(f"{path}: neither a HAR file nor a mitmproxy flow file (use --format to say which)")


# -- HAR -------------------------------------------------------------------------


def har_entries(path: Path) -> Iterator[dict]:
    """The entries of a HAR file. repost writes one entry a line, read as a stream;
    any other HAR (a browser's) is read whole."""
    with open(path, encoding="utf-8") as f:
        first = f.readline()
        if first.startswith('{"log": {"version": "1.2", "creator": {"name": "repost"') and first.rstrip().endswith(
            '"entries": ['
        ):
            for line in f:
                line = line.strip().rstrip(",")
                if line.startswith("{"):
                    yield json.loads(line)
            return
        f.seek(0)
        try:
            doc = json.load(f)
        except ValueError as e:
            raise ImportError_(f"{path}: not valid JSON ({e})") from None
    try:
        entries = doc["log"]["entries"]
    except (KeyError, TypeError):
        raise ImportError_(f"{path}: not a HAR file (no log.entries)") from None
    yield from entries


def har_entry_to_snapshot(entry: dict) -> tuple:
    """A snapshot of one HAR entry, read as mitmproxy's HAR reader (``request_to_flow``)
    reads it, with what that leaves out put back: a base64 request body, the HTTP
    versions, the status text, and "no response" (status 0, or no response at all).

    Bodies become the bytes on the wire: text encoded per its charset, then with the
    message's Content-Encoding. Differences from mitmproxy's reader: a request's
    Content-Length (when it has one) is the stored body's length, none is added;
    HTTP/2 pseudo-headers (":authority", ...) are dropped; the Host header is kept as
    the file has it."""
    from mitmproxy.net import encoding
    from mitmproxy.net.http import status_codes, url
    from mitmproxy.net.http.headers import infer_content_encoding

    started = datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp()
    ended = started + entry["time"] / 1000.0
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
    if not status:
        response = None
        error = (resp.get("_error") or "no response", ended or started)
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
        response = (status, reason, _har_version(resp.get("httpVersion")), fields, raw, ended or started)
        error = None
    return make_snapshot(
        flow_id=str(uuid.uuid4()), started=started, method=req["method"], scheme=scheme.decode(),
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
    value = (value or "").upper()
    return value if value.startswith("HTTP/") else "HTTP/1.1"


def har_snapshots(path: Path, tags: dict | None = None) -> Iterator[tuple]:
    for entry in har_entries(path):
        try:
            snap = har_entry_to_snapshot(entry)
            if tags is not None and isinstance(entry.get("_repost"), dict):
                _keep_tags(tags, snap[0], entry["_repost"].get("tags"))
            yield snap
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
            raise ImportError_(f"{path}: an entry could not be read ({type(e).__name__}: {e})") from None


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


def mitm_snapshots(path: Path, tags: dict | None = None) -> Iterator[tuple]:
    """Snapshots of the HTTP flows of a mitmproxy flow file, read record by record.

    A record in the layout of flow format version 21 becomes a snapshot directly
    (when the mitmproxy installed reads that version as its own); any other record
    goes through mitmproxy's reader, which migrates older versions and rejects what
    it cannot read; where the file stops being a sequence of records, mitmproxy's
    reader takes the rest of it."""
    from mitmproxy import version

    fast = version.FLOW_FORMAT_VERSION == FLOW_FORMAT_VERSION
    with open(path, "rb") as f:
        try:
            for _, buf, start, end in tnet.records(f):
                try:
                    snap = _record_snapshot(buf, start, end, tags) if fast else None
                except (ValueError, TypeError, IndexError, KeyError, AttributeError, RecursionError):
                    snap = None
                if snap is None:
                    yield from _flow_snapshots(path, io.BytesIO(buf[start:end]), tags)
                else:
                    yield snap
        except tnet.Unframed as e:
            f.seek(e.offset)
            yield from _flow_snapshots(path, f, tags)


def _record_snapshot(b: bytes, start: int, end: int, tags: dict | None = None):
    """The snapshot of one flow record (version 21, HTTP), or None for mitmproxy's reader."""
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
    snap = make_snapshot(
        flow_id=flow_id, started=started, method=method.decode(), scheme=scheme.decode(), host=host, port=port,
        target=path.decode("utf-8", "surrogateescape"),
        headers=[(k.decode("utf-8", "surrogateescape"), v.decode("utf-8", "surrogateescape")) for k, v in fields],
        body=content, response=response, error=error, http_version=version.decode(),
    )  # fmt: skip
    if tags is not None and type(state.get("metadata")) is dict:
        _keep_tags(tags, flow_id, state["metadata"].get(TAGS_METADATA))
    return snap


_NUMBER = (float, int)


def _flow_snapshots(path: Path, f, tags: dict | None = None) -> Iterator[tuple]:
    """Snapshots of the HTTP flows mitmproxy's own reader finds in ``f``."""
    from mitmproxy import exceptions, http
    from mitmproxy import io as mio

    flows = mio.FlowReader(f).stream()
    while True:
        try:
            flow = next(flows)
        except StopIteration:
            return
        except exceptions.FlowReadException as e:
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({e})") from None
        except (AssertionError, AttributeError, KeyError, TypeError) as e:  # what its reader lets through
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({type(e).__name__}: {e})") from None
        if isinstance(flow, http.HTTPFlow):
            if tags is not None and isinstance(flow.metadata, dict):
                _keep_tags(tags, flow.id, flow.metadata.get(TAGS_METADATA))
            yield snapshot(flow)


# -- tags (HAR ``_repost.tags``, a mitmproxy flow's metadata) ----------------------

TAGS_METADATA = "repost_tags"
MAX_TAGS = 100  # per flow: a crafted file cannot make one flow carry millions


def _keep_tags(tags: dict, flow_id, names) -> None:
    """The valid tag names among ``names`` (from a file: anything at all), kept for ``flow_id``."""
    from .tags import check_name

    if not isinstance(names, (list, tuple)):
        return
    kept = []
    for name in names[:MAX_TAGS]:
        if isinstance(name, bytes):
            name = name.decode("utf-8", "replace")
        try:
            kept.append(check_name(name))
        except (ValueError, AttributeError, TypeError):
            continue  # not a tag this repost could have written: left out
    if kept:
        tags[flow_id] = kept


def _tag_imported(conn, after_id: int, tags: dict) -> None:
    """Tag the flows written since ``after_id`` whose file entries carried tags."""
    from .tags import add_tag

    for flow_id, name in conn.execute("SELECT id, flow_id FROM flows WHERE id > ? ORDER BY id", [after_id]).fetchall():
        for tag in tags.get(name, ()):
            add_tag(conn, [flow_id], tag)


# -- importing ---------------------------------------------------------------------


def read_snapshots(path: Path, fmt: str, tags: dict | None = None) -> Iterator[tuple]:
    """The file's flows as snapshots; with ``tags``, fills it {flow id: [tag, ...]}."""
    if fmt == "har":
        return har_snapshots(path, tags)
    if fmt == "mitm":
        return mitm_snapshots(path, tags)
    raise ImportError_(f"unknown format {fmt!r}")


def import_file(path: Path, db: Path, *, fmt: str | None = None, keep_secrets: bool = False, max_body: int = 10 * 1024 * 1024) -> int:
    from .database import open_database
    from .redact import Redactor, load_key
    from .writer import BatchWriter

    path = Path(path)
    if not path.exists():
        raise ImportError_(f"no file at {path}")
    fmt = fmt or detect_format(path)
    tags: dict = {}
    snapshots = read_snapshots(path, fmt, tags)
    writer = BatchWriter(str(db), redactor=None if keep_secrets else Redactor(load_key()), max_body=max_body)
    conn = open_database(db)  # to tag what was written
    batch, n = [], 0
    try:
        for snap in snapshots:
            batch.append(snap)
            if len(batch) >= BATCH:
                _write(writer, conn, batch, tags)
                n += len(batch)
                batch = []
        if batch:
            _write(writer, conn, batch, tags)
            n += len(batch)
    finally:
        writer.close()
        conn.close()
    return n


def _write(writer, conn, batch, tags: dict) -> None:
    after = conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0] if tags else 0
    if not writer.write(batch):
        raise ImportError_(f"could not write to the database: {writer.last_error}")
    if tags:
        _tag_imported(conn, after, tags)
        tags.clear()
