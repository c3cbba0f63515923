"""Issue 12, classes 3 and 4: each secret the review found stored, through the real proxy.

One recording proxy (``--max-body 64k``) for the module, an upstream that answers what it is
told (tests/leaks.py), and for each case canaries that must not appear in the database, its
-wal and -shm, any body as read back, any export, or ``show``, in any form (tests/leaks.py).
"""

import gzip
import json
import uuid
import zlib

import brotli
import httpx
import pytest

from .helpers import RecordingProxy, count_flows, wait_for
from .leaks import everywhere, leaks, reply_app
from .upstream import Upstream

MAX_BODY = 64 * 1024


@pytest.fixture(scope="module")
def rig(tmp_path_factory, confdir):
    folder = tmp_path_factory.mktemp("review")
    upstream = Upstream(reply_app()).start()
    env = {"REPOST_KEY_FILE": str(folder / "fingerprint.key")}
    proxy = RecordingProxy(folder / "repost.db", confdir, "--max-body", str(MAX_BODY), env=env)
    yield proxy, upstream, folder
    proxy.stop()
    upstream.stop()


def canary(label: str) -> str:
    return f"CANARY{label}{uuid.uuid4().hex[:10]}"


def send(rig, *requests) -> None:
    """Send (method, path, kwargs) requests through the proxy; wait until all are stored."""
    proxy, upstream, _ = rig
    before = count_flows(proxy.db)
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for method, path, kw in requests:
            try:
                c.request(method, upstream.url + path, **kw)
            except httpx.DecodingError:
                pass  # a response made not to decode: the proxy recorded it all the same
    wait_for(lambda: count_flows(proxy.db) >= before + len(requests), 10, what="the flows stored")


def replied(body: bytes, headers: list, **kw):
    """A request to /reply: the response is ``body`` under ``headers``."""
    return ("POST", "/reply", {"content": body, "headers": [("X-Reply-Headers", json.dumps(headers))], **kw})


def assert_nowhere(rig, *canaries) -> None:
    proxy, _, folder = rig
    ids = list(range(1, count_flows(proxy.db) + 1))
    found = leaks(everywhere(proxy.db, folder, ids[-4:]), list(canaries))
    assert not found, f"stored: {found}"


# -- 3. secrets stored although their name is covered ---------------------------------------


def test_a_gzip_body_that_decodes_past_max_body_is_not_stored_compressed(rig):
    a, b = canary("early"), canary("late")
    doc = json.dumps({"password": a, "pad": "x" * (MAX_BODY * 2), "token": b}).encode()
    packed = gzip.compress(doc)
    assert len(packed) < MAX_BODY < len(doc)
    send(rig, replied(packed, [["Content-Type", "application/json"], ["Content-Encoding", "gzip"]]),
         ("POST", "/sink", {"content": packed, "headers": {"Content-Encoding": "gzip", "Content-Type": "application/json"}}))  # fmt: skip
    assert_nowhere(rig, a, b)


def test_a_multi_member_gzip_body_is_redacted_in_every_member(rig):
    a, b = canary("m1"), canary("m2")
    first = gzip.compress(json.dumps({"model": "m"}).encode())  # nothing secret in the first member
    packed = first + gzip.compress(b'\n{"token": "' + b.encode() + b'"}') + gzip.compress(json.dumps({"password": a}).encode())
    send(rig, replied(packed, [["Content-Type", "application/json"], ["Content-Encoding", "gzip"]]),
         ("POST", "/sink", {"content": packed, "headers": {"Content-Encoding": "gzip", "Content-Type": "application/json"}}))  # fmt: skip
    assert_nowhere(rig, a, b)


def test_two_content_encoding_lines_are_both_undone(rig):
    a = canary("twice")
    packed = brotli.compress(gzip.compress(json.dumps({"client_secret": a}).encode()))
    send(rig, replied(packed, [["Content-Type", "application/json"], ["Content-Encoding", "gzip"], ["Content-Encoding", "br"]]),
         ("POST", "/sink", {"content": packed, "headers": [("Content-Encoding", "gzip"), ("Content-Encoding", "br"), ("Content-Type", "application/json")]}))  # fmt: skip
    assert_nowhere(rig, a)


def test_a_body_in_an_encoding_that_does_not_decode_is_not_stored(rig):
    a = canary("unknown")
    raw = json.dumps({"password": a}).encode()
    broken = zlib.compress(raw)[:-6] + b"garbage" + raw  # not a stream any decoder reads to its end
    send(rig, replied(raw, [["Content-Type", "application/json"], ["Content-Encoding", "x-custom"]]),
         replied(broken, [["Content-Type", "application/json"], ["Content-Encoding", "deflate"]]))  # fmt: skip
    assert_nowhere(rig, a)


