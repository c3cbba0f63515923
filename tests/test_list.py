"""repost list: each filter alone and combined, on traffic recorded through the real proxy."""

import json
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from .helpers import RecordingProxy, count_flows, post_flow, repost, store_flows, wait_for


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, confdir, upstream):
    """Eight flows through `repost record --methods ALL`; returns (db, {name: id})."""
    folder = tmp_path_factory.mktemp("list")
    db = folder / "list.db"
    proxy = RecordingProxy(db, confdir, "--methods", "ALL")
    u, port = upstream.url, upstream.port
    names = []
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for name, request in [
            ("book", lambda: c.post(f"{u}/orders?page=2", json={"item": "book"}, headers={"X-Marker": "blue"})),
            ("pen_localhost", lambda: c.post(f"http://localhost:{port}/orders", json={"item": "pen"})),
            ("not_found", lambda: c.post(f"{u}/status/404", json={"item": "ghost"})),
            ("unavailable", lambda: c.post(f"{u}/status/503", json={"item": "later"})),
            ("gzip", lambda: c.post(f"{u}/gzip", json={"item": "packed"})),
            ("put", lambda: c.put(f"{u}/orders/7", json={"item": "edited"})),
            ("get", lambda: c.get(f"{u}/things")),
            ("form", lambda: c.post(f"{u}/signup", data={"name": "ada"})),
        ]:
            request()
            names.append(name)
            wait_for(lambda: count_flows(db) == len(names), 5, what=f"{name} recorded")
    assert proxy.stop() == 0
    ids = {name: i for i, name in enumerate(names, 1)}
    return db, ids


def ids_of(db, *args) -> list[int]:
    result = repost("list", "--db", str(db), "--json", *args)
    assert result.exit_code == 0, result.output
    return [row["id"] for row in json.loads(result.output)]


def named(ids: dict, *names) -> list[int]:
    return sorted((ids[n] for n in names), reverse=True)  # newest first


def test_no_filter_lists_everything_newest_first(recorded):
    db, ids = recorded
    assert ids_of(db) == sorted(ids.values(), reverse=True)
    assert ids_of(db, "--limit", "3") == sorted(ids.values(), reverse=True)[:3]


def test_host(recorded):
    db, ids = recorded
    assert ids_of(db, "--host", "localhost") == named(ids, "pen_localhost")
    assert ids_of(db, "--host", "127.0.0.*") == named(ids, *(set(ids) - {"pen_localhost"}))


def test_path_matches_without_the_query_and_globs(recorded):
    db, ids = recorded
    assert ids_of(db, "--path", "/orders") == named(ids, "book", "pen_localhost")
    assert ids_of(db, "--path", "/orders*") == named(ids, "book", "pen_localhost", "put")
    assert ids_of(db, "--path", "/status/*") == named(ids, "not_found", "unavailable")


def test_status_code_and_class(recorded):
    db, ids = recorded
    assert ids_of(db, "--status", "404") == named(ids, "not_found")
    assert ids_of(db, "--status", "5xx") == named(ids, "unavailable")
    assert ids_of(db, "--status", "404", "--status", "503") == named(ids, "not_found", "unavailable")
    assert ids_of(db, "--status", "4xx,5xx") == named(ids, "not_found", "unavailable")


def test_method(recorded):
    db, ids = recorded
    assert ids_of(db, "--method", "PUT") == named(ids, "put")
    assert ids_of(db, "--method", "get,put") == named(ids, "put", "get")


def test_since_and_until(recorded):
    db, ids = recorded
    everything = sorted(ids.values(), reverse=True)
    future = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    assert ids_of(db, "--since", "1h") == everything
    assert ids_of(db, "--since", "1h30m") == everything
    assert ids_of(db, "--since", future) == []
    assert ids_of(db, "--until", "1h") == []
    assert ids_of(db, "--until", future) == everything
    # a naive ISO time is UTC
    assert ids_of(db, "--since", datetime.now(timezone.utc).replace(tzinfo=None).isoformat()) == []


def test_search_finds_a_word_only_in_a_gzip_compressed_response(recorded):
    db, ids = recorded
    import sqlite3

    raw = b"".join(r[0] or b"" for r in sqlite3.connect(db).execute("SELECT response_body FROM flows"))
    assert b"zanzibarquokka" not in raw  # only compressed on disk
    assert ids_of(db, "--search", "zanzibarquokka") == named(ids, "gzip")
    assert ids_of(db, "--search", "book") == named(ids, "book")
    assert ids_of(db, "--search", "nothing-like-this") == []
    assert ids_of(db, "--search", 'AND "quote') == []  # no query syntax to trip over


