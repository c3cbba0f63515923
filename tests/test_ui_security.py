"""`repost ui` under attack: a page on another site (or another port of this host), a recording
written by a hostile server or client, a request no browser would send. The server is the real
command (`repost ui`, a subprocess); clients are plain httpx or a raw socket, so that what a
browser would tidy up (absolute-form targets, odd paths, odd headers) reaches the server as sent.
"""

import json
import socket

import httpx
import pytest

from .helpers import post_flow, repost, store_flows
from .ui_harness import JSON, WRITE, UiServer, one_unsafe  # noqa: F401 (a fixture)


def raw_request(server: UiServer, head: str) -> tuple[int, dict[str, str]]:
    """Send ``head`` (request line and headers, CRLF-separated) as is; the status and headers back."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(head.encode("latin-1") + b"\r\nConnection: close\r\n\r\n")
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    lines = answer.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers


def no_traceback(server: UiServer) -> None:
    """No traceback, and no request the server failed (a 500): a malformed request may be
    logged, on one line, as the 400 it got."""
    out = server.output()
    assert "Traceback" not in out, out[-3000:]
    failed = [line for line in out.splitlines() if "Error handling request" in line and ": 400, message:" not in line]
    assert not failed, failed


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    db = tmp_path_factory.mktemp("uisec") / "hostile.db"
    evil_type = post_flow(url="http://127.0.0.1:9/page", body=b'{"a": 1}', headers=JSON,
                          response_body=b"<html><script>parent.pwned = 1</script>",
                          response_headers={"content-type": "text/html"})  # fmt: skip
    png_lie = post_flow(url="http://127.0.0.1:9/img", response_body=b"<html><script>parent.pwned = 1</script>",
                        response_headers={"content-type": "image/png"})  # fmt: skip
    ids = store_flows(db, [evil_type, png_lie])
    server = UiServer(db)
    yield db, server, ids
    server.stop()


def cookie_header(server: UiServer) -> str:
    return f"Cookie: {server.cookie}={server.token}"


# -- the guard -----------------------------------------------------------------------------------


def test_an_absolute_form_target_naming_another_host_is_refused(hostile):
    """RFC 9112: a server takes the authority of an absolute-form target over the Host header.
    A good Host header beside `GET http://evil.test/...` must not let it through."""
    db, server, ids = hostile
    good_host = f"Host: 127.0.0.1:{server.port}"
    for target in ("http://evil.test/api/flows", f"http://evil.test:{server.port}/api/flows", f"http://127.0.0.1:{server.port}/api/flows"):
        status, _ = raw_request(server, f"GET {target} HTTP/1.1\r\n{good_host}\r\n{cookie_header(server)}")
        assert status == 403, target
    status, _ = raw_request(server, f"GET /api/flows HTTP/1.1\r\n{good_host}\r\n{cookie_header(server)}")
    assert status == 200


def test_host_header_variants_that_do_not_name_the_listener_are_refused(hostile):
    db, server, ids = hostile
    p = server.port
    for host in (f"127.0.0.1.:{p}", f"localhost.:{p}", "127.0.0.1", "localhost", f"127.0.0.2:{p}", f"0.0.0.0:{p}",
                 f"localhost.evil.test:{p}", f"127.0.0.1:{p}@evil.test", f"evil.test#127.0.0.1:{p}"):  # fmt: skip
        status, _ = raw_request(server, f"GET /api/flows HTTP/1.1\r\nHost: {host}\r\n{cookie_header(server)}")
        assert status == 403, host
    # Two Host headers: refused before any handler sees them.
    status, _ = raw_request(server, f"GET /api/flows HTTP/1.1\r\nHost: 127.0.0.1:{p}\r\nHost: evil.test\r\n{cookie_header(server)}")
    assert status in (400, 403)
    # Any local process can send that, token or not: one line on the user's terminal, no traceback.
    assert "Traceback" not in server.output()
    assert [line for line in server.output().splitlines() if "Duplicate 'Host'" in line] == [
        "repost: ui: Error handling request from 127.0.0.1: BadHttpMessage: 400, message: Duplicate 'Host' header found."
    ]
    status, _ = raw_request(server, f"GET /api/flows HTTP/1.0\r\n{cookie_header(server)}")  # no Host at all
    assert status == 403


def test_on_port_80_the_host_header_may_leave_the_port_out():
    """A browser sends `Host: 127.0.0.1` for http://127.0.0.1:80/: the listener, all the same."""
    from repost.cli.ui_parse import allowed_hosts, host_allowed

    hosts = allowed_hosts("127.0.0.1", 80)
    for good in ("127.0.0.1", "127.0.0.1:80", "localhost", "[::1]"):
        assert host_allowed(good, hosts), good
    for bad in ("evil.test", "127.0.0.1:8080", "127.0.0.1.", ""):
        assert not host_allowed(bad, hosts), bad
    assert not host_allowed("127.0.0.1", allowed_hosts("127.0.0.1", 8090))


