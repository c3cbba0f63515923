"""The pytest plugin, tested with pytester: record, replay (network gone), misses, clients of every kind."""

import json
import shutil

import pytest

from .upstream import Upstream

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True)
def _fixture_cache(tmp_path_factory, monkeypatch):
    """The plugin's cache of imported fixture files in a temp folder, not the user's ~/.cache."""
    folder = tmp_path_factory.mktemp("fixture-cache")
    monkeypatch.setenv("REPOST_FIXTURE_CACHE", str(folder))
    return folder

CLIENTS = '''
import json
import os
import subprocess

import httpx
import openai
import pytest
import requests

UPSTREAM = os.environ["UPSTREAM"]
QTY = int(os.environ.get("QTY", "1"))


@pytest.mark.repost(upstream=UPSTREAM)
def test_httpx(repost):
    r = httpx.post(f"{repost.url}/orders", json={"item": "book", "qty": QTY})
    assert r.status_code == 201 and json.loads(r.json()["body"]) == {"item": "book", "qty": QTY}


@pytest.mark.repost(upstream=UPSTREAM)
def test_requests(repost):
    r = requests.post(f"{repost.url}/orders", data={"item": "pen", "qty": str(QTY)})
    assert r.status_code == 201 and r.json()["body"] == f"item=pen&qty={QTY}"


@pytest.mark.repost(upstream=UPSTREAM)
def test_subprocesses(repost):
    env = {**os.environ, **repost.env}
    curl = subprocess.run(["curl", "-sS", "-f", "-d", f"qty={QTY}", f"{repost.url}/curl"], env=env, capture_output=True, text=True)
    assert curl.returncode == 0, curl.stderr
    node = subprocess.run(["node", "-e", "fetch(process.env.REPOST_URL + '/node', {method: 'POST', body: JSON.stringify({qty: %d})})"
                           ".then(r => r.text()).then(t => console.log(t))" % QTY], env=env, capture_output=True, text=True)
    assert node.returncode == 0, node.stderr
    assert json.loads(node.stdout)["path"] == "/node"


@pytest.mark.repost(upstream=UPSTREAM)
def test_openai_stream(repost):
    client = openai.OpenAI(base_url=f"{repost.url}/v1", api_key="sk-test", max_retries=0)
    words = [c.choices[0].delta.content for c in client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "say it %d" % QTY}], stream=True)]
    assert "".join(words) == "Hello world"
'''


def run(pytester, upstream_url, *args, qty=1):
    pytester.makepyfile(test_clients=CLIENTS)
    import os

    os.environ["UPSTREAM"] = upstream_url
    os.environ["QTY"] = str(qty)
    try:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
    finally:
        del os.environ["UPSTREAM"], os.environ["QTY"]


@pytest.mark.skipif(not shutil.which("node") or not shutil.which("curl"), reason="needs node and curl")
def test_record_then_replay_without_the_network_then_a_changed_request_fails_readably(pytester):
    upstream = Upstream().start()
    url = upstream.url
    try:
        recorded = run(pytester, url, "--repost-mode=record")
        recorded.assert_outcomes(passed=4)
        fixtures = pytester.path / "tests" / "fixtures" / "test_clients"
        files = {p.name: p.read_bytes() for p in sorted(fixtures.glob("*.har"))}
        assert set(files) == {"test_httpx.har", "test_requests.har", "test_subprocesses.har", "test_openai_stream.har"}
        assert upstream.count() == 5
        again = run(pytester, url, "--repost-mode=record")  # the same traffic, recorded again
        again.assert_outcomes(passed=4)
        assert {p.name: p.read_bytes() for p in sorted(fixtures.glob("*.har"))} == files  # byte for byte
    finally:
        upstream.stop()  # from here on the network is gone
    replayed = run(pytester, url)
    replayed.assert_outcomes(passed=4)
    changed = run(pytester, url, qty=2)
    changed.assert_outcomes(failed=4)
    out = changed.stdout.str()
    assert "repost: 1 request(s) matched no recording:" in out
    assert "POST /orders: no recording matches" in out
    assert "request.body.qty: recorded 1, sent 2" in out
    assert "request.body.qty: recorded '1', sent '2'" in out  # the form field, as text


