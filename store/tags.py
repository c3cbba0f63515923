"""Tags: names a user gives flows (``repost tag``), kept in the ``tags`` table."""

import json
import sqlite3

MAX_LENGTH = 100


def check_name(name: str) -> str:
    """A tag is one printable word-ish name: no control characters, no commas (lists
    show them comma-separated), not blank."""
    if not name.strip() or len(name) > MAX_LENGTH or not name.isprintable() or "," in name:
        raise ValueError(f"{name!r} is not a tag name: printable text without commas, 1 to {MAX_LENGTH} characters")
    return name


def add_tag(conn: sqlite3.Connection, ids: list[int], name: str) -> int:
    """Tag the flows ``ids``; returns how many were not tagged so before."""
    with conn:
        cur = conn.executemany("INSERT OR IGNORE INTO tags (flow, name) VALUES (?, ?)", [(i, name) for i in ids])
    return cur.rowcount


def remove_tag(conn: sqlite3.Connection, ids: list[int], name: str) -> int:
    with conn:
        cur = conn.execute(
            "DELETE FROM tags WHERE name = ? AND flow IN (SELECT value FROM json_each(?))", [name, json.dumps(ids)]
        )
    return cur.rowcount


def tags_of(conn: sqlite3.Connection, ids: list[int]) -> dict[int, list[str]]:
    """{flow id: [tag, ...]} for those of ``ids`` that have tags, names sorted."""
    out: dict[int, list[str]] = {}
    if not ids:
        return out
    rows = conn.execute(
        "SELECT flow, name FROM tags WHERE flow IN (SELECT value FROM json_each(?)) ORDER BY flow, name",
        [json.dumps(ids)],
    )
    for flow, name in rows:
        out.setdefault(flow, []).append(name)
    return out


def attach_tags(conn: sqlite3.Connection, rows: list[dict]) -> list[dict]:
    """Each row with its ``tags`` (a list, empty when none)."""
    found = tags_of(conn, [r["id"] for r in rows])
    for r in rows:
        r["tags"] = found.get(r["id"], [])
    return rows


def with_tags(conn: sqlite3.Connection, rows, page: int = 500):
    """``rows`` (an iterable of flow dicts) with their tags, looked up a page at a time."""
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= page:
            yield from attach_tags(conn, batch)
            batch = []
    yield from attach_tags(conn, batch)
