"""Friction in list, search, selection and commands (issue 13): each point through the
real command, on flows written through the store's own write path (or recorded and
replayed for real)."""

import json
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from .helpers import free_port, list_json, post_flow, repost, store_flows


def _ids(db, *args) -> list[int]:
    return [row["id"] for row in list_json(db, *args)]


# -- 2: a search word with an underscore (or any punctuation) ---------------------------------


@pytest.fixture(scope="module")
def searchable(tmp_path_factory):
    db = tmp_path_factory.mktemp("search") / "search.db"
    ids = store_flows(db, [
        post_flow(body=b'{"grant_type": "client_credentials"}', response_body=b'{"access_token": "x", "token_type": "bearer"}',
                  response_headers={"content-type": "application/json"}),
        post_flow(body=b"a token for access, not the name"),  # both words, apart
        post_flow(body=b'{"card": "tok_visa_secret"}', headers={"content-type": "application/json"}),
        post_flow(body=b"order-123 shipped; api_key rotated"),
    ], keep_secrets=True)  # fmt: skip
    return db, ids


def test_search_words_with_underscores_and_punctuation(searchable):
    db, (oauth, apart, card, order) = searchable
    assert _ids(db, "--search", "access_token") == [oauth]  # a phrase: not the flow with both words apart
    assert _ids(db, "--search", "tok_visa_secret") == [card]
    assert _ids(db, "--search", "api_key") == [order]
    assert _ids(db, "--search", "order-123") == [order]
    assert _ids(db, "--search", "ACCESS_TOKEN token_type") == [oauth]
    assert _ids(db, "--search", "access token") == [apart, oauth]  # two words: anywhere, both
    assert _ids(db, "--search", "access_token", "--limit", "0") == []
    result = repost("list", "--db", str(db), "--search", "access_token")
    assert result.exit_code == 0 and "fts5" not in result.output


def test_search_with_a_phrase_selects_for_export_too(searchable):
    db, (oauth, *_rest) = searchable
    result = repost("export", "--db", str(db), "--format", "curl", "--search", "access_token")
    assert result.exit_code == 0, result.output
    assert "grant_type" in result.output and "tok_visa" not in result.output


def test_a_search_of_no_words_is_a_usage_error(searchable):
    db, _ = searchable
    result = repost("list", "--db", str(db), "--search", "***")
    assert result.exit_code == 2 and "no word to search for" in result.output


SEARCH_TEXT = st.lists(
    st.one_of(
        st.text(max_size=6),
        st.sampled_from(list('"*^:()_-+.\'\\{}[]~&|') + ["NEAR", "AND", "OR", "NOT", " ", "access", "token"]),
    ),
    max_size=10,
).map("".join)


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=SEARCH_TEXT)
@example(text='access_token "x" NEAR(a b) ^c* d:e')
@example(text="\x00\x01\x7f")
@example(text='"')
def test_no_search_text_ever_reaches_the_user_as_an_sqlite_error(searchable, text):
    db, _ = searchable
    result = repost("list", "--db", str(db), "--search", text)
    assert result.exit_code in (0, 2), result.output
    assert "database error" not in result.output and "fts5" not in result.output
    if result.exit_code == 2:
        assert "no word to search for" in result.output


# -- 12: --db before the command ------------------------------------------------------------


def test_db_before_the_command(tmp_path):
    db = tmp_path / "before.db"
    (flow_id,) = store_flows(db, [post_flow()])
    result = repost("--db", str(db), "list", "--json")
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in json.loads(result.output)] == [flow_id]
    assert repost("--db", str(db), "show", str(flow_id), "--json").exit_code == 0
    assert repost("--db", str(db), "rules", "list").exit_code == 0
    # The command's own --db wins.
    result = repost("--db", str(tmp_path / "absent.db"), "list", "--db", str(db), "--json")
    assert result.exit_code == 0 and len(json.loads(result.output)) == 1


# -- 13: an empty result says why ------------------------------------------------------------


