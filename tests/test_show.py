"""repost show: every kind of body renders, in human form and as JSON; --as snippets."""

import base64
import gzip
import json
import re
import subprocess

import pytest

from .helpers import post_flow, repost, show_json, store_flows

BODIES = {
    "json": ({"content-type": "application/json"}, b'{"user": {"name": "Ada"}, "items": [1, 2]}'),
    "form": ({"content-type": "application/x-www-form-urlencoded"}, b"name=Ada+Lovelace&lang=en"),
    "text": ({"content-type": "text/plain; charset=utf-8"}, "héllo\nwörld\n".encode()),
    "binary": ({"content-type": "image/png"}, b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
    "broken-gzip": ({"content-type": "application/json", "content-encoding": "gzip"}, b"\x1f\x8b\x08\x00garbage"),
    "invalid-utf8": ({"content-type": "text/plain; charset=utf-8"}, b"caf\xe9 \xff\xfe"),
    "latin-1": ({"content-type": "text/plain; charset=iso-8859-1"}, "café".encode("latin-1")),
    "empty": ({}, b""),
}


@pytest.fixture(scope="module")
def bodies_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("show") / "show.db"
    flows = [post_flow(body=body, headers=headers, response_body=body, response_headers=headers) for headers, body in BODIES.values()]
    ids = store_flows(db, flows)
    return db, dict(zip(BODIES, ids))


@pytest.mark.parametrize("kind", BODIES)
def test_every_body_renders_without_error(bodies_db, kind):
    db, ids = bodies_db
    human = repost("show", str(ids[kind]), "--db", str(db))
    assert human.exit_code == 0
    assert "Traceback" not in human.output
    data = show_json(db, ids[kind])
    for side in ("request", "response"):
        part = data[side]
        assert part["size"] == len(BODIES[kind][1])
        if part["body"] is None and part["body_base64"] is not None:
            base64.b64decode(part["body_base64"])


def test_json_is_indented(bodies_db):
    db, ids = bodies_db
    out = repost("show", str(ids["json"]), "--db", str(db)).output
    assert '  "user": {\n    "name": "Ada"\n  },' in out


def test_forms_are_shown_as_fields(bodies_db):
    db, ids = bodies_db
    out = repost("show", str(ids["form"]), "--db", str(db)).output
    assert "name = Ada Lovelace" in out and "lang = en" in out


def test_text_is_decoded_with_its_charset(bodies_db):
    db, ids = bodies_db
    assert "héllo\nwörld" in repost("show", str(ids["text"]), "--db", str(db)).output
    assert "café" in repost("show", str(ids["latin-1"]), "--db", str(db)).output
    assert show_json(db, ids["latin-1"])["request"]["body"] == "café"


def test_binary_is_a_size_note_and_base64_in_json(bodies_db):
    db, ids = bodies_db
    out = repost("show", str(ids["binary"]), "--db", str(db)).output
    assert re.search(r"\[binary body: 272 bytes, image/png, sha256 [0-9a-f]{16}\]", out)
    data = show_json(db, ids["binary"])
    assert data["request"]["body"] is None
    assert base64.b64decode(data["request"]["body_base64"]) == BODIES["binary"][1]


def test_broken_gzip_shows_the_raw_bytes_with_a_note(bodies_db):
    db, ids = bodies_db
    out = repost("show", str(ids["broken-gzip"]), "--db", str(db)).output
    assert "broken gzip encoding" in out and "garbage" in out
    data = show_json(db, ids["broken-gzip"])
    assert "broken gzip" in data["response"]["note"]
    assert base64.b64decode(data["response"]["body_base64"]) == BODIES["broken-gzip"][1]


def test_invalid_utf8_shows_the_raw_bytes_with_a_note(bodies_db):
    db, ids = bodies_db
    out = repost("show", str(ids["invalid-utf8"]), "--db", str(db)).output
    assert "not valid utf-8" in out and "caf\\xe9" in out
    assert show_json(db, ids["invalid-utf8"])["request"]["body"] is None


def test_human_output_on_a_narrow_terminal(bodies_db, monkeypatch):
    db, ids = bodies_db
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("COLUMNS", "60")
    out = repost("show", str(ids["json"]), "--db", str(db)).output
    plain = re.sub(r"\x1b\[[0-9;]*m", "", out)
    assert "POST http://api.test/orders" in plain
    assert all(len(line) <= 60 for line in plain.splitlines())


def test_gzip_json_is_shown_decoded(tmp_path):
    db = tmp_path / "g.db"
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    (i,) = store_flows(db, [post_flow(response_body=gzip.compress(b'{"ok": true}'), response_headers=headers)])
    assert json.loads(show_json(db, i)["response"]["body"]) == {"ok": True}


def test_show_as_curl_runs_and_sends_the_request(tmp_path, upstream):
    db = tmp_path / "c.db"
    (i,) = store_flows(db, [post_flow(url=f"{upstream.url}/echo?x=1", body=b'{"a": 1}', headers={"content-type": "application/json", "x-client": "repost"})])
    result = repost("show", str(i), "--db", str(db), "--as", "curl")
    assert result.output.startswith("printf '%s' '{\"a\": 1}' | curl ")  # the body on curl's stdin
    echoed = json.loads(subprocess.run(result.output, shell=True, capture_output=True, check=True, timeout=20).stdout)
    assert echoed["method"] == "POST" and echoed["path"] == "/echo" and echoed["query"] == {"x": "1"}
    assert echoed["body"] == '{"a": 1}' and echoed["headers"]["x-client"] == "repost"


def test_show_as_httpie_and_python(tmp_path, upstream):
    db = tmp_path / "c.db"
    (i,) = store_flows(db, [post_flow(url=f"{upstream.url}/echo", body=b'{"a": 1}', headers={"content-type": "application/json", "Authorization": "Bearer secret-x"})])
    httpie = repost("show", str(i), "--db", str(db), "--as", "httpie")
    assert httpie.stdout.startswith("printf '%s' '{\"a\": 1}' | http POST ")
    assert "secret-x" not in httpie.output and "REDACTED" not in httpie.stdout
    python = repost("show", str(i), "--db", str(db), "--as", "python")
    code = python.stdout
    compile(code, "snippet", "exec")
    echoed = subprocess.run(["python3", "-c", code.replace("print(response.status_code, response.text)", "print(response.text)")],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    if echoed.returncode == 0:  # httpx is in the test environment
        assert json.loads(echoed.stdout)["body"] == '{"a": 1}'
    assert "left out, redacted at capture: Authorization" in python.output
