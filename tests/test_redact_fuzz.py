"""Redaction fuzz (issue 12): canaries under every covered name and in every token shape, in
every body type, charset, content-encoding (stacked, over two header lines, multi-member) and
echo shape, sent through the real proxy; none may be found in the database, its -wal and -shm,
any body as read back, or any export, in raw, base64, percent-encoded or UTF-16/32 form.

A seeded loop (REPOST_FUZZ_SEED picks another seed), every name at least once, bounded to a
few seconds of traffic.
"""

import base64
import gzip
import json
import os
import random
import zlib
from urllib.parse import quote, quote_plus

import brotli
import httpx
import pytest
import zstandard

from repost.store import redact
from repost.store.redact import SECRET_HEADERS, SECRET_NAME_EXACT, SECRET_NAME_PARTS, SECRET_NAME_SUFFIXES

from .helpers import RecordingProxy, count_flows, wait_for
from .leaks import everywhere, leaks, reply_app, unmask, where
from .upstream import Upstream

MAX_BODY = 32 * 1024
SEED = int(os.environ.get("REPOST_FUZZ_SEED", "12"))
JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyIn0."


def field_names(rng: random.Random) -> list[tuple[str, bool]]:
    """Every name the rule covers, spelled as clients spell them: (name, only as a parameter)."""
    grown = [str.upper, lambda n: n.title(), lambda n: "user_" + n, lambda n: n[:2] + "_" + n[2:], lambda n: "X-" + n]
    # "pin", "otp", "sig" are names as written ("p-in" is not looked for: they hide in words)
    exact = [str, str.upper, lambda n: n.title(), lambda n: n if n in ("pin", "otp", "sig") else n[:1] + "-" + n[1:]]
    names = [(rng.choice(grown)(n), False) for n in SECRET_NAME_PARTS]
    names += [(rng.choice(grown)("x" + n), False) for n in SECRET_NAME_SUFFIXES]
    names += [(rng.choice(exact)(n), False) for n in sorted(SECRET_NAME_EXACT)]
    return names + [(rng.choice(exact)(n), True) for n in ("key", "sig", "session")]


def token_samples(c: str, upper: str) -> list[tuple[str, str]]:
    """(value, the part of it that must not survive) for each shape in TOKEN_SHAPES."""
    pad = "Q" * 40
    return [
        ("Bearer " + c, c),
        ("Basic " + base64.b64encode(f"ada:{c}".encode()).decode(), c),
        (JWT_HEAD + c, c),
        ("sk-proj-" + c + pad[:10], c),
        ("sk_live_" + c, c),
        ("ghp_" + c + pad[:20], c),
        ("glpat-" + c + pad[:10], c),
        ("xoxb-1234-" + c, c),
        ("AKIA" + upper, upper),
        ("AIza" + c + pad[:20], c),
        ("hf_" + c + pad[:20], c),
        ("npm_" + c + pad[:26], c),
        ("SG." + c + "." + c[::-1], c),
        ("-----BEGIN RSA PRIVATE KEY-----\n" + c + "\n-----END RSA PRIVATE KEY-----", c),
    ]


# -- how a (name, value) pair is written into a body ------------------------------------------


def as_json(rng, name, value):
    doc = {"model": "m", "items": [{"a": 1, name: value}]} if rng.random() < 0.5 else {name: value, "b": [1, 2]}
    if rng.random() < 0.3:  # a name given twice
        return ('{"x": 1, "x": 2, ' + json.dumps(doc)[1:], "application/json")
    return (json.dumps(doc, indent=rng.choice([None, 2]), ensure_ascii=rng.random() < 0.5), "application/json")


def as_form(rng, name, value):
    return (f"user=bob&{quote_plus(name)}={quote_plus(value)}&page=2", "application/x-www-form-urlencoded")


def as_multipart(rng, name, value):
    disposition = rng.choice([f'name="{name}"', f"name={name}", f'NAME="{name}"'])
    body = (
        '--bnd42\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n'
        f"--bnd42\r\nContent-Disposition: form-data; {disposition}\r\n\r\n{value}\r\n--bnd42--\r\n"
    )
    return body, "multipart/form-data; boundary=bnd42"


def as_text(rng, name, value):
    line = rng.choice([f"{name}={value}", f'"{name}": "{value}"', f"{name}: {value}"])
    return f"log line one\n{line}\nlast line", "text/plain"


def as_graphql(rng, name, value):
    return json.dumps({"query": f'mutation {{ login(user: "bob", {name}: "{value}") {{ id }} }}'}), "application/json"


def as_ndjson(rng, name, value):
    return json.dumps({"a": 1}) + "\n" + json.dumps({"b": {name: value}}) + "\n", "application/x-ndjson"


def as_sse(rng, name, value):
    return f'data: {{"a": 1}}\n\ndata: {json.dumps({name: value})}\n\n', "text/event-stream"


def as_pairs(rng, name, value):
    if rng.random() < 0.5:
        return json.dumps({"fields": [{"name": name, "value": value}]}), "application/json"
    return json.dumps({"headers": [["Accept", "*/*"], [name, value]]}), "application/json"


BODY_SHAPES = [as_json, as_form, as_multipart, as_text, as_graphql, as_ndjson, as_sse, as_pairs]
TEXT_SHAPES = [as_json, as_text, as_ndjson, as_pairs]  # those that may come in another charset
CHARSETS = ["utf-8", "utf-8", "utf-16", "utf-16-le", "utf-32", "latin-1"]
ENCODINGS = ["", "", "gzip", "deflate", "br", "zstd", "gzip, br", "two-lines", "multi-member"]


