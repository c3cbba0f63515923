"""repost serve: recordings answer as the server (and inside the proxy), matched by meaning."""

import json
import os
import signal
import ssl
import statistics
import subprocess
import sys
import time

import httpx
import openai
import pytest

from .helpers import count_flows, free_port, list_json, port_open, post_flow, show_json, store_flows, wait_for
from .upstream import StreamScript

JSON = {"content-type": "application/json"}
WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]


class Serving:
    """`repost serve` as a real subprocess on a loopback port."""

    def __init__(self, *args, env=None):
        self.port = free_port()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repost.cli", "serve", "--listen-port", str(self.port), *map(str, args)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )  # fmt: skip
        wait_for(lambda: port_open(self.port) or self.proc.poll() is not None, 20, what="serve to listen")
        if self.proc.poll() is not None:
            raise AssertionError(self.proc.communicate()[1].decode())
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self) -> tuple[int, str, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        out, err = self.proc.communicate(timeout=20)
        return self.proc.returncode, out.decode(), err.decode()


@pytest.fixture
def serving():
    started = []

    def start(*args, **kw):
        s = Serving(*args, **kw)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


@pytest.mark.parametrize("keyed", [False, True], ids=["fresh", "keyed-by-the-writer"])
def test_requests_match_by_meaning_in_recorded_order_and_a_miss_names_the_closest(tmp_path, serving, keyed):
    db = tmp_path / "r.db"
    ids = store_flows(db, [
        post_flow("http://api.test/orders", b'{"item": "book", "qty": 1, "at": "10:00"}', JSON, 201, b'{"id": 1}', JSON),
        post_flow("http://api.test/orders", b'{"item": "book", "qty": 1, "at": "10:01"}', JSON, 201, b'{"id": 2}', JSON),
        post_flow("http://api.test/orders", b'{"item": "book", "qty": 1, "at": "10:02"}', JSON, 201, b'{"id": 3}', JSON),
        post_flow("http://api.test/login", b'{"user": "ada", "password": "hunter2"}', JSON, 200, b'{"ok": true}', JSON),
        post_flow("http://api.test/search?b=2&a=1", b"", {}, 200, b"found", {"content-type": "text/plain"}),
    ])  # fmt: skip
    if keyed:  # the match keys the writer stores while idle: the lookups go through their index
        from repost.store.database import open_database
        from repost.store.matching import index_match_keys

        conn = open_database(db)
        assert index_match_keys(conn) == len(ids)
        conn.close()
    s = serving("--db", db, "--ignore", "request.body.at")
    with httpx.Client(base_url=s.url) as c:
        # Key order, spaces and the ignored timestamp do not count: three answers in recorded order, then the last.
        answers = [c.post("/orders", content=b'{ "qty":1,  "at": "11:59", "item":"book"}', headers=JSON) for _ in range(4)]
        assert [r.json()["id"] for r in answers] == [1, 2, 3, 3]
        assert [r.headers["repost-flow"] for r in answers] == [str(i) for i in ids[:3]] + [str(ids[2])]
        # A password redacted at capture matches any password.
        assert c.post("/login", json={"password": "another", "user": "ada"}).json() == {"ok": True}
        assert c.post("/search?a=1&b=2").text == "found"  # query parameters in any order
        miss = c.post("/orders", json={"item": "book", "qty": 2, "at": "x"})
    assert miss.status_code == 502
    assert "repost-flow" not in miss.headers
    body = miss.json()
    assert body["error"] == "no recording matches"
    assert body["closest"]["id"] in ids[:3]
    assert body["closest"]["differences"] == [{"path": "request.body.qty", "a": 1, "b": 2}]
    code, out, err = s.stop()
    assert code == 0
    assert "POST /orders -> flow" in err and "miss: no recording matches (closest flow" in err
    assert "request.body.qty: 1 -> 2" in err
    assert "served 6 requests from 5 recordings; 1 missed" in err


def test_stored_keys_answer_like_fresh_ones(tmp_path, serving):
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys

    db = tmp_path / "r.db"
    flows = [post_flow("http://api.test/pay", b'{"card": "4242", "token": "tok_%d", "n": 1}' % i, JSON, 201, b'{"id": %d}' % i, JSON)
             for i in range(3)]  # fmt: skip
    ids = store_flows(db, flows[:2])
    conn = open_database(db)
    index_match_keys(conn)
    conn.close()
    ids += store_flows(db, flows[2:])  # recorded after the writer made keys: keyed on the fly
    s = serving("--db", db)
    got = [httpx.post(f"{s.url}/pay", json={"n": 1, "token": "tok_live", "card": "4242"}).headers["repost-flow"] for _ in range(4)]
    assert got == [str(i) for i in ids] + [str(ids[-1])]


def test_a_flow_keyed_while_serving_answers_too(tmp_path, serving):
    """serve keeps what a stored key's lookup found (not re-read per request); a flow the
    recorder's writer keys meanwhile must still be found."""
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys

    def key_all():
        conn = open_database(db)
        index_match_keys(conn)
        conn.close()

    db = tmp_path / "r.db"
    first = store_flows(db, [post_flow("http://api.test/orders", b'{"n": 1}', JSON, 201, b'{"id": 1}', JSON)])
    key_all()
    s = serving("--db", db)

    def ask() -> str:
        return httpx.post(f"{s.url}/orders", json={"n": 1}).headers["repost-flow"]

    assert [ask(), ask()] == [str(first[0])] * 2
    second = store_flows(db, [post_flow("http://api.test/orders", b'{"n": 1}', JSON, 201, b'{"id": 2}', JSON)])
    key_all()
    assert str(second[0]) in {ask(), ask()}


def test_strict_exits_1_after_a_miss_and_json_lines_go_to_stdout(tmp_path, serving):
    db = tmp_path / "r.db"
    store_flows(db, [post_flow("http://api.test/a", b"{}", JSON, 200, b"{}", JSON)])
    s = serving("--db", db, "--strict", "--json")
    assert httpx.post(f"{s.url}/a", json={}).status_code == 200
    assert httpx.post(f"{s.url}/b", json={}).status_code == 502
    code, out, err = s.stop()
    assert code == 1
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(line["path"], line["flow"] is not None) for line in lines] == [("/a", True), ("/b", False)]