@pytest.mark.parametrize("value", ["ab'cd{}", "ab;cd{}", 'ab"cd{}', "ab,cd{}", "ab(cd){}", "ab:cd{}", "ab/cd?{}"])
def test_query_values_with_characters_legal_in_a_query_run_to_the_next_ampersand(rig, value):
    a = canary("q")
    secret = value.format(a)
    send(rig, ("POST", f"/sink?user=bob&token={secret}&page=2", {"json": {}}),
         replied(b"{}", [["Location", f"http://127.0.0.1/next?x=1&access_token={secret}"]]))  # fmt: skip
    assert_nowhere(rig, a)


def test_multipart_names_unquoted_or_in_upper_case_are_read(rig):
    a, b, c = canary("unq"), canary("upper"), canary("2231")
    body = (
        "--XyZ\r\nContent-Disposition: form-data; name=token\r\n\r\n" + a + "\r\n"
        '--XyZ\r\nContent-Disposition: FORM-DATA; NAME="secret"\r\n\r\n' + b + "\r\n"
        "--XyZ\r\nContent-Disposition: form-data; name*=utf-8''pass%77ord\r\n\r\n" + c + "\r\n"
        '--XyZ\r\nContent-Disposition: form-data; name="note"\r\n\r\nkept as it was\r\n--XyZ--\r\n'
    ).encode()
    send(rig, ("POST", "/sink", {"content": body, "headers": {"Content-Type": "multipart/form-data; BOUNDARY=XyZ"}}))
    assert_nowhere(rig, a, b, c)


@pytest.mark.parametrize("charset", ["utf-16", "utf-16-be", "utf-32", "utf-7", "cp037"])
def test_a_json_body_in_another_charset_is_decoded_before_redaction(rig, charset):
    a = canary("cs")
    body = json.dumps({"password": a, "user": "bob"}).encode(charset)
    ctype = f"application/json; charset={charset}"
    send(rig, ("POST", "/sink", {"content": body, "headers": {"Content-Type": ctype}}),
         replied(body, [["Content-Type", ctype]]))  # fmt: skip
    assert_nowhere(rig, a)


def test_a_json_body_in_utf_16_without_a_charset_is_still_read(rig):
    a = canary("bom")
    body = json.dumps({"password": a}).encode("utf-16-le")  # no BOM, no charset: JSON's own detection
    send(rig, ("POST", "/sink", {"content": body, "headers": {"Content-Type": "application/json"}}))
    assert_nowhere(rig, a)


def test_echoes_of_json_in_a_string_of_multipart_and_of_a_cut_off_request_are_redacted(rig):
    a, b, c, d = canary("jstr"), canary("mp"), canary("cut"), canary("deep")
    inner = json.dumps({"data": json.dumps({"api_key": d})})
    multipart = f'--b0\r\nContent-Disposition: form-data; name="password"\r\n\r\n{b}\r\n--b0--\r\n'
    big = json.dumps({"password": c, "pad": "y" * MAX_BODY}).encode()
    send(rig, ("POST", "/echo", {"json": {"payload": json.dumps({"refresh_token": a}), "nested": inner}}),
         ("POST", "/echo", {"content": multipart.encode(), "headers": {"Content-Type": "multipart/form-data; boundary=b0"}}),
         ("POST", "/echo", {"content": big, "headers": {"Content-Type": "application/json"}}))  # fmt: skip
    assert_nowhere(rig, a, b, c, d)


def test_a_json_name_given_twice_with_a_very_long_secret_named_key(rig):
    a, b = canary("dup"), canary("long")
    body = '{"a": 1, "a": 2, "' + "x" * 5000 + '_password": "' + b + '", "token": "' + a + '"}'
    send(rig, ("POST", "/sink", {"content": body.encode(), "headers": {"Content-Type": "application/json"}}),
         replied(body.encode(), [["Content-Type", "text/plain"]]))  # fmt: skip
    assert_nowhere(rig, a, b)


# -- 4. names that are secrets too ----------------------------------------------------------

JWT_HEAD = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1c2VyIn0."