def test_a_request_from_another_site_or_port_is_refused_whatever_it_holds(hostile, counting_upstream):
    """A page on another port of 127.0.0.1 is "same-site": SameSite=Strict still sends it the
    cookie. Fetch metadata says where a request came from; only this origin (or the user
    typing the URL: "none") gets through."""
    db, server, ids = hostile
    with server.client() as c:
        for site in ("cross-site", "same-site"):
            assert c.get("/api/flows", headers={"Sec-Fetch-Site": site}).status_code == 403, site
            assert c.get(f"/api/flows/{ids[0]}/body/response", headers={"Sec-Fetch-Site": site}).status_code == 403
            asked = c.post("/api/replay/plan", json={"id": ids[0]}, headers={**WRITE, "Sec-Fetch-Site": site})
            assert asked.status_code == 403, site
        for site in ("same-origin", "none"):
            assert c.get("/api/flows", headers={"Sec-Fetch-Site": site}).status_code == 200, site
    with httpx.Client(base_url=server.base, trust_env=False) as browser:
        assert browser.get(f"/?token={server.token}", headers={"Sec-Fetch-Site": "cross-site"}).status_code == 403


def test_the_token_redirect_never_leaves_this_origin(hostile):
    """`//evil.test/?token=...` must not answer `Location: //evil.test/` (a protocol-relative,
    off-site address), nor put a CR/LF of the path into a header."""
    db, server, ids = hostile
    host = f"Host: 127.0.0.1:{server.port}"
    for target, expected in (("//evil.test/x", "/evil.test/x"), ("/%2F%2Fevil.test", "/evil.test"),
                             ("/%5C%5Cevil.test", "/%5C%5Cevil.test"), ("/a%0d%0aSet-Cookie:%20x=1", "/a%0D%0ASet-Cookie:%20x=1")):  # fmt: skip
        status, headers = raw_request(server, f"GET {target}?token={server.token}&q=1 HTTP/1.1\r\n{host}")
        assert status == 302, target
        assert headers["location"] == f"{expected}?q=1", (target, headers["location"])
        assert headers["set-cookie"].startswith(f"{server.cookie}={server.token};")
    no_traceback(server)


def test_no_cors_and_no_preflight_is_ever_granted(hostile):
    db, server, ids = hostile
    with server.client() as c:
        for method in ("OPTIONS", "PUT", "DELETE", "PATCH", "TRACE"):
            r = c.request(method, "/api/replay", headers={"Origin": "http://evil.test", "Access-Control-Request-Method": "POST",
                                                          "Access-Control-Request-Headers": "x-repost-ui,content-type"})  # fmt: skip
            assert r.status_code in (403, 405), method
            assert not [h for h in r.headers if h.lower().startswith("access-control-")], (method, r.headers)
        assert c.get("/api/replay").status_code == 405  # a GET never reaches a state change


# -- response headers ------------------------------------------------------------------------------


def test_every_response_carries_the_strict_headers(hostile):
    db, server, ids = hostile
    with server.client() as c:
        answers = [c.get(path) for path in ("/", "/static/app.js", "/api/flows", f"/api/flows/{ids[0]}", "/api/nothing",
                                            f"/api/flows/{ids[0]}/body/response", f"/api/flows/{ids[1]}/body/response",
                                            "/api/export?format=har", "/api/flows?limit=x")]  # fmt: skip
        answers.append(c.post("/api/replay/plan", json={"id": ids[0]}, headers=WRITE))
    for r in answers:
        where = f"{r.request.url} {r.status_code}"
        csp = r.headers["content-security-policy"]
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp, where
        assert r.headers["x-content-type-options"] == "nosniff", where
        assert r.headers["x-frame-options"] == "DENY", where
        assert r.headers["referrer-policy"] == "no-referrer", where
        assert r.headers["cross-origin-resource-policy"] == "same-origin", where
        assert r.headers["cross-origin-opener-policy"] == "same-origin", where
        assert r.headers["cache-control"] == "no-store", where
        assert "access-control-allow-origin" not in r.headers, where