def test_a_truncated_recording_is_not_served_as_whole(tmp_path, serving):
    from repost.store.capture import snapshot
    from repost.store.redact import Redactor, load_key
    from repost.store.writer import BatchWriter

    db = tmp_path / "r.db"
    writer = BatchWriter(str(db), redactor=Redactor(load_key()), max_body=10)
    assert writer.write([snapshot(post_flow("http://api.test/big", b"{}", JSON, 200, b"x" * 100, {}))])
    writer.close()
    s = serving("--db", db)
    r = httpx.post(f"{s.url}/big", json={})
    assert r.status_code == 502 and "truncated" in r.json()["reason"]


@pytest.fixture
def recorded_stream(start_proxy, counting_upstream):
    """A chat completion stream recorded through the proxy by the OpenAI SDK, ~30 ms between chunks."""
    proxy = start_proxy()
    counting_upstream.set_stream(StreamScript(WORDS, deadline=0.03))
    client = openai.OpenAI(base_url=f"{counting_upstream.url}/v1", api_key="sk-test", max_retries=0,
                           http_client=httpx.Client(proxy=proxy.url, timeout=30))  # fmt: skip
    words = [c.choices[0].delta.content for c in client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "say it"}], stream=True)]  # fmt: skip
    assert words == WORDS
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the stream recorded")
    return proxy.db, show_json(proxy.db, 1)


def _timed_stream(url: str, proxy: str | None = None) -> tuple[list[str], list[float]]:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-other", max_retries=0,
                           http_client=httpx.Client(proxy=proxy, timeout=30))  # fmt: skip
    words, times = [], []
    start = None
    for chunk in client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "say it"}], stream=True):
        now = time.monotonic()
        start = start or now
        words.append(chunk.choices[0].delta.content)
        times.append((now - start) * 1000)
    return words, times


def test_the_openai_sdk_gets_the_recorded_stream_at_its_recorded_times(recorded_stream, serving, counting_upstream):
    db, flow = recorded_stream
    before = counting_upstream.count()
    recorded = [e["t_ms"] - flow["events"][0]["t_ms"] for e in flow["events"]][: len(WORDS)]
    s = serving("--db", db)
    words, times = _timed_stream(s.url)
    assert words == WORDS
    assert recorded[-1] > 150  # the recording really took its time
    # Within 10 ms (median) on a quiet machine (bench/serve_speed.py measures it); the test allows
    # a busy CI machine some slack, and still fails if times were dropped (~30 ms apart) or scaled.
    assert statistics.median(abs(a - b) for a, b in zip(times, recorded)) < 20
    fast = serving("--db", db, "--speed", "0")
    words, times = _timed_stream(fast.url)
    assert words == WORDS and times[-1] < 50  # all at once
    # Plain (not streamed) completions too: the same answer as recorded.
    assert counting_upstream.count() == before  # nothing reached the recorded server