@pytest.mark.parametrize(
    "expr, expected",
    [
        ("~m PUT", ["put"]),
        ("~u /status/", ["not_found", "unavailable"]),
        ("~bq book", ["book"]),
        ("~bs zanzibarquokka", ["gzip"]),
        ("~c 404", ["not_found"]),
        ("~h X-Marker", ["book"]),
        ("~m POST & ~bq item & ~c 201", ["book", "pen_localhost"]),
        ("!~m POST", ["put", "get"]),
    ],
)
def test_filter_with_mitmproxy_expressions(recorded, expr, expected):
    db, ids = recorded
    assert ids_of(db, "--filter", expr) == named(ids, *expected)


def test_filters_combined(recorded):
    db, ids = recorded
    assert ids_of(db, "--path", "/orders", "--host", "127.0.0.1", "--method", "POST") == named(ids, "book")
    assert ids_of(db, "--status", "2xx", "--filter", "~bq item", "--method", "POST") == named(
        ids, "book", "pen_localhost", "gzip"
    )
    assert ids_of(db, "--search", "book", "--status", "5xx") == []
    assert ids_of(db, "--filter", "~m POST", "--limit", "2") == named(ids, "form", "gzip")


def test_bad_filter_values_are_clear_errors(recorded):
    db, _ = recorded
    for args in (["--status", "abc"], ["--since", "yesterday-ish"]):
        result = repost("list", "--db", str(db), *args)
        assert result.exit_code == 2 and "Traceback" not in result.output
    result = repost("list", "--db", str(db), "--filter", "~q ~~(")
    assert result.exit_code == 2 and "is not a mitmproxy filter expression" in result.output


def test_human_table_in_a_pipe_is_aligned_and_plain(recorded):
    db, ids = recorded
    result = repost("list", "--db", str(db))
    lines = result.output.splitlines()
    assert lines[0].split() == ["id", "time", "method", "status", "host", "path", "size", "duration", "safety"]
    assert "\x1b[" not in result.output
    assert len(lines) == 1 + len(ids)
    put_line = next(line for line in lines if " PUT " in line)
    assert put_line.split()[-1] == "idempotent"
    get_line = next(line for line in lines if " GET " in line)
    assert get_line.split()[-1] == "safe"
    # columns line up: every row's "method" starts where the header's does
    col = lines[0].index("method")
    assert all(re.match(r"(POST|PUT|GET)\b", line[col:]) for line in lines[1:])


def test_human_table_on_a_terminal_is_coloured_and_fits_its_width(recorded, monkeypatch):
    db, ids = recorded
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "100")
    result = repost("list", "--db", str(db))
    assert "\x1b[" in result.output  # colour on a terminal
    plain = re.sub(r"\x1b\[[0-9;]*m", "", result.output)
    assert all(len(line) <= 100 for line in plain.splitlines())
    assert "idempotent" in plain and "/status/404" in plain
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR")
    assert "\x1b[3" not in repost("list", "--db", str(db)).output  # NO_COLOR: no colours


def test_empty_database(tmp_path):
    from repost.store.database import open_database

    open_database(tmp_path / "empty.db", create=True).close()
    result = repost("list", "--db", str(tmp_path / "empty.db"))
    assert result.exit_code == 0 and "no flows" in result.output
    assert json.loads(repost("list", "--db", str(tmp_path / "empty.db"), "--json").output) == []


@pytest.fixture(scope="module")
def wide_rows(tmp_path_factory):
    """Seven-digit ids, long hosts and paths: what a narrow terminal has to fit."""
    import sqlite3

    db = tmp_path_factory.mktemp("wide") / "wide.db"
    store_flows(db, [
        post_flow(url="https://checkout.payments.example.org/api/v2/customers/48213/subscriptions/renew", status=201),
        post_flow(url="https://api.example.test/orders", status=503),
    ])  # fmt: skip
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE flows SET id = id + 1234560")
    conn.close()
    return db


@pytest.mark.parametrize("width", [40, 60, 80, 100, 160])
def test_narrow_terminals_keep_ids_statuses_and_safety_whole(wide_rows, monkeypatch, width):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", str(width))
    result = repost("list", "--db", str(wide_rows))
    assert result.exit_code == 0, result.output
    lines = re.sub(r"\x1b\[[0-9;]*m", "", result.output).splitlines()
    assert all(len(line) <= width for line in lines), "\n".join(lines)
    header, _rule, *rows = lines
    assert header.split()[:2] == ["id", "time"] if width >= 80 else header.split()[:2] == ["id", "status"]
    assert "path" in header.split() and "host" in header.split()
    assert [r.split()[0] for r in rows] == ["1234562", "1234561"]  # whole, newest first
    assert "503" in rows[0].split() and "201" in rows[1].split()
    assert rows[0].split()[-1] == "unsafe" and rows[1].split()[-1] == "unsafe"
    if width >= 160:
        assert "/api/v2/customers/48213/subscriptions/renew" in rows[1]  # room for all of it
        assert "duration" in header
    else:
        assert "…" in rows[1]  # the long path is cut short, not dropped
