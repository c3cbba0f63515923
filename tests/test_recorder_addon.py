"""Unit tests for addons/recorder.py inside mitmproxy's addon test context (no network)."""

import asyncio
import inspect
import json
import sqlite3
from pathlib import Path

import pytest
from mitmproxy import exceptions, flow
from mitmproxy.test import taddons, tflow, tutils

from repost.addons.recorder import Recorder, parse_methods


def http_flow(method: bytes = b"POST", content: bytes = b'{"n": 1}', *, resp=True, err=False, **req):
    return tflow.tflow(req=tutils.treq(method=method, content=content, **req), resp=resp, err=err)


def rows(db: Path) -> list[dict]:
    if not db.exists():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM flows ORDER BY id")]
    finally:
        conn.close()


def finish(recorder: Recorder) -> None:
    """Run the recorder's done hook, sync or async, as mitmproxy does at shutdown."""
    result = recorder.done()
    if inspect.isawaitable(result):
        asyncio.run(result)


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    # Never leave a writer process behind (close() does not wait for flows in flight).
    close = getattr(r, "close", None)
    close() if close is not None else finish(r)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "rec.db"


# -- options -----------------------------------------------------------------------


def test_options_exist_with_defaults(recorder, db, monkeypatch):
    monkeypatch.setenv("REPOST_DB", str(db))
    with taddons.context(recorder) as tctx:
        opts = tctx.options
        assert opts.repost_db == str(db)  # $REPOST_DB is the default
        assert opts.repost_methods == "POST"
        assert opts.repost_filter == ""
        assert opts.repost_keep_secrets is False
        assert opts.repost_max_body == "10m"
    assert recorder.writer is None  # nothing starts before configure
    assert recorder.methods == frozenset({b"POST"})


@pytest.mark.parametrize(
    "option, value",
    [
        ("repost_methods", "PO ST"),
        ("repost_methods", ""),
        ("repost_methods", "GET;POST"),
        ("repost_methods", "POST,1"),
        ("repost_filter", "~x"),
        ("repost_filter", "(~m POST"),
        ("repost_max_body", "ten"),
        ("repost_max_body", "-1"),
        ("repost_max_body", "10q"),
    ],
)
def test_bad_option_values_raise_options_error(recorder, db, option, value):
    with taddons.context(recorder) as tctx:
        before = getattr(tctx.options, option)
        with pytest.raises(exceptions.OptionsError) as info:
            tctx.configure(recorder, **{option: value, "repost_db": str(db)})
        assert option in str(info.value)
        assert getattr(tctx.options, option) == before  # rolled back


def test_repost_db_that_is_not_a_database_is_refused(recorder, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"not a database\n" * 10)
    with taddons.context(recorder) as tctx:
        with pytest.raises(exceptions.OptionsError, match="repost_db"):
            tctx.configure(recorder, repost_db=str(notes))
    assert notes.read_bytes() == b"not a database\n" * 10
    # (The options roll back to the default repost_db, which may reopen a writer there.)
    assert recorder.writer is None or recorder.writer.path != str(notes)


def test_parse_methods():
    assert parse_methods("POST,put") == frozenset({b"POST", b"PUT"})
    assert parse_methods(" post , PATCH,,DELETE ") == frozenset({b"POST", b"PATCH", b"DELETE"})
    assert parse_methods("ALL") is None
    assert parse_methods("all") is None
    assert parse_methods("POST,ALL") is None
    for bad in ("", " , ", "PO ST", "GET;POST", "P0ST"):
        with pytest.raises(ValueError):
            parse_methods(bad)


# -- recording -----------------------------------------------------------------------


def test_post_is_recorded_after_done(recorder, db):
    f = http_flow(content=b'{"order": 42}', path=b"/orders")
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        recorder.response(f)
    finish(recorder)
    (row,) = rows(db)
    assert row["flow_id"] == f.id
    assert row["method"] == "POST"
    assert row["url"] == "http://address:22/orders"
    assert row["request_body"] == b'{"order": 42}'
    assert row["status"] == 200 and row["response_body"] == b"message"
    assert row["error"] is None
    assert recorder.writer.written == 1 and recorder.writer.lost == 0


