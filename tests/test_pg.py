"""PostgreSQL as the store (``--db postgresql://...``): the same commands, the same output.

Runs against a throw-away cluster (tests/pgcluster.py) or $REPOST_TEST_PG_URL; skips, saying
why, where neither can be had. The store and CLI tests run each case on both backends and
compare; the recording tests go through the real proxy into PostgreSQL.
"""

import json
import signal
import subprocess
import sys
import threading
import time
import uuid

import httpx
import pytest

from .helpers import list_json, post_flow, repost, show_json, store_flows, wait_for

# -- without a server --------------------------------------------------------------------------


def test_migrations_are_numbered_as_sqlites():
    from repost.store.pg_schema import MIGRATIONS
    from repost.store.schema import KNOWN_MIGRATIONS

    assert tuple(MIGRATIONS) == KNOWN_MIGRATIONS


def test_sqlite_statements_are_translated_in_one_place():
    from repost.store.pg import translate

    assert translate("SELECT id FROM flows WHERE id > ? AND url LIKE '%?%' LIMIT ?") == (
        "SELECT id FROM flows WHERE id > %s AND url LIKE '%%?%%' LIMIT %s"
    )
    assert translate("SELECT id FROM flows INDEXED BY idx_flows_started_at WHERE started_at > ?") == (
        "SELECT id FROM flows WHERE started_at > %s"
    )
    assert "ON CONFLICT DO NOTHING" in translate("INSERT OR IGNORE INTO tags (flow, name) VALUES (?, ?)")
    assert translate("SELECT 1 FROM flows WHERE host GLOB ?") == "SELECT 1 FROM flows WHERE host ~ repost_glob(%s)"


