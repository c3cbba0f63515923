"""The JSON documents ``list --json``, ``show --json`` and ``diff --json`` print, built
in one place: the CLI writes them, ``repost ui``'s API serves them (same shapes, same code)."""

import sqlite3


def flow_summaries(conn: sqlite3.Connection, rows: list[dict]) -> list[dict]:
    """list's rows (store/queries.py) as list --json's objects: tags and safety class added."""
    from .flowview import summary_json
    from .rules import READ_ONLY, get_rules
    from .tags import attach_tags

    rules = get_rules(conn, READ_ONLY)
    return [summary_json(r, rules) for r in attach_tags(conn, rows)]


def list_document(conn: sqlite3.Connection, selection, limit: int | None) -> list[dict]:
    """``repost list --json``: the selected flows, newest first."""
    from .queries import list_flows

    return flow_summaries(conn, list_flows(conn, selection, limit))


def load_flow(conn: sqlite3.Connection, flow_id: int) -> tuple[dict, list[dict], list]:
    """The flow (with its tags), its replays and the read-only rules (for its safety class).
    FlowNotFound for an id that names no flow."""
    from .queries import get_flow, replays_of
    from .rules import READ_ONLY, get_rules
    from .tags import tags_of

    flow = get_flow(conn, flow_id)
    flow["tags"] = tags_of(conn, [flow_id]).get(flow_id, [])
    return flow, replays_of(conn, flow_id), get_rules(conn, READ_ONLY)


def show_document(conn: sqlite3.Connection, flow_id: int) -> dict:
    """``repost show --json``."""
    from .flowview import flow_json

    flow, replays, rules = load_flow(conn, flow_id)
    return flow_json(flow, replays, rules)


def diff_document(differences) -> dict:
    """``repost diff --json``: {"equal", "differences": [{"path", "a", "b"}]}."""
    return {"equal": not differences, "differences": [d.as_json() for d in differences]}


def diff_sides(only_request: bool, only_response: bool) -> tuple[str, ...]:
    """diff's --request / --response: which sides to compare (both, when both or neither are given)."""
    if only_request and not only_response:
        return ("request",)
    if only_response and not only_request:
        return ("response",)
    return ("request", "response")
