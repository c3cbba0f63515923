"""Faults and concurrency, tested like a database: kill -9 again and again, two
recorders and readers on one file, a database that stops taking writes, an
upstream that resets mid-body."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading

import httpx
import pytest

from .helpers import count_flows, list_json, repost, wait_for
from .test_record_durability import Load, integrity, kill_9_under_load, recorded_keys


def test_kill_9_again_and_again(start_proxy, upstream, tmp_path):
    db = tmp_path / "again.db"
    must_have_all: set[str] = set()
    for round_ in range(3):
        proxy = start_proxy(db=db)
        must_have_all |= kill_9_under_load(proxy, upstream.url, answered=100, seconds=1.2, threads=3)
        assert integrity(db) == "ok", f"round {round_}"
        assert not must_have_all - recorded_keys(db), f"round {round_}: answered POSTs lost"


def test_two_recorders_and_readers_on_one_database(start_proxy, upstream, tmp_path):
    db = tmp_path / "shared.db"
    a, b = start_proxy(db=db), start_proxy(db=db)
    loads = [Load(a.url, upstream.url, threads=2).start(), Load(b.url, upstream.url, threads=2).start()]
    reader_errors: list[str] = []
    reads = 0
    stop = threading.Event()

    def read():
        nonlocal reads
        while not stop.is_set():
            r = subprocess.run([sys.executable, "-m", "repost.cli", "list", "--db", str(db), "--json", "--limit", "5"],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
            reads += 1
            if r.returncode != 0 or "locked" in r.stderr:
                reader_errors.append(r.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    wait_for(lambda: sum(len(l.answered) for l in loads) >= 600 and reads >= 5, 60, what="load and reads")
    stop.set()
    for load in loads:
        load.stop()
    reader.join(60)
    assert a.stop() == 0 and b.stop() == 0
    answered = set(loads[0].answered) | set(loads[1].answered)
    assert not answered - recorded_keys(db)
    assert not reader_errors, reader_errors[:1]
    assert "locked" not in a.output() + b.output()
    assert integrity(db) == "ok"


def test_replaying_a_batch_while_recording_continues(start_proxy, upstream, counting_upstream, tmp_path):
    proxy = start_proxy("--methods", "PUT")
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for i in range(20):
            c.put(f"{counting_upstream.url}/items/{i}", json={"i": i})  # PUT: idempotent, no consent needed
    assert proxy.stop() == 0
    proxy = start_proxy("--methods", "POST,PUT", db=proxy.db)
    load = Load(proxy.url, upstream.url, threads=2).start()
    result = repost("replay", "--db", str(proxy.db), "--method", "PUT", "--concurrency", "8", "--json")
    load.stop()
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 20
    assert counting_upstream.count() == 40
    assert proxy.stop() == 0
    assert not set(load.answered) - recorded_keys(proxy.db)


def _chattr(path, flag: str) -> bool:
    return subprocess.run(["chattr", flag, str(path)], capture_output=True).returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")
def test_a_database_that_stops_taking_writes_never_fails_traffic_and_recording_resumes(start_proxy, upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        c.post(f"{upstream.url}/before", json={})
        wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the first flow")
        wal = proxy.db.with_name(proxy.db.name + "-wal")
        if not (_chattr(wal, "+i") and _chattr(proxy.db, "+i")):
            pytest.skip("this file system has no immutable flag")
        try:
            for i in range(5):  # the proxy keeps serving while it cannot record
                assert c.post(f"{upstream.url}/during/{i}", json={}).status_code == 201
            wait_for(lambda: "NOT RECORDING" in proxy.output(), 10, what="the loud warning")
        finally:
            _chattr(proxy.db, "-i")
            _chattr(wal, "-i")
        c.post(f"{upstream.url}/after", json={})
    wait_for(lambda: count_flows(proxy.db) == 7, 15, what="every flow, once writes work again")
    # Said after the commit that worked: the rows can be readable a moment before the line is.
    wait_for(lambda: f"recording to {proxy.db} again" in proxy.output(), 10, what="the all-clear")
    assert proxy.stop() == 0
    paths = sorted(r["path"] for r in list_json(proxy.db, "--limit", "100"))
    assert paths == sorted(["/before", "/after"] + [f"/during/{i}" for i in range(5)])


def test_an_upstream_that_resets_mid_body(start_proxy, upstream):
    """The upstream promises 1,000 bytes, sends 100, and resets the connection."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]

    def serve():
        server.settimeout(10)
        try:
            conn, _ = server.accept()
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            conn.close()  # RST
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        try:
            r = c.post(f"http://127.0.0.1:{port}/reset", json={})
            assert r.status_code == 502  # mitmproxy had not started the response: it says what happened
        except httpx.HTTPError:
            pass  # or the client sees the connection end
        assert c.post(f"{upstream.url}/still-serving", json={}).status_code == 201
    t.join(10)
    server.close()
    wait_for(lambda: count_flows(proxy.db) == 2, 10, what="both flows")
    reset = next(r for r in list_json(proxy.db) if r["path"] == "/reset")
    assert reset["error"]
    assert "Traceback" not in proxy.output()


def test_an_older_schema_is_migrated_on_open(tmp_path):
    """A database made by the first release (m001 only) is brought up to date and keeps its rows."""
    from sqlite_utils import Database

    from repost.store.database import KNOWN_MIGRATIONS, open_database
    from repost.store.migrations import migrations

    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    migrations.apply(Database(conn), stop_before="m002_list_indexes_and_search")
    conn.execute(
        "INSERT INTO flows (flow_id, started_at, method, url, host, path) VALUES"
        " ('x', '2026-01-01T00:00:00.000Z', 'POST', 'http://a.test/old', 'a.test', '/old')"
    )
    conn.commit()
    conn.close()
    result = repost("list", "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    assert [r["path"] for r in json.loads(result.output)] == ["/old"]
    applied = [r[0] for r in sqlite3.connect(db).execute("SELECT name FROM _sqlite_migrations ORDER BY id")]
    assert applied == list(KNOWN_MIGRATIONS)
    open_database(db).close()
