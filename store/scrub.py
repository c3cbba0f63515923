"""``repost redact apply``: flows already stored, redacted again under today's rules, and
the old bytes taken out of the file.

A flow is redacted as capture redacts it (capture.py's own functions): its URL's path and
query, every header value, each body (decoded when it holds something to redact, stored
decoded and redacted, as capture stores it), a stream's arrival times rebased, events an
older repost stored. Its search-index entry is removed with the text that was indexed and
the new text indexed; its serve match key made again.

Then nothing of the old values may be left anywhere in the files: the rewrite runs with
``secure_delete`` (freed cells and pages zeroed), the search index is merged into one
segment (a contentless FTS5 'delete' only adds a tombstone: the old terms stay in their
segment until a merge), the WAL is checkpointed and truncated, and a VACUUM rewrites the
file without its free pages (it goes through the WAL too: truncated once more).
"""

import json
import sqlite3

from .capture import WITHHELD, _encode_json, _redacted
from .errors import StoreError
from .headers import header
from .sizes import DEFAULT_MAX_BODY

BATCH = 200
_COLUMNS = (
    "id, url, path, query, request_headers, request_body, request_content_encoding, request_truncated,"
    " request_redacted, response_headers, response_body, response_content_encoding, response_truncated,"
    " response_redacted, response_chunks"
)
_ID_LIST = "(SELECT value FROM json_each(?))"


class ScrubBusy(StoreError):
    """Another process kept the write-ahead log from being emptied."""


def rescrub(conn: sqlite3.Connection, ids: list[int], redactor, *, dry_run: bool = False) -> int:
    """Redact the flows ``ids`` again; returns how many changed (with ``dry_run``: would change)."""
    changed = 0
    if not dry_run and conn.__class__ is sqlite3.Connection:
        conn.execute("PRAGMA secure_delete = ON")  # what the rewrite frees is zeroed, not left in free space
    for start in range(0, len(ids), BATCH):
        chunk = json.dumps(ids[start : start + BATCH])
        rows = conn.execute(f"SELECT {_COLUMNS} FROM flows WHERE id IN {_ID_LIST} ORDER BY id", [chunk]).fetchall()
        updates = [u for u in (_redo(row, redactor) for row in rows) if u is not None]
        events = _redo_events(conn, chunk, redactor)
        changed += len({u["id"] for u in updates} | {flow for flow, _, _ in events})
        if updates or events:
            if not dry_run:
                _write(conn, rows, updates, events)
    return changed


def _redo(row, redactor) -> dict | None:
    """The columns of one flow that redaction changes, or None when it changes nothing."""
    (flow_id, url, path, query, req_headers, req_body, req_enc, req_trunc, req_red,
     resp_headers, resp_body, resp_enc, resp_trunc, resp_red, chunks) = row  # fmt: skip
    new = {}
    if path is not None:
        new_path = redactor.path(path)
        new_query = redactor.query(query) if query else query
        if (new_path, new_query) != (path, query):
            query, new_query = query or "", new_query or ""
            sep = "?" if url.endswith(f"{path}?{query}") else ""
            tail = f"{path}{sep}{query}"
            if url.endswith(tail):  # as capture wrote it: scheme://authority, path, "?", query
                new["url"] = url[: len(url) - len(tail)] + new_path + sep + new_query
            else:
                new["url"] = redactor.url(url)
            new["path"], new["query"] = new_path, new_query
    elif url:
        new_url = redactor.url(url)
        if new_url != url:
            new["url"] = new_url
    for side, headers, body, enc, trunc, red in (
        ("request", req_headers, req_body, req_enc, req_trunc, req_red),
        ("response", resp_headers, resp_body, resp_enc, resp_trunc, resp_red),
    ):
        pairs = json.loads(headers) if headers else None
        if pairs:
            redone = [[k, redactor.header_value(k, v)] for k, v in pairs]
            if redone != pairs:
                new[f"{side}_headers"] = _encode_json(redone)
        if body and red != WITHHELD:
            ctype = header(pairs or [], "content-type") or ""
            try:
                stored, encoding, flag, cut = _redacted(bytes(body), enc, ctype, redactor, DEFAULT_MAX_BODY, bool(trunc))
            except Exception:  # a body redaction cannot read must not keep what it may hold (as capture)
                stored, encoding, flag, cut = b"", None, WITHHELD, False
            if flag and stored != bytes(body):
                new[f"{side}_body"] = stored
                new[f"{side}_content_encoding"] = encoding
                new[f"{side}_redacted"] = flag
                new[f"{side}_truncated"] = int(bool(trunc) or cut)
                if side == "response" and chunks:
                    new["response_chunks"] = _rebased(bytes(body), enc, stored, ctype, chunks)
    if not new:
        return None
    new["id"] = flow_id
    return new


