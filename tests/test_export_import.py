"""Export (HAR, VCR.py, curl, mitmproxy) and import, checked by the tools that read them."""

import base64
import gzip
import hashlib
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import requests

from .helpers import free_port, port_open, post_flow, repost, show_json, store_flows, wait_for

DATA = Path(__file__).parent / "data"
JSON = {"content-type": "application/json"}
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01\x02\xff"


@pytest.fixture
def fixture_db(tmp_path, counting_upstream):
    """Flows of every shape, aimed at a real upstream: JSON, form, binary, gzip, no response."""
    db = tmp_path / "fixtures.db"
    u = counting_upstream.url
    flows = [
        post_flow(url=f"{u}/echo?page=2", body=b'{"item": "book"}', headers={**JSON, "X-Client": "web", "Authorization": "Bearer tok-1"},
                  status=201, response_body=b'{"id": 1}', response_headers=JSON),
        post_flow(url=f"{u}/signup", body=b"name=Ada+L&lang=en", headers={"content-type": "application/x-www-form-urlencoded"},
                  response_body=b"welcome", response_headers={"content-type": "text/plain"}),
        post_flow(url=f"{u}/upload", body=PNG, headers={"content-type": "image/png"},
                  response_body=PNG, response_headers={"content-type": "image/png"}),
        post_flow(url=f"{u}/gzip", body=b"{}", headers=JSON, response_body=gzip.compress(b'{"word": "zanzibar"}'),
                  response_headers={**JSON, "content-encoding": "gzip"}),
    ]  # fmt: skip
    ids = store_flows(db, flows)
    dead = post_flow(url=f"http://127.0.0.1:{free_port()}/down", body=b"{}", headers=JSON)
    dead.response = None
    from mitmproxy import flow as mflow

    dead.error = mflow.Error("connection refused", dead.request.timestamp_start)
    ids += store_flows(db, [dead])
    return db, ids


def export(db, fmt, *args, out: Path | None = None) -> str:
    extra = ["-o", str(out)] if out else []
    result = repost("export", "--format", fmt, "--db", str(db), *args, *extra)
    assert result.exit_code == 0, result.output
    return result.stdout


def same_flow(a: dict, b: dict) -> None:
    """What a round trip must keep: method, URL, headers, bodies, status."""
    assert a["request"]["method"] == b["request"]["method"]
    assert a["request"]["url"] == b["request"]["url"]
    skip = {"content-length"}
    ha = [(k.lower(), v) for k, v in a["request"]["headers"] if k.lower() not in skip]
    hb = [(k.lower(), v) for k, v in b["request"]["headers"] if k.lower() not in skip]
    assert ha == hb
    for side in ("request", "response"):
        if a[side] is None:
            assert b[side] is None
            continue
        assert (a[side]["body"], a[side]["body_base64"]) == (b[side]["body"], b[side]["body_base64"]), side
    assert (a["response"] or {}).get("status") == (b["response"] or {}).get("status")


def test_har_validates_against_the_har_1_2_schema_and_loads_in_a_har_reader(fixture_db, tmp_path):
    import jsonschema
    from haralyzer import HarParser

    db, ids = fixture_db
    out = tmp_path / "x.har"
    export(db, "har", out=out)
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((DATA / "har-1.2.schema.json").read_text()))
    entries = doc["log"]["entries"]
    assert len(entries) == len(ids)
    form = entries[1]["request"]["postData"]
    assert form["mimeType"] == "application/x-www-form-urlencoded"
    assert {p["name"]: p["value"] for p in form["params"]} == {"name": "Ada L", "lang": "en"}
    assert entries[2]["request"]["postData"]["encoding"] == "base64"
    assert base64.b64decode(entries[2]["request"]["postData"]["text"]) == PNG
    assert entries[2]["response"]["content"]["encoding"] == "base64"
    assert json.loads(entries[3]["response"]["content"]["text"]) == {"word": "zanzibar"}
    assert entries[0]["timings"]["wait"] > 0
    assert entries[0]["startedDateTime"].endswith("+00:00")
    assert entries[4]["response"]["status"] == 0 and entries[4]["response"]["_error"] == "connection refused"
    parser = HarParser(doc)
    assert len(parser.pages[0].entries if parser.pages else [e for p in parser.pages for e in p.entries] or entries) >= 1
    assert [e["request"]["method"] for e in parser.har_data["entries"]] == ["POST"] * len(ids)


