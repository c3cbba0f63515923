"""End to end: real `repost record`, a real upstream, real clients, a real SQLite file."""

import gzip
import json
import ssl
import subprocess

import httpx
import pytest

from .helpers import count_flows, list_json, repost, show_json, wait_for


def client(proxy, **kw) -> httpx.Client:
    return httpx.Client(proxy=proxy.url, timeout=10, **kw)


def recorded(db, n: int = 1) -> list[dict]:
    wait_for(lambda: count_flows(db) >= n, 5, what=f"{n} flows recorded")
    return list_json(db)


def test_json_post_is_recorded_with_its_response(start_proxy, upstream):
    proxy = start_proxy()
    with client(proxy) as c:
        r = c.post(f"{upstream.url}/orders?page=2", json={"item": "book", "qty": 2})
    assert r.status_code == 201
    [row] = recorded(proxy.db)
    assert row["method"] == "POST"
    assert row["url"] == f"{upstream.url}/orders?page=2"
    assert row["host"] == "127.0.0.1"
    assert row["path"] == "/orders"
    assert row["status"] == 201
    assert row["safety"] == "unsafe"
    assert row["error"] is None and row["replay_of"] is None
    assert row["started_at"].endswith("Z")
    assert row["duration_ms"] > 0
    assert row["request_size"] == len(json.dumps({"item": "book", "qty": 2}).encode()) or row["request_size"] > 0
    assert row["response_size"] == len(r.content)
    for key in ("id", "started_at", "method", "url", "host", "path", "status", "duration_ms",
                "request_size", "response_size", "safety", "error", "replay_of"):  # fmt: skip
        assert key in row

    flow = show_json(proxy.db, row["id"])
    assert json.loads(flow["request"]["body"]) == {"item": "book", "qty": 2}
    assert flow["request"]["method"] == "POST"
    assert ["content-type", "application/json"] in [[k.lower(), v] for k, v in flow["request"]["headers"]]
    assert flow["response"]["status"] == 201
    assert json.loads(flow["response"]["body"])["path"] == "/orders"
    assert flow["response"]["sha256"] and flow["response"]["truncated"] is False
    assert flow["events"] == [] and flow["replays"] == []
    for key in ("id", "started_at", "duration_ms", "safety", "error", "request", "response", "events", "replays"):
        assert key in flow


def test_form_post_is_recorded(start_proxy, upstream):
    proxy = start_proxy()
    with client(proxy) as c:
        c.post(f"{upstream.url}/signup", data={"name": "Ada", "lang": "en"})
    [row] = recorded(proxy.db)
    flow = show_json(proxy.db, row["id"])
    assert flow["request"]["body"] == "name=Ada&lang=en"
    human = repost("show", str(row["id"]), "--db", str(proxy.db))
    assert "name = Ada" in human.output and "lang = en" in human.output


def test_gzip_response_is_stored_as_sent_and_shown_decoded(start_proxy, upstream):
    proxy = start_proxy()
    with client(proxy) as c:
        r = c.post(f"{upstream.url}/gzip", json={})
    assert r.json()["word"] == "zanzibarquokka"
    [row] = recorded(proxy.db)
    import sqlite3

    conn = sqlite3.connect(proxy.db)
    raw, encoding = conn.execute("SELECT response_body, response_content_encoding FROM flows").fetchone()
    assert encoding == "gzip" and raw[:2] == b"\x1f\x8b"  # wire bytes kept
    assert json.loads(gzip.decompress(raw))["word"] == "zanzibarquokka"
    flow = show_json(proxy.db, row["id"])
    assert json.loads(flow["response"]["body"])["word"] == "zanzibarquokka"
    assert flow["response"]["content_encoding"] == "gzip"
    assert "zanzibarquokka" in repost("show", str(row["id"]), "--db", str(proxy.db)).output


def test_post_to_a_closed_port_is_recorded_with_its_error(start_proxy):
    from .helpers import free_port

    proxy = start_proxy()
    dead = free_port()
    with client(proxy) as c:
        r = c.post(f"http://127.0.0.1:{dead}/orders", json={"x": 1})
    assert r.status_code == 502  # mitmproxy tells the client
    [row] = recorded(proxy.db)
    assert row["status"] is None
    assert row["error"] and ("refused" in row["error"].lower() or "connect" in row["error"].lower())
    flow = show_json(proxy.db, row["id"])
    assert flow["response"] is None and flow["error"] == row["error"]
    assert "no response" in repost("show", str(row["id"]), "--db", str(proxy.db)).output