def _rebased(was: bytes, encoding, stored: bytes, ctype: str, chunks: str) -> str | None:
    from .sse import rebase_chunks

    if encoding or not stored:
        return None
    rebased = rebase_chunks(was, stored, ctype, tuple(tuple(c) for c in json.loads(chunks)))
    return _encode_json(rebased) if rebased else None


def _redo_events(conn: sqlite3.Connection, chunk: str, redactor) -> list[tuple[int, int, str]]:
    """(flow, event id, new data) of the events an older repost stored for these flows."""
    try:
        rows = conn.execute(f"SELECT flow, id, data FROM events WHERE flow IN {_ID_LIST}", [chunk]).fetchall()
    except sqlite3.OperationalError:
        return []
    out = []
    for flow, event_id, data in rows:
        new = redactor.body(data.encode("utf-8", "surrogateescape"), "")
        if new is not None:
            out.append((flow, event_id, new.decode("utf-8", "surrogateescape")))
    return out


def _write(conn: sqlite3.Connection, rows, updates: list[dict], events: list) -> None:
    """One batch in one transaction: the index entries out with their old text, the rows
    rewritten, the entries in with the new text, the match keys made again."""
    from .matching import default_key, keyed_upto
    from .queries import _SERVE_COLUMNS
    from .search import _text, index_docs, indexed_upto, unindex_docs

    old = {r[0]: r for r in rows}
    ids = [u["id"] for u in updates]
    conn.execute("BEGIN IMMEDIATE")
    try:
        upto = indexed_upto(conn)
        indexed = [i for i in ids if i <= upto]
        unindex_docs(conn, [(i, _text(old[i][5], old[i][6], old[i][4]), _text(old[i][10], old[i][11], old[i][9])) for i in indexed])
        for u in updates:
            columns = [c for c in u if c != "id"]
            conn.execute(
                f"UPDATE flows SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?", [*(u[c] for c in columns), u["id"]]
            )
        conn.executemany("UPDATE events SET data = ? WHERE id = ?", [(data, event_id) for _, event_id, data in events])
        if indexed:
            fresh = conn.execute(
                "SELECT id, request_body, request_content_encoding, request_headers, response_body,"
                f" response_content_encoding, response_headers FROM flows WHERE id IN {_ID_LIST}",
                [json.dumps(indexed)],
            ).fetchall()
            index_docs(conn, [(r[0], _text(r[1], r[2], r[3]), _text(r[4], r[5], r[6])) for r in fresh])
        keyed = [i for i in ids if i <= keyed_upto(conn)]
        if keyed:
            cur = conn.execute(f"SELECT {_SERVE_COLUMNS} FROM flows WHERE id IN {_ID_LIST}", [json.dumps(keyed)])
            names = [d[0] for d in cur.description]
            conn.executemany(
                "UPDATE flows SET request_match = ? WHERE id = ?",
                [(default_key(None, dict(zip(names, r))), r[0]) for r in cur.fetchall()],
            )
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def purge_old_bytes(conn: sqlite3.Connection) -> None:
    """Leave no old value in the file, its free pages or its WAL (after ``rescrub``)."""
    if conn.__class__ is not sqlite3.Connection:
        # PostgreSQL: the tables rewritten from their live rows (old row versions gone); the
        # server's WAL segments and backups are its administrator's to expire.
        for table in ("flows", "flows_fts", "events"):
            conn.execute_raw(f"VACUUM FULL {table}")
        return
    with conn:
        # A contentless index keeps deleted terms until its segments merge: merge them all.
        conn.execute("INSERT INTO flows_fts (flows_fts) VALUES ('optimize')")
    _truncate_wal(conn)
    conn.execute("VACUUM")  # the file rebuilt from live rows: no free page keeps anything
    _truncate_wal(conn)


def _truncate_wal(conn: sqlite3.Connection) -> None:
    busy, _, _ = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy:
        raise ScrubBusy(
            "the write-ahead log could not be emptied: another process is reading the database "
            "(a long export or search?); the flows are redacted, but old bytes may remain in the "
            "-wal file until you run `repost redact apply` again"
        )
