"""Everyday care of a store: deleting flows (``delete``, ``prune``, ``record --retain``)
and giving the space back.

Deleting runs in batches, one short write transaction each (sized to hold the
write lock about ``HOLD_SECONDS``), so a recorder writing at the same time (WAL,
busy_timeout) waits a fraction of a second at most, never for the whole job.

A deleted flow leaves every table that refers to it:
- ``flows_fts``: a contentless FTS5 index (SQLite 3.40 here has no
  ``contentless_delete``), so an entry is removed with FTS5's 'delete' command and
  the very text that was indexed, worked out again from the stored bytes
  (store/search.py ``_text`` is deterministic). Only flows already indexed have an
  entry; the decoding happens before the write lock is taken.
- ``events`` (streams stored by an older repost) and ``tags``: deleted with it.
- Replays of a deleted flow are kept, as flows in their own right, with
  ``replay_of`` set to NULL (SQL's ON DELETE SET NULL): a replay is a recording of
  what a server answered, often the more recent one, and pruning by age would
  otherwise take new flows with old ones.

Deleting the newest flows lets SQLite give their ids to the next flows (``flows``
has no AUTOINCREMENT); the search index's high-water mark is lowered to match, so
such flows are indexed like any other.
"""

import json
import sqlite3
import time

from .database import lower_upto_marks
from .search import _text, indexed_upto

BATCH = 1000  # flows in the first transaction; then sized to hold the lock about HOLD_SECONDS
# A batch's cost is mostly fixed on a large store: deleting rewrites a page of each index
# whose order is not the id's (flow_id, request_match, path) per flow, up to the whole
# index. Below a few hundred flows a batch is barely quicker, and many more are needed
# (measured at 1,000,000 flows: 250-flow batches deleted ~900 flows/s, 3,000-flow ones ~4,800/s).
MIN_BATCH, MAX_BATCH = 500, 50_000
HOLD_SECONDS = 0.4  # a recorder writing meanwhile waits about this long at most
CHECKPOINT_WAIT_MS = 200
VACUUM_STEP_PAGES = 256  # 8 MB of 32 KB pages per transaction
YIELD_SECONDS = 0.1  # the longest pause between two batches (see _let_others_write)
TRUNCATE_LEFT_PAGES = 64  # a TRUNCATE checkpoint only when at most this much is left to copy

_ID_LIST = "(SELECT value FROM json_each(?))"


def selected_ids(conn: sqlite3.Connection, selection) -> list[int]:
    """Ids of the flows a selection names, oldest first (``--filter`` applied)."""
    if selection.search:
        from .search import index_pending

        index_pending(conn)
    if selection.filter_expr:
        from .queries import select_full_flows

        return [row["id"] for row in select_full_flows(conn, selection, newest_first=False)]
    where, params = selection.where()
    return [r[0] for r in conn.execute(f"SELECT id FROM flows{where} ORDER BY id", params)]


def missing_ids(conn: sqlite3.Connection, ids: list[int]) -> list[int]:
    from .queries import SQLITE_INTEGER

    usable = [i for i in ids if i in SQLITE_INTEGER]
    found = {r[0] for r in conn.execute(f"SELECT id FROM flows WHERE id IN {_ID_LIST}", [json.dumps(usable)])}
    return [i for i in ids if i not in found]


def prunable_ids(conn: sqlite3.Connection, before: str, keep_last: int = 0, limit: int | None = None) -> list[int]:
    """Flows started before ``before``, but never the ``keep_last`` most recently started."""
    sql = "SELECT id FROM flows WHERE started_at < ?"
    params: list = [before]
    if keep_last:
        sql += " AND id NOT IN (SELECT id FROM flows ORDER BY started_at DESC, id DESC LIMIT ?)"
        params.append(keep_last)
    sql += " ORDER BY started_at, id"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return [r[0] for r in conn.execute(sql, params)]