def test_a_reverse_proxy_to_plain_http_is_answered_by_the_server_alone(recorded_stream, serving, counting_upstream):
    """--mode reverse:http://HOST: the answering server takes the requests itself (no mitmproxy
    hop, bench/serve_speed.py), and still answers as that reverse proxy would: the target's host
    takes part in the match, a miss names the closest recording, streams keep their times."""
    db, flow = recorded_stream
    store_flows(db, [
        post_flow(f"{counting_upstream.url}/orders", b'{"item": "book", "qty": 1}', JSON, 201, b'{"id": 1}', JSON),
        post_flow("http://api.test/orders", b'{"item": "pen", "qty": 1}', JSON, 201, b'{"id": 2}', JSON),
    ])  # fmt: skip
    before = counting_upstream.count()
    recorded = [e["t_ms"] - flow["events"][0]["t_ms"] for e in flow["events"]][: len(WORDS)]
    s = serving("--db", db, "--mode", f"reverse:{counting_upstream.url}")
    words, times = _timed_stream(s.url)
    assert words == WORDS
    assert statistics.median(abs(a - b) for a, b in zip(times, recorded)) < 20  # as in server mode
    with httpx.Client(base_url=s.url, timeout=10) as c:
        answer = c.post("/orders", content=b'{"qty": 1, "item": "book"}', headers=JSON)
        other_host = c.post("/orders", json={"item": "pen", "qty": 1})  # recorded for api.test only
        miss = c.post("/orders", json={"item": "book", "qty": 2})
    assert answer.status_code == 201 and answer.json() == {"id": 1} and answer.headers["repost-flow"] == "2"
    assert other_host.status_code == 502 and miss.status_code == 502
    assert miss.json()["closest"] == {"id": 2, "differences": [{"path": "request.body.qty", "a": 1, "b": 2}]}
    assert counting_upstream.count() == before  # nothing reached the recorded server
    code, _, err = s.stop()
    assert code == 0
    assert f"as a reverse proxy to {counting_upstream.url}" in err  # not through mitmproxy
    assert "served 2 requests from 2 recordings; 2 missed" in err


def test_regular_proxy_mode_passes_a_stream_on_at_its_recorded_times(recorded_stream, serving, counting_upstream):
    """Through mitmproxy (regular mode), the answer is streamed on as written, not held whole."""
    db, flow = recorded_stream
    before = counting_upstream.count()
    recorded = [e["t_ms"] - flow["events"][0]["t_ms"] for e in flow["events"]][: len(WORDS)]
    s = serving("--db", db, "--mode", "regular")
    words, times = _timed_stream(counting_upstream.url, proxy=s.url)
    assert words == WORDS
    assert statistics.median(abs(a - b) for a, b in zip(times, recorded)) < 20
    assert counting_upstream.count() == before


def test_regular_proxy_mode_answers_plain_http_in_front_of_mitmproxy(tmp_path, serving, counting_upstream):
    """Plain HTTP proxy requests (absolute form) are answered by the answering server itself
    (cli/serve_front.py; CONNECT still goes to mitmproxy, see the HTTPS test above)."""
    import requests

    db = tmp_path / "r.db"
    url = f"{counting_upstream.url}/orders"
    store_flows(db, [
        post_flow(url, b'{"item": "book", "qty": 1}', JSON, 201, b'{"id": 1}', JSON),
        post_flow(url, b'{"item": "book", "qty": 1}', JSON, 201, b'{"id": 2}', JSON),
        post_flow(f"{counting_upstream.url}/search?b=2&a=1", b"", {}, 200, b"found", {"content-type": "text/plain"}),
    ])  # fmt: skip
    before = counting_upstream.count()
    s = serving("--db", db, "--mode", "regular")
    with httpx.Client(proxy=s.url, timeout=10) as c:
        first = c.post(url, content=b'{"qty": 1, "item": "book"}', headers=JSON)
        query = c.post(f"{counting_upstream.url}/search?a=1&b=2")
        miss = c.post(url, json={"item": "book", "qty": 2})
        other_host = c.post(f"http://localhost:{counting_upstream.port}/orders", json={"item": "book", "qty": 1})
    second = requests.post(url, json={"item": "book", "qty": 1}, proxies={"http": s.url}, timeout=10)
    assert (first.status_code, first.json(), first.headers["repost-flow"]) == (201, {"id": 1}, "1")
    assert (second.status_code, second.json(), second.headers["repost-flow"]) == (201, {"id": 2}, "2")  # in order
    assert query.text == "found"
    assert miss.status_code == 502
    assert miss.json()["closest"]["differences"] == [{"path": "request.body.qty", "a": 1, "b": 2}]
    assert other_host.status_code == 502  # the host counts in proxy modes
    assert counting_upstream.count() == before  # nothing reached the recorded server
    code, _, err = s.stop()
    assert code == 0
    assert "as an HTTP proxy on" in err and "served 3 requests from 3 recordings; 2 missed" in err


