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
    export(db, fmt, "--include-replays", out=out)
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
    assert result.exit_code == 1 and "not a HAR file, a VCR.py cassette or a mitmproxy flow file" in result.output
    broken = tmp_path / "broken.har"
    broken.write_text('{"log": ')
    result = repost("import", str(broken), "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 1 and "not valid JSON" in result.output


# -- round trips keep what was recorded (issue 13, point 4) ---------------------------

WORDS = ["The", " quick", " brown", " fox", "."]


def _import(path, db, *args):
    result = repost("import", str(path), "--db", str(db), *args)
    assert result.exit_code == 0, result.output
    return result.output


def _kept(flow: dict) -> dict:
    """What a round trip must keep beyond the bytes: events with their times, a stream
    cut off, its error, the duration."""
    return {
        "events": [(e["t_ms"], e["event"], e["data"]) for e in flow["events"]],
        "incomplete": flow["incomplete"],
        "error": flow["error"],
        "duration_ms": flow["duration_ms"],
        "started_at": flow["started_at"],
        "status": (flow["response"] or {}).get("status"),
    }


@pytest.fixture
def recorded_streams(start_proxy, counting_upstream):
    """Through the real proxy: a whole SSE stream, one the server cuts off, and a replay
    of the first (stored with replay_of)."""
    from .helpers import count_flows
    from .upstream import StreamScript

    proxy = start_proxy()
    u = counting_upstream.url
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        script = counting_upstream.set_stream(StreamScript(WORDS, deadline=0.01))
        with c.stream("POST", f"{u}/v1/chat/completions", json={"stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    script.ack()
        wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the stream recorded")
        script = counting_upstream.set_stream(StreamScript(WORDS, cut_after=2, deadline=0.01))
        with pytest.raises(httpx.HTTPError):
            with c.stream("POST", f"{u}/v1/chat/completions", json={}) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        script.ack()
        wait_for(lambda: count_flows(proxy.db) == 2, 10, what="the cut stream recorded")
    counting_upstream.set_stream(StreamScript(WORDS, deadline=0.01))
    replayed = repost("replay", "1", "--db", str(proxy.db), "--yes")
    assert replayed.exit_code == 0, replayed.output
    assert count_flows(proxy.db) == 3
    return proxy.db


@pytest.mark.parametrize("fmt", ["mitm", "har"])
def test_a_round_trip_keeps_stream_times_cut_offs_errors_and_replays_and_a_second_import_adds_nothing(recorded_streams, tmp_path, fmt):
    db = recorded_streams
    originals = [show_json(db, i) for i in (1, 2, 3)]
    assert originals[1]["incomplete"] and originals[1]["error"] and originals[2]["replay_of"] == 1
    assert all(e["t_ms"] is not None for e in originals[0]["events"])
    out = tmp_path / f"x.{fmt}"
    export(db, fmt, "--include-replays", out=out)

    copy = tmp_path / "copy.db"
    assert "imported 3 flows" in _import(out, copy)
    back = [show_json(copy, i) for i in (1, 2, 3)]
    assert [_kept(b) for b in back] == [_kept(o) for o in originals]
    assert [b["replay_of"] for b in back] == [None, None, 1]
    assert [r["id"] for r in back[0]["replays"]] == [3]

    again = _import(out, copy)
    assert "imported 0 flows" in again and "3 already present, skipped" in again
    assert len(list_json_all(copy)) == 3
    # The same flows through the other format are the same flows: skipped too.
    other = tmp_path / "other"
    export(db, "har" if fmt == "mitm" else "mitm", "--include-replays", out=other)
    assert "3 already present, skipped" in _import(other, copy, "--format", "har" if fmt == "mitm" else "mitm")
    # Into the database they came from: nothing new.
    assert "3 already present, skipped" in _import(out, db)


def list_json_all(db) -> list[dict]:
    from .helpers import list_json

    return list_json(db, "--limit", "1000")


def test_a_replay_exported_apart_links_to_its_original_imported_before(recorded_streams, tmp_path):
    db = recorded_streams
    original, replay = tmp_path / "original.har", tmp_path / "replay.mitm"
    export(db, "har", "1", out=original)
    export(db, "mitm", "3", out=replay)
    copy = tmp_path / "copy.db"
    _import(original, copy)
    _import(replay, copy)
    assert show_json(copy, 2)["replay_of"] == 1
    # Its original never imported: no link (rather than a link to some other flow).
    alone = tmp_path / "alone.db"
    _import(replay, alone)
    assert show_json(alone, 1)["replay_of"] is None
    # The replay before its original in one file: linked once the original is in.
    doc = json.loads(export(db, "har", "1", "3"))
    doc["log"]["entries"].reverse()
    reversed_har = tmp_path / "reversed.har"
    reversed_har.write_text(json.dumps(doc))
    both = tmp_path / "both.db"
    _import(reversed_har, both)
    assert show_json(both, 1)["replay_of"] == 2 and show_json(both, 2)["replay_of"] is None


def test_a_browser_har_imported_twice_is_imported_once(tmp_path):
    db = tmp_path / "twice.db"
    assert "imported 2 flows" in _import(DATA / "chromium.har", db)
    again = _import(DATA / "chromium.har", db)
    assert "imported 0 flows" in again and "2 already present, skipped" in again


def _mitm_file(path: Path, flows) -> Path:
    from mitmproxy import io

    with open(path, "wb") as f:
        w = io.FlowWriter(f)
        for flow in flows:
            w.add(flow)
    return path


# -- times that cannot be known (issue 13, point 3) -----------------------------------


def test_an_unfinished_or_timeless_flow_imports_with_no_duration_and_no_1970(tmp_path):
    import jsonschema

    from .helpers import list_json

    long_ago = 1_600_000_000.0  # 2020: a flow that never got an answer, imported years later
    unfinished = post_flow(url="http://127.0.0.1:9/orders", body=b"{}", headers=JSON)
    unfinished.response = None
    unfinished.request.timestamp_start = long_ago
    unfinished.request.timestamp_end = long_ago
    timeless = post_flow(url="http://127.0.0.1:9/zero", body=b"{}", headers=JSON, response_body=b"ok")
    timeless.request.timestamp_start = timeless.request.timestamp_end = 0.0
    timeless.response.timestamp_start = timeless.response.timestamp_end = 0.0
    timeless.timestamp_created = 0.0
    flows = _mitm_file(tmp_path / "odd.mitm", [unfinished, timeless])
    db = tmp_path / "odd.db"
    _import(flows, db)
    rows = {r["path"]: r for r in list_json(db)}
    assert rows["/orders"]["duration_ms"] is None
    assert rows["/orders"]["started_at"].startswith("2020-09-13T")
    assert rows["/zero"]["duration_ms"] is None
    assert not rows["/zero"]["started_at"].startswith("1970")  # no time: the import's own
    assert "1970" not in repost("show", str(rows["/zero"]["id"]), "--db", str(db)).output

    har = json.loads(export(db, "har"))
    jsonschema.validate(har, json.loads((DATA / "har-1.2.schema.json").read_text()))
    for entry in har["log"]["entries"]:
        assert entry["time"] == 0 and entry["_repost"]["duration_ms"] is None
        assert all(entry["timings"][k] == 0 for k in ("send", "wait", "receive"))
    # ...and back: still unknown, not 0 (HAR's `time` must be a number; `_repost` says null).
    out = tmp_path / "odd.har"
    out.write_text(json.dumps(har))
    copy = tmp_path / "copy.db"
    _import(out, copy)
    assert [r["duration_ms"] for r in list_json(copy)] == [None, None]
    mitm = tmp_path / "odd-again.mitm"
    export(db, "mitm", out=mitm)
    copy2 = tmp_path / "copy2.db"
    _import(mitm, copy2)
    assert [r["duration_ms"] for r in list_json(copy2)] == [None, None]


def test_a_har_entry_of_1970_or_with_no_time_has_no_time(tmp_path):
    from .helpers import list_json

    doc = json.loads((DATA / "chromium.har").read_text())
    doc["log"]["entries"][0]["startedDateTime"] = "1970-01-01T00:00:00.000Z"
    doc["log"]["entries"][1]["time"] = -1
    har = tmp_path / "zero.har"
    har.write_text(json.dumps(doc))
    db = tmp_path / "zero.db"
    _import(har, db)
    rows = sorted(list_json(db), key=lambda r: r["id"])
    assert not rows[0]["started_at"].startswith("1970") and rows[0]["duration_ms"] is None
    assert rows[1]["duration_ms"] is None


# -- a byte order mark (issue 13, point 7) ---------------------------------------------


@pytest.mark.parametrize("args", [(), ("--format", "har")])
def test_a_har_file_with_a_byte_order_mark_is_read(tmp_path, args):
    har = tmp_path / "with-bom.har"
    har.write_bytes(b"\xef\xbb\xbf" + (DATA / "chromium.har").read_bytes())
    db = tmp_path / "bom.db"
    assert "imported 2 flows" in _import(har, db, *args)
    assert show_json(db, 1)["request"]["url"] == "http://127.0.0.1:8000/api/orders?source=web"
    # repost's own streamed HAR, with a BOM and a blank line before it.
    own = tmp_path / "own.har"
    own.write_bytes(b"\xef\xbb\xbf\n" + export(db, "har").encode())
    copy = tmp_path / "copy.db"
    assert "imported 2 flows" in _import(own, copy, *args)


# -- VCR.py cassettes in (issue 13, point 8) -------------------------------------------


@pytest.mark.parametrize("serializer", ["yaml", "json"])
def test_a_cassette_recorded_by_vcrpy_imports_redacted_and_once(tmp_path, counting_upstream, serializer):
    import vcr

    u = counting_upstream.url
    cassette = tmp_path / f"api.{serializer}"
    with vcr.use_cassette(str(cassette), serializer=serializer, record_mode="once"):
        r = requests.post(f"{u}/echo?page=2", json={"item": "book", "password": "pw-CANARY"},
                          headers={"Authorization": "Bearer tok-CANARY", "X-Client": "web"})  # fmt: skip
        assert r.status_code == 201
        with httpx.Client() as c:
            assert c.post(f"{u}/signup", content=b"name=Ada&lang=en",
                          headers={"content-type": "application/x-www-form-urlencoded"}).status_code == 201  # fmt: skip
        upload = PNG if serializer == "yaml" else b"plain text"  # vcrpy's JSON serializer takes no binary
        assert requests.post(f"{u}/upload", data=upload, headers={"content-type": "image/png"}).status_code == 200
    assert counting_upstream.count() == 3
    assert "tok-CANARY" in cassette.read_text()  # vcrpy keeps what it saw

    db = tmp_path / "vcr.db"
    out = _import(cassette, db)  # the format detected
    assert "imported 3 flows" in out
    assert b"CANARY" not in db.read_bytes()  # redacted on the way in
    echo = show_json(db, 1)
    assert echo["request"]["method"] == "POST" and echo["request"]["url"] == f"{u}/echo?page=2"
    assert json.loads(echo["request"]["body"])["item"] == "book"
    assert json.loads(echo["request"]["body"])["password"].startswith("REDACTED-")
    assert dict(echo["request"]["headers"])["X-Client"] == "web"
    assert echo["response"]["status"] == 201 and json.loads(echo["response"]["body"])["path"] == "/echo"
    assert echo["duration_ms"] is None and not echo["started_at"].startswith("1970")
    assert show_json(db, 2)["request"]["body"] == "name=Ada&lang=en"
    uploaded = show_json(db, 3)
    assert json.loads(uploaded["response"]["body"]) == {"size": len(upload), "sha256": hashlib.sha256(upload).hexdigest()}
    assert uploaded["request"]["sha256"] == hashlib.sha256(upload).hexdigest()

    again = _import(cassette, db, "--format", "vcr")
    assert "imported 0 flows" in again and "3 already present, skipped" in again


def test_a_cassette_exported_by_repost_imports_back(fixture_db, tmp_path):
    db, ids = fixture_db
    cassette = tmp_path / "api.yaml"
    export(db, "vcr", out=cassette)
    copy = tmp_path / "copy.db"
    assert f"imported {len(ids) - 1} flows" in _import(cassette, copy)  # the one with no response is not in it
    for original_id, copy_id in zip(ids[:2], (1, 2)):
        a, b = show_json(db, original_id), show_json(copy, copy_id)
        assert (a["request"]["url"], a["request"]["body"]) == (b["request"]["url"], b["request"]["body"])
        assert (a["response"]["status"], a["response"]["body"]) == (b["response"]["status"], b["response"]["body"])


# -- a vcrpy matcher for redacted values (issue 13, point 11) -----------------------------


def test_a_cassette_with_a_redacted_password_plays_back_with_repost_body_matcher(tmp_path, counting_upstream):
    import vcr
    from vcr.errors import CannotOverwriteExistingCassetteException

    from repost.store.vcr import body_matcher

    u = counting_upstream.url
    db = tmp_path / "login.db"
    store_flows(db, [
        post_flow(url=f"{u}/login", body=b'{"user": "ada", "password": "pw-1", "remember": true}', headers=JSON,
                  response_body=b'{"ok": true}', response_headers=JSON),
        post_flow(url=f"{u}/login-form", body=b"user=ada&password=pw-1",
                  headers={"content-type": "application/x-www-form-urlencoded"}, response_body=b"welcome"),
    ])  # fmt: skip
    cassette = tmp_path / "login.yaml"
    export(db, "vcr", out=cassette)
    assert "pw-1" not in cassette.read_text() and "REDACTED-" in cassette.read_text()

    my_vcr = vcr.VCR(record_mode="none")
    my_vcr.register_matcher("repost_body", body_matcher)
    with my_vcr.use_cassette(str(cassette), match_on=["method", "uri", "repost_body"]):
        r = requests.post(f"{u}/login", json={"user": "ada", "password": "another one", "remember": True})
        assert r.json() == {"ok": True}
        f = requests.post(f"{u}/login-form", data={"user": "ada", "password": "x"})
        assert f.text == "welcome"
    with my_vcr.use_cassette(str(cassette), match_on=["method", "uri", "repost_body"]):
        with pytest.raises(CannotOverwriteExistingCassetteException):
            requests.post(f"{u}/login", json={"user": "bob", "password": "another one", "remember": True})
        with pytest.raises(CannotOverwriteExistingCassetteException):
            requests.post(f"{u}/login-form", data={"user": "bob", "password": "x"})
    # vcrpy's own body matcher cannot play it back: what the matcher is for.
    with my_vcr.use_cassette(str(cassette), match_on=["method", "uri", "body"]):
        with pytest.raises(CannotOverwriteExistingCassetteException):
            requests.post(f"{u}/login", json={"user": "ada", "password": "another one", "remember": True})
    assert counting_upstream.count() == 0


def test_reposts_own_har_edited_out_of_its_one_entry_a_line_shape_is_still_read_whole(fixture_db, tmp_path):
    db, ids = fixture_db
    lines = export(db, "har").splitlines()
    entry = json.loads(lines[2].rstrip(","))
    entry["comment"] = "edited by hand"
    lines[2] = json.dumps(entry, indent=2) + ","  # one entry now over many lines
    edited = tmp_path / "edited.har"
    edited.write_text("\n".join(lines))
    copy = tmp_path / "copy.db"
    assert f"imported {len(ids)} flows" in _import(edited, copy)
    for original_id, copy_id in zip(ids, range(1, len(ids) + 1)):
        same_flow(show_json(db, original_id), show_json(copy, copy_id))
