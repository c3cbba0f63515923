"""Body decoding on read: content-encodings and charsets, capped, never raising.

mitmproxy.net.encoding.decode has no output limit, so a small gzip bomb would
expand to gigabytes; these decoders stop at ``cap`` bytes and say so.
"""

import zlib
from collections import namedtuple

DEFAULT_DECODE_CAP = 16 * 1024 * 1024  # a stored body is at most --max-body (10 MB) on the wire


# data: the decoded bytes (or the raw bytes when decoding failed); note: why the
# bytes are raw, or that they were cut off. A named tuple, not a dataclass: the
# dataclasses import costs `repost show` ~7 ms.
Decoded = namedtuple("Decoded", "data note capped", defaults=(None, False))


def decode_content(
    raw: bytes, encoding: str | None, cap: int = DEFAULT_DECODE_CAP, partial_ok: bool = False
) -> Decoded:
    """Undo Content-Encoding (possibly several, e.g. ``gzip, br``).

    ``partial_ok`` accepts a stream that ends early (a body stored as its prefix).
    """
    if not encoding or not raw:
        return Decoded(raw)
    data = raw
    capped = False
    for enc in reversed([e.strip().lower() for e in encoding.split(",") if e.strip()]):
        if enc == "identity":
            continue
        try:
            data, cut = _DECODERS[enc](data, cap, partial_ok)
        except KeyError:
            return Decoded(raw, f"unknown content-encoding {enc!r}; showing the raw bytes")
        except Exception as e:  # any broken stream: show what was on the wire
            return Decoded(raw, f"broken {enc} encoding ({type(e).__name__}: {e}); showing the raw bytes")
        capped = capped or cut
    note = f"decoded body cut off at {cap:,} bytes" if capped else None
    return Decoded(data, note, capped)


def _zlib(wbits: int):
    def decode(data: bytes, cap: int, partial_ok: bool = False) -> tuple[bytes, bool]:
        out = b""
        while True:
            d = zlib.decompressobj(wbits)
            out += d.decompress(data, cap - len(out))
            if d.unconsumed_tail:
                return out, True
            if not d.eof:
                if not partial_ok:
                    raise ValueError("stream ends early")
                return out, False
            # Several gzip members one after another are one body (RFC 1952 2.2); zlib's
            # decompressobj stops after the first. Anything else after the end is broken.
            data = d.unused_data
            if not data.strip(b"\0"):
                return out, False
            if wbits < 16:
                raise ValueError(f"{len(data)} bytes after the end of the stream")
            if len(out) >= cap:
                return out, True

    return decode


def _deflate(data: bytes, cap: int, partial_ok: bool = False) -> tuple[bytes, bool]:
    try:
        return _zlib(zlib.MAX_WBITS)(data, cap, partial_ok)
    except zlib.error:  # servers often send raw deflate without the zlib header
        return _zlib(-zlib.MAX_WBITS)(data, cap, partial_ok)


def _brotli(data: bytes, cap: int, partial_ok: bool = False) -> tuple[bytes, bool]:
    import brotli

    d = brotli.Decompressor()
    out = bytearray()
    # brotli (1.1, as mitmproxy pins it) has no output limit: feed it byte by byte
    # while the output runs far ahead of the input (a bomb yields megabytes a byte),
    # in larger pieces while the ratio looks like ordinary compressed text. One
    # byte of a bomb can still yield 8 MB: the overshoot is bounded, not zero.
    i = 0
    while i < len(data):
        step = 1 if len(out) > 64 * (i + 1) or i < 64 else 256
        out += d.process(data[i : i + step])
        i += step
        if len(out) > cap:
            return bytes(out[:cap]), True
    if not d.is_finished() and not partial_ok:
        raise ValueError("stream ends early")
    return bytes(out), False


def _zstd(data: bytes, cap: int, partial_ok: bool = False) -> tuple[bytes, bool]:
    import io

    import zstandard

    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    out = reader.read(cap + 1)
    if len(out) > cap:
        return out[:cap], True
    # The reader returns a truncated stream's prefix without complaint: check the end.
    if not partial_ok:
        obj = zstandard.ZstdDecompressor().decompressobj()
        obj.decompress(data)
        if not obj.eof:
            raise ValueError("stream ends early")
    return out, False


_DECODERS = {
    "gzip": _zlib(16 + zlib.MAX_WBITS),
    "x-gzip": _zlib(16 + zlib.MAX_WBITS),
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def charset_of(content_type: str | None) -> str:
    for part in (content_type or "").split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            return value.strip("\"' ").lower()
    return "utf-8"


TEXT_TYPES = ("text/", "json", "xml", "javascript", "x-www-form-urlencoded", "event-stream", "ndjson", "yaml", "graphql")


def looks_textual(content_type: str | None, data: bytes) -> bool:
    ctype = (content_type or "").lower()
    if any(t in ctype for t in TEXT_TYPES):
        return True
    if ctype and not ctype.startswith("application/octet-stream"):
        if ctype.startswith(("image/", "audio/", "video/", "font/")) or "protobuf" in ctype or "zip" in ctype:
            return False
    return b"\x00" not in data[:1024]


# Bytes that text is made of: printable ASCII, the usual whitespace and backspace,
# ESC (coloured logs), and every byte of a multi-byte encoding.
_TEXT_BYTES = bytes([8, 9, 10, 11, 12, 13, 27, *range(0x20, 0x7F), *range(0x80, 0x100)])
NUL_WINDOW = 8000  # git's: a NUL in the first 8,000 bytes makes a file binary
CONTROL_SHARE = 0.1  # more control characters than this, and the body is data, not text (file(1)'s idea)


def looks_binary(data: bytes) -> bool:
    """Whether decoded bytes are data rather than text, whatever the Content-Type
    says: a NUL near the start, or many control characters (a decompression
    bomb's 16 MB of NULs is declared application/json). Linear, in C."""
    if not data:
        return False
    if b"\x00" in data[:NUL_WINDOW]:
        return True
    return len(data.translate(None, _TEXT_BYTES)) > len(data) * CONTROL_SHARE


def _wide(charset: str) -> bool:  # UTF-16 and UTF-32 text is full of NUL bytes
    return charset.replace("-", "").startswith(("utf16", "utf32"))


def to_text(data: bytes, content_type: str | None) -> tuple[str | None, str | None]:
    """(text, note): text is None for binary or undecodable bodies."""
    if not looks_textual(content_type, data):
        return None, None
    charset = charset_of(content_type)
    wide = _wide(charset)
    if not wide and looks_binary(data):
        return None, None
    try:
        text = data.decode(charset)
    except LookupError:
        return None, f"unknown charset {charset!r}"
    except UnicodeDecodeError as e:
        return None, f"not valid {charset} (byte {e.start}); showing the raw bytes"
    if wide and looks_binary(text[:NUL_WINDOW].encode("utf-8", "replace")):
        return None, None
    return text, None
