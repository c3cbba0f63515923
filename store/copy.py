"""Moving recordings between stores (``repost copy --from A --to B``): SQLite to PostgreSQL,
back, or between two of either. Every field goes as it is (bodies byte for byte, headers,
redaction marks, stream chunks), with the flow's tags, its stored events, the link from a
replay to its original, and the stores' rules and redaction rules.

A flow's identity is its ``flow_id`` (mitmproxy's id for it, kept by imports): a flow whose
flow_id the target holds already is skipped, so copying again, or copying the other way,
copies only what is new. The target's ids are its own: a replay's link is carried by its
original's flow_id. Pages of ``PAGE`` flows, each in one transaction: a copy cut off can be
run again and goes on where it stopped.
"""

import json
from typing import NamedTuple

from .capture import COLUMNS

PAGE = 200
# Every column of a flow but its id (the target gives its own): what capture writes, and the
# match key serve computes lazily (copied, so serve need not compute it again).
FLOW_COLUMNS = tuple(c for c in COLUMNS if c != "replay_of") + ("request_match",)
_INSERT = f"INSERT INTO flows ({', '.join(FLOW_COLUMNS)}) VALUES ({', '.join('?' * len(FLOW_COLUMNS))})"


class Copied(NamedTuple):
    flows: int
    skipped: int
    rules: int
    redact_rules: int


def copy_store(source_conn, target_conn, on_page=None) -> Copied:
    """Copy what ``target_conn`` lacks from ``source_conn``; both open stores."""
    from .queries import ids_by_flow_id

    rules = _copy_rules(source_conn, target_conn)
    redact_rules = _copy_redact_rules(source_conn, target_conn)
    copied = skipped = 0
    links = []  # (target id, the original's flow_id): set once every flow is in
    after = 0
    cols = ", ".join(FLOW_COLUMNS)
    while True:
        page = source_conn.execute(
            f"SELECT id, replay_of, {cols} FROM flows WHERE id > ? ORDER BY id LIMIT ?", [after, PAGE]
        ).fetchall()
        if not page:
            break
        after = page[-1][0]
        flow_ids = [r[2] for r in page if r[2] is not None]
        present = ids_by_flow_id(target_conn, flow_ids) if flow_ids else {}
        originals = _flow_ids_of(source_conn, [r[1] for r in page if r[1] is not None])
        new_ids = {}  # source id -> target id
        with target_conn:
            for row in page:
                source_id, replay_of, values = row[0], row[1], row[2:]
                if values[0] is not None and values[0] in present:
                    skipped += 1
                    continue
                target_id = target_conn.execute(_INSERT, values).lastrowid
                if target_id is None:  # another writer stored it meanwhile (PostgreSQL's ON CONFLICT)
                    skipped += 1
                    continue
                new_ids[source_id] = target_id
                if replay_of is not None and originals.get(replay_of) is not None:
                    links.append((target_id, originals[replay_of]))
                copied += 1
            if new_ids:
                _copy_tags(source_conn, target_conn, new_ids)
                _copy_events(source_conn, target_conn, new_ids)
        if on_page is not None:
            on_page(copied, skipped)
    if links:
        with target_conn:
            found = ids_by_flow_id(target_conn, sorted({flow_id for _, flow_id in links}))
            target_conn.executemany(
                "UPDATE flows SET replay_of = ? WHERE id = ?",
                [(found[flow_id], target_id) for target_id, flow_id in links if flow_id in found],
            )
    return Copied(copied, skipped, rules, redact_rules)


def _flow_ids_of(conn, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = conn.execute("SELECT id, flow_id FROM flows WHERE id IN (SELECT value FROM json_each(?))", [json.dumps(sorted(set(ids)))])
    return dict(rows.fetchall())


def _copy_tags(source_conn, target_conn, new_ids: dict[int, int]) -> None:
    rows = source_conn.execute(
        "SELECT flow, name FROM tags WHERE flow IN (SELECT value FROM json_each(?))", [json.dumps(sorted(new_ids))]
    ).fetchall()
    if rows:
        target_conn.executemany("INSERT OR IGNORE INTO tags (flow, name) VALUES (?, ?)", [(new_ids[f], n) for f, n in rows])


def _copy_events(source_conn, target_conn, new_ids: dict[int, int]) -> None:
    """Events an earlier repost stored in the ``events`` table (newer ones are parsed from the body)."""
    rows = source_conn.execute(
        "SELECT flow, seq, t_ms, event, event_id, data, retry FROM events WHERE flow IN (SELECT value FROM json_each(?)) ORDER BY id",
        [json.dumps(sorted(new_ids))],
    ).fetchall()
    if rows:
        target_conn.executemany(
            "INSERT INTO events (flow, seq, t_ms, event, event_id, data, retry) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(new_ids[r[0]], *r[1:]) for r in rows],
        )


def _copy_rules(source_conn, target_conn) -> int:
    have = {tuple(r) for r in target_conn.execute("SELECT kind, method, url_glob FROM rules")}
    new = [r for r in source_conn.execute("SELECT kind, method, url_glob, created_at FROM rules ORDER BY id") if tuple(r[:3]) not in have]
    if new:
        with target_conn:
            target_conn.executemany("INSERT INTO rules (kind, method, url_glob, created_at) VALUES (?, ?, ?, ?)", new)
    return len(new)


def _copy_redact_rules(source_conn, target_conn) -> int:
    have = {tuple(r) for r in target_conn.execute("SELECT kind, value FROM redact_rules")}
    new = [r for r in source_conn.execute("SELECT kind, value, created_at FROM redact_rules ORDER BY id") if tuple(r[:2]) not in have]
    if new:
        with target_conn:
            target_conn.executemany("INSERT INTO redact_rules (kind, value, created_at) VALUES (?, ?, ?)", new)
    return len(new)