def test_a_cassette_plays_back_in_vcrpy_to_requests_and_httpx(fixture_db, tmp_path, counting_upstream):
    import vcr

    db, ids = fixture_db
    cassette = tmp_path / "api.yaml"
    export(db, "vcr", out=cassette)
    u = counting_upstream.url
    with vcr.use_cassette(str(cassette), record_mode="none", match_on=["method", "uri", "body"]):
        r = requests.post(f"{u}/echo?page=2", data=b'{"item": "book"}', headers=JSON)
        assert (r.status_code, r.json()) == (201, {"id": 1})
        g = requests.post(f"{u}/gzip", data=b"{}", headers=JSON)
        assert g.json() == {"word": "zanzibar"}  # stored gzip, decoded by the client
    with vcr.use_cassette(str(cassette), record_mode="none"):
        with httpx.Client() as c:
            r = c.post(f"{u}/signup", content=b"name=Ada+L&lang=en", headers={"content-type": "application/x-www-form-urlencoded"})
            assert (r.status_code, r.text) == (200, "welcome")
            p = c.post(f"{u}/upload", content=PNG, headers={"content-type": "image/png"})
            assert p.content == PNG
    assert counting_upstream.count() == 0  # every answer came from the cassette


def test_curl_commands_resend_the_same_request_bytes(tmp_path, counting_upstream):
    db = tmp_path / "c.db"
    u = counting_upstream.url
    body_bin = bytes(range(256)) * 3 + b"\x00'\\%"
    store_flows(db, [
        post_flow(url=f"{u}/echo?x=1&y=two", body=b'{"a": "it\'s"}', headers={**JSON, "X-Client": "repost"}),
        post_flow(url=f"{u}/upload", body=body_bin, headers={"content-type": "application/octet-stream"}),
    ], keep_secrets=True)  # fmt: skip
    script = export(db, "curl")
    lines = script.strip().splitlines()
    assert len(lines) == 2 and all("curl" in line for line in lines)
    echoed = json.loads(subprocess.run(["sh", "-c", lines[0]], capture_output=True, check=True, timeout=30).stdout)
    assert echoed["method"] == "POST" and echoed["path"] == "/echo" and echoed["query"] == {"x": "1", "y": "two"}
    assert echoed["body"] == '{"a": "it\'s"}'
    assert echoed["headers"]["X-Client"] == "repost" and echoed["headers"]["Content-Type"] == "application/json"
    assert "Accept" not in echoed["headers"] and "User-Agent" not in echoed["headers"]  # not added by curl
    uploaded = json.loads(subprocess.run(["sh", "-c", lines[1]], capture_output=True, check=True, timeout=30).stdout)
    assert uploaded == {"size": len(body_bin), "sha256": hashlib.sha256(body_bin).hexdigest()}
    piped = subprocess.run(["sh"], input=script.encode(), capture_output=True, timeout=30)
    assert piped.returncode == 0 and counting_upstream.count() == 4


def test_a_mitmproxy_flow_file_is_read_intact_and_served_by_server_replay(fixture_db, tmp_path, confdir):
    from mitmproxy import io

    db, ids = fixture_db
    out = tmp_path / "flows.mitm"
    export(db, "mitm", out=out)
    with open(out, "rb") as f:
        flows = list(io.FlowReader(f).stream())
    assert len(flows) == len(ids)
    first = flows[0]
    assert first.request.method == "POST" and first.request.path == "/echo?page=2"
    assert first.request.raw_content == b'{"item": "book"}' and first.response.status_code == 201
    assert flows[2].request.raw_content == PNG and flows[2].response.raw_content == PNG
    assert flows[3].response.headers["content-encoding"] == "gzip"
    assert flows[3].response.content == b'{"word": "zanzibar"}'
    assert flows[4].response is None and flows[4].error.msg == "connection refused"

    port = free_port()
    log = open(tmp_path / "replay.log", "wb")
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("mitmdump")), "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
         "--set", f"confdir={confdir}", "--server-replay", str(out), "--set", "server_replay_extra=kill",
         "--set", "server_replay_reuse=true"],  # fmt: skip
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 20, what="mitmdump --server-replay")
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            r = c.post(first.request.url, content=b'{"item": "book"}', headers=JSON)
        assert (r.status_code, r.json()) == (201, {"id": 1})
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        log.close()


@pytest.mark.parametrize("fmt, suffix", [("har", "har"), ("mitm", "mitm")])
def test_import_of_an_export_gives_back_the_same_flows(fixture_db, tmp_path, fmt, suffix):
    db, ids = fixture_db
    out = tmp_path / f"x.{suffix}"
    export(db, fmt, out=out)
    copy = tmp_path / "copy.db"
    result = repost("import", str(out), "--db", str(copy))
    assert result.exit_code == 0 and f"imported {len(ids)} flows" in result.output
    for original_id, copy_id in zip(ids, range(1, len(ids) + 1)):
        same_flow(show_json(db, original_id), show_json(copy, copy_id))