def test_recorded_bodies_and_exports_are_never_a_document_of_this_origin(hostile):
    """Opened on its own (a link, a new tab), a recorded body must not run as a page of the UI's
    origin, whatever its recorded type says: an attachment, nosniff, and a sandbox CSP."""
    db, server, ids = hostile
    with server.client() as c:
        bodies = [c.get(f"/api/flows/{i}/body/{side}") for i in ids for side in ("request", "response")]
        bodies += [c.get(f"/api/flows/{ids[1]}/body/response", params={"download": "1"}), c.get("/api/export", params={"format": "har"})]
    for r in bodies:
        assert r.status_code in (200, 404), r.request.url
        if r.status_code == 404:
            continue
        media = r.headers["content-type"].split(";")[0]
        assert media in ("application/octet-stream", "image/png"), (r.request.url, media)
        assert r.headers["x-content-type-options"] == "nosniff"
        directives = [d.strip() for d in r.headers["content-security-policy"].split(";")]
        assert "sandbox" in directives and "default-src 'none'" in directives, (r.request.url, directives)
        assert not any("script-src" in d for d in directives)
        if media != "image/png":
            assert r.headers["content-disposition"].startswith("attachment; filename=\"")


@pytest.mark.parametrize("ctype", ["image/svg+xml", "application/xhtml+xml", "text/xml", "text/html; charset=utf-8",
                                   "multipart/related; type=\"text/html\"", "image/png\r\nX-Injected: 1", "image/png\x00text/html",
                                   "IMAGE/PNG; x=\"a\r\nb\""])  # fmt: skip
def test_a_recorded_content_type_decides_nothing_but_image_or_download(tmp_path, ctype):
    db = tmp_path / "t.db"
    f = post_flow(url="http://127.0.0.1:9/x", response_body=b"<svg onload=alert(1)><script>alert(1)</script>")
    f.response.headers["content-type"] = ctype
    (i,) = store_flows(db, [f])
    server = UiServer(db)
    try:
        with server.client() as c:
            r = c.get(f"/api/flows/{i}/body/response")
            assert r.status_code == 200
            assert r.headers["content-type"] in ("application/octet-stream", "image/png"), r.headers["content-type"]
            assert "x-injected" not in r.headers
            assert "sandbox" in r.headers["content-security-policy"]
            if r.headers["content-type"] == "application/octet-stream":
                assert r.headers["content-disposition"] == f'attachment; filename="flow-{i}-response.bin"'
            assert c.get(f"/api/flows/{i}").status_code == 200
        no_traceback(server)
    finally:
        server.stop()


# -- hostile query values and bodies: a clean 400, never a traceback ------------------------------------


def test_hostile_query_values_get_a_clean_answer(hostile):
    db, server, ids = hostile
    huge = "9" * 30
    with server.client() as c:
        for params in ({"ids": huge}, {"ids": "-1"}, {"ids": "1.5"}, {"ids": "1e3"}, {"ids": "\u0661"},
                       {"before": f"2026-01-01T00:00:00Z,{huge}"}, {"before": "x,-1"}, {"limit": "x"}, {"limit": "-1"},
                       {"limit": "9" * 5000}, {"status": "9" * 50}, {"since": "99999999d"}, {"until": "9" * 300 + "d"}):  # fmt: skip
            for path, extra in (("/api/flows", {}), ("/api/export", {"format": "har"}), ("/api/events", {})):
                if path == "/api/events" and "limit" in params:
                    continue  # the stream has no limit to refuse
                r = c.get(path, params={**params, **extra})
                assert r.status_code == 400, (path, params, r.status_code, r.text[:200])
                assert r.json()["error"], params
        for path in (f"/api/flows/{'9' * 5000}", f"/api/flows/{huge}", f"/api/flows/{huge}/body/response",
                     f"/api/flows/{huge}/as/curl", "/api/flows/\u0661", f"/api/diff?a={huge}&b=1", f"/api/diff?a={'9' * 5000}&b=1"):  # fmt: skip
            assert c.get(path).status_code in (400, 404), path
    no_traceback(server)