def encode(data: bytes, encoding: str) -> tuple[bytes, list]:
    """The body under ``encoding``, and its Content-Encoding header lines."""
    if encoding == "two-lines":
        return brotli.compress(gzip.compress(data)), [("Content-Encoding", "gzip"), ("Content-Encoding", "br")]
    if encoding == "multi-member":
        half = len(data) // 2
        return gzip.compress(data[:half]) + gzip.compress(data[half:]), [("Content-Encoding", "gzip")]
    one = {"": lambda d: d, "gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress, "zstd": zstandard.compress}
    for coding in [c.strip() for c in encoding.split(",")]:
        data = one[coding](data)
    return data, [("Content-Encoding", encoding)] if encoding else []


def requests_for(rng, name, value, with_shapes=BODY_SHAPES, param_only=False):
    """One request carrying ``value`` under ``name``: (method, path, kwargs)."""
    where = rng.choice(["body"] * 6 + ["query", "path", "header", "header-url"])
    if param_only:
        where, with_shapes = rng.choice(["query", "path", "header-url", "body"]), [as_form, as_multipart]
    if where == "query":
        raw = quote(value, safe=rng.choice(["", ";'(),"]))  # legal in a query, left raw by some clients
        return ("POST", f"/sink?a=1&{quote(name)}={raw}&b=2", {"json": {}})
    if where == "path":
        return ("POST", f"/cart;{quote(name)}={quote(value, safe='')}/x", {"json": {}})
    if where == "header":
        if not redact.is_secret_header(name):
            name = "X-" + name  # as a header it must still be a name the rule covers
            if not redact.is_secret_header(name):
                return requests_for(rng, name, value, with_shapes)
        return ("POST", rng.choice(["/sink", "/echo"]), {"json": {}, "headers": {name: value.replace("\n", " ").strip()}})
    if where == "header-url":
        return ("POST", "/sink", {"json": {}, "headers": {"Referer": f"http://127.0.0.1/p?x=1&{quote(name)}={quote(value, safe='')}"}})
    shape = rng.choice(with_shapes)
    text, ctype = shape(rng, name, value)
    charset = rng.choice(CHARSETS) if shape in TEXT_SHAPES else "utf-8"
    if charset != "utf-8":
        ctype += f"; charset={charset}"
    data = text.encode(charset, "replace")
    if rng.random() < 0.15:  # past --max-body: the secret early, the end cut off
        data += b" " * MAX_BODY if ctype.startswith("text/plain") else b""
    data, lines = encode(data, rng.choice(ENCODINGS))
    headers = [("Content-Type", ctype), *lines]
    side = rng.choice(["request", "response"])
    if side == "response":  # the upstream answers with these bytes under these headers
        masked = [("X-Reply-Headers", json.dumps(headers)), ("X-Reply-Masked", "1")]
        return ("POST", "/reply", {"content": unmask(data), "headers": masked})
    return ("POST", rng.choice(["/sink", "/echo"]), {"content": data, "headers": headers})


@pytest.fixture
def rig(tmp_path, confdir):
    upstream = Upstream(reply_app()).start()
    proxy = RecordingProxy(tmp_path / "fuzz.db", confdir, "--max-body", str(MAX_BODY), env={"REPOST_KEY_FILE": str(tmp_path / "key")})
    yield proxy, upstream
    proxy.stop()
    upstream.stop()


def test_no_canary_survives_any_name_shape_charset_encoding_or_echo(rig, tmp_path):
    proxy, upstream = rig
    rng = random.Random(SEED)
    planned = []  # (request, canaries)
    for i, (name, param_only) in enumerate(field_names(rng) + [(h, False) for h in sorted(SECRET_HEADERS)]):
        c = f"CANARY{i:03d}{rng.getrandbits(40):010x}"
        value = c + rng.choice(["", "'x", ";y", "(z)", "\\u00e9", ' "q"'[: rng.randint(0, 4)]])
        planned.append((requests_for(rng, name, value, param_only=param_only), [c]))
    for i in range(3):  # every token shape under a name the rule does not cover
        for k in range(len(token_samples("", ""))):
            value, secret = token_samples(f"CANARYT{i}{k:02d}{rng.getrandbits(36):09x}", f"CANARYAW{rng.getrandbits(32):08X}")[k]
            name = rng.choice(["thing", "note", "data", "X-Thing"])
            planned.append((requests_for(rng, name, value, [as_json, as_text, as_ndjson, as_sse, as_multipart]), [secret]))
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for (method, path, kw), _ in planned:
            try:
                c.request(method, upstream.url + path, **kw)
            except httpx.HTTPError:
                pass  # a response the client cannot decode: recorded all the same
    wait_for(lambda: count_flows(proxy.db) >= len(planned), 20, what="every flow stored")
    found = leaks(everywhere(proxy.db, tmp_path), [c for _, cans in planned for c in cans])
    detail = [(req, cans, where(proxy.db, tmp_path, cans[0])) for req, cans in planned if set(cans) & set(found)]
    assert not found, f"{len(found)} of {len(planned)} canaries stored (seed {SEED}):\n" + "\n".join(map(repr, detail))