@pytest.mark.parametrize("ctype", ["application/octet-stream", "text/plain", "text/plain; charset=iso-8859-1", "application/json"])
@pytest.mark.parametrize("body", ["\u0080".encode(), "Zoë 日本".encode(), "café".encode("latin-1"), b"plain"])
def test_har_bodies_come_back_byte_for_byte_and_stay_readable(tmp_path, ctype, body):
    """HAR readers encode postData text by their own rules (Latin-1 for a type without a
    charset): where that would not give the bytes back, the text stays and the exact bytes
    go in `_base64`; responses use HAR's own base64 `encoding`."""
    db = tmp_path / "o.db"
    (flow,) = store_flows(db, [post_flow(body=body, headers={"content-type": ctype}, response_body=body,
                                         response_headers={"content-type": ctype})])  # fmt: skip
    har = json.loads(export(db, "har"))
    entry = har["log"]["entries"][0]
    post, content = entry["request"]["postData"], entry["response"]["content"]
    if body == b"plain":
        assert post["text"] == content["text"] == "plain" and "_base64" not in post and "encoding" not in content
    if body == "Zoë 日本".encode() and "json" not in ctype and "8859" not in ctype:
        assert post["text"] == "Zoë 日本"  # readable, though a Latin-1 reader would get other bytes
        assert base64.b64decode(post["_base64"]) == body and content["encoding"] == "base64"
    out = tmp_path / "x.har"
    out.write_text(json.dumps(har), encoding="utf-8")
    copy = tmp_path / "copy.db"
    assert repost("import", str(out), "--db", str(copy)).exit_code == 0
    original, back = show_json(db, flow), show_json(copy, 1)
    for side in ("request", "response"):
        assert back[side]["sha256"] == original[side]["sha256"] == hashlib.sha256(body).hexdigest()
        assert dict(back[side]["headers"])["content-type"] == ctype  # no charset added on the way back


def test_an_export_that_fails_leaves_no_half_written_file(fixture_db, tmp_path):
    db, ids = fixture_db
    out = tmp_path / "fixtures.har"
    export(db, "har", str(ids[0]), out=out)
    before = out.read_bytes()
    failed = repost("export", "--format", "har", "99999999999999999999", "--db", str(db), "-o", str(out))
    assert failed.exit_code == 1 and "Traceback" not in failed.output
    assert out.read_bytes() == before  # the old file is whole
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".repost-export-")] == []
    fresh = tmp_path / "new.har"
    assert repost("export", "--format", "har", "99999999999999999999", "--db", str(db), "-o", str(fresh)).exit_code == 1
    assert not fresh.exists()


def test_export_keeps_redacted_values_redacted(fixture_db, tmp_path):
    db, _ = fixture_db
    for fmt in ("har", "vcr"):
        text = export(db, fmt)
        assert "tok-1" not in text and "REDACTED-" in text
    curl = export(db, "curl")  # a command that re-sends leaves a redacted header out (tests/test_outputs.py)
    assert "tok-1" not in curl and "Authorization" not in curl
    assert repost("export", "--format", "har", "--keep-secrets", "--db", str(db)).exit_code == 2  # no such option


def test_import_of_a_chromium_har_with_base64_bodies(tmp_path):
    db = tmp_path / "chrome.db"
    result = repost("import", str(DATA / "chromium.har"), "--db", str(db))
    assert result.exit_code == 0, result.output
    order = show_json(db, 1)
    assert order["request"]["url"] == "http://127.0.0.1:8000/api/orders?source=web"
    assert json.loads(order["request"]["body"]) == {"item": "book", "quantity": 2}
    assert order["response"]["status"] == 201 and order["response"]["reason"] == "Created"
    assert json.loads(order["response"]["body"]) == {"id": 42, "item": "book", "quantity": 2}
    avatar = show_json(db, 2)
    assert base64.b64decode(avatar["response"]["body_base64"]) == base64.b64decode("iVBORw0KGgoAAAAN")


def test_import_redacts_on_the_way_in_unless_told_not_to(fixture_db, tmp_path):
    db, _ = fixture_db
    har = tmp_path / "x.har"
    export(db, "har", out=har)
    doc = json.loads(har.read_text())
    doc["log"]["entries"][0]["request"]["headers"].append({"name": "X-Api-Key", "value": "key-CANARY"})
    har.write_text(json.dumps(doc))
    assert repost("import", str(har), "--db", str(tmp_path / "a.db")).exit_code == 0
    assert b"key-CANARY" not in (tmp_path / "a.db").read_bytes()
    assert repost("import", str(har), "--keep-secrets", "--db", str(tmp_path / "b.db")).exit_code == 0
    assert "key-CANARY" in json.dumps(show_json(tmp_path / "b.db", 1))


def test_import_errors_are_clear(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("hello")
    result = repost("import", str(bad), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "neither a HAR file nor a mitmproxy flow file" in result.output
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": ')
    result = repost("import", str(broken), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "not valid JSON" in result.output
