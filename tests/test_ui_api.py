"""`repost ui`'s server without a browser: its guard (token, Host, cross-site writes),
its API (the very documents of list/show/diff --json), replay's consent, export and push.

The server runs as the real command (`repost ui`, a subprocess); clients are real httpx ones.
"""

import json

import httpx
import pytest
from multidict import MultiDict

from repost.cli.ui_parse import allowed_hosts, host_allowed, parse_cursor, parse_limit, parse_selection, token_ok

from .helpers import post_flow, repost, store_flows
from .ui_harness import JSON, WRITE, UiServer, one_unsafe  # noqa: F401 (a fixture)


# -- the pure parts ----------------------------------------------------------------------


def test_the_token_check_takes_only_the_token():
    assert token_ok("abc", "abc")
    for given in (None, "", "ab", "abcd", "ABC", "abc\u00e9"):
        assert not token_ok(given, "abc")


def test_the_host_check_takes_only_names_of_the_listener():
    hosts = allowed_hosts("127.0.0.1", 8090)
    for good in ("127.0.0.1:8090", "localhost:8090", "LOCALHOST:8090", "[::1]:8090"):
        assert host_allowed(good, hosts), good
    for bad in (None, "", "127.0.0.1", "127.0.0.1:8091", "evil.test:8090", "attacker.example", "localhost.evil.test:8090"):
        assert not host_allowed(bad, hosts), bad
    assert host_allowed("[::1]:9000", allowed_hosts("::1", 9000))
    assert host_allowed("box.lan:9000", allowed_hosts("0.0.0.0", 9000, ["box.lan"]))


def test_list_filters_are_read_from_a_query_as_the_cli_reads_them():
    s = parse_selection(MultiDict([("status", "4xx,201"), ("method", "post,put"), ("host", "*.test"), ("before", "2026-01-01T00:00:00.000Z,42")]))
    assert s.statuses == [(400, 499), (201, 201)]
    assert s.methods == ["POST", "PUT"]
    assert s.host == "*.test" and s.before == ("2026-01-01T00:00:00.000Z", 42)
    assert parse_selection(MultiDict([("since", "1h")])).since.endswith("Z")
    for bad in ([("status", "42")], [("filter", "~q (")], [("search", "!!")], [("since", "yesterday")], [("before", "x")]):
        with pytest.raises(ValueError):
            parse_selection(MultiDict(bad))
    assert parse_cursor("2026-01-01T00:00:00,000Z,7") == ("2026-01-01T00:00:00,000Z", 7)
    assert parse_limit(None) == 50 and parse_limit("0") == 0
    with pytest.raises(ValueError):
        parse_limit("100000")


# -- the server ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    db = tmp_path_factory.mktemp("ui") / "ui.db"
    store_flows(db, [
        post_flow(url=f"http://127.0.0.1:9/orders/{i}", body=json.dumps({"item": f"book {i}", "qty": i}).encode(), headers=JSON,
                  status=201 if i % 3 else 500, response_body=json.dumps({"id": i, "ok": True}).encode(), response_headers=JSON)
        for i in range(120)
    ])  # fmt: skip
    server = UiServer(db)
    yield db, server
    server.stop()


def test_every_request_without_the_token_is_refused(served):
    db, server = served
    with httpx.Client(base_url=server.base, trust_env=False) as anonymous:
        for path in ("/", "/static/app.js", "/api/flows", "/api/flows/1", "/api/events", f"/?token={server.token}x"):
            assert anonymous.get(path).status_code == 403, path
    with httpx.Client(base_url=server.base, trust_env=False, cookies={server.cookie: "guess"}) as guessing:
        assert guessing.get("/").status_code == 403


def test_the_token_buys_a_strict_httponly_cookie_and_leaves_the_url(served):
    db, server = served
    with httpx.Client(base_url=server.base, trust_env=False) as browser:
        first = browser.get(f"/?token={server.token}")
        assert first.status_code == 302 and first.headers["location"] == "/"
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
        page = browser.get("/")
        assert page.status_code == 200 and "<script src=\"/static/app.js\"" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]


