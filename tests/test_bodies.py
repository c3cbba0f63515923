"""Unit tests for store/bodies.py: capped content decoding and charsets, never raising."""

import gzip
import os
import time
import tracemalloc
import zlib

import brotli
import pytest
import zstandard

from repost.store.bodies import decode_content, to_text

DATA = b"".join(b"line %05d of a body that compresses well\n" % i for i in range(3000))
MB = 1024 * 1024


def raw_deflate(data: bytes) -> bytes:
    c = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return c.compress(data) + c.flush()


ENCODERS = {
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}


@pytest.mark.parametrize(
    "encoding, encode",
    [
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),  # zlib-wrapped, as the RFC says
        ("deflate", raw_deflate),  # raw, as many servers send it
        ("br", brotli.compress),
        ("zstd", ENCODERS["zstd"]),
        ("GZIP", gzip.compress),
        ("identity", lambda d: d),
    ],
    ids=["gzip", "x-gzip", "deflate-zlib", "deflate-raw", "br", "zstd", "upper-case", "identity"],
)
def test_decodes_each_encoding(encoding, encode):
    got = decode_content(encode(DATA), encoding)
    assert got.data == DATA
    assert got.note is None
    assert got.capped is False


def test_no_encoding_returns_the_bytes():
    assert decode_content(b"plain", None).data == b"plain"
    assert decode_content(b"plain", "").note is None
    assert decode_content(b"", "gzip").data == b""


def test_several_encodings_are_undone_in_reverse_order():
    # "gzip, br": gzip applied first, then br; decoding undoes br, then gzip.
    wire = brotli.compress(gzip.compress(DATA))
    got = decode_content(wire, "gzip, br")
    assert got.data == DATA and got.note is None
    wire = zstandard.ZstdCompressor().compress(zlib.compress(DATA))
    assert decode_content(wire, "deflate,zstd").data == DATA


def test_unknown_encoding_returns_raw_with_note():
    got = decode_content(b"\x00\x01raw", "compress")
    assert got.data == b"\x00\x01raw"
    assert got.note and "compress" in got.note
    assert got.capped is False


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_broken_stream_returns_raw_with_note(encoding):
    wire = b"this is not a compressed stream at all \xff\xfe\x00" * 4
    got = decode_content(wire, encoding)
    assert got.data == wire
    assert got.note and encoding in got.note
    assert got.capped is False


def test_broken_second_layer_returns_the_wire_bytes():
    wire = brotli.compress(b"not gzip inside")
    got = decode_content(wire, "gzip, br")
    assert got.data == wire
    assert got.note and "gzip" in got.note


@pytest.mark.parametrize(
    "encoding",
    [
        "gzip",
        "deflate",
        pytest.param(
            "zstd"
        ),
        "br",
    ],
)
def test_truncated_stream_without_partial_ok_is_reported(encoding):
    wire = ENCODERS[encoding](os.urandom(50_000))
    cut = wire[: len(wire) // 2]
    got = decode_content(cut, encoding)
    assert got.note is not None
    assert got.data == cut


def test_partial_ok_decodes_a_truncated_gzip_prefix():
    original = os.urandom(200_000)  # incompressible: half the stream is ~half the body
    wire = gzip.compress(original)
    got = decode_content(wire[: len(wire) // 2], "gzip", partial_ok=True)
    assert got.note is None
    assert got.capped is False
    assert 50_000 < len(got.data) < len(original)
    assert original.startswith(got.data)


def _bomb(encoding: str, size: int) -> bytes:
    """`size` zero bytes compressed, built chunk by chunk (never holding `size` bytes)."""
    chunk = bytes(MB)
    if encoding == "gzip":
        c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        return b"".join([c.compress(chunk) for _ in range(size // MB)] + [c.flush()])
    if encoding == "deflate":
        c = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS)
        return b"".join([c.compress(chunk) for _ in range(size // MB)] + [c.flush()])
    if encoding == "zstd":
        c = zstandard.ZstdCompressor(level=3).compressobj()
        return b"".join([c.compress(chunk) for _ in range(size // MB)] + [c.flush()])
    if encoding == "br":
        c = brotli.Compressor(quality=5, lgwin=24)
        return b"".join([c.process(chunk) for _ in range(size // MB)] + [c.finish()])
    raise AssertionError(encoding)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    return _bomb("gzip", 200 * MB)


def test_gzip_bomb_is_capped_quickly(gzip_bomb):
    assert len(gzip_bomb) < MB  # it really is a bomb: 200 MB in a few hundred KB
    tracemalloc.start()
    try:
        t0 = time.perf_counter()
        got = decode_content(gzip_bomb, "gzip", cap=MB)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.capped is True
    assert got.note and "cut off" in got.note
    assert len(got.data) == MB and got.data == bytes(MB)
    assert peak < 16 * MB
    assert elapsed < 2.0


@pytest.mark.parametrize(
    "encoding",
    [
        "deflate",
        "zstd",
        "br",
    ],
)
def test_other_bombs_are_capped_without_expanding(encoding):
    # brotli 1.1 (as mitmproxy pins it) has no output limit and yields megabytes
    # for a single input byte of a bomb: bounded (well under the bomb), not below 16 MB.
    size, limit = (512 * MB, 96 * MB) if encoding == "br" else (64 * MB, 16 * MB)
    bomb = _bomb(encoding, size)
    tracemalloc.start()
    try:
        got = decode_content(bomb, encoding, cap=MB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.capped is True and len(got.data) == MB
    assert got.note and "cut off" in got.note
    assert peak < limit


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_body_of_exactly_the_cap_is_not_capped(encoding):
    data = b"x" * 1000
    got = decode_content(ENCODERS[encoding](data), encoding, cap=1000)
    assert got.data == data
    assert got.capped is False and got.note is None
    over = decode_content(ENCODERS[encoding](data + b"y"), encoding, cap=1000)
    assert over.capped is True and over.data == data


# -- charsets ------------------------------------------------------------------


def test_to_text_latin1_charset():
    assert to_text("café ½".encode("latin-1"), "text/plain; charset=ISO-8859-1") == ("café ½", None)
    assert to_text("café".encode("latin-1"), 'text/html; charset="latin-1"') == ("café", None)


def test_to_text_utf8_default_and_explicit():
    assert to_text("naïve ✓".encode(), "application/json") == ("naïve ✓", None)
    assert to_text("naïve ✓".encode(), "text/plain; charset=UTF-8") == ("naïve ✓", None)
    assert to_text(b"no content type", None) == ("no content type", None)


def test_to_text_invalid_utf8_gives_none_and_note():
    text, note = to_text(b"ok so far \xff\xfe then junk", "text/plain")
    assert text is None
    assert note and "utf-8" in note


def test_to_text_unknown_charset_gives_none_and_note():
    text, note = to_text(b"abc", "text/plain; charset=no-such-charset")
    assert text is None and note and "no-such-charset" in note


@pytest.mark.parametrize(
    "data, ctype",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"\x00\x01\x02\x03binary", "application/octet-stream"),
        (b"\x00\x01\x02\x03binary", None),
        (b"\x08\x96\x01", "application/x-protobuf"),
    ],
)
def test_to_text_binary_gives_none(data, ctype):
    assert to_text(data, ctype) == (None, None)