def test_a_missing_fixture_file_says_how_to_record_it(pytester):
    pytester.makepyfile("""
        def test_x(repost):
            pass
    """)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    assert "no fixture file" in result.stdout.str() and "--repost-mode=record" in result.stdout.str()


def test_the_plugin_stays_off_for_tests_that_do_not_ask(pytester):
    pytester.makepyfile("""
        import threading

        def test_x():
            assert not any(t.name == "repost-serve" for t in threading.enumerate())
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_the_readme_example_records_then_replays(pytester):
    """The README's example test, run as written (its upstream pointed at a loopback server)."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Fixtures in tests: the pytest plugin") :]
    example = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    upstream = Upstream().start()
    try:
        pytester.makepyfile(test_orders=example.replace('"http://127.0.0.1:5000"', repr(upstream.url)))
        pytester.runpytest_subprocess("-p", "no:cacheprovider", "--repost-mode=record").assert_outcomes(passed=1)
        assert (pytester.path / "tests" / "fixtures" / "orders.har").exists()
    finally:
        upstream.stop()
    pytester.makepyfile(test_orders=example.replace('"http://127.0.0.1:5000"', repr(upstream.url)))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)


def _har_entry(i: int, answer: dict) -> dict:
    return {
        "startedDateTime": f"2000-01-01T00:00:00.{i:03d}Z", "time": 0, "timings": {"send": 0, "wait": 0, "receive": 0},
        "request": {"method": "POST", "url": "http://api.test/orders", "httpVersion": "HTTP/1.1", "cookies": [],
                    "headers": [{"name": "content-type", "value": "application/json"}], "queryString": [],
                    "postData": {"mimeType": "application/json", "text": '{"item": "book"}'}, "headersSize": -1, "bodySize": -1},
        "response": {"status": 200, "statusText": "OK", "httpVersion": "HTTP/1.1", "cookies": [], "redirectURL": "",
                     "headers": [{"name": "content-type", "value": "application/json"}],
                     "content": {"mimeType": "application/json", "text": json.dumps(answer), "size": -1},
                     "headersSize": -1, "bodySize": -1},
        "cache": {},
    }  # fmt: skip


def test_every_test_starts_the_sequence_of_a_shared_fixture_file_again(pytester):
    """The session keeps one Matcher per fixture file (per-test setup cost): the sequence state
    must still start afresh for each test."""
    har = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [_har_entry(i, {"n": i + 1}) for i in range(2)]}}
    (pytester.path / "seq.har").write_text(json.dumps(har))
    pytester.makeini("[pytest]\n")
    pytester.makepyfile("""
        import httpx, pytest

        pytestmark = pytest.mark.repost("seq.har")

        @pytest.mark.parametrize("run", range(3))
        def test_sequence(repost, run):
            answers = [httpx.post(f"{repost.url}/orders", json={"item": "book"}).json()["n"] for _ in range(2)]
            assert answers == [1, 2]
    """)
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=3)


def test_a_fixture_file_is_imported_once_across_sessions_and_again_when_it_changes(pytester, _fixture_cache):
    """Importing and keying a fixture file was most of the plugin's start-up: later sessions take
    the database from the cache, unless the file changed."""
    import os
    import time

    def write(n: int) -> None:
        har = {"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": [_har_entry(0, {"n": n})]}}
        (pytester.path / "one.har").write_text(json.dumps(har))

    pytester.makeini("[pytest]\n")
    pytester.makepyfile("""
        import os, httpx, pytest

        @pytest.mark.repost("one.har")
        def test_one(repost):
            assert httpx.post(f"{repost.url}/orders", json={"item": "book"}).json()["n"] == int(os.environ["N"])
    """)
    os.environ["N"] = "1"
    try:
        write(1)
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        cached = list(_fixture_cache.glob("*.db"))
        assert len(cached) == 1
        long_ago = time.time() - 3600
        os.utime(cached[0], (long_ago, long_ago))
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        assert list(_fixture_cache.glob("*.db")) == cached and cached[0].stat().st_mtime > long_ago + 60  # used again
        write(2)  # the file changed: imported again, never the stale answer
        os.environ["N"] = "2"
        pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(passed=1)
        assert len(list(_fixture_cache.glob("*.db"))) == 2
    finally:
        del os.environ["N"]
