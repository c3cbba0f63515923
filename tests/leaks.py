"""Looking for secrets that got through: where a recording can leave them, and in what forms.

A canary must not appear in the database file, its -wal and -shm, any export, or any body as
a reader decodes it; not raw, not in base64 (any of the three alignments), percent-encoded or
as UTF-16/32 text.
"""

import base64
import json
import sqlite3
import zlib
from pathlib import Path

from aiohttp import web

from .helpers import repost

FORMATS = ("har", "vcr", "curl", "mitm")


def forms(canary: str) -> list[bytes]:
    """The byte strings that betray a canary."""
    raw = canary.encode()
    found = [raw, "".join(f"%{b:02X}" for b in raw).encode(), canary.encode("utf-16-le"), canary.encode("utf-16-be")]
    found.append(canary.encode("utf-32-le"))
    for offset in range(3):  # base64 of the canary at each alignment: the characters it alone decides
        enc = base64.b64encode(b"\0" * offset + raw)
        start, end = -(-offset * 4 // 3), (offset + len(raw)) * 4 // 3
        found += [enc[start:end], base64.urlsafe_b64encode(b"\0" * offset + raw)[start:end]]
    return found


def leaks(haystack: bytes, canaries: list[str]) -> list[str]:
    """The canaries found in any form. Canaries share the prefix "CANARY": when no form of it
    is in the haystack (the usual case), none of theirs is, and megabytes are searched once."""
    if all(c.startswith("CANARY") for c in canaries) and not any(f in haystack for f in forms("CANARY")):
        return []
    return [c for c in canaries if any(f in haystack for f in forms(c))]


def database_bytes(db: Path) -> bytes:
    out = b""
    for suffix in ("", "-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        if path.exists():
            out += path.read_bytes()
    return out


def decoded_bodies(db: Path) -> bytes:
    """Every stored body as any reader could decode it: each Content-Encoding the stored
    headers name undone (every line of it, every gzip member), by decoders of the tests' own,
    so that a compressed secret the store's reader would miss is found all the same."""
    out = []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        for row in conn.execute("SELECT * FROM flows"):
            for side in ("request", "response"):
                body = row[f"{side}_body"]
                if not body:
                    continue
                body = bytes(body)
                out.append(body)
                codings = [
                    c.strip().lower()
                    for name, value in json.loads(row[f"{side}_headers"] or "[]")
                    if name.lower() == "content-encoding"
                    for c in value.split(",")
                ]
                if row[f"{side}_content_encoding"] or not row[f"{side}_redacted"]:
                    out.append(undo(body, codings))
    finally:
        conn.close()
    return b"\n".join(out)


def undo(body: bytes, codings: list[str]) -> bytes:
    for coding in reversed(codings):
        try:
            body = _DECODERS[coding](body)
        except Exception:
            return body
    return body


def _gunzip(data: bytes) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data)
    return out + (_gunzip(d.unused_data) if d.unused_data else b"")


def _inflate(data: bytes) -> bytes:
    try:
        return zlib.decompressobj().decompress(data)
    except zlib.error:
        return zlib.decompressobj(-zlib.MAX_WBITS).decompress(data)


def _unzstd(data: bytes) -> bytes:
    import io

    import zstandard

    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True).read()


def _unbrotli(data: bytes) -> bytes:
    import brotli

    return brotli.Decompressor().process(data)


_DECODERS = {"gzip": _gunzip, "x-gzip": _gunzip, "deflate": _inflate, "br": _unbrotli, "zstd": _unzstd, "identity": bytes}


def exports(db: Path, tmp: Path) -> bytes:
    out = []
    for fmt in FORMATS:
        path = tmp / f"export.{fmt}"
        result = repost("export", "--format", fmt, "--db", str(db), "-o", str(path))
        assert result.exit_code == 0, result.output
        out.append(path.read_bytes())
    return b"\n".join(out)


def shown(db: Path, ids: list[int]) -> bytes:
    out = []
    for i in ids:
        out.append(repost("show", str(i), "--db", str(db), "--json").output.encode())
        out.append(repost("show", str(i), "--db", str(db)).output.encode())
    return b"\n".join(out)


def everywhere(db: Path, tmp: Path, ids: list[int] | None = None) -> bytes:
    """The database files, every body decoded, every export, and `show` of the given flows."""
    return b"\n".join([database_bytes(db), decoded_bodies(db), exports(db, tmp), shown(db, ids or [])])


def where(db: Path, tmp: Path, canary: str) -> list[str]:
    """Which of the places a canary was found in (for a failure's message)."""
    places = {"database files": database_bytes(db), "bodies as decoded": decoded_bodies(db)}
    for fmt in FORMATS:
        places[f"{fmt} export"] = (tmp / f"export.{fmt}").read_bytes()
    return [name for name, data in places.items() if leaks(data, [canary])]


# -- an upstream that answers what it is told ----------------------------------------------


async def reply(request: web.Request) -> web.Response:
    """Answers with the request's body as it arrived, under the headers the request lists in
    X-Reply-Headers (JSON pairs, a name may come twice): a compressed or oddly encoded
    response, a Location, an echo of a multipart body."""
    body = await request.read()
    if request.headers.get("X-Reply-Masked"):  # sent masked, so the request itself carries no secret
        body = unmask(body)
    resp = web.Response(body=body, status=200)
    for name, value in json.loads(request.headers.get("X-Reply-Headers", "[]")):
        resp.headers.add(name, value)
    return resp


async def echo(request: web.Request) -> web.Response:
    """An echo service: the request as JSON, its body as a string, its headers as pairs."""
    body = await request.read()
    return web.json_response(
        {"headers": [[k, v] for k, v in request.headers.items()], "body": body.decode("utf-8", "replace"), "url": str(request.url)}
    )


def unmask(data: bytes) -> bytes:
    """A body XORed with 0x5A: no form of a canary survives in it, and the trip is exact."""
    return bytes(b ^ 0x5A for b in data)


def reply_app() -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_route("*", "/reply", reply)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app
