"""The reads behind ``list`` and ``show``: plain SQL on the ``flows`` table."""

import json
import sqlite3

from .errors import FlowNotFound

SUMMARY_COLUMNS = (
    "id", "started_at", "method", "url", "host", "path", "status", "duration_ms",
    "request_size", "response_size", "idempotency_key", "error", "replay_of",
)  # fmt: skip


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def list_flows(conn: sqlite3.Connection, limit: int | None = 50) -> list[dict]:
    """Newest first."""
    sql = f"SELECT {', '.join(SUMMARY_COLUMNS)} FROM flows ORDER BY id DESC"
    params: list = []
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    return _dicts(conn.execute(sql, params))


def get_flow(conn: sqlite3.Connection, flow_id: int) -> dict:
    rows = _dicts(conn.execute("SELECT * FROM flows WHERE id = ?", [flow_id]))
    if not rows:
        raise FlowNotFound(f"no flow with id {flow_id}")
    flow = rows[0]
    for side in ("request", "response"):
        raw = flow.get(f"{side}_headers")
        flow[f"{side}_headers"] = json.loads(raw) if raw else []
    return flow


def replays_of(conn: sqlite3.Connection, flow_id: int) -> list[dict]:
    return _dicts(
        conn.execute(
            "SELECT id, started_at, scheme || '://' || host || CASE WHEN port IS NULL THEN '' ELSE ':' || port END AS target,"
            " status FROM flows WHERE replay_of = ? ORDER BY id",
            [flow_id],
        )
    )
