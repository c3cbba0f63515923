"""Everyday care of a store (issue 17): delete, prune, record --retain.

Through the real commands; the size test builds 100,000 flows quickly (1,000 written
through the store's BatchWriter, the rest copies of those rows made by SQL)."""

import os
import sqlite3
import time

import pytest

from .helpers import count_flows, list_json, post_flow, repost, show_json, store_flows, wait_for
from .test_replay import run_on_a_terminal

JSON = {"content-type": "application/json"}


def flows(n, word="apple", start=0):
    return [post_flow(url=f"http://api.test/orders/{start + i}", body=b'{"note": "%s %d"}' % (word.encode(), i), headers=JSON,
                      response_body=b'{"ok": true}', response_headers=JSON) for i in range(n)]  # fmt: skip


def ids_in(db):
    return [f["id"] for f in list_json(db, "--limit", "100000")]


def fts_ok(db):
    conn = sqlite3.connect(db)
    try:
        conn.execute("INSERT INTO flows_fts (flows_fts, rank) VALUES ('integrity-check', 0)")
        return True
    finally:
        conn.close()


def test_delete_by_ids_deletes_at_once_and_says_how_many(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = store_flows(db, flows(3))
    result = repost("delete", str(a), str(c), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "deleted 2 flows" in result.stderr
    assert ids_in(db) == [b]


def test_delete_of_an_unknown_id_deletes_nothing(tmp_path):
    db = tmp_path / "r.db"
    a, b = store_flows(db, flows(2))
    result = repost("delete", str(a), "999", "--db", str(db))
    assert result.exit_code == 1
    assert "no flow with id 999; nothing deleted" in result.stderr
    assert ids_in(db) == [b, a]


def test_delete_needs_ids_or_filters(tmp_path):
    db = tmp_path / "r.db"
    store_flows(db, flows(1))
    result = repost("delete", "--db", str(db), "--yes")
    assert result.exit_code == 2
    assert count_flows(db) == 1


def test_delete_by_filters_without_consent_states_the_count_and_deletes_nothing(tmp_path):
    db = tmp_path / "r.db"
    store_flows(db, flows(3) + [post_flow(url="http://other.test/x", body=b"{}")])
    result = repost("delete", "--host", "api.test", "--db", str(db))
    assert result.exit_code == 3
    assert "delete 3 flows?" in result.stderr and "nothing deleted" in result.stderr
    assert count_flows(db) == 4


def test_delete_dry_run_names_the_flows_and_deletes_nothing(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = store_flows(db, flows(3))
    result = repost("delete", "--path", "/orders/1", "--dry-run", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert result.stdout == f"flow {b} POST http://api.test/orders/1\n"
    assert "1 flow would be deleted" in result.stderr
    assert count_flows(db) == 3


def test_delete_by_filters_with_yes(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = store_flows(db, flows(3))
    (other,) = store_flows(db, [post_flow(url="http://other.test/x", body=b"{}")])
    result = repost("delete", "--host", "api.test", "--yes", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "deleted 3 flows" in result.stderr
    assert ids_in(db) == [other]


@pytest.mark.parametrize("answer, code, left", [(b"n\n", 3, 2), (b"\x04", 3, 2), (b"y\n", 0, 0)])
def test_on_a_terminal_delete_asks_and_the_answer_rules(tmp_path, answer, code, left):
    db = tmp_path / "r.db"
    store_flows(db, flows(2))
    exit_code, screen = run_on_a_terminal(["delete", "--host", "api.test", "--db", str(db)], answer, {})
    assert "Delete 2 flows? [y/N]" in screen
    assert exit_code == code, screen
    assert count_flows(db) == left


def test_deleted_flows_leave_the_search_index(tmp_path):
    db = tmp_path / "r.db"
    kept = store_flows(db, flows(2, word="pear"))
    gone = store_flows(db, flows(3, word="plum", start=10))
    assert len(list_json(db, "--search", "plum")) == 3  # indexes them
    result = repost("delete", *map(str, gone[:2]), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert [f["id"] for f in list_json(db, "--search", "plum")] == [gone[2]]
    assert fts_ok(db)
    conn = sqlite3.connect(db)
    # Not only hidden by a join with flows: gone from the index itself.
    in_index = [r[0] for r in conn.execute("SELECT rowid FROM flows_fts WHERE flows_fts MATCH 'plum'")]
    assert in_index == [gone[2]]
    assert len(list_json(db, "--search", "pear")) == len(kept)


def test_a_flow_recorded_under_a_deleted_id_is_found_by_search(tmp_path):
    """flows has no AUTOINCREMENT: the newest flow deleted, the next one gets its id."""
    db = tmp_path / "r.db"
    (a, b) = store_flows(db, flows(2, word="plum"))
    assert len(list_json(db, "--search", "plum")) == 2
    assert repost("delete", str(b), "--db", str(db)).exit_code == 0
    (c,) = store_flows(db, flows(1, word="quince"))
    assert c == b  # SQLite gave the id again
    assert [f["id"] for f in list_json(db, "--search", "quince")] == [c]
    assert [f["id"] for f in list_json(db, "--search", "plum")] == [a]
    assert fts_ok(db)


def test_replays_of_a_deleted_flow_stay_and_its_tags_go(tmp_path):
    from repost.store.capture import snapshot
    from repost.store.writer import BatchWriter

    db = tmp_path / "r.db"
    (original,) = store_flows(db, flows(1))
    writer = BatchWriter(str(db), redactor=None, max_body=1 << 20)
    assert writer.write([snapshot(flows(1)[0], replay_of=original)])
    writer.close()
    replay_id = original + 1
    assert repost("tag", str(original), "keep-me", "--db", str(db)).exit_code == 0
    assert repost("delete", str(original), "--db", str(db)).exit_code == 0
    assert show_json(db, replay_id)["replay_of"] is None
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM tags").fetchone()[0] == 0


def _age(db, ids, days):
    conn = sqlite3.connect(db)
    with conn:
        conn.executemany(
            "UPDATE flows SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now', ?) WHERE id = ?",
            [(f"-{days} days", i) for i in ids],
        )
    conn.close()


def test_prune_counts_consent_and_keep_last(tmp_path):
    db = tmp_path / "r.db"
    old = store_flows(db, flows(5))
    new = store_flows(db, flows(2, start=5))
    _age(db, old, 40)
    refused = repost("prune", "--older-than", "30d", "--db", str(db))
    assert refused.exit_code == 3
    assert "delete 5 flows?" in refused.stderr
    assert count_flows(db) == 7
    dry = repost("prune", "--older-than", "30d", "--keep-last", "4", "--dry-run", "--db", str(db))
    assert dry.exit_code == 0 and "3 flows started before" in dry.stderr
    done = repost("prune", "--older-than", "30d", "--keep-last", "4", "--yes", "--db", str(db))
    assert done.exit_code == 0, done.output
    assert "deleted 3 flows" in done.stderr
    assert sorted(ids_in(db)) == old[3:] + new
    nothing = repost("prune", "--older-than", "30d", "--keep-last", "4", "--yes", "--db", str(db))
    assert nothing.exit_code == 0 and "nothing deleted" in nothing.stderr


def _hundred_thousand_flows(db):
    """1,000 flows through the store's own write path, copied by SQL to 100,000, half
    of them 60 days old. (Not indexed for search: the tests above show deleted flows
    leave the index; bench/prune.py times both together.)"""
    from repost.store.capture import make_snapshot
    from repost.store.writer import BatchWriter

    now = time.time()
    writer = BatchWriter(str(db), redactor=None, max_body=1 << 20)
    snaps = [
        make_snapshot(
            flow_id=f"seed-{i}", started=now - 1000 + i, method="POST", scheme="http", host="api.test", port=80,
            target=f"/orders/{i}", headers=[("content-type", "application/json")],
            body=b'{"order": %d, "item": "widget %d", "note": "lorem ipsum dolor sit amet"}' % (i, i),
            response=(201, "Created", "HTTP/1.1", [(b"content-type", b"application/json")], b'{"ok": true, "id": %d}' % i, now),
            error=None,
        )  # fmt: skip
        for i in range(1000)
    ]
    assert writer.write(snaps)
    writer.close()
    conn = sqlite3.connect(db)
    columns = [r[1] for r in conn.execute("PRAGMA table_info(flows)") if r[1] not in ("id", "flow_id", "started_at")]
    cols = ", ".join(columns)
    with conn:
        for copy in range(1, 100):
            age = "-60 days" if copy < 50 else "-0 days"
            conn.execute(
                f"INSERT INTO flows (flow_id, started_at, {cols}) SELECT flow_id || '-{copy}',"
                f" strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '{age}'), {cols} FROM flows WHERE id <= 1000"
            )
        conn.execute("UPDATE flows SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '-60 days') WHERE id <= 1000")
    conn.close()


def test_pruning_half_of_100000_flows_shrinks_the_file(tmp_path):
    db = tmp_path / "r.db"
    _hundred_thousand_flows(db)
    assert count_flows(db) == 100_000
    before = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
    result = repost("prune", "--older-than", "30d", "--yes", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "deleted 50,000 flows" in result.stderr
    assert count_flows(db) == 50_000
    after = os.path.getsize(db) + os.path.getsize(f"{db}-wal")
    assert after < before * 0.65, (before, after)
    assert "shrank" in result.stderr


def test_delete_on_an_older_database_says_how_to_give_the_space_back(tmp_path):
    """A file made before incremental vacuum: the space stays inside until --vacuum."""
    db = tmp_path / "r.db"
    ids = store_flows(db, flows(50))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA auto_vacuum = NONE")  # as repost made files before
    conn.execute("VACUUM")
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    conn.close()
    result = repost("delete", *map(str, ids[:40]), "--db", str(db))
    assert result.exit_code == 0 and "--vacuum gives it back" in result.stderr
    result = repost("delete", str(ids[40]), "--vacuum", "--db", str(db))
    assert result.exit_code == 0, result.output
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental from now on
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0


def test_record_retain_deletes_old_flows_while_idle(start_proxy, upstream, tmp_path):
    import httpx

    db = tmp_path / "rec.db"
    old = store_flows(db, flows(3))
    _age(db, old, 10)
    (recent,) = store_flows(db, flows(1, start=3))
    proxy = start_proxy("--retain", "7d", db=db)
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.post(f"{upstream.url}/orders", json={}).status_code == 201
    wait_for(lambda: count_flows(db) == 2, 10, what="old flows pruned")
    ids = ids_in(db)
    assert recent in ids and not set(old) & set(ids)
    # Said once the batch is done (its space handed back too), just after the rows went.
    wait_for(lambda: "deleted 3 flows" in proxy.output(), 10, what="the recorder to say so")


def test_record_retain_refuses_a_bad_duration(tmp_path):
    result = repost("record", "--retain", "soon", "--db", str(tmp_path / "x.db"))
    assert result.exit_code == 2
    assert "not a duration" in result.output
    assert not (tmp_path / "x.db").exists()


def test_flows_indexed_while_a_delete_works_out_their_text_leave_the_index_too(tmp_path, monkeypatch):
    """The writer indexes while idle: between the moment delete reads what is indexed
    and its transaction, more may have been. Those entries go too."""
    from repost.store import care
    from repost.store.database import open_database
    from repost.store.search import index_pending

    db = tmp_path / "r.db"
    ids = store_flows(db, flows(5, word="plum"))
    real = care._indexed_texts
    calls = []

    def then_the_writer_indexes(conn, chunk, upto):
        texts = real(conn, chunk, upto)
        if not calls:  # the first look: nothing indexed yet; then the writer indexes everything
            other = open_database(db)
            assert index_pending(other) == 5
            other.close()
        calls.append(upto)
        return texts

    monkeypatch.setattr(care, "_indexed_texts", then_the_writer_indexes)
    conn = open_database(db)
    assert care.delete_flows(conn, ids[:3]) == 3
    conn.close()
    monkeypatch.undo()
    assert calls[0] == 0 and calls[-1] == ids[-1]  # worked out again, inside the transaction
    assert fts_ok(db)
    raw = sqlite3.connect(db)
    assert [r[0] for r in raw.execute("SELECT rowid FROM flows_fts WHERE flows_fts MATCH 'plum' ORDER BY rowid")] == ids[3:]


def test_a_space_step_hands_back_as_many_pages_as_it_says(tmp_path):
    """``PRAGMA incremental_vacuum(N)`` frees one page per step of its statement: run with
    ``execute`` it freed one page, so ``record --retain``'s idle step gave back 4 pages
    where it meant 1,024, and a whole prune's space went back a transaction per page."""
    from repost.store import care
    from repost.store.database import open_database

    db = tmp_path / "r.db"
    store_flows(db, flows(400))
    conn = open_database(str(db))
    assert care.delete_flows(conn, ids_in(db)[:300]) == 300
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    assert free > 2, free
    care.give_back_space(conn, max_pages=2)  # one step of VACUUM_STEP_PAGES
    assert conn.execute("PRAGMA freelist_count").fetchone()[0] == max(0, free - care.VACUUM_STEP_PAGES)


def test_back_to_back_transactions_leave_a_waiting_writer_a_gap(tmp_path):
    """Between two of its transactions a delete pauses, so a writer's busy handler (which
    sleeps up to 100 ms between tries) gets the lock: a writer blocked behind a batch
    commits before the next batch starts."""
    import threading

    from repost.store import care
    from repost.store.database import open_database

    db = tmp_path / "r.db"
    store_flows(db, flows(50))
    conn = open_database(str(db))
    other = open_database(str(db))
    order = []
    waited = threading.Event()

    def writer():
        waited.set()
        other.execute("INSERT INTO tags (flow, name) VALUES (1, 'w')")  # waits for the lock
        other.commit()
        order.append("writer")

    conn.execute("BEGIN IMMEDIATE")
    thread = threading.Thread(target=writer)
    thread.start()
    assert waited.wait(5)
    time.sleep(0.4)  # the writer's busy handler is now polling 100 ms apart
    conn.commit()
    care._let_others_write(held=0.4)
    conn.execute("BEGIN IMMEDIATE")
    order.append("next batch")
    conn.commit()
    thread.join(5)
    assert order == ["writer", "next batch"]
