"""Bodies whose length is not declared (chunked uploads and downloads) and
streams cut off: recorded through the real proxy like any other body."""

import hashlib

import httpx
import pytest

from .helpers import count_flows, list_json, show_json, wait_for
from .upstream import StreamScript

PATTERN = bytes(range(256)) * 4096  # 1 MB, as the upstream's download writes it


def _digest(size: int) -> str:
    h = hashlib.sha256()
    for _ in range(size // len(PATTERN)):
        h.update(PATTERN)
    return h.hexdigest()


def test_a_chunked_upload_above_the_cap_keeps_its_prefix_size_and_sha256(start_proxy, counting_upstream):
    size = 30 * 1024 * 1024  # above the default --max-body (10 MB)
    proxy = start_proxy()

    def chunks():  # a generator: httpx sends it with Transfer-Encoding: chunked
        for _ in range(size // len(PATTERN)):
            yield PATTERN

    with httpx.Client(proxy=proxy.url, timeout=60) as c:
        up = c.post(f"{counting_upstream.url}/upload", content=chunks())
    assert up.json() == {"size": size, "sha256": _digest(size)}
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the upload recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    req = flow["request"]
    assert ["Transfer-Encoding", "chunked"] in req["headers"]
    assert req["size"] == size and req["sha256"] == _digest(size) and req["truncated"] is True
    import base64

    assert base64.b64decode(req["body_base64"]) == PATTERN * 10  # the first 10 MB


def test_a_small_chunked_upload_is_recorded_whole(start_proxy, counting_upstream):
    proxy = start_proxy()
    parts = [b'{"order": ', b'"book", ', b'"qty": 2}']
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        r = c.post(f"{counting_upstream.url}/echo", content=iter(parts), headers={"Content-Type": "application/json"})
    assert r.json()["body"] == '{"order": "book", "qty": 2}'
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the upload recorded")
    req = show_json(proxy.db, list_json(proxy.db)[0]["id"])["request"]
    body = b"".join(parts)
    assert req["body"] == body.decode() and req["size"] == len(body) and req["truncated"] is False
    assert req["sha256"] == hashlib.sha256(body).hexdigest()


def test_a_post_without_a_body_or_length_is_recorded_with_an_empty_body(start_proxy, counting_upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.post(f"{counting_upstream.url}/status/204").status_code == 204
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the flow recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    assert flow["request"]["size"] == 0 and flow["response"]["size"] == 0
    assert flow["incomplete"] is False


def test_a_chunked_response_above_the_cap_keeps_its_prefix_size_and_sha256(start_proxy, counting_upstream):
    size = 3 * 1024 * 1024
    proxy = start_proxy("--max-body", "1MB", "--methods", "GET")
    with httpx.Client(proxy=proxy.url, timeout=60) as c:
        r = c.get(f"{counting_upstream.url}/download?size={size}&chunked=1")
    assert r.headers.get("transfer-encoding") == "chunked" and len(r.content) == size
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the download recorded")
    resp = show_json(proxy.db, list_json(proxy.db)[0]["id"])["response"]
    assert resp["size"] == size and resp["sha256"] == _digest(size) and resp["truncated"] is True


def test_a_cut_off_stream_lasts_until_its_last_chunk(start_proxy, counting_upstream):
    proxy = start_proxy()
    # Nobody acks: the server waits 0.3 s after each chunk, then drops the connection after the fourth.
    counting_upstream.set_stream(StreamScript(["a", "b", "c", "d", "e"], deadline=0.3, cut_after=4))
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        with pytest.raises(httpx.HTTPError):
            with c.stream("POST", f"{counting_upstream.url}/v1/chat/completions", json={}) as r:
                for _ in r.iter_lines():
                    pass
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the cut stream recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    assert flow["incomplete"] is True and len(flow["events"]) == 4
    last = flow["events"][-1]["t_ms"]
    assert last >= 800  # three waits of 0.3 s
    assert flow["duration_ms"] >= last


def test_body_filters_still_see_a_small_chunked_upload_and_response(start_proxy, counting_upstream):
    # Streamed through the tee, a small body is the flow's content again once it has ended.
    proxy = start_proxy("--filter", "~bq zanzibar & ~bs zanzibar")
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        r = c.post(f"{counting_upstream.url}/echo", content=iter([b"zanzi", b"bar"]))
        assert "zanzibar" in r.text
        c.post(f"{counting_upstream.url}/echo", content=iter([b"other", b"body"]))
        c.post(f"{counting_upstream.url}/echo", content=b"zanzibar, with a length")
    wait_for(lambda: count_flows(proxy.db) >= 2, 5, what="the matching uploads recorded")
    rows = list_json(proxy.db)
    assert len(rows) == 2
    assert sorted(show_json(proxy.db, r["id"])["request"]["body"] for r in rows) == ["zanzibar", "zanzibar, with a length"]


def test_a_small_chunked_response_is_recorded_whole_and_seen_by_body_filters(start_proxy, counting_upstream):
    proxy = start_proxy("--methods", "GET", "--filter", "~bs ABCDEF")
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        r = c.get(f"{counting_upstream.url}/download?size=1000&chunked=1")
    assert r.headers.get("transfer-encoding") == "chunked"
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the download recorded")
    resp = show_json(proxy.db, list_json(proxy.db)[0]["id"])["response"]
    assert resp["size"] == 1000 and resp["truncated"] is False
    assert resp["sha256"] == hashlib.sha256(PATTERN[:1000]).hexdigest()


def test_requests_with_an_iterator_above_the_cap_is_recorded_truncated(start_proxy, counting_upstream):
    import requests

    size = 3 * 1024 * 1024
    proxy = start_proxy("--max-body", "1MB")
    proxies = {"http": proxy.url}
    r = requests.post(f"{counting_upstream.url}/upload", data=iter([PATTERN] * 3), proxies=proxies, timeout=30)
    assert r.json() == {"size": size, "sha256": _digest(size)}
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the upload recorded")
    req = show_json(proxy.db, list_json(proxy.db)[0]["id"])["request"]
    assert req["size"] == size and req["sha256"] == _digest(size) and req["truncated"] is True
