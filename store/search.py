"""Full-text search over decoded bodies (SQLite FTS5), indexed lazily.

Indexing decodes every body (gzip, br, charsets), which is too much work for the
proxy's path; the writer process indexes while idle, and ``list --search``
indexes whatever is left before it searches.
"""

import json
import sqlite3

from .bodies import decode_content, to_text
from .headers import header

INDEX_CAP = 1024 * 1024  # index at most the first MB of each decoded body
META_KEY = "fts_indexed_upto"


def indexed_upto(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM repost_meta WHERE key = ?", [META_KEY]).fetchone()
    return int(row[0]) if row else 0


def pending(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM flows WHERE id > ? LIMIT 1", [indexed_upto(conn)]).fetchone() is not None


def _text(body, encoding, headers_json) -> str:
    if not body:
        return ""
    ctype = header(json.loads(headers_json or "[]"), "content-type") or ""
    decoded = decode_content(bytes(body), encoding, cap=INDEX_CAP)
    text, _ = to_text(decoded.data[:INDEX_CAP], ctype)
    return text or ""


def index_pending(conn: sqlite3.Connection, batch: int = 2000, limit: int | None = None) -> int:
    """Index flows not indexed yet, ``batch`` per transaction; returns how many were indexed."""
    done = 0
    while limit is None or done < limit:
        # IMMEDIATE: two indexers (the writer, a search) must not both take the same rows.
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT id, request_body, request_content_encoding, request_headers,"
                " response_body, response_content_encoding, response_headers"
                " FROM flows WHERE id > ? ORDER BY id LIMIT ?",
                [indexed_upto(conn), batch],
            ).fetchall()
            if rows:
                docs = [(r[0], _text(r[1], r[2], r[3]), _text(r[4], r[5], r[6])) for r in rows]
                conn.executemany("INSERT INTO flows_fts (rowid, request_body, response_body) VALUES (?, ?, ?)", docs)
                conn.execute(
                    "INSERT INTO repost_meta (key, value) VALUES (?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [META_KEY, str(rows[-1][0])],
                )
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if not rows:
            break
        done += len(rows)
    return done
