"""Decoded bodies that are data, not text (whatever their Content-Type says), and
bodies too big for one JSON document: `show` keeps its output bounded."""

import base64
import gzip
import json
import zlib
from hashlib import sha256

from repost.store.bodies import to_text

from .helpers import post_flow, repost, store_flows


def gzip_bomb(size: int) -> bytes:
    c = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\x00" * (1024 * 1024)
    return b"".join([*(c.compress(block) for _ in range(size // len(block))), c.flush()])


def test_show_of_a_decompression_bomb_is_a_note_and_bounded_json(tmp_path):
    db = tmp_path / "bomb.db"
    bomb = gzip_bomb(100 * 1024 * 1024)  # ~100 KB on the wire, 100 MB decoded
    store_flows(db, [post_flow(body=b'{"q": 1}', headers={"Content-Type": "application/json"}, response_body=bomb,
                               response_headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})])  # fmt: skip
    human = repost("show", "1", "--db", str(db))
    assert human.exit_code == 0
    assert len(human.output) < 10_000 and "\x00" not in human.output
    assert "binary body" in human.output
    out = repost("show", "1", "--db", str(db), "--json")
    assert out.exit_code == 0
    assert len(out.output) < 30 * 1024 * 1024, f"--json wrote {len(out.output):,} characters"
    resp = json.loads(out.output)["response"]
    assert resp["body"] is None and resp["body_base64"]
    assert set(base64.b64decode(resp["body_base64"])) == {0}
    assert resp["size"] == len(bomb) and resp["sha256"] == sha256(bomb).hexdigest()
    assert "\\u0000" not in out.output


def test_text_bodies_of_mostly_control_characters_are_binary():
    assert to_text(b"\x00" * 50, "application/json") == (None, None)
    assert to_text(b'{"a": 1}' + b"\x01\x02\x03\x04\x05\x06" * 10, "application/json") == (None, None)
    assert to_text(b"log line \x1b[31mred\x1b[0m\n", "text/plain") == ("log line \x1b[31mred\x1b[0m\n", None)
    assert to_text("ünïcode ✓".encode("utf-16"), "text/plain; charset=UTF-16")[0] == "ünïcode ✓"
    assert to_text(("a" * 9000).encode() + b"\x00", "text/plain")[0] is not None  # git: a NUL past 8,000 bytes


def test_json_of_a_body_above_the_json_cap_is_cut_and_says_so(tmp_path):
    from repost.store.flowview import JSON_BODY_CAP
    from repost.store.capture import snapshot
    from repost.store.writer import BatchWriter

    db = tmp_path / "big.db"
    text = ("é" * 1000 + "\n") * (JSON_BODY_CAP // 2000 + 10)  # a little above the cap in UTF-8
    wire = gzip.compress(text.encode(), 1)
    flow = post_flow(body=b"{}", response_body=wire,
                     response_headers={"Content-Type": "text/plain; charset=utf-8", "Content-Encoding": "gzip"})  # fmt: skip
    writer = BatchWriter(str(db), redactor=None, max_body=64 * 1024 * 1024)
    assert writer.write([snapshot(flow)])
    writer.close()
    resp = json.loads(repost("show", "1", "--db", str(db), "--json").output)["response"]
    assert resp["body_cut"] is True and "first 10,485,760 bytes" in resp["note"]
    assert len(resp["body"].encode()) <= JSON_BODY_CAP and text.startswith(resp["body"])
    assert resp["truncated"] is False and resp["size"] == len(wire) and resp["sha256"] == sha256(wire).hexdigest()


def test_json_of_a_huge_stream_keeps_its_events_within_the_cap(tmp_path):
    import time

    from repost.store.flowview import JSON_EVENTS_CAP
    from repost.store.capture import Streamed, make_snapshot
    from repost.store.writer import BatchWriter

    db = tmp_path / "stream.db"
    event = b"data: " + b"x" * (1024 * 1024) + b"\n\n"
    raw = event * 24  # 24 MB of event data, above the cap
    now = time.time()
    snap = make_snapshot(
        flow_id="big-stream", started=now, method="POST", scheme="http", host="127.0.0.1", port=80, target="/s",
        headers=[], body=b"", error=None,
        response=(200, "OK", "HTTP/1.1", [(b"Content-Type", b"text/event-stream")],
                  Streamed(raw, len(raw), sha256(raw).hexdigest(), True, ((1.0, len(raw)),)), now + 1),
    )  # fmt: skip
    writer = BatchWriter(str(db), redactor=None, max_body=64 * 1024 * 1024)
    assert writer.write([snap])
    writer.close()
    out = repost("show", "1", "--db", str(db), "--json").output
    assert len(out) < 40 * 1024 * 1024
    flow = json.loads(out)
    assert flow["events_cut"] is True and 0 < len(flow["events"]) < 24
    assert sum(len(e["data"]) for e in flow["events"]) <= JSON_EVENTS_CAP
    assert flow["response"]["body_cut"] is True and flow["response"]["size"] == len(raw)


def test_json_of_a_stream_of_control_characters_stays_bounded(tmp_path):
    import time

    from repost.store.capture import Streamed, make_snapshot
    from repost.store.writer import BatchWriter

    db = tmp_path / "ctl.db"
    raw = (b"data: " + b"\x01" * (1024 * 1024) + b"\n\n") * 9  # each byte is six characters in JSON
    now = time.time()
    snap = make_snapshot(
        flow_id="ctl-stream", started=now, method="POST", scheme="http", host="127.0.0.1", port=80, target="/s",
        headers=[], body=b"", error=None,
        response=(200, "OK", "HTTP/1.1", [(b"Content-Type", b"text/event-stream")],
                  Streamed(raw, len(raw), sha256(raw).hexdigest(), True, ((1.0, len(raw)),)), now + 1),
    )  # fmt: skip
    writer = BatchWriter(str(db), redactor=None, max_body=64 * 1024 * 1024)
    assert writer.write([snap])
    writer.close()
    out = repost("show", "1", "--db", str(db), "--json").output
    assert len(out) < 40 * 1024 * 1024, f"--json wrote {len(out):,} characters"
    flow = json.loads(out)
    assert flow["events_cut"] is True and flow["response"]["body"] is None  # binary: base64
