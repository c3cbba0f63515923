"""Streams pass through live and are recorded: the OpenAI SDK, cut-off streams, 200 MB bodies."""

import hashlib
import json
import sqlite3
import threading
from pathlib import Path

import httpx
import openai
import pytest

from .helpers import count_flows, list_json, repost, show_json, wait_for
from .upstream import StreamScript

WORDS = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog", "."]


def openai_client(proxy, upstream) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{upstream.url}/v1",
        api_key="sk-test-CANARY-stream-key",
        http_client=httpx.Client(proxy=proxy.url, timeout=30),
        max_retries=0,
    )


def test_openai_sdk_stream_passes_through_live_and_is_recorded_event_by_event(start_proxy, counting_upstream):
    proxy = start_proxy()
    script = counting_upstream.set_stream(StreamScript(WORDS))
    client = openai_client(proxy, counting_upstream)
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "say it"}], stream=True
    )
    received = []
    for chunk in stream:
        received.append(chunk.choices[0].delta.content)
        script.ack()  # the server sends the next chunk only now (or after 5 s if buffered)
    assert received == WORDS
    assert script.late == 0  # every chunk reached the client before the next was sent

    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the stream recorded")
    [row] = list_json(proxy.db)
    flow = show_json(proxy.db, row["id"])
    events = flow["events"]
    assert len(events) == len(script.sent)  # every chunk, and [DONE]
    sent_data = [chunk.decode().removeprefix("data: ").removesuffix("\n\n") for chunk in script.sent]
    assert [e["data"] for e in events] == sent_data  # byte for byte
    assert all(e["event"] == "message" for e in events)
    times = [e["t_ms"] for e in events]
    assert all(t is not None for t in times) and times == sorted(times)
    assert flow["incomplete"] is False
    assert flow["response"]["size"] == sum(len(c) for c in script.sent)
    assert flow["response"]["sha256"] == hashlib.sha256(b"".join(script.sent)).hexdigest()
    assert "CANARY" not in json.dumps(flow)  # the API key was redacted
    # Stored once: the events above were parsed from the stored stream, not kept twice.
    assert sqlite3.connect(proxy.db).execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assembled = repost("show", str(row["id"]), "--db", str(proxy.db), "--stream")
    assert assembled.output.strip() == "".join(WORDS)
    human = repost("show", str(row["id"]), "--db", str(proxy.db)).output
    assert f"{len(events)} events, streamed" in human and " ms  message  " in human


def test_a_stream_the_client_cuts_off_is_recorded_incomplete(start_proxy, counting_upstream):
    proxy = start_proxy()
    script = counting_upstream.set_stream(StreamScript(WORDS, deadline=0.5))
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        with c.stream("POST", f"{counting_upstream.url}/v1/chat/completions", json={"stream": True}) as r:
            lines = r.iter_lines()
            got = 0
            for line in lines:
                if line.startswith("data: "):
                    got += 1
                    script.ack()
                    if got == 3:
                        break  # the client goes away mid-stream
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the cut stream recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    assert flow["incomplete"] is True
    assert len(flow["events"]) >= 3
    assert flow["events"][0]["data"].startswith('{"id": "chatcmpl-test"')
    assert "Traceback" not in proxy.output()


def test_a_stream_the_server_cuts_off_is_recorded_incomplete(start_proxy, counting_upstream):
    proxy = start_proxy()
    script = counting_upstream.set_stream(StreamScript(WORDS, cut_after=4))
    with httpx.Client(proxy=proxy.url, timeout=30) as c:
        with pytest.raises(httpx.HTTPError):
            with c.stream("POST", f"{counting_upstream.url}/v1/chat/completions", json={}) as r:
                for line in r.iter_lines():
                    if line.startswith("data: "):
                        script.ack()
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the cut stream recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    assert flow["incomplete"] is True
    assert len(flow["events"]) == 4
    assert flow["error"]
    assert "Traceback" not in proxy.output()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


