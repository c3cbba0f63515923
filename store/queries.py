"""The reads behind ``list`` and ``show``: plain SQL on the ``flows`` table."""

import json
import sqlite3

from .errors import FlowNotFound, StoreError
from .headers import header, headers_of  # noqa: F401 (read with the rows this module returns)


class InvalidFilter(StoreError):
    pass

SUMMARY_COLUMNS = (
    "id", "started_at", "method", "url", "host", "path", "status", "duration_ms",
    "request_size", "response_size", "idempotency_key", "error", "replay_of",
)  # fmt: skip
# What the safety class needs besides: the request's headers and the head of its body
# (a GraphQL query is safe). Capped, so a list never reads whole large bodies.
SAFETY_COLUMNS = (
    "flows.request_headers", "flows.request_content_encoding", "substr(flows.request_body, 1, 65536) AS request_body",
    "flows.request_redacted",
)  # fmt: skip


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


def list_flows(conn: sqlite3.Connection, selection=None, limit: int | None = 50) -> list[dict]:
    """Summaries of the selected flows, newest first."""
    keep = SUMMARY_COLUMNS + ("request_headers", "request_content_encoding", "request_body", "request_redacted")
    if selection is not None and selection.filter_expr:
        return [{k: row[k] for k in keep} for row in select_full_flows(conn, selection, limit)]
    cols = ", ".join([f"flows.{c}" for c in SUMMARY_COLUMNS] + list(SAFETY_COLUMNS))
    page = " LIMIT ?" if limit is not None else ""
    tail = [limit] if limit is not None else []
    if selection is not None and selection.search:
        # Walk the full-text matches newest first and stop at --limit, instead of
        # collecting every match (a common word matches most flows).
        where, params = selection.where(search=False)
        extra = where.replace(" WHERE ", " AND ", 1)
        sql = (
            f"SELECT {cols} FROM flows_fts JOIN flows ON flows.id = flows_fts.rowid"
            f" WHERE flows_fts MATCH ?{extra} ORDER BY flows_fts.rowid DESC{page}"
        )
        return _dicts(conn.execute(sql, [selection.fts_query()] + params + tail))
    where, params = selection.where() if selection is not None else ("", [])
    if not where:
        return _dicts(conn.execute(f"SELECT {cols} FROM flows ORDER BY id DESC{page}", tail))
    # Few matches: find them by index, then sort just those. Many: walk the table
    # newest first and stop at --limit (sorting 300,000 index hits would not).
    probe = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM flows{where} LIMIT {FEW_MATCHES})", params)
    if probe.fetchone()[0] < FEW_MATCHES:
        sql = (
            f"SELECT {cols} FROM flows WHERE id IN"
            f" (SELECT id FROM flows{where} ORDER BY +id DESC{page}) ORDER BY id DESC"
        )
    else:
        sql = f"SELECT {cols} FROM flows NOT INDEXED{where} ORDER BY id DESC{page}"
    return _dicts(conn.execute(sql, params + tail))


FEW_MATCHES = 5000


def select_full_flows(conn: sqlite3.Connection, selection, limit: int | None = None, newest_first: bool = True):
    """Whole rows (bodies included) of the selected flows, ``--filter`` applied.

    Yields lazily, reading the candidates in pages, so a filter that matches
    early reads little.
    """
    where, params = selection.where()
    match = _compile_filter(selection.filter_expr) if selection.filter_expr else None
    order = "DESC" if newest_first else "ASC"
    found = 0
    cursor = conn.execute(f"SELECT * FROM flows{where} ORDER BY id {order}", params)
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values))
        if match is not None:
            from .flowmodel import row_to_flow

            if not match(row_to_flow(row)):
                continue
        yield row
        found += 1
        if limit is not None and found >= limit:
            return


def _compile_filter(expr: str):
    from mitmproxy import flowfilter

    try:
        return flowfilter.parse(expr)
    except ValueError as e:
        raise InvalidFilter(f"invalid filter expression {expr!r}: {e}") from None


SQLITE_INTEGER = range(-(2**63), 2**63)


def get_flow(conn: sqlite3.Connection, flow_id: int) -> dict:
    # An id SQLite cannot hold is no flow's (sqlite3 would raise OverflowError binding it).
    rows = _dicts(conn.execute("SELECT * FROM flows WHERE id = ?", [flow_id])) if flow_id in SQLITE_INTEGER else []
    if not rows:
        raise FlowNotFound(f"no flow with id {flow_id}")
    flow = rows[0]
    for side in ("request", "response"):
        flow[f"{side}_headers"] = headers_of(flow, side)
    flow["events"] = events_of(conn, flow)
    return flow