def test_a_foreign_host_header_is_refused_even_with_the_token(served):
    """DNS rebinding: a page on evil.test whose name now points at 127.0.0.1 sends Host: evil.test."""
    db, server = served
    with server.client() as c:
        for host in (f"evil.test:{server.port}", "evil.test", f"127.0.0.1:{server.port + 1}"):
            assert c.get("/api/flows", headers={"Host": host}).status_code == 403, host
            assert c.get(f"/?token={server.token}", headers={"Host": host}).status_code == 403
        assert c.get("/api/flows", headers={"Host": f"localhost:{server.port}"}).status_code == 200


def test_the_api_serves_list_show_and_diff_documents_exactly(served):
    db, server = served
    with server.client() as c:
        cli_list = json.loads(repost("list", "--db", str(db), "--json", "--status", "5xx", "--limit", "7").output)
        assert c.get("/api/flows", params={"status": "5xx", "limit": 7}).json() == cli_list
        assert json.loads(c.get("/api/flows/5").text) == json.loads(repost("show", "5", "--db", str(db), "--json").output)
        cli_diff = json.loads(repost("diff", "4", "5", "--db", str(db), "--json", "--ignore", "qty").output)
        assert c.get("/api/diff", params={"a": 4, "b": 5, "ignore": "qty"}).json() == cli_diff
        assert c.get("/api/flows/9999").status_code == 404
        assert c.get("/api/flows", params={"filter": "~q ("}).status_code == 400


def test_pages_follow_by_keyset_and_add_up_to_the_list(served):
    db, server = served
    everything = json.loads(repost("list", "--db", str(db), "--json", "--limit", "500").output)
    with server.client() as c:
        got, before = [], None
        while True:
            page = c.get("/api/flows", params={"limit": 50, **({"before": before} if before else {})}).json()
            got += page
            if len(page) < 50:
                break
            before = f"{page[-1]['started_at']},{page[-1]['id']}"
    assert got == everything and len(got) == 120


def test_bodies_are_images_only_when_raster_and_downloads_otherwise(tmp_path):
    db = tmp_path / "b.db"
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    ids = store_flows(db, [
        post_flow(response_body=png, response_headers={"content-type": "image/png"}),
        post_flow(response_body=svg, response_headers={"content-type": "image/svg+xml"}),
        post_flow(response_body=b"<html><script>x()</script>", response_headers={"content-type": "text/html"}),
    ])  # fmt: skip
    server = UiServer(db)
    try:
        with server.client() as c:
            image = c.get(f"/api/flows/{ids[0]}/body/response")
            assert image.headers["content-type"] == "image/png" and image.content == png
            assert image.headers["x-content-type-options"] == "nosniff"
            for i in ids[1:]:
                other = c.get(f"/api/flows/{i}/body/response")
                assert other.headers["content-type"] == "application/octet-stream"
                assert other.headers["content-disposition"].startswith("attachment")
    finally:
        server.stop()


def test_export_writes_the_selection_as_a_download(served):
    db, server = served
    with server.client() as c:
        har = c.get("/api/export", params={"format": "har", "ids": "3,4"})
        assert har.headers["content-disposition"] == 'attachment; filename="flows.har"'
        assert [e["request"]["url"] for e in json.loads(har.content)["log"]["entries"]] == ["http://127.0.0.1:9/orders/2", "http://127.0.0.1:9/orders/3"]
        curl = c.get("/api/export", params={"format": "curl", "status": "500", "limit": 2})
        assert curl.text.count("curl ") == 2
        assert c.get("/api/export", params={"format": "pdf"}).status_code == 400


def test_copy_as_curl_is_shows_own_output(served):
    db, server = served
    with server.client() as c:
        got = c.get("/api/flows/3/as/curl").json()
    assert got["text"] == repost("show", "3", "--db", str(db), "--as", "curl").output.rstrip("\n")