def test_a_last_event_id_that_is_not_ours_is_ignored(hostile):
    """The header comes back from the browser, but anything can send it: digits of another
    script, more digits than int() takes, or none."""
    db, server, ids = hostile
    for seen in ("\u00b2".encode("latin-1"), "9" * 5000, "-1", "x", ""):
        with server.client() as c, c.stream("GET", "/api/events", headers={"Last-Event-ID": seen}) as events:
            assert events.status_code == 200
            assert next(line for line in events.iter_lines() if line) == ": ready"
    no_traceback(server)


def test_a_push_is_bounded_however_far_back_it_is_asked_to_start(tmp_path):
    """Last-Event-ID: 0 (or an import of many flows at once) must not make one event of every
    flow in the store: the newest PUSH_MAX ids come, the list has the rest."""
    from repost.cli.ui_parse import PUSH_MAX

    db = tmp_path / "many.db"
    ids = store_flows(db, [post_flow(url=f"http://127.0.0.1:9/n/{i}") for i in range(PUSH_MAX + 100)])
    server = UiServer(db)
    try:
        with server.client() as c, c.stream("GET", "/api/events", headers={"Last-Event-ID": "0"}) as events:
            lines = (line for line in events.iter_lines() if line and not line.startswith(":"))
            assert next(lines) == f"id: {ids[-1]}"
            assert next(lines) == "event: flows"
            pushed = [f["id"] for f in json.loads(next(lines).removeprefix("data: "))]
        assert pushed == ids[-PUSH_MAX:]
    finally:
        server.stop()


# -- replay: what the page asks for is read strictly --------------------------------------------------


def test_replay_asks_are_read_strictly_and_send_nothing_when_wrong(one_unsafe, counting_upstream):
    db, server, i = one_unsafe
    with server.client(headers=WRITE) as c:
        nested = c.post("/api/replay", content=b"[" * 100_000 + b"]" * 100_000, headers=JSON)
        assert nested.status_code == 400 and nested.json()["error"]
        for ask in ({"id": i, "confirm": float(i)}, {"id": i, "confirm": [i]}, {"id": i, "confirm": {"id": i}}, {"id": float(i), "confirm": i}):
            assert c.post("/api/replay", json=ask).status_code in (400, 409), ask
        for ask in ({"id": i, "confirm": i, "to": 5}, {"id": i, "confirm": i, "to": ["http://127.0.0.1:1"]},
                    {"id": i, "confirm": i, "to": "file:///etc/passwd"}, {"id": i, "confirm": i, "to": "gopher://127.0.0.1:70"},
                    {"id": i, "confirm": i, "to": "http://127.0.0.1:1/path"},
                    {"id": i, "confirm": i, "headers": ["X-A: b\r\nX-Injected: 1"]},
                    {"id": i, "confirm": i, "headers": ["X-A: b\nX-Injected: 1"]},
                    {"id": i, "confirm": i, "headers": ["X-A: b\x00c"]},
                    {"id": i, "confirm": i, "headers": ["X A: b"]}, {"id": i, "confirm": i, "headers": ["X-A\r\nX-B: b"]},
                    {"id": i, "confirm": i, "headers": "X-A: b"}, {"id": i, "confirm": i, "headers": [1]}):  # fmt: skip
            r = c.post("/api/replay", json=ask)
            assert r.status_code == 400, (ask, r.status_code, r.text[:200])
            assert c.post("/api/replay/plan", json=ask).status_code == 400, ask
        assert c.post("/api/replay", json={"id": 2**70, "confirm": 2**70}).status_code == 404
        assert c.post("/api/replay", json={"id": i + 1, "confirm": i + 1}).status_code == 404
    assert counting_upstream.count() == 0
    no_traceback(server)


def test_a_header_override_carrying_host_is_classified_as_sent(one_unsafe, counting_upstream):
    """-H Host: / Authorization: are the user's to give; the class is of the request as it goes."""
    db, server, i = one_unsafe
    with server.client(headers=WRITE) as c:
        plan = c.post("/api/replay/plan", json={"id": i, "headers": ["Host: other.test", "Authorization: Bearer x"]}).json()
        assert plan["safety"] == "unsafe" and plan["needs_confirmation"]
        assert ["Host", "other.test"] in plan["headers"]
        assert c.post("/api/replay", json={"id": i, "headers": ["Host: other.test"]}).status_code == 409
    assert counting_upstream.count() == 0