@pytest.mark.parametrize(
    "header", ["X-Auth-Key", "Ocp-Apim-Subscription-Key", "Authentication", "X-Session", "X-Custom-Thing", "Private-Token"]
)
def test_headers_named_like_credentials_or_holding_a_jwt(rig, header):
    a = canary("hdr")
    value = JWT_HEAD + a if header == "X-Custom-Thing" else a
    send(rig, ("POST", "/echo", {"json": {}, "headers": {header: value}}),
         replied(b"{}", [[header, value], ["X-Trace", "Bearer " + a]]))  # fmt: skip
    assert_nowhere(rig, a)


@pytest.mark.parametrize("name", ["key", "sig", "signature", "X-Amz-Signature"])
def test_query_names_key_and_signature(rig, name):
    a = canary("qn")
    send(rig, ("POST", f"/sink?{name}={a}&v=1", {"json": {}}))
    assert_nowhere(rig, a)


def test_urls_in_referer_and_location_and_path_parameters(rig):
    a, b, c, d = canary("ref"), canary("loc"), canary("path"), canary("frag")
    send(rig, ("POST", f"/cart;jsessionid={c}/items", {"json": {}, "headers": {"Referer": f"http://127.0.0.1/a?token={a}"}}),
         replied(b"{}", [["Location", f"https://127.0.0.1/cb?state=1&code=x&password={b}#access_token={d}&x=1"]]))  # fmt: skip
    assert_nowhere(rig, a, b, c, d)


def test_json_names_passphrase_pin_jwt_and_name_value_pairs(rig):
    a, b, c, d, e = (canary(x) for x in "abcde")
    doc = {
        "passphrase": a, "pin": b, "jwt": c,
        "fields": [{"name": "password", "value": d}, {"name": "user", "value": "bob"}],
        "headers": [["Authorization", e], ["Accept", "*/*"]],
    }  # fmt: skip
    send(rig, ("POST", "/sink", {"json": doc}), replied(json.dumps(doc).encode(), [["Content-Type", "application/json"]]))
    assert_nowhere(rig, a, b, c, d, e)


def test_a_bearer_token_inside_a_string_and_graphql_arguments(rig):
    a, b, c = canary("bearer"), canary("gql"), canary("gqlpin")
    doc = {
        "log": f"GET / HTTP/1.1\r\nAuthorization: Bearer {a}\r\nAccept: */*",
        "query": f'mutation {{ login(user: "bob", password: "{b}", pin: {c}) {{ token }} }}',
    }
    send(rig, ("POST", "/graphql", {"json": doc}),
         ("POST", "/graphql", {"content": doc["query"].encode(), "headers": {"Content-Type": "application/graphql"}}))  # fmt: skip
    assert_nowhere(rig, a, b, c)


@pytest.mark.parametrize(
    "token",
    ["sk-proj-{}AAAAAAAA", "ghp_{}AAAAAAAAAAAAAAAAAAAA", "xoxb-1234-{}", "AKIA{}", "glpat-{}AAAAAAAAAAAA", JWT_HEAD + "{}"],
)
def test_tokens_known_by_their_shape_under_unknown_names(rig, token):
    a = canary("shape")
    value = token.format(a.upper()[:16] if token.startswith("AKIA") else a)
    check = value[4:] if token.startswith("AKIA") else a
    send(rig, ("POST", "/sink", {"json": {"thing": value, "note": f"use {value} here"}, "headers": {"X-Thing": value}}))
    assert_nowhere(rig, check)


def test_a_body_with_nothing_secret_keeps_its_wire_bytes(rig):
    proxy, _, _ = rig
    packed = gzip.compress(b'{"model": "m", "max_tokens": 5}')
    send(rig, replied(packed, [["Content-Type", "application/json"], ["Content-Encoding", "gzip"]]))
    import sqlite3

    conn = sqlite3.connect(f"file:{proxy.db}?mode=ro", uri=True)
    row = conn.execute("SELECT response_body, response_content_encoding, response_redacted FROM flows ORDER BY id DESC LIMIT 1").fetchone()
    conn.close()
    assert (bytes(row[0]), row[1], row[2]) == (packed, "gzip", 0)



def test_a_withheld_body_says_so_in_show(rig):
    proxy, _, _ = rig
    a = canary("note")
    send(rig, replied(json.dumps({"password": a}).encode(), [["Content-Type", "application/json"], ["Content-Encoding", "x-custom"]]))
    from .helpers import repost, show_json

    flow_id = count_flows(proxy.db)
    response = show_json(proxy.db, flow_id)["response"]
    assert response["redacted"] is True and "not stored" in response["note"] and response["body"] in ("", None)
    assert "not stored: it may hold secrets" in repost("show", str(flow_id), "--db", str(proxy.db)).output