def test_new_flows_are_pushed_as_they_land(served, tmp_path):
    db, server = served
    with server.client() as c, c.stream("GET", "/api/events", params={"path": "/pushed"}) as events:
        lines = (line for line in events.iter_lines() if line)
        assert next(lines) == ": ready"
        store_flows(db, [post_flow(url="http://127.0.0.1:9/elsewhere"), post_flow(url="http://127.0.0.1:9/pushed")])
        assert next(lines).startswith("id: ")
        assert next(lines) == "event: flows"
        pushed = json.loads(next(lines).removeprefix("data: "))
    assert [f["path"] for f in pushed] == ["/pushed"]  # the filter holds for pushed flows too
    assert pushed[0].keys() == json.loads(repost("list", "--db", str(db), "--json", "--limit", "1").output)[0].keys()
    # A browser that reconnects sends the last event id it saw: what landed meanwhile comes first.
    missed = store_flows(db, [post_flow(url="http://127.0.0.1:9/pushed")])
    with server.client() as c, c.stream("GET", "/api/events", params={"path": "/pushed"}, headers={"Last-Event-ID": str(missed[0] - 1)}) as events:
        lines = (line for line in events.iter_lines() if line and not line.startswith(":"))
        assert next(lines) == f"id: {missed[0]}"
        assert next(lines) == "event: flows"
        assert [f["id"] for f in json.loads(next(lines).removeprefix("data: "))] == missed


# -- replay: consent, and nothing from another site ---------------------------------------------


def test_an_unsafe_replay_sends_nothing_until_confirmed_by_its_id(one_unsafe, counting_upstream):
    db, server, i = one_unsafe
    with server.client(headers=WRITE) as c:
        plan = c.post("/api/replay/plan", json={"id": i}).json()
        assert plan["safety"] == "unsafe" and plan["needs_confirmation"] and plan["history"] == {"times": 0, "last": None}
        for ask in ({"id": i}, {"id": i, "confirm": i + 1}, {"id": i, "confirm": True}, {"id": i, "confirm": str(i)}):
            refused = c.post("/api/replay", json=ask)
            assert refused.status_code == 409, ask
            assert "nothing sent" in refused.json()["error"]
        assert counting_upstream.count() == 0
        done = c.post("/api/replay", json={"id": i, "confirm": i}).json()
        assert done["status"] == 201 and done["safety"] == "unsafe"
        assert counting_upstream.count("/create") == 1
        assert c.get(f"/api/flows/{done['replay_id']}").json()["replay_of"] == i
        again = c.post("/api/replay/plan", json={"id": i}).json()
        assert again["history"]["times"] == 1


def test_a_cross_site_post_to_replay_sends_nothing(one_unsafe, counting_upstream):
    """What another site can make a browser send: a form (no custom header, no JSON type),
    or a fetch() with an Origin that is not ours. Each holds the cookie and the consent."""
    db, server, i = one_unsafe
    ask = json.dumps({"id": i, "confirm": i})
    with server.client() as c:
        attempts = [
            {"content": ask, "headers": {"Content-Type": "text/plain"}},
            {"content": ask, "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
            {"content": ask, "headers": {"Content-Type": "application/json"}},  # no X-Repost-UI
            {"content": ask, "headers": {"Content-Type": "text/plain", **WRITE}},
            {"content": ask, "headers": {"Content-Type": "application/json", "Origin": "http://evil.test", **WRITE}},
            {"content": ask, "headers": {"Content-Type": "application/json", "Host": "evil.test", **WRITE}},
        ]
        for attempt in attempts:
            assert c.post("/api/replay", **attempt).status_code == 403, attempt
    with httpx.Client(base_url=server.base, trust_env=False) as no_cookie:
        assert no_cookie.post("/api/replay", content=ask, headers={"Content-Type": "application/json", **WRITE}).status_code == 403
    assert counting_upstream.count() == 0


def test_a_safe_replay_goes_without_confirmation(tmp_path, counting_upstream):
    db = tmp_path / "s.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/create", body=b'{"item": "b"}', headers={**JSON, "Idempotency-Key": "k9"})])
    server = UiServer(db)
    try:
        with server.client(headers=WRITE) as c:
            done = c.post("/api/replay", json={"id": i}).json()
            assert done["safety"] == "keyed" and done["status"] == 201
            moved = c.post("/api/replay", json={"id": i, "to": "ftp://x.test"})
            assert moved.status_code == 400
    finally:
        server.stop()
    assert counting_upstream.count("/create") == 1


def test_ui_refuses_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = repost("ui", "--db", str(tmp_path / "x.db"), "--listen-port", str(port))
    assert result.exit_code == 1 and "cannot listen on 127.0.0.1" in result.output