def test_without_psycopg_a_postgresql_url_says_what_to_install():
    # psycopg made unimportable, as in an install without the extra.
    code = "import sys; sys.modules['psycopg'] = None; from repost.cli.main import main; main()"
    for args in (["list"], ["show", "1"], ["record", "--listen-port", "0"]):
        result = subprocess.run(
            [sys.executable, "-c", code, *args, "--db", "postgresql://me@127.0.0.1/flows"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 2, result.stderr
        assert result.stderr == "repost: PostgreSQL support needs psycopg: pip install 'repost[postgres]'\n"
        assert result.stdout == ""


def test_a_server_that_cannot_be_reached_is_one_line_without_the_password():
    pytest.importorskip("psycopg")
    from .helpers import free_port

    url = f"postgresql://me:s3cret@127.0.0.1:{free_port()}/flows"
    result = subprocess.run([sys.executable, "-m", "repost.cli", "list", "--db", url], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("Error: cannot connect to postgresql://me:***@127.0.0.1:")
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr
    # A URL the driver cannot read, which its message quotes whole: the password still hidden.
    bad = repost("list", "--db", "postgresql://me:s3cret@[::1/flows")
    assert bad.exit_code == 1 and "s3cret" not in bad.output and bad.output.startswith("Error: cannot connect to postgresql://me:***@")


# -- the store and the read commands, on both backends ---------------------------------------


@pytest.fixture
def both(tmp_path, pg_url):
    """The same flows stored in a SQLite file and in PostgreSQL: {backend: db}."""
    flows = [
        post_flow("http://api.test/orders", body=b'{"item": "book", "note": "zanzibar quokka"}', status=201,
                  response_body=b'{"id": 7, "state": "new"}', headers={"content-type": "application/json"}),
        post_flow("http://shop.test/cart/1?x=1", body=b"\x00\xffbinary\x00", status=404, response_body=b"nope"),
        post_flow("http://api.test/search", body=b"q=it's+access_token", status=200,
                  headers={"content-type": "application/x-www-form-urlencoded", "authorization": "Bearer abc.def"}),
        post_flow("http://api.test/orders", body=b'{"item": "pen"}', status=500, response_body=b"oops \xe2\x82\xac"),
    ]  # fmt: skip
    dbs = {"sqlite": str(tmp_path / "r.db"), "postgresql": pg_url}
    for db in dbs.values():
        store_flows(db, flows)
    return dbs


READS = [
    ("list",),
    ("list", "--host", "api.*"),
    ("list", "--path", "/orders"),
    ("list", "--status", "4xx,5xx"),
    ("list", "--method", "POST", "--limit", "2"),
    ("list", "--search", "quokka"),
    ("list", "--search", "access_token"),
    ("list", "--search", "nothing-like-it"),
    ("list", "--filter", "~bq book"),
    ("list", "--host", "[!a]*"),
    ("list", "--host", "*.tes?"),
    ("list", "--path", "/cart/[0-9]"),
    ("list", "--search", "OOPS"),
    ("list", "--search", "quokka zanzibar"),
    ("list", "--search", "it's"),
    ("list", "--search", "\"access token\""),
    ("list", "--tag", "none"),
    ("list", "--since", "1h", "--until", "2099-01-01"),
    ("list", "--json"),
    ("show", "1"),
    ("show", "1", "--json"),
    ("show", "2", "--json"),
    ("show", "3", "--as", "curl"),
    ("show", "99"),
    ("diff", "1", "4"),
    ("export", "--format", "har"),
    ("export", "--format", "curl", "--path", "/orders"),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) for a in READS])
def test_reads_print_the_same_from_both_backends(both, args):
    out = {}
    for backend, db in both.items():
        result = repost(*args, "--db", db)
        out[backend] = (result.exit_code, result.output)
    assert out["postgresql"] == out["sqlite"]
    assert out["sqlite"][0] in (0, 1, 2)


def test_writes_then_reads_agree_on_both_backends(both):
    for db in both.values():
        assert repost("tag", "1", "2", "checkout", "--db", db).exit_code == 0
        assert repost("untag", "2", "checkout", "--db", db).exit_code == 0
        assert repost("rules", "add", "--read-only", "POST */search", "--db", db).exit_code == 0
        assert repost("redact", "add", "--header", "X-Internal-Token", "--db", db).exit_code == 0
    out = {}
    for backend, db in both.items():
        listed = list_json(db, "--tag", "checkout")
        rules = repost("rules", "list", "--json", "--db", db).output
        rules = [{k: v for k, v in r.items() if k != "created_at"} for r in json.loads(rules)]
        out[backend] = ([(r["id"], r["tags"], r["safety"]) for r in listed], [r["id"] for r in list_json(db)], rules)
    assert out["postgresql"] == out["sqlite"]
    assert out["postgresql"][0] == [(1, ["checkout"], "unsafe")]


def test_text_postgresql_cannot_hold_does_not_cost_the_flow(tmp_path, pg_url):
    # NUL in a path or a reason phrase: SQLite's TEXT holds it, PostgreSQL's cannot.
    flows = []
    for _ in range(2):
        f = post_flow("http://api.test/nul", body=b"kept \x00 in the body", status=200, response_body=b"ok")
        f.request.path, f.response.reason = "/nul\x00here", "O\x00K"
        flows.append(f)
    store_flows(pg_url, flows[:1])
    store_flows(str(tmp_path / "r.db"), flows[1:])
    [flow] = list_json(pg_url)
    assert flow["path"] == "/nul\ufffdhere" and flow["error"] is None
    shown = show_json(pg_url, flow["id"])
    assert shown["request"]["size"] == len(b"kept \x00 in the body") and shown["response"]["reason"] == "O\ufffdK"
    assert list_json(str(tmp_path / "r.db"))[0]["path"] == "/nul\x00here"


def test_glob_matches_as_sqlites_glob(pg_url):
    """--host and --path globs: PostgreSQL's stand-in for GLOB agrees with SQLite's on every pair."""
    import sqlite3

    import psycopg

    from repost.store.database import open_database

    open_database(pg_url).close()  # the schema, with repost_glob
    patterns = ["api.*", "*.tes?", "[!a]*", "[^a]*", "[]a]*", "[a-c]*", "x[", "[?]*", "a\\b", "(x)+", "*[*]*",
                "[^]]*", "a.b", "[a^]*", "%_", "ü*", "[]", "/orders/*", "/v?/x"]  # fmt: skip
    values = ["api.test", "shop.test", "!x", "]x", "bz", "?q", "a\\b", "(x)+", "a*b", "a.b", "axb", "^a", "%_", "üx",
              "a", "", "[]", "/orders/7", "/v1/x", "/v10/x"]  # fmt: skip
    lite = sqlite3.connect(":memory:")
    with psycopg.connect(pg_url) as conn:
        for pattern in patterns:
            regex = conn.execute("SELECT repost_glob(%s)", [pattern]).fetchone()[0]
            for value in values:
                want = bool(lite.execute("SELECT ? GLOB ?", [value, pattern]).fetchone()[0])
                assert conn.execute("SELECT %s ~ %s", [value, regex]).fetchone()[0] == want, (pattern, value)


def test_repost_db_names_the_server(pg_url, monkeypatch):
    store_flows(pg_url, [post_flow("http://api.test/a", body=b"one")])
    monkeypatch.setenv("REPOST_DB", pg_url)
    assert [r["path"] for r in list_json(pg_url)] == ["/a"]
    result = repost("list", "--json")  # no --db: $REPOST_DB
    assert result.exit_code == 0 and [r["path"] for r in json.loads(result.output)] == ["/a"]


def test_export_from_one_backend_imports_into_the_other(both, tmp_path, pg_cluster):
    har = tmp_path / "all.har"
    assert repost("export", "--format", "har", "--db", both["sqlite"], "-o", str(har)).exit_code == 0
    fresh = pg_cluster.new_database()
    result = repost("import", str(har), "--db", fresh)
    assert result.exit_code == 0, result.output
    assert repost("import", str(har), "--db", fresh).output.endswith("(4 already present, skipped)\n")
    back = str(tmp_path / "back.db")
    assert repost("export", "--format", "har", "--db", fresh, "-o", str(tmp_path / "pg.har")).exit_code == 0
    assert repost("import", str(tmp_path / "pg.har"), "--db", back).exit_code == 0
    for db in (fresh, back):
        assert [(r["url"], r["status"], r["request_size"]) for r in list_json(db)] == [
            (r["url"], r["status"], r["request_size"]) for r in list_json(both["sqlite"])
        ]


def test_four_commands_starting_at_once_on_an_empty_database_set_it_up_once(pg_url):
    procs = [
        subprocess.Popen([sys.executable, "-m", "repost.cli", "list", "--db", pg_url, "--json"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        for _ in range(4)
    ]
    results = [(p.wait(60), *p.communicate()) for p in procs]
    assert all(code == 0 and out == "[]\n" and err == "" for code, out, err in results), results
    import psycopg

    with psycopg.connect(pg_url) as conn:
        names = [r[0] for r in conn.execute("SELECT name FROM repost_migrations ORDER BY applied_order")]
    from repost.store.schema import KNOWN_MIGRATIONS

    assert tuple(names) == KNOWN_MIGRATIONS


def test_a_schema_newer_than_this_repost_is_refused(pg_url):
    import psycopg

    store_flows(pg_url, [post_flow()])
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO repost_migrations (name, applied_order, applied_at) VALUES ('m999_future', 999, 'x')")
    result = repost("list", "--db", pg_url)
    assert result.exit_code == 1
    assert "written by a newer repost (schema m999_future)" in result.output


def test_a_database_of_another_program_is_refused_and_left_untouched(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE flows (x int)")
    result = repost("list", "--db", pg_url)
    assert result.exit_code == 1 and "not a repost store" in result.output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('repost_migrations')").fetchone()[0] is None


# -- recording through the real proxy ----------------------------------------------------------


class Load:
    """Client threads POSTing unique paths through a proxy; every answer and every failure kept."""

    def __init__(self, proxy_url: str, upstream_url: str, threads: int = 2):
        self.proxy_url, self.upstream_url = proxy_url, upstream_url
        self.answered: list[str] = []
        self.failed: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(proxy=self.proxy_url, timeout=10) as c:
            while not self._stop.is_set():
                key = uuid.uuid4().hex
                try:
                    r = c.post(f"{self.upstream_url}/load/{key}", json={"key": key})
                except httpx.HTTPError as e:
                    self.failed.append(f"{key}: {e!r}")
                    continue
                (self.answered if r.status_code == 201 else self.failed).append(key if r.status_code == 201 else f"{key}: {r.status_code}")

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)


def recorded_paths(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute("SELECT path FROM flows")]


def test_record_into_postgresql_through_the_real_proxy(start_proxy, upstream, pg_url, tmp_path):
    proxy = start_proxy(db=pg_url, log=tmp_path / "proxy.log")
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        r = c.post(f"{upstream.url}/orders?page=2", json={"item": "book", "qty": 2})
        c.post(f"{upstream.url}/upload", content=bytes(range(256)) * 40)
    assert r.status_code == 201
    wait_for(lambda: len(list_json(pg_url)) == 2, 10, what="two flows in PostgreSQL")
    assert proxy.stop() == 0
    assert "postgresql://" in proxy.output() and "recorded 2 flows" in proxy.output()
    upload, order = list_json(pg_url)
    assert order["url"] == f"{upstream.url}/orders?page=2" and order["status"] == 201
    flow = show_json(pg_url, order["id"])
    assert json.loads(flow["request"]["body"]) == {"item": "book", "qty": 2}
    assert json.loads(flow["response"]["body"])["path"] == "/orders"
    assert show_json(pg_url, upload["id"])["request"]["size"] == 256 * 40
    assert [r["id"] for r in list_json(pg_url, "--search", "book")] == [order["id"]]


def test_server_stopped_and_restarted_mid_recording_loses_nothing_and_fails_no_request(
    start_proxy, upstream, pg_cluster, pg_url, tmp_path
):
    if not pg_cluster.can_restart:
        pytest.skip("$REPOST_TEST_PG_URL names a server these tests cannot stop")
    proxy = start_proxy(db=pg_url, log=tmp_path / "proxy.log")
    load = Load(proxy.url, upstream.url).start()
    try:
        wait_for(lambda: len(load.answered) >= 100, 60, what="100 answered requests")
        pg_cluster.stop()
        during = len(load.answered)
        wait_for(lambda: len(load.answered) >= during + 150, 60, what="150 more answers while the server is down")
        wait_for(lambda: "NOT RECORDING" in proxy.output(), 10, what="the proxy to say NOT RECORDING")
        pg_cluster.start()
        pg_cluster.wait_ready()
        after = len(load.answered)
        wait_for(lambda: len(load.answered) >= after + 100, 60, what="100 more answers with the server back")
        wait_for(lambda: "again" in proxy.output().split("NOT RECORDING")[-1], 30, what="the proxy to say it records again")
    finally:
        load.stop()
    assert proxy.stop() == 0, proxy.output()
    assert not load.failed, load.failed[:5]
    paths = recorded_paths(pg_url)
    keys = [p.removeprefix("/load/") for p in paths]
    assert len(keys) == len(set(keys)), "a flow was stored twice"
    missing = set(load.answered) - set(keys)
    assert not missing, f"{len(missing)} of {len(load.answered)} answered POSTs were lost"


def test_four_recorders_into_one_server_keep_every_flow_once_while_list_and_serve_read(start_proxy, upstream, pg_url, tmp_path):
    from .test_serve import Serving

    proxies = [start_proxy(db=pg_url, log=tmp_path / f"proxy{i}.log") for i in range(4)]
    loads = [Load(p.url, upstream.url, threads=2).start() for p in proxies]
    served = Serving("--db", pg_url)
    reads, read_errors, answers = [0], [], []
    stop_reading = threading.Event()

    def list_reads() -> None:
        while not stop_reading.is_set():
            r = subprocess.run([sys.executable, "-m", "repost.cli", "list", "--db", pg_url, "--json", "--limit", "20"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            if r.returncode != 0:
                read_errors.append(r.stderr)
            reads[0] += 1

    def serve_reads() -> None:  # a request recorded by the first recorder, answered by serve meanwhile
        with httpx.Client(base_url=served.url, timeout=10) as c:
            while not stop_reading.is_set():
                key = loads[0].answered[0] if loads[0].answered else None
                if key is not None:
                    answers.append(c.post(f"/load/{key}", json={"key": key}).status_code)
                stop_reading.wait(0.2)

    readers = [threading.Thread(target=list_reads, daemon=True), threading.Thread(target=serve_reads, daemon=True)]
    for t in readers:
        t.start()
    try:
        wait_for(lambda: all(len(load.answered) >= 60 for load in loads) and reads[0] >= 3 and answers.count(201) >= 3,
                 120, what="load on all four, list and serve reading")  # fmt: skip
    finally:
        for load in loads:
            load.stop()
        stop_reading.set()
        for t in readers:
            t.join(60)
    for proxy in proxies:
        assert proxy.stop() == 0, proxy.output()
    assert served.stop()[0] == 0
    assert not read_errors, read_errors[:2]
    assert set(answers) <= {201, 502}  # 502: asked before the flow was in the store
    answered = [k for load in loads for k in load.answered]
    assert not any(load.failed for load in loads)
    keys = [p.removeprefix("/load/") for p in recorded_paths(pg_url)]
    assert len(keys) == len(set(keys)), "a flow was stored twice"
    assert set(keys) >= set(answered) and len(set(answered)) == len(answered)
    # The lazy search index caught up with every flow, though ids committed out of order.
    found = json.loads(repost("list", "--db", pg_url, "--search", "key", "--limit", "100000", "--json").output)
    assert {r["path"].removeprefix("/load/") for r in found} == set(keys)


# -- copy between stores -------------------------------------------------------------------------


def _everything(db) -> dict:
    """Every field of every flow (by flow_id), with tags, events, replay links and rules."""
    from repost.store.database import open_database

    conn = open_database(db)
    try:
        cur = conn.execute("SELECT * FROM flows ORDER BY flow_id")
        names = [d[0] for d in cur.description]
        flows = [dict(zip(names, r)) for r in cur.fetchall()]
        flow_id = {f["id"]: f["flow_id"] for f in flows}
        for f in flows:
            f["replay_of"] = flow_id.get(f["replay_of"])
            f["tags"] = sorted(n for (n,) in conn.execute("SELECT name FROM tags WHERE flow = ?", [f["id"]]))
            f["events"] = [tuple(r) for r in conn.execute("SELECT seq, t_ms, event, event_id, data, retry FROM events WHERE flow = ? ORDER BY seq", [f["id"]])]
            f["request_body"] = bytes(f["request_body"]) if f["request_body"] is not None else None
            f["response_body"] = bytes(f["response_body"]) if f["response_body"] is not None else None
            del f["id"]
        rules = [tuple(r) for r in conn.execute("SELECT kind, method, url_glob, created_at FROM rules ORDER BY id")]
        redact = [tuple(r) for r in conn.execute("SELECT kind, value, created_at FROM redact_rules ORDER BY id")]
    finally:
        conn.close()
    return {"flows": flows, "rules": rules, "redact_rules": redact}


def test_copy_sqlite_to_postgresql_to_sqlite_keeps_every_field(tmp_path, pg_url):
    import sqlite3

    from repost.store.capture import snapshot
    from repost.store.redact import Redactor, load_key
    from repost.store.writer import BatchWriter

    every_byte = bytes(range(256)) * 3
    original = str(tmp_path / "original.db")
    writer = BatchWriter(original, redactor=Redactor(load_key()), max_body=10 * 1024 * 1024)
    flows = [
        post_flow("http://api.test/orders", body=b'{"item": "book", "password": "hunter2"}', status=201,
                  response_body=b'{"id": 7}', headers={"content-type": "application/json", "authorization": "Bearer s3cr3t"}),
        post_flow("http://api.test/blob", body=every_byte, response_body=every_byte[::-1], status=200,
                  headers={"content-type": "application/octet-stream"}),
        post_flow("http://api.test/stream", body=b"{}", response_body=b"data: one\n\ndata: two\n\n",
                  response_headers={"content-type": "text/event-stream"}),
    ]  # fmt: skip
    assert writer.write([snapshot(f) for f in flows])
    assert writer.write([snapshot(post_flow("http://api.test/orders", body=b'{"item": "book"}', status=409), replay_of=1)])
    writer.close()
    conn = sqlite3.connect(original)
    with conn:  # events as an earlier repost stored them, in their table
        conn.executemany("INSERT INTO events (flow, seq, t_ms, event, event_id, data, retry) VALUES (3, ?, ?, 'message', ?, ?, ?)",
                         [(0, 1.5, "e1", "one", None), (1, 2.25, None, "two", 3000)])  # fmt: skip
    conn.close()
    for args in (("tag", "1", "2", "keep"), ("tag", "4", "replayed"), ("rules", "add", "--read-only", "POST */search"),
                 ("redact", "add", "--header", "X-Internal-Token"), ("redact", "add", "--pattern", "tok_[a-z0-9]+")):  # fmt: skip
        assert repost(*args, "--db", original).exit_code == 0

    result = repost("copy", "--from", original, "--to", pg_url)
    assert result.exit_code == 0, result.output
    assert "copied 4 flows, and 1 rule and 2 redaction rules from" in result.output
    back = str(tmp_path / "back.db")
    assert repost("copy", "--from", pg_url, "--to", back).exit_code == 0

    before, through, after = _everything(original), _everything(pg_url), _everything(back)
    assert through == before
    assert after == before
    assert [f["request_body"] for f in after["flows"] if f["path"] == "/blob"] == [every_byte]
    assert [f["replay_of"] for f in after["flows"] if f["status"] == 409] == [flows[0].id]
    assert show_json(back, 3)["events"] == show_json(original, 3)["events"] != []

    # Again, both ways: every flow is there already.
    again = repost("copy", "--from", original, "--to", pg_url)
    assert again.exit_code == 0 and "copied 0 flows from" in again.output and "(4 already there, skipped)" in again.output
    assert repost("copy", "--from", back, "--to", pg_url).output.startswith("repost: copied 0 flows")
    assert len(_everything(pg_url)["flows"]) == 4


def test_copy_refuses_the_same_store_and_a_missing_source(tmp_path, pg_url):
    assert repost("copy", "--from", pg_url, "--to", pg_url).exit_code == 2
    result = repost("copy", "--from", str(tmp_path / "none.db"), "--to", pg_url)
    assert result.exit_code == 1 and "no database at" in result.output


# -- the other commands on PostgreSQL ------------------------------------------------------------


def test_delete_prune_and_redact_apply_agree_on_both_backends(both):
    out = {}
    for backend, db in both.items():
        assert repost("list", "--search", "quokka", "--db", db).exit_code == 0  # indexed: deleting takes it out
        assert repost("tag", "1", "3", "x", "--db", db).exit_code == 0
        deleted = repost("delete", "1", "--yes", "--db", db)
        assert deleted.exit_code == 0, deleted.output
        assert repost("redact", "add", "--pattern", "access_[a-z]+", "--db", db).exit_code == 0
        applied = repost("redact", "apply", "--yes", "--db", db)
        assert applied.exit_code == 0, applied.output
        pruned = repost("prune", "--older-than", "0s", "--keep-last", "1", "--yes", "--db", db)
        out[backend] = (
            deleted.output, pruned.exit_code, [(r["id"], r["tags"]) for r in list_json(db)],
            show_json(db, 3)["request"]["body"] if list_json(db)[0]["id"] == 3 else None,
            repost("list", "--search", "quokka", "--db", db).output,
            repost("list", "--search", "access_token", "--db", db).output,
        )  # fmt: skip
    assert out["postgresql"] == out["sqlite"]
    assert "access_token" not in str(out["postgresql"][3])


def test_serve_answers_from_postgresql(pg_url):
    from .test_serve import Serving

    json_type = {"content-type": "application/json"}
    ids = store_flows(pg_url, [
        post_flow("http://api.test/orders", b'{"item": "book", "at": "10:00"}', json_type, 201, b'{"id": 1}', json_type),
        post_flow("http://api.test/orders", b'{"item": "book", "at": "10:01"}', json_type, 201, b'{"id": 2}', json_type),
    ])  # fmt: skip
    s = Serving("--db", pg_url, "--ignore", "request.body.at")
    try:
        with httpx.Client(base_url=s.url) as c:
            answers = [c.post("/orders", content=b'{"at": "x", "item": "book"}', headers=json_type) for _ in range(3)]
            miss = c.post("/orders", json={"item": "pen"})
    finally:
        code, _, err = s.stop()
    assert [r.json()["id"] for r in answers] == [1, 2, 2]
    assert [r.headers["repost-flow"] for r in answers] == [str(ids[0]), str(ids[1]), str(ids[1])]
    assert miss.status_code == 502 and miss.json()["closest"]["id"] in ids
    assert code == 0, err


def test_replay_from_postgresql_stores_the_replay_there(pg_url, counting_upstream):
    u = counting_upstream.url
    ids = store_flows(pg_url, [post_flow(url=f"{u}/orders/{n}", body=b"{}", headers={"content-type": "application/json"}) for n in range(2)])
    result = repost("replay", "--db", pg_url, *map(str, ids), "--yes", "--json")
    assert result.exit_code == 0, result.output
    outcomes = json.loads(result.output)
    assert [counting_upstream.count(f"/orders/{n}") for n in range(2)] == [1, 1]
    assert [show_json(pg_url, o["replay_id"])["replay_of"] for o in outcomes] == ids
    again = repost("replay", "--db", pg_url, str(ids[0]), "--yes")
    assert f"flow {ids[0]} was already replayed 1 time (last at " in again.output


def test_list_follow_shows_flows_as_they_land_in_postgresql(start_proxy, upstream, pg_url, tmp_path):
    from .test_follow import _follower, _post

    proxy = start_proxy(db=pg_url, log=tmp_path / "proxy.log")
    store_flows(pg_url, [post_flow(url=f"{upstream.url}/follow-me/old", body=b"{}")])
    proc, out = _follower(pg_url, "--json", "--path", "/follow-me/*")
    try:
        assert out.wait_for("/follow-me/old", time.monotonic() + 10)
        answered = _post(proxy, f"{upstream.url}/follow-me/new")
        assert out.wait_for("/follow-me/new", answered + 1.0), out.text  # as in SQLite: within a second
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    assert code == 0 and proc.stderr.read() == b""
    assert [json.loads(line)["path"] for line in out.text.splitlines()] == ["/follow-me/old", "/follow-me/new"]


def test_the_writer_prunes_and_indexes_postgresql_while_idle(pg_url):
    # What `record --retain` and the idle indexing do in the writer process, called directly.
    from repost.store.capture import snapshot
    from repost.store.database import meta_int, open_database
    from repost.store.redact import Redactor, load_key
    from repost.store.writer import BatchWriter

    writer = BatchWriter(pg_url, redactor=Redactor(load_key()), max_body=1 << 20, retain=3600)
    old = post_flow("http://api.test/old", body=b"ancient words")
    old.request.timestamp_start -= 7200
    assert writer.write([snapshot(old), snapshot(post_flow("http://api.test/new", body=b"fresh words"))])
    writer.idle()
    writer.close()
    assert [r["path"] for r in list_json(pg_url)] == ["/new"]
    conn = open_database(pg_url)
    try:
        assert meta_int(conn, "fts_indexed_upto") == 2 and meta_int(conn, "match_indexed_upto") == 2
        assert conn.execute("SELECT id FROM flows_fts").fetchall() == [(2,)]
    finally:
        conn.close()


def test_the_web_ui_reads_a_postgresql_store_as_the_cli_does(pg_url, tmp_path):
    """`repost ui --db postgresql://...`: its API gives list's, show's and diff's documents, and a
    flow written while the page listens is pushed."""
    from .ui_harness import UiServer

    store_flows(pg_url, [post_flow("http://api.test/a", body=b'{"n": 1}'), post_flow("http://api.test/b", body=b'{"n": 2}')])
    server = UiServer(pg_url, log=tmp_path / "ui.log")
    try:
        with server.client() as client:
            listed = client.get("/api/flows").json()
            assert listed == list_json(pg_url)
            first = listed[-1]["id"]
            assert client.get(f"/api/flows/{first}").json() == show_json(pg_url, first)
            diff = client.get("/api/diff", params={"a": listed[-1]["id"], "b": listed[0]["id"]}).json()
            assert diff["equal"] is False
            with client.stream("GET", "/api/events") as events:
                lines = events.iter_lines()
                assert next(line for line in lines if line) == ": ready"
                store_flows(pg_url, [post_flow("http://api.test/c", body=b'{"n": 3}')])
                newest = max(r["id"] for r in list_json(pg_url))
                pushed = next(line for line in lines if line.startswith("data:"))
                assert str(newest) in pushed, pushed
    finally:
        server.stop()