def test_an_incomplete_stream_is_cut_off_at_the_same_event(start_proxy, counting_upstream, serving):
    proxy = start_proxy()
    counting_upstream.set_stream(StreamScript(WORDS, cut_after=4, deadline=0.01))
    with httpx.Client(proxy=proxy.url, timeout=30) as c, pytest.raises(httpx.HTTPError):
        with c.stream("POST", f"{counting_upstream.url}/v1/chat/completions", json={"stream": True}) as r:
            for _ in r.iter_lines():
                pass
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the cut stream recorded")
    s = serving("--db", proxy.db, "--speed", "0")
    got = []
    with httpx.Client(timeout=10) as c, pytest.raises(httpx.HTTPError):
        with c.stream("POST", f"{s.url}/v1/chat/completions", json={"stream": True}) as r:
            for line in r.iter_lines():
                if line.startswith("data: "):
                    got.append(json.loads(line[6:])["choices"][0]["delta"]["content"])
    assert got == WORDS[:4]


def test_proxy_mode_answers_https_through_mitmproxy_s_ca_and_reaches_no_server(tmp_path, confdir, tls_upstream, serving, start_proxy):
    proxy = start_proxy("--set", f"ssl_verify_upstream_trusted_ca={tls_upstream.ca_file}")
    ca = confdir / "mitmproxy-ca-cert.pem"
    trust = ssl.create_default_context(cafile=str(ca))
    with httpx.Client(proxy=proxy.url, verify=trust, timeout=10) as c:
        recorded = c.post(f"{tls_upstream.url}/secure", json={"tls": True})
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the HTTPS flow recorded")
    proxy.stop()
    before = tls_upstream.count()
    # Even told to connect eagerly, the proxy never opens a connection to the real server.
    s = serving("--db", proxy.db, "--mode", "regular", "--set", f"confdir={confdir}", "--set", "connection_strategy=eager")
    with httpx.Client(proxy=s.url, verify=trust, timeout=10) as c:
        answer = c.post(f"{tls_upstream.url}/secure", json={"tls": True})
        miss = c.post(f"{tls_upstream.url}/secure", json={"tls": False})
        other_host = c.post(f"https://localhost:{tls_upstream.port}/secure", json={"tls": True})
    import requests

    env_answer = requests.post(f"{tls_upstream.url}/secure", json={"tls": True}, proxies={"https": s.url}, verify=str(ca), timeout=10)
    assert answer.status_code == recorded.status_code and answer.content == recorded.content
    assert answer.headers["repost-flow"] == "1"
    assert env_answer.status_code == recorded.status_code and env_answer.content == recorded.content
    assert miss.status_code == 502 and other_host.status_code == 502  # the host counts in proxy modes
    assert tls_upstream.count() == before  # nothing reached the recorded server


def test_from_files_serves_an_exported_har_and_a_flow_file(tmp_path, serving):
    from .helpers import repost

    db = tmp_path / "r.db"
    store_flows(db, [post_flow("http://api.test/orders", b'{"qty": 1}', JSON, 201, b'{"id": 7}', JSON)])
    for fmt in ("har", "mitm"):
        out = tmp_path / f"flows.{fmt}"
        assert repost("export", "--db", str(db), "--format", fmt, "-o", str(out)).exit_code == 0
        s = serving("--from", out)
        r = httpx.post(f"{s.url}/orders", json={"qty": 1})
        assert r.status_code == 201 and r.json() == {"id": 7}, fmt
    assert list_json(db)[0]["id"] == 1


