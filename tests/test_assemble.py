"""`show --stream`, show's hint and diff's response.text assemble the streams of
every API the vendors document (examples in tests/data/streams, from their docs)."""

import json
import time
from hashlib import sha256
from pathlib import Path

import pytest

from repost.store.capture import Streamed, make_snapshot
from repost.store.redact import Redactor
from repost.store.writer import BatchWriter

from .helpers import repost

STREAMS = Path(__file__).parent / "data" / "streams"

EXPECTED = {
    "openai_chat_tools.sse": 'Let me check.\n\ntool call get_weather (call_DdmO9pD3xa9XTPNJ32zg2hcA): {"location":"Paris, France"}',
    "openai_completions.sse": "This is a test.",
    "openai_responses.sse": 'Hi there!\n\ntool call get_weather (call_1234xyz): {"location":"Paris"}',
    "anthropic_messages.sse": 'Hello!\n\ntool call get_weather (toolu_01T1x1fJ34qAmk2tNTrN7Up6): {"location": "San Francisco, CA"}',
    "gemini.sse": 'The sky is blue.\n\ntool call get_current_weather: {"location": "Boston"}',
    "ollama_chat.ndjson": 'The answer\n\ntool call get_current_weather: {"format": "celsius", "location": "Paris, FR"}',
    "ollama_generate.ndjson": "The sky",
}


def store_stream(db, body: bytes, content_type: bytes, n: int = 0) -> None:
    content = Streamed(body, len(body), sha256(body).hexdigest(), True, ((5.0, len(body)),))
    now = time.time()
    snap = make_snapshot(
        flow_id=f"s{n}", started=now, method="POST", scheme="http", host="127.0.0.1", port=8000,
        target="/v1/stream", headers=[("Content-Type", "application/json")], body=b"{}",
        response=(200, "OK", "HTTP/1.1", [(b"Content-Type", content_type)], content, now + 1), error=None,
    )  # fmt: skip
    writer = BatchWriter(str(db), redactor=Redactor(b"test-key"), max_body=10 * 1024 * 1024)
    assert writer.write([snap])
    writer.close()


def content_type(name: str) -> bytes:
    return b"text/event-stream" if name.endswith(".sse") else b"application/x-ndjson"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_show_stream_assembles_each_apis_text_then_its_tool_calls(tmp_path, name):
    db = tmp_path / "s.db"
    store_stream(db, (STREAMS / name).read_bytes(), content_type(name))
    result = repost("show", "1", "--db", str(db), "--stream")
    assert result.exit_code == 0, result.output
    assert result.output == EXPECTED[name] + "\n"
    human = repost("show", "1", "--db", str(db)).output
    assert "`repost show 1 --stream` assembles the text" in human


def test_a_stream_of_no_known_api_names_its_events_instead_of_a_false_hint(tmp_path):
    db = tmp_path / "s.db"
    store_stream(db, b"event: tick\ndata: 1\n\nevent: tock\ndata: {\"n\": 2}\n\ndata: {\"type\": \"progress\"}\n\n", b"text/event-stream")
    human = repost("show", "1", "--db", str(db)).output
    assert "--stream" not in human and "event names: tick, tock, progress" in human
    result = repost("show", "1", "--db", str(db), "--stream")
    assert result.exit_code == 1
    assert "no text deltas of a known API" in result.output and "tick, tock, progress" in result.output


def test_show_stream_of_a_flow_that_is_no_stream_says_so(tmp_path):
    db = tmp_path / "s.db"
    from .helpers import post_flow, store_flows

    store_flows(db, [post_flow(body=b"{}", response_body=b'{"ok": true}', response_headers={"Content-Type": "application/json"})])
    result = repost("show", "1", "--db", str(db), "--stream")
    assert result.exit_code == 1 and "not a stream" in result.output and "Traceback" not in result.output


def test_diff_compares_anthropic_streams_by_their_assembled_text_and_tool_calls(tmp_path):
    db = tmp_path / "s.db"
    raw = (STREAMS / "anthropic_messages.sse").read_bytes()
    store_stream(db, raw, b"text/event-stream", 0)
    store_stream(db, raw.replace(b'"text": "!"', b'"text": "?"').replace(b"ncisco, CA", b"ncisco, US"), b"text/event-stream", 1)
    result = repost("diff", "1", "2", "--db", str(db), "--json")
    assert result.exit_code == 1, result.output
    diffs = {d["path"]: (d["a"], d["b"]) for d in json.loads(result.output)["differences"]}
    assert diffs["response.text"] == ("Hello!", "Hello?")
    assert diffs["response.tool_calls[0]"] == (
        'get_weather({"location": "San Francisco, CA"})',
        'get_weather({"location": "San Francisco, US"})',
    )


def test_hostile_events_never_raise():
    from repost.store.assemble import assemble, event_names

    events = [
        {"event": "message", "data": d}
        for d in ['{"choices": [{"delta": {"tool_calls": [{"index": "x", "function": 3}]}}]}',
                  '{"choices": [null, 1]}', '{"candidates": [{"content": {"parts": [1, {"functionCall": 2}]}}]}',
                  '{"type": "content_block_delta", "delta": []}', '{"message": {"content": 3, "tool_calls": [1]}}',
                  '{"type": "response.output_item.added", "item": {"type": "function_call", "name": ["x"]}}',
                  "[1, 2]", "{bad json", '{"type": "\\u001b[31m"}']
    ]  # fmt: skip
    assert assemble(events) is not None
    assert all(name.isprintable() for name in event_names(events))