class PeakRss:
    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, rss_mb(self.pid))
            except (FileNotFoundError, AssertionError):
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


SIZE = 200 * 1024 * 1024


def test_200_mb_upload_and_download_keep_memory_flat_and_are_recorded_truncated(start_proxy, counting_upstream):
    proxy = start_proxy("--max-body", "1MB")
    pattern = bytes(range(256)) * 4096  # 1 MB, as the upstream's download writes it
    expected = hashlib.sha256()
    for _ in range(SIZE // len(pattern)):
        expected.update(pattern)
    idle = rss_mb(proxy.proc.pid)
    with PeakRss(proxy.proc.pid) as peak, httpx.Client(proxy=proxy.url, timeout=120) as c:
        def chunks():
            for _ in range(SIZE // len(pattern)):
                yield pattern

        up = c.post(f"{counting_upstream.url}/upload", content=chunks(), headers={"Content-Length": str(SIZE)})
        assert up.json() == {"size": SIZE, "sha256": expected.hexdigest()}
        got = hashlib.sha256()
        with c.stream("GET", f"{counting_upstream.url}/download?size={SIZE}") as r:
            for data in r.iter_bytes():
                got.update(data)
        assert got.hexdigest() == expected.hexdigest()
    assert peak.peak - idle < 150, f"proxy RSS grew by {peak.peak - idle:.0f} MB"

    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the upload recorded")  # GET is not recorded by default
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    req = flow["request"]
    assert req["truncated"] is True and req["size"] == SIZE and req["sha256"] == expected.hexdigest()
    stored = req["body_base64"]
    import base64

    assert base64.b64decode(stored) == pattern[: 1024 * 1024]


def test_200_mb_download_is_recorded_truncated(start_proxy, counting_upstream):
    proxy = start_proxy("--max-body", "1MB", "--methods", "GET")
    idle = rss_mb(proxy.proc.pid)
    with PeakRss(proxy.proc.pid) as peak, httpx.Client(proxy=proxy.url, timeout=120) as c:
        size = 0
        with c.stream("GET", f"{counting_upstream.url}/download?size={SIZE}") as r:
            for data in r.iter_bytes():
                size += len(data)
        assert size == SIZE
    assert peak.peak - idle < 150
    wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the download recorded")
    flow = show_json(proxy.db, list_json(proxy.db)[0]["id"])
    resp = flow["response"]
    assert resp["truncated"] is True and resp["size"] == SIZE
    pattern = bytes(range(256)) * 4096
    expected = hashlib.sha256()
    for _ in range(SIZE // len(pattern)):
        expected.update(pattern)
    assert resp["sha256"] == expected.hexdigest()


def test_replaying_a_stream_streams_stores_its_events_and_diffs_by_event(start_proxy, counting_upstream):
    proxy = start_proxy()
    script = counting_upstream.set_stream(StreamScript(WORDS, deadline=0.01))
    client = openai_client(proxy, counting_upstream)
    for chunk in client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True):
        script.ack()
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the stream recorded")
    counting_upstream.set_stream(StreamScript(WORDS[:-1] + ["!"], deadline=0.01))
    result = repost("replay", "1", "--db", str(proxy.db), "--yes", "-H", "Authorization: Bearer sk-x", "--json")
    assert result.exit_code == 0, result.output
    rid = json.loads(result.output[result.output.index("[") :])[0]["replay_id"]
    replayed = show_json(proxy.db, rid)
    assert len(replayed["events"]) == len(WORDS) + 1
    assert replayed["events"][-1]["data"] == "[DONE]"
    d = json.loads(repost("diff", "1", str(rid), "--db", str(proxy.db), "--json").output)
    assert [x["path"] for x in d["differences"]] == [
        "request.headers.authorization",  # another key: another fingerprint
        "response.events[9].data.choices[0].delta.content",
        "response.text",
    ]
    assert d["differences"][-1] == {"path": "response.text", "a": "".join(WORDS), "b": "".join(WORDS[:-1]) + "!"}
