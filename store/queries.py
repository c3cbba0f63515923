"""The reads behind ``list`` and ``show``: plain SQL on the ``flows`` table."""

import json
import sqlite3

from .errors import FlowNotFound, StoreError


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
)  # fmt: skip


def _dicts(cursor: sqlite3.Cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor]


# Newest first: by the time a flow started, the id breaking ties. Ids alone are not
# time order: an import stores old flows under new ids. idx_flows_started_at ends in
# the rowid, so it is this order read backwards (tests/test_list.py checks the plan).
NEWEST_FIRST = "ORDER BY started_at DESC, id DESC"
OLDEST_FIRST = "ORDER BY started_at, id"


def list_flows(conn: sqlite3.Connection, selection=None, limit: int | None = 50) -> list[dict]:
    """Summaries of the selected flows, newest first."""
    keep = SUMMARY_COLUMNS + ("request_headers", "request_content_encoding", "request_body")
    _index_for(conn, selection)
    if selection is not None and selection.needs_bodies():
        return [{k: row[k] for k in keep} for row in select_full_flows(conn, selection, limit)]
    cols = ", ".join([f"flows.{c}" for c in SUMMARY_COLUMNS] + list(SAFETY_COLUMNS))
    page = " LIMIT ?" if limit is not None else ""
    tail = [limit] if limit is not None else []
    where, params = selection.where() if selection is not None else ("", [])
    if not where:
        return _dicts(conn.execute(f"SELECT {cols} FROM flows {NEWEST_FIRST}{page}", tail))
    # Few matches: find them by their index (or the full-text index), then sort just
    # those. Many: walk the time index newest first and stop at --limit (sorting
    # 300,000 hits would not).
    probe = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM flows{where} LIMIT {FEW_MATCHES})", params)
    if probe.fetchone()[0] < FEW_MATCHES:
        sql = f"SELECT {cols} FROM flows WHERE id IN (SELECT id FROM flows{where}) {NEWEST_FIRST}{page}"
    else:
        sql = f"SELECT {cols} FROM flows INDEXED BY idx_flows_started_at{where} {NEWEST_FIRST}{page}"
    return _dicts(conn.execute(sql, params + tail))


FEW_MATCHES = 5000


def _index_for(conn: sqlite3.Connection, selection) -> None:
    """Before a search, index whatever the recorder's writer has not indexed yet."""
    if selection is not None and selection.search is not None:
        from .search import index_pending

        index_pending(conn)


def has_flows(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM flows LIMIT 1").fetchone() is not None


def select_full_flows(conn: sqlite3.Connection, selection, limit: int | None = None, newest_first: bool = True):
    """Whole rows (bodies included) of the selected flows, ``--filter`` and searched
    phrases applied.

    Yields lazily, reading the candidates in pages, so a filter that matches
    early reads little.
    """
    _index_for(conn, selection)
    where, params = selection.where()
    match = _compile_filter(selection.filter_expr) if selection.filter_expr else None
    check = selection.needs_bodies()
    found = 0
    if limit is not None and limit <= 0:
        return
    cursor = conn.execute(f"SELECT * FROM flows{where} {NEWEST_FIRST if newest_first else OLDEST_FIRST}", params)
    names = [d[0] for d in cursor.description]
    for values in cursor:
        row = dict(zip(names, values))
        if check and not selection.keep(row, match):
            continue
        yield row
        found += 1
        if limit is not None and found >= limit:
            return


def _compile_filter(expr: str):
    from mitmproxy import flowfilter

    try:
        return flowfilter.parse(expr)
    except ValueError:  # its message says no more than that
        raise InvalidFilter(f"{expr!r} is not a mitmproxy filter expression (see https://docs.mitmproxy.org/stable/concepts-filters/)") from None


def check_filter(expr: str) -> None:
    """Raise InvalidFilter for an expression mitmproxy cannot parse."""
    _compile_filter(expr)


def headers_of(row: dict, side: str) -> list:
    """A row's request or response headers as ``[[name, value], ...]``, whether the
    row holds them as stored (JSON text) or already parsed (``get_flow``)."""
    value = row[f"{side}_headers"]
    return json.loads(value) if isinstance(value, str) else (value or [])


def header(headers: list, name: str) -> str | None:
    """The first value of a header in ``[[name, value], ...]``, any case of its name."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


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


def check_ids(conn: sqlite3.Connection, ids: list[int]) -> None:
    """Raise FlowNotFound for the first of ``ids`` that names no flow."""
    wanted = [i for i in dict.fromkeys(ids) if i in SQLITE_INTEGER]
    found = {r[0] for r in conn.execute(f"SELECT id FROM flows WHERE id IN ({', '.join('?' * len(wanted))})", wanted)}
    for i in ids:
        if i not in found:
            raise FlowNotFound(f"no flow with id {i}")


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
