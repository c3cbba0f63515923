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
    "flows.request_redacted", "flows.request_graphql",
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
    keep = SUMMARY_COLUMNS + ("request_headers", "request_content_encoding", "request_body", "request_redacted", "request_graphql")
    _index_for(conn, selection)
    if selection is not None and selection.needs_bodies():
        return [{k: row[k] for k in keep} for row in select_full_flows(conn, selection, limit)]
    cols = ", ".join([f"flows.{c}" for c in SUMMARY_COLUMNS] + list(SAFETY_COLUMNS))
    if limit is None:
        where, params = selection.where() if selection is not None else ("", [])
        return _dicts(conn.execute(f"SELECT {cols} FROM flows{where} {NEWEST_FIRST}", params))
    ids = _newest_ids(conn, selection, limit)
    rows = conn.execute(f"SELECT {cols} FROM flows WHERE id IN ({', '.join('?' * len(ids))}) {NEWEST_FIRST}", ids)
    return _dicts(rows)


def _newest_ids(conn: sqlite3.Connection, selection, limit: int) -> list[int]:
    """The ids of the ``limit`` newest selected flows, by time then id.

    Ids follow time, except for imported flows, so: take the ``limit`` highest
    matching ids, which the indexes give at once; the newest flows are among them
    and the matches started after the oldest of them (few, unless an import brought
    newer flows), read from the time index.
    """
    if limit <= 0:
        return []
    found = _highest_ids(conn, selection, limit)  # [(id, started_at)]
    if len(found) == limit:
        lowest_id, oldest = min(i for i, _ in found), min(t for _, t in found)
        found = set(found) | set(_started_after(conn, selection, oldest, lowest_id))
    newest = sorted(found, key=lambda f: (f[1], f[0]), reverse=True)[:limit]
    return [flow_id for flow_id, _ in newest]


def _highest_ids(conn: sqlite3.Connection, selection, limit: int | None) -> list[tuple[int, str]]:
    return _by_id_desc(conn, selection, limit).fetchall()


def _by_id_desc(conn: sqlite3.Connection, selection, limit: int | None = None) -> sqlite3.Cursor:
    """(id, started_at) of the selected flows from the highest id down, read lazily."""
    page = " LIMIT ?" if limit is not None else ""
    tail = [limit] if limit is not None else []
    if selection is not None and selection.search is not None and not selection.search_terms().empty:
        # Walk the full-text matches from the highest id and stop at --limit, instead
        # of collecting every match (a common word matches most flows).
        where, params = selection.where(search=False)
        extra = where.replace(" WHERE ", " AND ", 1)
        sql = (
            "SELECT flows.id, flows.started_at FROM flows_fts JOIN flows ON flows.id = flows_fts.rowid"
            f" WHERE flows_fts MATCH ?{extra} ORDER BY flows_fts.rowid DESC{page}"
        )
        return conn.execute(sql, [selection.search_terms().index_query()] + params + tail)
    where, params = selection.where() if selection is not None else ("", [])
    if not where:
        return conn.execute(f"SELECT id, started_at FROM flows ORDER BY id DESC{page}", tail)
    # Few matches: find them by index, then sort just those. Many: walk the table
    # from the highest id and stop at --limit (sorting 300,000 index hits would not).
    probe = conn.execute(f"SELECT count(*) FROM (SELECT 1 FROM flows{where} LIMIT {FEW_MATCHES}) AS few", params)
    if probe.fetchone()[0] < FEW_MATCHES:
        sql = f"SELECT id, started_at FROM flows WHERE id IN (SELECT id FROM flows{where}) ORDER BY id DESC{page}"
    else:
        sql = f"SELECT id, started_at FROM flows NOT INDEXED{where} ORDER BY id DESC{page}"
    return conn.execute(sql, params + tail)


