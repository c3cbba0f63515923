"""The SSE parser on the WHATWG EventSource spec's edge cases."""

from repost.store.assemble import assemble
from repost.store.sse import parse_ndjson, parse_sse


def events(raw: bytes):
    return [(e.event, e.id, e.data) for e in parse_sse(raw)]


def test_simple_and_named_events():
    assert events(b"data: a\n\nevent: add\ndata: b\n\n") == [("message", None, "a"), ("add", None, "b")]


def test_multi_line_data_is_joined_with_newlines():
    assert events(b"data: first\ndata: second\ndata:\n\n") == [("message", None, "first\nsecond\n")]


def test_comments_are_ignored():
    assert events(b": keep-alive\n\n:another\ndata: x\n\n") == [("message", None, "x")]


def test_a_missing_final_blank_line_drops_the_last_event():
    assert events(b"data: done\n\ndata: half") == [("message", None, "done")]


def test_cr_crlf_and_lf_line_ends():
    assert events(b"data: a\r\rdata: b\r\n\r\ndata: c\n\n") == [("message", None, "a"), ("message", None, "b"), ("message", None, "c")]


def test_a_leading_bom_is_skipped():
    assert events(b"\xef\xbb\xbfdata: x\n\n") == [("message", None, "x")]
    assert events(b"\xef\xbb\xbfevent: e\ndata: x\n\n") == [("e", None, "x")]


def test_only_one_space_after_the_colon_is_removed():
    assert events(b"data:no space\n\ndata:  two\n\n") == [("message", None, "no space"), ("message", None, " two")]


def test_ids_persist_and_a_null_id_is_ignored():
    assert events(b"id: 1\ndata: a\n\ndata: b\n\nid: x\x00y\ndata: c\n\n") == [
        ("message", "1", "a"), ("message", "1", "b"), ("message", "1", "c"),
    ]  # fmt: skip


def test_retry_and_unknown_fields_and_a_field_with_no_colon():
    parsed = parse_sse(b"retry: 3000\nfoo: bar\ndata\n\nretry: soon\ndata: x\n\n")
    assert [(e.data, e.retry) for e in parsed] == [("", 3000), ("x", None)]


def test_an_event_with_no_data_is_not_dispatched_and_resets_the_type():
    assert events(b"event: ping\n\ndata: x\n\n") == [("message", None, "x")]


def test_times_come_from_the_chunk_that_completed_each_event():
    raw = b"data: a\n\ndata: b\n" + b"\ndata: c\n\n"
    chunks = [(10.0, len(b"data: a\n\ndata: b\n")), (25.5, len(b"\ndata: c\n\n"))]
    assert [(e.data, e.t_ms) for e in parse_sse(raw, chunks)] == [("a", 10.0), ("b", 25.5), ("c", 25.5)]


def test_invalid_utf8_does_not_raise():
    assert events(b"data: caf\xe9\n\n") == [("message", None, "caf\ufffd")]


def test_ndjson_lines():
    assert [e.data for e in parse_ndjson(b'{"a": 1}\n\n{"b": 2}\r\n{"partial"')] == ['{"a": 1}', '{"b": 2}']


def test_assembling_openai_deltas():
    raw = (
        b'data: {"choices": [{"delta": {"role": "assistant", "content": ""}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "Hel"}}]}\n\n'
        b'data: {"choices": [{"delta": {"content": "lo"}}]}\n\n'
        b'data: {"choices": [{"delta": {}, "finish_reason": "stop"}]}\n\n'
        b"data: [DONE]\n\n"
    )
    assert assemble(parse_sse(raw)).text == "Hello"
    assert assemble(parse_sse(b'data: {"choices": [{"text": "legacy"}]}\n\n')).text == "legacy"
    assert assemble(parse_sse(b"data: plain\n\n")) is None