def test_get_is_not_recorded_by_default_but_methods_widens(start_proxy, upstream):
    proxy = start_proxy()
    with client(proxy) as c:
        assert c.get(f"{upstream.url}/things").status_code == 200
        c.post(f"{upstream.url}/marker", json={})
    rows = recorded(proxy.db)
    assert [r["method"] for r in rows] == ["POST"]  # the GET before it was not recorded

    proxy2 = start_proxy("--methods", "GET,POST", db=proxy.db.with_name("all.db"))
    with client(proxy2) as c:
        c.get(f"{upstream.url}/things")
    assert [r["method"] for r in recorded(proxy2.db)] == ["GET"]


def test_filter_narrows_what_is_recorded(start_proxy, upstream):
    proxy = start_proxy("--filter", "~u /keep")
    with client(proxy) as c:
        c.post(f"{upstream.url}/drop", json={})
        c.post(f"{upstream.url}/keep", json={})
    assert [r["path"] for r in recorded(proxy.db)] == ["/keep"]


def test_reverse_mode(start_proxy, upstream):
    proxy = start_proxy("--mode", f"reverse:{upstream.url}")
    r = httpx.post(f"{proxy.url}/rev?x=1", json={"a": 1}, timeout=10)
    assert r.status_code == 201
    [row] = recorded(proxy.db)
    assert row["url"] == f"{upstream.url}/rev?x=1"


def test_curl_client(start_proxy, upstream):
    proxy = start_proxy()
    subprocess.run(
        ["curl", "-sS", "-x", proxy.url, "-H", "Content-Type: application/json", "--data-binary", '{"via": "curl"}',
         f"{upstream.url}/curl"],  # fmt: skip
        check=True, capture_output=True, timeout=20,
    )
    [row] = recorded(proxy.db)
    assert json.loads(show_json(proxy.db, row["id"])["request"]["body"]) == {"via": "curl"}


def test_https_through_mitmproxy_ca(start_proxy, tls_upstream, confdir):
    proxy = start_proxy("--set", f"ssl_verify_upstream_trusted_ca={tls_upstream.ca_file}")
    ca = confdir / "mitmproxy-ca-cert.pem"
    wait_for(ca.exists, 5, what="mitmproxy CA")
    with client(proxy, verify=ssl.create_default_context(cafile=str(ca))) as c:
        r = c.post(f"{tls_upstream.url}/secure", json={"tls": True})
    assert r.status_code == 201
    [row] = recorded(proxy.db)
    assert row["url"] == f"{tls_upstream.url}/secure"
    assert row["url"].startswith("https://")


def test_http2_when_the_client_speaks_it(start_proxy, h2_upstream, confdir):
    proxy = start_proxy("--set", f"ssl_verify_upstream_trusted_ca={h2_upstream.ca_file}")
    ca = ssl.create_default_context(cafile=str(confdir / "mitmproxy-ca-cert.pem"))
    with client(proxy, verify=ca, http2=True) as c:
        r = c.post(f"{h2_upstream.url}/h2", json={"h2": True})
    assert r.http_version == "HTTP/2"
    assert r.status_code == 201
    assert r.json()["http_version"] == "2"
    [row] = recorded(proxy.db)
    flow = show_json(proxy.db, row["id"])
    assert flow["request"]["http_version"] == "HTTP/2.0"
    assert json.loads(flow["request"]["body"]) == {"h2": True}


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_stop_signal_flushes_everything_and_exits_0(start_proxy, upstream, sig):
    from .helpers import stop_signal

    proxy = start_proxy()
    with client(proxy) as c:
        for i in range(40):
            c.post(f"{upstream.url}/n/{i}", json={"i": i})
    assert proxy.stop(stop_signal(sig)) == 0  # straight after the last response
    assert count_flows(proxy.db) == 40
    assert "recorded 40 flows" in proxy.output()