@pytest.mark.parametrize("where", ["header value", "header name", "method"])
def test_a_recorded_request_http_cannot_carry_is_refused_before_anything_is_sent(tmp_path, counting_upstream, where):
    """An imported file can hold a header with CR/LF (or a method with a space): aiohttp would
    refuse it mid-send with a ValueError (a traceback, a half-open connection). The plan says
    why it cannot be sent; the UI answers 422, the CLI one line; the upstream sees nothing."""
    db = tmp_path / "bad.db"
    f = post_flow(url=f"{counting_upstream.url}/create", body=b'{"item": "book"}', headers=JSON)
    if where == "header value":
        f.request.headers["X-Evil"] = "a\r\nX-Injected: 1"
    elif where == "header name":
        f.request.headers["X-Evil\r\nX-Injected"] = "1"
    else:
        f.request.method = "PO ST"
    (i,) = store_flows(db, [f])
    server = UiServer(db)
    try:
        with server.client(headers=WRITE) as c:
            plan = c.post("/api/replay/plan", json={"id": i}).json()
            assert plan["problem"] and "cannot be sent" in plan["problem"]
            r = c.post("/api/replay", json={"id": i, "confirm": i})
            assert r.status_code == 422, r.text
        no_traceback(server)
    finally:
        server.stop()
    result = repost("replay", str(i), "--db", str(db), "--yes")
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "cannot be sent" in result.output
    assert counting_upstream.count() == 0


def test_a_time_too_far_back_is_a_usage_error_in_the_cli_too(tmp_path):
    result = repost("list", "--db", str(tmp_path / "t.db"), "--since", "99999999d")
    assert result.exit_code == 2 and "reaches back before any time" in result.output


def test_replay_h_refuses_a_header_with_a_line_break(tmp_path, counting_upstream):
    db = tmp_path / "h.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/create", body=b"{}", headers=JSON)])
    for header in ("X-A: b\r\nX-Injected: 1", "X-A: b\nX-Injected: 1", "X-A: b\x00", "X(A): b"):
        result = repost("replay", str(i), "--db", str(db), "--yes", "-H", header)
        assert result.exit_code == 2, (header, result.output, result.exception)
        assert "is not a header" in result.output
    assert counting_upstream.count() == 0


# -- the listener ----------------------------------------------------------------------------------------


def test_the_token_goes_to_the_terminal_only_and_the_database_keeps_its_mode(tmp_path):
    import os
    import stat

    db = tmp_path / "m.db"
    store_flows(db, [post_flow()])
    os.chmod(db, 0o600)
    server = UiServer(db)
    try:
        with server.client() as c:
            assert c.get("/api/flows").status_code == 200
            assert server.token not in json.dumps(c.get("/api/flows/1").json())
            page = c.get("/")
            assert server.token not in page.text and server.token not in json.dumps(dict(page.headers))
        assert server.output().count(server.token) == 1  # the URL it printed, nothing logged
    finally:
        server.stop()
    assert stat.S_IMODE(os.stat(db).st_mode) == 0o600


def test_open_hands_the_browser_a_single_use_token_not_the_printed_one(tmp_path, monkeypatch):
    """`--open` puts the URL on a browser's command line, which every local user can read
    (ps, /proc/PID/cmdline): what is there must be worthless once the browser has used it."""
    import stat
    import sys

    from .helpers import wait_for

    seen = tmp_path / "browser-argv"
    fake = tmp_path / "fake-browser"
    fake.write_text(f"#!{sys.executable}\nimport sys\nopen({str(seen)!r}, 'w').write(sys.argv[1])\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("BROWSER", f"{fake} %s")
    server = UiServer(tmp_path / "o.db", "--open")
    try:
        opened = wait_for(lambda: seen.exists() and seen.read_text(), 20, what="the browser to be started")
        assert opened.startswith(f"{server.base}/?token=")
        assert server.token not in opened
        with httpx.Client(trust_env=False) as browser:
            first = browser.get(opened)
            assert first.status_code == 302
            assert first.cookies[server.cookie] == server.token  # the session is the printed token's
        with httpx.Client(trust_env=False) as thief:
            assert thief.get(opened).status_code == 403  # spent
    finally:
        server.stop()