def test_get_is_not_recorded_by_default(recorder, db):
    get = http_flow(b"GET", b"")
    post = http_flow()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        recorder.response(get)
        recorder.response(post)
    finish(recorder)
    assert [r["flow_id"] for r in rows(db)] == [post.id]


def test_methods_option_widens_and_narrows(recorder, db):
    get, post, put = http_flow(b"GET", b""), http_flow(b"POST"), http_flow(b"PUT")
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db), repost_methods="ALL")
        recorder.response(get)
        tctx.configure(recorder, repost_methods="put,PATCH")
        recorder.response(post)
        recorder.response(put)
    finish(recorder)
    assert [r["flow_id"] for r in rows(db)] == [get.id, put.id]


def test_error_flow_without_response_is_recorded(recorder, db):
    f = http_flow(resp=False, err=True)
    assert f.response is None and f.error is not None
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        recorder.error(f)
    finish(recorder)
    (row,) = rows(db)
    assert row["flow_id"] == f.id
    assert row["status"] is None
    assert row["error"] == f.error.msg


def test_error_after_response_updates_the_row(recorder, db):
    f = http_flow()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        recorder.response(f)
        f.error = flow.Error("client disconnected")
        recorder.error(f)
    finish(recorder)
    (row,) = rows(db)
    assert row["status"] == 200
    assert row["error"] == "client disconnected"


def test_error_flow_of_unwanted_method_is_not_recorded(recorder, db):
    f = http_flow(b"GET", b"", resp=False, err=True)
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        recorder.error(f)
    finish(recorder)
    assert rows(db) == []


def test_filter_excludes_flows(recorder, db):
    other = http_flow()  # host "address"
    wanted = http_flow(host="api.example.org")
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db), repost_filter="~d example.org")
        recorder.response(other)
        recorder.response(wanted)
        recorder.error(http_flow(resp=False, err=True))  # an error flow outside the filter
    finish(recorder)
    assert [r["flow_id"] for r in rows(db)] == [wanted.id]


def test_secrets_redacted_unless_kept(recorder, tmp_path):
    def secret_flow():
        f = http_flow(b"POST", b'{"password": "CANARY-1"}')
        f.request.headers["Authorization"] = "Bearer CANARY-2"
        f.request.headers["Content-Type"] = "application/json"
        return f

    redacted_db, kept_db = tmp_path / "redacted.db", tmp_path / "kept.db"
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(redacted_db))
        recorder.response(secret_flow())
        tctx.configure(recorder, repost_db=str(kept_db), repost_keep_secrets=True)  # closes the first writer
        recorder.response(secret_flow())
    finish(recorder)
    (redacted,) = rows(redacted_db)
    assert "CANARY" not in repr(redacted)
    assert redacted["request_redacted"] == 1
    (kept,) = rows(kept_db)
    assert kept["request_body"] == b'{"password": "CANARY-1"}'
    assert ["Authorization", "Bearer CANARY-2"] in json.loads(kept["request_headers"])


def test_max_body_option_truncates(recorder, db):
    body = b"x" * 5000
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db), repost_max_body="1k")
        recorder.response(http_flow(content=body))
    finish(recorder)
    (row,) = rows(db)
    assert row["request_body"] == body[:1024]
    assert row["request_size"] == 5000 and row["request_truncated"] == 1


def test_done_waits_for_a_flow_in_flight(recorder, db):
    f = http_flow()

    async def scenario():
        recorder.request(f)
        shutdown = asyncio.ensure_future(recorder.done())
        await asyncio.sleep(0)  # one turn of the loop: done() is now waiting, not a timed wait
        assert not shutdown.done()
        recorder.response(f)
        await asyncio.wait_for(shutdown, 10)

    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        asyncio.run(scenario())
    assert [r["flow_id"] for r in rows(db)] == [f.id]
    assert recorder.in_flight == 0


def test_response_after_done_is_killed_not_lost_silently(recorder, db):
    late = http_flow()
    with taddons.context(recorder) as tctx:
        tctx.configure(recorder, repost_db=str(db))
        finish(recorder)
        recorder.response(late)
    assert late.error is not None and late.error.msg == flow.Error.KILLED_MESSAGE
    assert rows(db) == []