def delete_flows(conn: sqlite3.Connection, ids: list[int], batch: int = BATCH, on_batch=None) -> int:
    """Delete the flows ``ids`` (and what refers to them); returns how many went.

    Each batch is one transaction, sized to hold the write lock about
    ``HOLD_SECONDS``: a batch rewrites every page of the indexes whose order is not
    the id's (flow_id, path) it touches, and on a large store that is most of them
    whatever the batch's size, so larger batches cost little more and save many
    rewrites; on a small store, small batches are as quick."""
    from concurrent.futures import ThreadPoolExecutor

    if conn.__class__ is not sqlite3.Connection:
        return _delete_pg(conn, ids, on_batch)
    # As the recorder commits: a killed process loses nothing committed, and each
    # batch's commit skips an fsync (the WAL is synced at checkpoints).
    conn.execute("PRAGMA synchronous = NORMAL")
    has_events = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
    if not ids:
        return 0
    # The next batch's indexed text is worked out (Python, holding the GIL) on a
    # thread with its own connection while this batch's SQL runs (SQLite lets go of
    # the GIL): the two overlap on two cores.
    path = conn.execute("PRAGMA database_list").fetchone()[2]
    reader = sqlite3.connect(path, check_same_thread=False)
    taken = 0

    def take(n: int) -> str | None:
        nonlocal taken
        part = ids[taken : taken + n]
        taken += len(part)
        return json.dumps(part) if part else None

    deleted = 0
    try:
        with ThreadPoolExecutor(max_workers=1) as pool:
            chunk = take(batch)
            upcoming = pool.submit(_indexed_texts, reader, chunk, indexed_upto(conn))
            while chunk is not None:
                texts = upcoming.result()
                after = take(batch)
                if after is not None:
                    upcoming = pool.submit(_indexed_texts, reader, after, indexed_upto(conn))
                began = time.monotonic()
                count = _delete_batch(conn, chunk, texts, has_events)
                held = time.monotonic() - began
                deleted += count
                if on_batch is not None:
                    on_batch(count)
                if held < HOLD_SECONDS / 2:
                    batch = min(batch * 2, MAX_BATCH)
                elif held > HOLD_SECONDS:
                    batch = max(int(batch * HOLD_SECONDS / held), MIN_BATCH)
                chunk = after
                # The batch's pages are copied into the file now and the log started
                # again: with a recorder committing between batches the log is never wholly
                # copied when a transaction begins, so SQLite never restarts it on its own
                # (measured: 2.4 GB of log after 30,000 of 1,000,000 flows, every read
                # slower, and a final checkpoint that held the recorder 3.7 s).
                _checkpoint(conn)
                if chunk is not None:
                    _let_others_write(held)
    finally:
        reader.close()
    return deleted


def _let_others_write(held: float) -> None:
    """A pause between two write transactions, so that a recorder waiting for the lock gets it.

    SQLite's busy handler sleeps between tries, up to 100 ms apart once it has waited a
    while; taking the lock again at once starves it (measured: a writer kept out 11 s,
    then NOT RECORDING, by back-to-back vacuum steps). A short job leaves a gap as short."""
    time.sleep(min(YIELD_SECONDS, max(0.002, held / 2)))