def replay_history(conn: sqlite3.Connection, ids: list[int]) -> dict[int, tuple[int, str]]:
    """{original id: (times replayed, when last)} for those of ``ids`` replayed before."""
    if not ids:
        return {}
    rows = conn.execute(
        f"SELECT replay_of, count(*), max(started_at) FROM flows WHERE replay_of IN ({', '.join('?' * len(ids))})"
        " GROUP BY replay_of",
        ids,
    )
    return {r[0]: (r[1], r[2]) for r in rows}


def ids_by_flow_id(conn: sqlite3.Connection, flow_ids: list[str]) -> dict[str, int]:
    rows = conn.execute(f"SELECT flow_id, id FROM flows WHERE flow_id IN ({', '.join('?' * len(flow_ids))})", flow_ids)
    return dict(rows.fetchall())


def replays_of(conn: sqlite3.Connection, flow_id: int) -> list[dict]:
    return _dicts(
        conn.execute(
            "SELECT id, started_at, scheme || '://' || host || CASE WHEN port IS NULL THEN '' ELSE ':' || port END AS target,"
            " status FROM flows WHERE replay_of = ? ORDER BY id",
            [flow_id],
        )
    )


def events_of(conn: sqlite3.Connection, flow: dict) -> list[dict]:
    """The SSE/NDJSON events of a streamed response, in order, parsed from its stored
    bytes. Flows recorded by repost before the events were parsed on read keep theirs
    in the ``events`` table, and those are read."""
    has_table = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'").fetchone()
    if has_table:
        rows = conn.execute(
            "SELECT t_ms, event, event_id AS id, data FROM events WHERE flow = ? ORDER BY seq", [flow["id"]]
        )
        stored = _dicts(rows)
        if stored:
            return stored
    from .sse import stored_events

    body, encoding = flow["response_body"], flow["response_content_encoding"]
    return [e.as_json() for e in stored_events(headers_of(flow, "response"), body, encoding, flow["response_chunks"])]


# What matching a request needs of a recording (serve): its request side, not its response.
_SERVE_COLUMNS = (
    "id, started_at, flow_id, method, url, scheme, host, port, path, query, http_version, request_headers,"
    " request_body, request_content_encoding, request_redacted, request_truncated, request_size, request_sha256"
)


def _serve_where(method: str, path: str | None, host: str | None, selection) -> tuple[str, list]:
    where, params = selection.where() if selection is not None else ("", [])
    clauses, extra = ["method = ?", "status IS NOT NULL"], [method]
    if path is not None:
        clauses.append("path = ?")
        extra.append(path)
    if host is not None:
        clauses.append("host = ?")
        extra.append(host)
    if not getattr(selection, "include_replays", False):
        clauses.append("replay_of IS NULL")
    ids = getattr(selection, "allowed_ids", None)  # a --filter's result, computed once
    if ids is not None:
        clauses.append("id IN (SELECT value FROM json_each(?))")
        extra.append(json.dumps(sorted(ids)))
    joined = " AND ".join(clauses)
    return (f"{where} AND {joined}" if where else f" WHERE {joined}"), params + extra


def serve_candidates(conn: sqlite3.Connection, method: str, path: str, host: str | None, selection=None, limit: int | None = None):
    """The recordings of one method and path (and host), in recorded order, request side only."""
    where, params = _serve_where(method, path, host, selection)
    page = f" LIMIT {int(limit)}" if limit else ""
    return _dicts(conn.execute(f"SELECT {_SERVE_COLUMNS} FROM flows{where} ORDER BY started_at, id{page}", params))


def closest_candidates(conn: sqlite3.Connection, method: str, path: str, host: str | None, selection, limit: int) -> list[dict]:
    """Recordings to compare a request that matched none with: the same method and path first,
    else the same method anywhere; the newest ``limit`` of them."""
    for p in (path, None):
        where, params = _serve_where(method, p, host, selection)
        rows = _dicts(conn.execute(f"SELECT {_SERVE_COLUMNS} FROM flows{where} ORDER BY id DESC LIMIT {int(limit)}", params))
        if rows:
            return rows
    return []


def flow_lines(conn: sqlite3.Connection, ids: list[int]):
    """(id, method, url) of each of ``ids``, in order: what delete's dry run names."""
    for start in range(0, len(ids), 1000):
        chunk = json.dumps(ids[start : start + 1000])
        yield from conn.execute("SELECT id, method, url FROM flows WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", [chunk])