def test_empty_result_says_no_flows_match(tmp_path):
    db = tmp_path / "some.db"
    store_flows(db, [post_flow()])
    result = repost("list", "--db", str(db), "--host", "nowhere.test")
    assert result.exit_code == 0 and result.output.strip() == "no flows match"
    empty = tmp_path / "empty.db"
    store_flows(empty, [])
    assert repost("list", "--db", str(empty)).output.strip() == "no flows recorded yet"


# -- 14: newest first by time, not by id --------------------------------------------------------


def _flow_at(seconds_ago: float, path: str):
    f = post_flow(url=f"http://api.test{path}")
    shift = seconds_ago
    f.request.timestamp_start -= shift
    f.request.timestamp_end -= shift
    f.response.timestamp_start -= shift
    f.response.timestamp_end -= shift
    return f


def test_list_is_newest_first_by_time_after_an_import(tmp_path):
    db = tmp_path / "time.db"
    recorded = store_flows(db, [_flow_at(60, "/a"), _flow_at(0, "/b")])
    imported = store_flows(db, [_flow_at(86400, "/old"), _flow_at(30, "/mid")])  # older times, newer ids
    rows = list_json(db)
    times = [r["started_at"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert [r["path"] for r in rows] == ["/b", "/mid", "/a", "/old"]
    assert [r["id"] for r in rows] == [recorded[1], imported[1], recorded[0], imported[0]]
    assert [r["path"] for r in list_json(db, "--limit", "2")] == ["/b", "/mid"]
    assert [r["path"] for r in list_json(db, "--host", "api.test")] == ["/b", "/mid", "/a", "/old"]
    result = repost("export", "--db", str(db), "--format", "curl")  # oldest first, by time too
    order = [p for line in result.output.splitlines() for p in ("/old", "/a", "/mid", "/b") if f"api.test{p}" in line]
    assert order == ["/old", "/a", "/mid", "/b"], result.output


def test_ties_in_time_break_by_id(tmp_path):
    db = tmp_path / "ties.db"
    ids = store_flows(db, [post_flow(), post_flow(), post_flow()])
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE flows SET started_at = '2026-01-01T00:00:00.000Z'")
    conn.close()
    assert _ids(db) == sorted(ids, reverse=True)


def test_time_order_reads_an_index_and_sorts_nothing(tmp_path):
    from repost.store.database import open_database
    from repost.store.queries import NEWEST_FIRST, OLDEST_FIRST

    conn = open_database(tmp_path / "plan.db", create=True)
    for order in (NEWEST_FIRST, OLDEST_FIRST):
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT * FROM flows {order} LIMIT 50"))
        assert "idx_flows_started_at" in plan and "TEMP B-TREE" not in plan, plan
    for where in ("host = 'h'", "path = '/p'", "status = 200", "started_at >= 'x'"):
        plan = " ".join(r[3] for r in conn.execute(f"EXPLAIN QUERY PLAN SELECT 1 FROM flows WHERE {where}"))
        assert "USING" in plan and "INDEX" in plan, plan


# -- 15: a failed command leaves no database behind ----------------------------------------------


def test_replay_in_an_empty_folder_creates_nothing(tmp_path):
    db = tmp_path / "repost.db"
    result = repost("replay", "1", "--db", str(db))
    assert result.exit_code == 1 and "no database" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", [["list"], ["show", "1"], ["diff", "1", "2"], ["export", "--format", "har"], ["rules", "list"]])
def test_reading_commands_create_nothing(tmp_path, command):
    result = repost(*command, "--db", str(tmp_path / "repost.db"))
    assert result.exit_code != 0 and "no database" in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_failed_import_removes_the_database_it_created(tmp_path):
    bad = tmp_path / "bad.har"
    bad.write_text('{"log": {"entries": [{"request": 5}]}}')
    db = tmp_path / "new.db"
    result = repost("import", str(bad), "--db", str(db))
    assert result.exit_code == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.har"]


def test_a_failed_import_keeps_a_database_that_was_there(tmp_path):
    db = tmp_path / "kept.db"
    store_flows(db, [post_flow()])
    bad = tmp_path / "bad.har"
    bad.write_text("{}")
    assert repost("import", str(bad), "--db", str(db)).exit_code == 1
    assert len(list_json(db)) == 1


def test_record_on_a_busy_port_creates_no_database(tmp_path):
    port = free_port()
    busy = socket.socket()
    busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    busy.bind(("127.0.0.1", port))
    busy.listen()
    try:
        db = tmp_path / "rec.db"
        proc = subprocess.run(
            [sys.executable, "-m", "repost.cli", "record", "--listen-port", str(port), "--db", str(db),
             "--set", f"confdir={tmp_path / 'conf'}"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        busy.close()
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(p.name.startswith("rec.db") for p in tmp_path.iterdir()), list(tmp_path.iterdir())


# -- 16: one exit code for an id that names no flow ---------------------------------------------


def test_an_unknown_id_is_exit_2_in_every_command(tmp_path):
    db = tmp_path / "ids.db"
    (flow_id,) = store_flows(db, [post_flow()])
    for args in (["show", "999"], ["show", "999", "--json"], ["replay", "999"], ["diff", str(flow_id), "999"],
                 ["diff", "999", str(flow_id)]):  # fmt: skip
        result = repost(*args, "--db", str(db))
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("no flow with id 999") == 1, (args, result.output)


def test_an_unknown_id_through_the_program_itself(tmp_path):
    db = tmp_path / "ids.db"
    store_flows(db, [post_flow()])
    proc = subprocess.run([sys.executable, "-m", "repost.cli", "show", "999", "--db", str(db)], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip() == "Error: no flow with id 999"


def test_a_bad_filter_is_a_usage_error_said_once(tmp_path):
    db = tmp_path / "f.db"
    store_flows(db, [post_flow()])
    for command in (["list"], ["export", "--format", "har"], ["replay"]):
        result = repost(*command, "--db", str(db), "--filter", "~bogus")
        assert result.exit_code == 2, result.output
        assert result.output.lower().count("filter expression") == 1, result.output


# -- 17: replays of replays -----------------------------------------------------------------------


@pytest.fixture
def replayed(tmp_path, upstream):
    db = tmp_path / "replays.db"
    (original,) = store_flows(db, [post_flow(url=f"{upstream.url}/orders", body=b'{"item": "book"}')])
    result = repost("replay", str(original), "--yes", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    (replay_id,) = [r["replay_id"] for r in json.loads(result.output)]
    return db, original, replay_id


def test_selections_leave_replays_out_unless_asked(replayed):
    db, original, replay_id = replayed
    result = repost("export", "--db", str(db), "--format", "curl", "--path", "/orders")
    assert result.exit_code == 0 and result.output.count("curl ") == 1
    result = repost("export", "--db", str(db), "--format", "curl", "--path", "/orders", "--include-replays")
    assert result.output.count("curl ") == 2
    result = repost("replay", "--path", "/orders", "--dry-run", "--db", str(db))
    assert result.exit_code == 0 and f"flow {original} " in result.output and f"flow {replay_id} " not in result.output
    result = repost("replay", "--path", "/orders", "--dry-run", "--include-replays", "--db", str(db))
    assert f"flow {replay_id} " in result.output
    result = repost("replay", str(replay_id), "--dry-run", "--db", str(db))  # named by id: chosen
    assert f"flow {replay_id} " in result.output
    result = repost("replay", "--dry-run", "--include-replays", "--db", str(db))  # no filter: still refused
    assert result.exit_code == 2


def test_list_shows_replays_and_marks_them(replayed):
    db, original, replay_id = replayed
    assert _ids(db) == [replay_id, original]
    assert [r["replay_of"] for r in list_json(db)] == [original, None]
    lines = repost("list", "--db", str(db)).output.splitlines()
    assert lines[0].split()[-1] == "replay"
    assert lines[1].endswith(f"↺ {original}") and not lines[2].endswith(str(original))
    result = repost("list", "--db", str(db), "--include-replays", "--json")  # accepted: list shows them anyway
    assert result.exit_code == 0 and [r["id"] for r in json.loads(result.output)] == [replay_id, original]


# -- 21: rules --------------------------------------------------------------------------------------


def test_rules_refuse_a_pattern_that_cannot_match_and_a_duplicate(tmp_path):
    db = str(tmp_path / "rules.db")
    assert repost("rules", "add", "--read-only", "POST */_search", "--db", db).exit_code == 0
    result = repost("rules", "add", "--read-only", "post */_search", "--db", db)
    assert result.exit_code == 1 and "already" in result.output
    for never in ("api.example.test/search", "HTTPS://api.example.test/*", "ftp://x/*"):
        result = repost("rules", "add", "--read-only", never, "--db", db)
        assert result.exit_code == 2 and "never match" in result.output, (never, result.output)
    assert repost("rules", "add", "--read-only", "/v1/search?q=1", "--db", db).exit_code == 2
    assert repost("rules", "add", "--read-only", "/v1/embeddings", "--db", db).exit_code == 0
    assert repost("rules", "add", "--read-only", "https://api.example.test/*", "--db", db).exit_code == 0
    assert repost("rules", "add", "--read-only", "*example.test/search", "--db", db).exit_code == 0


def test_rules_list_is_a_table_with_a_header(tmp_path):
    db = str(tmp_path / "rules.db")
    repost("rules", "add", "--read-only", "POST */_search", "--db", db)
    repost("rules", "add", "--read-only", "/v1/embeddings", "--db", db)
    lines = repost("rules", "list", "--db", db).output.splitlines()
    assert lines[0].split() == ["id", "kind", "rule", "created"]
    assert lines[1].split()[:4] == ["1", "read-only", "POST", "*/_search"]
    assert lines[2].split()[:4] == ["2", "read-only", "*", "/v1/embeddings"]
    assert lines[1].index("POST") == lines[2].index("* /v1") == lines[0].index("rule")
    assert lines[1].index("20") == lines[2].index("20") == lines[0].index("created")


def test_export_and_replay_search_what_the_writer_has_not_indexed_yet(tmp_path):
    db = tmp_path / "unindexed.db"
    (flow_id,) = store_flows(db, [post_flow(body=b'{"access_token": "x"}')], keep_secrets=True)
    conn = sqlite3.connect(db)
    with conn:  # as if the writer had not been idle yet
        conn.execute("INSERT INTO flows_fts (flows_fts) VALUES ('delete-all')")
        conn.execute("DELETE FROM repost_meta WHERE key = 'fts_indexed_upto'")
    conn.close()
    result = repost("export", "--db", str(db), "--format", "curl", "--search", "access_token")
    assert result.exit_code == 0 and result.output.count("curl ") == 1, result.output
    result = repost("replay", "--db", str(db), "--search", "access_token", "--dry-run")
    assert result.exit_code == 0 and f"flow {flow_id} " in result.output, result.output


@pytest.fixture(scope="module")
def shuffled(tmp_path_factory):
    """Flows whose times follow their ids nowhere (as after imports either way), some at
    the same instant, with words and hosts to select by."""
    import random

    rng = random.Random(13)
    db = tmp_path_factory.mktemp("shuffled") / "shuffled.db"
    flows, truth = [], []
    for n in range(60):
        ago = rng.choice([0, 5, 5, 60, 3600, 86400]) + rng.randrange(0, 3) * 0.25
        host = rng.choice(["a.test", "b.test"])
        word = rng.choice(["access_token", "access and token", "other"])
        f = _flow_at(ago, f"/{n}")
        f.request.host = host
        f.request.raw_content = word.encode()
        flows.append(f)
        truth.append({"host": host, "word": word})
    ids = store_flows(db, flows, keep_secrets=True)
    conn = sqlite3.connect(db)
    times = dict(conn.execute("SELECT id, started_at FROM flows"))
    conn.close()
    return db, [dict(t, id=i, started_at=times[i]) for t, i in zip(truth, ids)]


@pytest.mark.parametrize("limit", [1, 3, 10, 50, 100])
@pytest.mark.parametrize(
    "args, wanted",
    [
        ([], lambda f: True),
        (["--host", "a.test"], lambda f: f["host"] == "a.test"),
        (["--search", "access"], lambda f: f["word"] != "other"),
        (["--search", "access_token"], lambda f: f["word"] == "access_token"),
        (["--search", "token", "--host", "b.test"], lambda f: f["word"] != "other" and f["host"] == "b.test"),
        (["--filter", "~bq access"], lambda f: f["word"] != "other"),
    ],
)
def test_newest_first_by_time_whatever_the_ids(shuffled, args, wanted, limit):
    db, flows = shuffled
    expected = sorted((f for f in flows if wanted(f)), key=lambda f: (f["started_at"], f["id"]), reverse=True)
    assert _ids(db, *args, "--limit", str(limit)) == [f["id"] for f in expected[:limit]]


ASCII_WORDS = st.lists(st.sampled_from(["access", "token", "Access", "TOKEN", "a1", "x", "_", "-", " ", ".", "__", "\n", "é"]), max_size=12).map("".join)


@settings(max_examples=300, deadline=None, database=None)
@given(doc=ASCII_WORDS, word=ASCII_WORDS)
@example(doc="access__token", word="access_token")
@example(doc="xaccess_token", word="access_token")
@example(doc="ACCESS-TOKENx", word="access_token")
def test_the_quick_phrase_check_says_what_sqlite_says(doc, word):
    """On ASCII text a pattern stands in for the scratch FTS5 table: they must agree."""
    from repost.store.search import SearchTerms, _scratch_db

    terms = SearchTerms(word)
    if terms.phrase_query is None:
        return
    row = {"id": 1, "request_body": doc.encode(), "request_content_encoding": None, "request_headers": "[]",
           "response_body": b"", "response_content_encoding": None, "response_headers": "[]"}  # fmt: skip
    conn = _scratch_db()
    with conn:
        conn.execute("INSERT INTO bodies (rowid, request_body, response_body) VALUES (1, ?, '')", [doc])
        sqlite_says = conn.execute("SELECT 1 FROM bodies WHERE bodies MATCH ?", [terms.phrase_query]).fetchone() is not None
        conn.execute("DELETE FROM bodies")
    assert (terms.rows_matching([row]) == {1}) == sqlite_says


def test_a_phrase_in_text_that_is_not_ascii(tmp_path):
    db = tmp_path / "accents.db"
    hit, miss = store_flows(db, [
        post_flow(body="{\"note\": \"Café_Crème, s'il vous plaît\"}".encode(), headers={"content-type": "application/json"}),
        post_flow(body="crème de la café".encode(), headers={"content-type": "text/plain; charset=utf-8"}),
    ])  # fmt: skip
    assert _ids(db, "--search", "cafe_creme") == [hit]
    assert _ids(db, "--search", "CAFÉ-crème") == [hit]
    assert _ids(db, "--search", "café crème") == [miss, hit]


CONTENT_TYPES = st.sampled_from([
    None, "application/json", "application/json; charset=utf-8", "text/plain; charset=UTF-16", 'text/plain; charset="utf-8"',
    "text/plain; charset=cp500", "image/png", "application/octet-stream", "application/zip", "text/html; Charset=latin-1",
])  # fmt: skip


@settings(max_examples=300, deadline=None, database=None)
@given(body=st.binary(max_size=64) | st.text(max_size=64).map(str.encode), ctype=CONTENT_TYPES,
       encoding=st.sampled_from([None, "", "gzip", "identity"]), extra=st.booleans())  # fmt: skip
def test_the_quick_body_text_is_what_the_index_was_given(body, ctype, encoding, extra):
    from repost.store.search import _indexed_text, _json_text, _text

    headers = ([["Content-Type", ctype]] if ctype else []) + ([["X-Charset-Note", "utf-16"]] if extra else [])
    stored = json.dumps(headers)
    assert _indexed_text(body, encoding, stored) == _text(body, encoding, _json_text(stored))