def _started_after(conn: sqlite3.Connection, selection, oldest: str, below_id: int) -> list[tuple[int, str]]:
    """Selected flows with an id below ``below_id`` that started after ``oldest``: read
    from the time index, whose entries hold the id, so only such flows are looked up
    (none, unless an import brought flows newer than later recorded ones)."""
    where, params = selection.where(search=False) if selection is not None else ("", [])
    extra = where.replace(" WHERE ", " AND ", 1)
    rows = conn.execute(
        f"SELECT id, started_at FROM flows INDEXED BY idx_flows_started_at WHERE started_at > ? AND id < ?{extra}",
        [oldest, below_id] + params,
    ).fetchall()
    terms = selection.search_terms() if selection is not None else None
    if terms is None or not rows:
        return rows
    # Which of them hold the words: one look at the full-text index over their id range.
    low, high = min(r[0] for r in rows), max(r[0] for r in rows)
    hits = {
        r[0]
        for r in conn.execute(
            "SELECT rowid FROM flows_fts WHERE flows_fts MATCH ? AND rowid BETWEEN ? AND ?",
            [terms.index_query(), low, high],
        )
    }
    return [r for r in rows if r[0] in hits]


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
    phrases applied, by time (newest or oldest first), the id breaking ties.

    Reads the rows a page at a time, so a large export holds one page, and the
    newest few (list's --limit) are found as ``list_flows`` finds them: from the
    highest ids, then the matches that started later than the oldest of those.
    """
    _index_for(conn, selection)
    match = _compile_filter(selection.filter_expr) if selection.filter_expr else None
    check = selection.needs_bodies()
    if limit is not None and limit <= 0:
        return
    if newest_first and limit is not None:
        found = list(_kept(conn, (i for i, _ in _by_id_desc(conn, selection)), selection, match, check, limit))
        if len(found) == limit:
            lowest_id, oldest = min(r["id"] for r in found), min(r["started_at"] for r in found)
            later = (i for i, _ in _started_after(conn, selection, oldest, lowest_id))
            found += _kept(conn, later, selection, match, check, None)
        found.sort(key=lambda r: (r["started_at"], r["id"]), reverse=True)
        yield from found[:limit]
        return
    where, params = selection.where()
    ids = conn.execute(f"SELECT id FROM flows{where} {NEWEST_FIRST if newest_first else OLDEST_FIRST}", params)
    yield from _kept(conn, (r[0] for r in ids), selection, match, check, limit)


def _kept(conn: sqlite3.Connection, ids, selection, match, check: bool, limit: int | None):
    """The rows of ``ids``, in their order, that pass the checks SQL cannot make."""
    import itertools

    found = 0
    while True:
        chunk = list(itertools.islice(ids, PAGE))
        if not chunk:
            return
        # A replay's original by its flow id too: exports carry that, so an import can link them again.
        origin = "(SELECT o.flow_id FROM flows AS o WHERE o.id = flows.replay_of) AS replay_of_flow_id"
        cursor = conn.execute(f"SELECT *, {origin} FROM flows WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
        names = [d[0] for d in cursor.description]
        by_id = {row["id"]: row for row in (dict(zip(names, values)) for values in cursor)}
        rows = [by_id[flow_id] for flow_id in chunk]
        for row in selection.keep(rows, match) if check else rows:
            yield row
            found += 1
            if limit is not None and found >= limit:
                return


PAGE = 50


def _compile_filter(expr: str):
    from mitmproxy import flowfilter

    try:
        return flowfilter.parse(expr)
    except ValueError:  # its message says no more than that
        raise InvalidFilter(f"{expr!r} is not a mitmproxy filter expression (see https://docs.mitmproxy.org/stable/concepts-filters/)") from None


def check_filter(expr: str) -> None:
    """Raise InvalidFilter for an expression mitmproxy cannot parse."""
    _compile_filter(expr)


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
    if selection is None:  # a Selection says itself whether replays are in (--include-replays)
        clauses.append("replay_of IS NULL")
    ids = getattr(selection, "allowed_ids", None)  # a --filter's result, computed once
    if ids is not None:
        clauses.append("id IN (SELECT value FROM json_each(?))")
        extra.append(json.dumps(sorted(ids)))
    joined = " AND ".join(clauses)
    return (f"{where} AND {joined}" if where else f" WHERE {joined}"), params + extra


def serve_candidates(conn: sqlite3.Connection, method: str, path: str, host: str | None, selection=None,
                     limit: int | None = None, after_id: int = 0):  # fmt: skip
    """The recordings of one method and path (and host), in recorded order, request side only."""
    where, params = _serve_where(method, path, host, selection)
    if after_id:
        where, params = where + " AND id > ?", params + [after_id]
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


def serve_keyed(conn: sqlite3.Connection, key: str, method: str, path: str, host: str | None, selection, upto_id: int) -> list:
    """[(started_at, id)] of the selected recordings whose stored match key is ``key``."""
    where, params = _serve_where(method, path, host, selection)
    sql = f"SELECT started_at, id FROM flows INDEXED BY idx_flows_request_match{where} AND request_match = ? AND id <= ?"
    return [tuple(r) for r in conn.execute(sql, params + [key, upto_id])]


def unkeyed_requests(conn: sqlite3.Connection, after_id: int, batch: int) -> list[dict]:
    return _dicts(conn.execute(f"SELECT {_SERVE_COLUMNS} FROM flows WHERE id > ? ORDER BY id LIMIT ?", [after_id, batch]))


def flow_lines(conn: sqlite3.Connection, ids: list[int]):
    """(id, method, url) of each of ``ids``, in order: what delete's dry run names."""
    for start in range(0, len(ids), 1000):
        chunk = json.dumps(ids[start : start + 1000])
        yield from conn.execute("SELECT id, method, url FROM flows WHERE id IN (SELECT value FROM json_each(?)) ORDER BY id", [chunk])