def test_on_miss_forward_records_new_episodes_and_asks_consent_for_writes(tmp_path, serving, counting_upstream):
    db = tmp_path / "r.db"
    store_flows(db, [post_flow("http://api.test/known", b"{}", JSON, 200, b'{"known": true}', JSON)])
    s = serving("--db", db, "--on-miss", "forward", "--to", counting_upstream.url)
    assert httpx.post(f"{s.url}/known", json={}).json() == {"known": True}
    assert counting_upstream.count() == 0
    write = httpx.post(f"{s.url}/orders", json={"item": "book"})
    assert write.status_code == 502 and "needs --yes" in write.json()["reason"]
    assert counting_upstream.count() == 0  # an unsafe write is not forwarded without consent
    keyed = httpx.post(f"{s.url}/pay", json={"amount": 5}, headers={"Idempotency-Key": "k-1"})
    assert keyed.status_code == 201 and counting_upstream.count("/pay") == 1  # keyed: safe to forward
    again = httpx.post(f"{s.url}/pay", json={"amount": 5}, headers={"Idempotency-Key": "k-1"})
    assert again.headers["repost-flow"] == keyed.headers["repost-flow"]  # now served from the new recording
    assert counting_upstream.count("/pay") == 1
    s.stop()
    consenting = serving("--db", db, "--on-miss", "forward", "--to", counting_upstream.url, "--yes")
    assert httpx.post(f"{consenting.url}/orders", json={"item": "book"}).status_code < 300
    assert counting_upstream.count("/orders") == 1
    assert len(list_json(db)) == 3


def test_the_anthropic_sdk_gets_the_recorded_stream(start_proxy, counting_upstream, serving):
    import anthropic

    from .upstream import ANTHROPIC_WORDS

    def words(base_url, http_client=None):
        client = anthropic.Anthropic(base_url=base_url, api_key="sk-ant-test", max_retries=0, http_client=http_client)
        with client.messages.stream(model="claude-test", max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
            return list(stream.text_stream)

    proxy = start_proxy()
    assert words(counting_upstream.url, httpx.Client(proxy=proxy.url, timeout=30)) == ANTHROPIC_WORDS
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the stream recorded")
    before = counting_upstream.count()
    s = serving("--db", proxy.db)
    assert words(s.url) == ANTHROPIC_WORDS
    assert counting_upstream.count() == before
    code, _, err = s.stop()
    assert "POST /v1/messages -> flow 1, 200, stream" in err


def test_a_flow_given_a_deleted_flows_id_is_keyed_and_served(tmp_path, serving):
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys

    from .helpers import repost

    db = tmp_path / "r.db"
    (old,) = store_flows(db, [post_flow("http://api.test/a", b'{"n": 1}', JSON, 200, b'{"v": "old"}', JSON)])
    conn = open_database(db)
    index_match_keys(conn)
    conn.close()
    assert repost("delete", str(old), "--db", str(db)).exit_code == 0
    (new,) = store_flows(db, [post_flow("http://api.test/b", b'{"n": 2}', JSON, 200, b'{"v": "new"}', JSON)])
    assert new == old  # SQLite gives the id again
    conn = open_database(db)
    index_match_keys(conn)
    conn.close()
    s = serving("--db", db)
    assert httpx.post(f"{s.url}/b", json={"n": 2}).json() == {"v": "new"}


def test_from_a_browser_har_and_a_vcr_cassette(tmp_path, serving, counting_upstream):
    """Fixtures written by other tools: Chromium's HAR (base64 bodies), a cassette vcrpy recorded."""
    import base64
    import json as _json
    from pathlib import Path

    import requests
    import vcr

    har = Path(__file__).parent / "data" / "chromium.har"
    entry = _json.loads(har.read_text())["log"]["entries"][0]
    s = serving("--from", har)
    r = httpx.post(f"{s.url}/api/orders?source=web", json={"quantity": 2, "item": "book"})
    assert r.status_code == 201
    assert r.content == base64.b64decode(entry["response"]["content"]["text"])
    assert r.headers["repost-flow"] == "1"

    cassette = tmp_path / "orders.yaml"
    with vcr.use_cassette(str(cassette), record_mode="all"):
        recorded = requests.post(f"{counting_upstream.url}/orders", json={"item": "pen"})
    played = serving("--from", cassette)
    before = counting_upstream.count()
    answer = httpx.post(f"{played.url}/orders", json={"item": "pen"})
    assert answer.status_code == recorded.status_code and answer.json() == recorded.json()
    assert counting_upstream.count() == before


def test_a_recording_deleted_while_serving_is_a_502_not_a_crash(tmp_path, serving):
    from .helpers import repost

    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow("http://api.test/a", b"{}", JSON, 200, b'{"ok": 1}', JSON)])
    s = serving("--db", db)
    assert httpx.post(f"{s.url}/a", json={}).status_code == 200
    assert repost("delete", str(i), "--db", str(db)).exit_code == 0
    gone = httpx.post(f"{s.url}/a", json={})
    assert gone.status_code == 502 and gone.json()["error"] == "no recording matches"
    code, _, err = s.stop()
    assert code == 0 and "Traceback" not in err
