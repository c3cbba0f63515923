"""Flows in from HAR files and mitmproxy flow files, through the recorder's own
write path: redacted on the way in (unless told otherwise), stored as recorded flows."""

import base64
import json
from collections.abc import Iterator
from pathlib import Path

from .capture import snapshot
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


def har_entry_to_flow(entry: dict):
    """mitmproxy's HAR reader, with what it leaves out put back: a base64 request body,
    the request's HTTP version, the status text, and "no response" (status 0)."""
    from mitmproxy import flow as mflow
    from mitmproxy.io.har import request_to_flow

    f = request_to_flow(entry)
    req = entry["request"]
    post = req.get("postData") or {}
    if post.get("encoding") == "base64":
        f.request.raw_content = base64.b64decode(post.get("text") or "")
    if req.get("httpVersion", "").upper().startswith("HTTP/"):
        f.request.http_version = req["httpVersion"].upper()
    # request_to_flow encodes bodies with the declared Content-Encoding; HAR text is decoded.
    f.request.headers.pop(":authority", None)
    resp = entry.get("response") or {}
    if not resp.get("status"):
        f.response = None
        f.error = mflow.Error(resp.get("_error") or "no response", f.request.timestamp_end or f.request.timestamp_start)
    else:
        if resp.get("statusText"):
            f.response.reason = resp["statusText"]
        if resp.get("httpVersion", "").upper().startswith("HTTP/"):
            f.response.http_version = resp["httpVersion"].upper()
    return f


def read_flows(path: Path, fmt: str) -> Iterator:
    if fmt == "har":
        for entry in har_entries(path):
            try:
                yield har_entry_to_flow(entry)
            except (KeyError, ValueError, TypeError) as e:
                raise ImportError_(f"{path}: an entry could not be read ({type(e).__name__}: {e})") from None
    elif fmt == "mitm":
        from mitmproxy import exceptions, http, io

        with open(path, "rb") as f:
            try:
                for flow in io.FlowReader(f).stream():
                    if isinstance(flow, http.HTTPFlow):
                        yield flow
            except exceptions.FlowReadException as e:
                raise ImportError_(f"{path}: not a readable mitmproxy flow file ({e})") from None
    else:
        raise ImportError_(f"unknown format {fmt!r}")


def import_file(path: Path, db: Path, *, fmt: str | None = None, keep_secrets: bool = False, max_body: int = 10 * 1024 * 1024) -> int:
    from .redact import Redactor, load_key
    from .writer import BatchWriter

    path = Path(path)
    if not path.exists():
        raise ImportError_(f"no file at {path}")
    fmt = fmt or detect_format(path)
    writer = BatchWriter(str(db), redactor=None if keep_secrets else Redactor(load_key()), max_body=max_body)
    batch, n = [], 0
    try:
        for flow in read_flows(path, fmt):
            batch.append(snapshot(flow))
            if len(batch) >= BATCH:
                _write(writer, batch)
                n += len(batch)
                batch = []
        if batch:
            _write(writer, batch)
            n += len(batch)
    finally:
        writer.close()
    return n


def _write(writer, batch) -> None:
    if not writer.write(batch):
        raise ImportError_(f"could not write to the database: {writer.last_error}")
