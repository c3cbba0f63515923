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
import os
import re
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from . import tnetstring_fast as tnet
from .capture import Snapshot, make_snapshot, snapshot
from .import_common import (
    ENTRY_ERRORS,
    ImportError_,
    Imported,
    Incoming,
    content_id,
    extras_of,
    failure_reason,
    no_time,
    request_note,
    short,
    with_extras,
)
from .formats import IMPORT
from .sizes import DEFAULT_MAX_BODY

# -- which format ------------------------------------------------------------------

BOM = b"\xef\xbb\xbf"
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
                        line_error = f"log.entries[{n}] is not valid JSON ({failure_reason(e)})"
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
            extras = extras_of(entry.get("_repost")) if isinstance(entry, dict) else {}
            flow_id = extras.get("flow_id") or content_id(entry, seen)
            snap = with_extras(har_entry_to_snapshot(entry, flow_id), extras)
        except ENTRY_ERRORS as e:
            raise ImportError_(f"{path}: {where}{request_note(entry, 'url')} could not be read: {failure_reason(e)}") from None
        yield Incoming(snap, extras.get("replay_of_flow_id"), where, extras.get("tags", ()))


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

    started = no_time(datetime.fromisoformat(entry["startedDateTime"].replace("Z", "+00:00")).timestamp())
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
    except ENTRY_ERRORS as e:
        raise ImportError_(f"{path}: flow {n} could not be read: {failure_reason(e)}") from None


def _flow_incoming(snap: tuple, meta, n: int) -> Incoming:
    extras = extras_of(meta)
    return Incoming(with_extras(_no_zero_times(snap), extras), extras.get("replay_of_flow_id"), f"flow {n}", extras.get("tags", ()))


def _no_zero_times(snap: tuple) -> tuple:
    """A flow file's times, 0 (or junk) being no time."""
    flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of = snap
    if resp is not None:
        resp = resp[:5] + (no_time(resp[5]),)
    if err is not None:
        err = (err[0], no_time(err[1]))
    return Snapshot(flow_id, no_time(started), method, scheme, host, port, target, version, fields, body, resp, err, replay_of)


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
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({short(str(e))})") from None
        except (AssertionError, AttributeError, KeyError, TypeError, ValueError, IndexError, RecursionError) as e:  # what its reader lets through
            raise ImportError_(f"{path}: not a readable mitmproxy flow file ({type(e).__name__}: {short(str(e))})") from None
        if isinstance(flow, http.HTTPFlow):
            yield flow


# -- importing ---------------------------------------------------------------------


def _vcr_incoming(path: Path) -> Iterator[Incoming]:
    from .import_vcr import vcr_incoming  # PyYAML and vcrpy: only for cassettes

    return vcr_incoming(path)


# One reader per name in store/formats.py IMPORT.
_READERS = {"har": har_incoming, "vcr": _vcr_incoming, "mitm": mitm_incoming}
IMPORT_FORMATS = {name: _READERS[name] for name in IMPORT}


def read_incoming(path: Path, fmt: str) -> Iterator[Incoming]:
    if fmt not in IMPORT_FORMATS:
        raise ImportError_(f"unknown format {fmt!r}")
    return IMPORT_FORMATS[fmt](path)


def import_file(path: Path, db: Path, *, fmt: str | None = None, keep_secrets: bool = False, max_body: int = DEFAULT_MAX_BODY) -> Imported:
    """Import every flow of the file at ``path``, or none: one transaction."""
    from .database import exists, open_database
    from .redact import load_key
    from .redact_rules import redactor_for

    path = Path(path)
    if not path.exists():
        raise ImportError_(f"no file at {path}")
    if path.is_dir():
        raise ImportError_(f"{path} is a folder, not a file")
    fmt = fmt or detect_format(path)
    incoming = read_incoming(path, fmt)
    key = None if keep_secrets else load_key()  # before the database is touched: no key, no import
    created = not exists(db)
    try:
        conn = open_database(db, create=True)
        try:
            redactor = None if keep_secrets else redactor_for(conn, key)  # the table and the user's rules
            return _store(conn, incoming, redactor, max_body, path)
        finally:
            conn.close()
    except BaseException:
        if created:  # a failed import leaves no database it made itself (nor its part-import)
            from .database import discard_created

            discard_created(db)
        raise


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
            snap = item.snap._replace(replay_of=replay_of)
            try:
                row = row_from_snapshot(snap, redactor, max_body)
                rowid = conn.execute(INSERT_SQL, row).lastrowid
            except (*ROW_ERRORS, *ENTRY_ERRORS) as e:
                raise ImportError_(f"{path}: {item.where} ({_target(snap)}) could not be stored: {failure_reason(e)}") from e
            if item.replay_of and replay_of is None and item.replay_of != flow_id:
                later.append((rowid, item.replay_of))
            if item.tags:
                conn.executemany("INSERT OR IGNORE INTO tags (flow, name) VALUES (?, ?)", [(rowid, t) for t in item.tags])
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
        return short(f"{method} {scheme}://{host}:{port}{target}", 160)
    except Exception:  # noqa: BLE001 - a note only
        return "?"
