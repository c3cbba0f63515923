"""What ``list --follow`` reads: the selected flows recorded after a given id.

A reader in WAL mode sees each commit of the recorder as it lands, and reading by
id from the primary key costs the recorder nothing (no lock it waits on)."""

import sqlite3

from .queries import SAFETY_COLUMNS, SUMMARY_COLUMNS, _compile_filter, _dicts


def newest_id(conn: sqlite3.Connection) -> int:
    if conn.__class__ is not sqlite3.Connection:
        # PostgreSQL: several recorders commit ids out of order; follow no further than the
        # ids all settled, or a flow committed late under a lower id would never be shown.
        return conn.settled_ids()
    return conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0]


def flows_after(conn: sqlite3.Connection, selection, after: int, upto: int) -> list[dict]:
    """Summaries of the selected flows with ``after < id <= upto``, oldest first."""
    if selection.search:
        from .search import index_pending

        index_pending(conn)  # the new flows, before the index can find them
    where, params = selection.where()
    span = "id > ? AND id <= ?"
    where = f"{where} AND {span}" if where else f" WHERE {span}"
    params = params + [after, upto]
    if not selection.filter_expr:
        cols = ", ".join([f"flows.{c}" for c in SUMMARY_COLUMNS] + list(SAFETY_COLUMNS))
        return _dicts(conn.execute(f"SELECT {cols} FROM flows{where} ORDER BY id", params))
    from .flowmodel import row_to_flow

    match = _compile_filter(selection.filter_expr)
    keep = SUMMARY_COLUMNS + ("request_headers", "request_content_encoding", "request_body", "request_redacted", "request_graphql")
    rows = _dicts(conn.execute(f"SELECT * FROM flows{where} ORDER BY id", params))
    return [{k: r[k] for k in keep} for r in rows if match(row_to_flow(r))]
