"""A vcrpy matcher for cassettes that repost exported: redacted values match anything.

repost stores a secret as ``REDACTED-<8 hex>``, so a cassette holds that where the
request had a password or a token; vcrpy's own ``body`` matcher then never matches
the live request. ``body_matcher`` compares bodies as vcrpy's does (JSON by value,
forms by field, else the bytes), with every redacted value in either request
standing for any value at its place::

    import vcr
    from repost.store.vcr import body_matcher

    my_vcr = vcr.VCR()
    my_vcr.register_matcher("repost_body", body_matcher)
    with my_vcr.use_cassette("api.yaml", record_mode="none", match_on=["method", "uri", "repost_body"]):
        ...

Like vcrpy's matchers it returns None on a match and raises AssertionError (saying
where the bodies differ) otherwise.
"""

import json
import re
from urllib.parse import parse_qs

REDACTED = re.compile(r"REDACTED-[0-9a-f]{8}")
_REDACTED_BYTES = re.compile(rb"REDACTED-[0-9a-f]{8}")
# What a redacted value stood for in a body that is neither JSON nor a form (multipart,
# text): anything up to the end of its line or the next delimiter.
_ANY_VALUE = rb"[^\r\n&\"',;]*"
_MISSING = object()


def body_matcher(r1, r2) -> None:
    """vcrpy matcher: the bodies of ``r1`` and ``r2`` are equal but for redacted values."""
    b1, b2 = _body(r1), _body(r2)
    if b1 == b2:
        return
    kind = _kind(r1)
    if kind is not None and kind == _kind(r2):
        try:
            parsed = (_parse(kind, b1), _parse(kind, b2))
            where = _difference(*parsed, "body")
        except (ValueError, RecursionError):  # not what its Content-Type says (or too deep): compared as bytes
            parsed = None
        if parsed is not None:
            if where is not None:
                raise AssertionError(f"the bodies differ at {where}")
            return
    if not (_matches_bytes(b1, b2) or _matches_bytes(b2, b1)):
        raise AssertionError("the bodies differ (other than in redacted values)")


def _body(request) -> bytes:
    from vcr.util import read_body

    body = read_body(request)
    if body is None:
        return b""
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _kind(request) -> str | None:
    ctype = ""
    for name, value in request.headers.items():
        if name.lower() == "content-type":
            ctype = (value[0] if isinstance(value, list) and value else value) or ""
            ctype = ctype.decode("latin-1") if isinstance(ctype, bytes) else str(ctype)
    ctype = ctype.lower()
    if "json" in ctype:
        return "json"
    if "application/x-www-form-urlencoded" in ctype:
        return "form"
    return None


def _parse(kind: str, body: bytes):
    text = body.decode("utf-8")  # UnicodeDecodeError is a ValueError
    return json.loads(text) if kind == "json" else parse_qs(text, keep_blank_values=True)


def _redacted(value) -> bool:
    return isinstance(value, str) and REDACTED.fullmatch(value) is not None


def _difference(a, b, path: str) -> str | None:
    """The path of the first difference between ``a`` and ``b``, a redacted value on
    either side matching any value; None when they match."""
    if _redacted(a) or _redacted(b):
        return None
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return f"{path} (keys {sorted(a.keys() ^ b.keys())!r})"
        for key in a:
            where = _difference(a[key], b[key], f"{path}.{key}")
            if where is not None:
                return where
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path} ({len(a)} items, {len(b)} recorded)"
        for i, (x, y) in enumerate(zip(a, b)):
            where = _difference(x, y, f"{path}[{i}]")
            if where is not None:
                return where
        return None
    return None if type(a) is type(b) and a == b else path


def _matches_bytes(pattern_body: bytes, body: bytes) -> bool:
    """Whether ``body`` is ``pattern_body`` with each redacted value in it replaced by
    some value."""
    parts = _REDACTED_BYTES.split(pattern_body)
    if len(parts) == 1:
        return False  # no redacted value, and the bytes differ
    pattern = _ANY_VALUE.join(re.escape(p) for p in parts)
    return re.fullmatch(pattern, body, re.DOTALL) is not None