def _delete_batch(conn: sqlite3.Connection, chunk: str, texts: dict, has_events) -> int:
    """One batch, one transaction; ``texts``: the indexed text of those already known."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        upto = indexed_upto(conn)
        late = [i for i in json.loads(chunk) if i <= upto and i not in texts]
        if late:  # indexed since their text was worked out: those too
            texts.update(_indexed_texts(conn, json.dumps(late), upto))
        conn.executemany(
            "INSERT INTO flows_fts (flows_fts, rowid, request_body, response_body) VALUES ('delete', ?, ?, ?)",
            [(i, *t) for i, t in texts.items() if i <= upto],
        )
        if has_events:
            conn.execute(f"DELETE FROM events WHERE flow IN {_ID_LIST}", [chunk])
        conn.execute(f"DELETE FROM tags WHERE flow IN {_ID_LIST}", [chunk])
        conn.execute(f"UPDATE flows SET replay_of = NULL WHERE replay_of IN {_ID_LIST}", [chunk])
        count = conn.execute(f"DELETE FROM flows WHERE id IN {_ID_LIST}", [chunk]).rowcount
        newest = conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0]
        lower_upto_marks(conn, newest)  # the next flows may get the deleted ids: index and key them
        conn.commit()
    except BaseException:
        conn.rollback()
        raise
    return count


def _delete_pg(conn, ids: list[int], on_batch=None) -> int:
    """PostgreSQL: its search index is a plain table, its writers do not wait for each other
    (MVCC), and its ids are never given again: a batch is five plain statements."""
    deleted = 0
    for start in range(0, len(ids), BATCH):
        chunk = json.dumps(ids[start : start + BATCH])
        with conn:
            for sql in (
                f"DELETE FROM flows_fts WHERE id IN {_ID_LIST}",
                f"DELETE FROM events WHERE flow IN {_ID_LIST}",
                f"DELETE FROM tags WHERE flow IN {_ID_LIST}",
                f"UPDATE flows SET replay_of = NULL WHERE replay_of IN {_ID_LIST}",
            ):
                conn.execute(sql, [chunk])
            count = conn.execute(f"DELETE FROM flows WHERE id IN {_ID_LIST}", [chunk]).rowcount
        deleted += count
        if on_batch is not None:
            on_batch(count)
    return deleted


def _indexed_texts(conn: sqlite3.Connection, chunk: str, upto: int) -> dict[int, tuple[str, str]]:
    """The text the search index holds for those of the flows in ``chunk`` it has indexed."""
    rows = conn.execute(
        "SELECT id, request_body, request_content_encoding, request_headers,"
        " response_body, response_content_encoding, response_headers"
        f" FROM flows WHERE id IN {_ID_LIST} AND id <= ?",
        [chunk, upto],
    ).fetchall()
    return {r[0]: (_text(r[1], r[2], r[3]), _text(r[4], r[5], r[6])) for r in rows}


def file_size(conn: sqlite3.Connection) -> int:
    if conn.__class__ is not sqlite3.Connection:  # PostgreSQL: the database's size on the server
        return conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return conn.execute("PRAGMA page_count").fetchone()[0] * page_size


def free_bytes(conn: sqlite3.Connection) -> int:
    if conn.__class__ is not sqlite3.Connection:
        return 0
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    return conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size


def incremental(conn: sqlite3.Connection) -> bool:
    return conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2


def give_back_space(conn: sqlite3.Connection, vacuum: bool = False, max_pages: int | None = None) -> bool:
    """Hand the free pages left by deleted flows back to the file system.

    A database made by this repost (auto_vacuum=INCREMENTAL) does it a step at a
    time, each step a short transaction. An older one needs a VACUUM, which rewrites
    the whole file and holds the write lock meanwhile: only when asked (``vacuum``);
    it also switches the file to incremental mode for next time. False when the
    space stays inside the file (reused by new flows)."""
    if conn.__class__ is not sqlite3.Connection:
        return True  # PostgreSQL: its autovacuum makes the space reusable; the server's own care
    if incremental(conn):
        freed = 0
        while conn.execute("PRAGMA freelist_count").fetchone()[0] and (max_pages is None or freed < max_pages):
            # The pragma frees one page per step of its statement, and execute() steps once
            # (the statement declares no columns): executescript steps it to the end.
            began = time.monotonic()
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES})")
            freed += VACUUM_STEP_PAGES
            _let_others_write(time.monotonic() - began)
        _checkpoint(conn)
        return True
    if not vacuum:
        return False
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("VACUUM")
    _checkpoint(conn)
    return True


def _checkpoint(conn: sqlite3.Connection) -> None:
    # In WAL mode the file shrinks when the log is copied back. PASSIVE copies what
    # it can without waiting for anyone. TRUNCATE then empties the log, but it holds
    # the write lock while it waits for readers (an export, say): so it waits
    # ``CHECKPOINT_WAIT_MS`` at most, and a recorder behind it no longer than that.
    # What is left happens at the next checkpoint.
    _, in_log, copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    if in_log - copied > TRUNCATE_LEFT_PAGES:
        # Frames PASSIVE could not copy (a reader still on them): a TRUNCATE would copy
        # them holding the write lock, and a recorder would wait seconds (measured 4.4 s
        # after a prune of 100,000 of 1,000,000 flows). A later checkpoint gets them.
        return
    timeout = conn.execute("PRAGMA busy_timeout").fetchone()[0]
    conn.execute(f"PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}")
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.execute(f"PRAGMA busy_timeout = {int(timeout)}")


def duration_seconds(text: str) -> float:
    """``7d``, ``12h``, ``1h30m`` as seconds (``record --retain``)."""
    import re

    from .selection import _DURATION, _UNITS

    parts = _DURATION.findall(text)
    if not parts or "".join(f"{n}{u}" for n, u in parts).lower() != re.sub(r"\s+", "", text).lower():
        raise ValueError(f"{text!r} is not a duration (30m, 12h, 7d)")
    seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"{text!r}: a retention must be longer than nothing")
    return seconds


def prune_step(conn: sqlite3.Connection, before: str, budget: int = BATCH) -> int:
    """At most ``budget`` of the oldest flows started before ``before``, deleted, and
    their space handed back: the recorder's writer calls this while idle."""
    ids = prunable_ids(conn, before, limit=budget)
    if not ids:
        return 0
    deleted = delete_flows(conn, ids)
    give_back_space(conn, max_pages=4 * VACUUM_STEP_PAGES)
    return deleted
