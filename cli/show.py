"""What ``repost show`` prints: the flow, its replays and rules loaded once, then printed."""


def load_flow(db_path: str, flow_id: int) -> tuple[dict, list[dict], list]:
    """The flow, its replays and the read-only rules (for its safety class)."""
    from repost.store.database import open_database
    from repost.store.queries import get_flow, replays_of
    from repost.store.rules import READ_ONLY, get_rules

    conn = open_database(db_path)
    try:
        from repost.store.tags import tags_of

        flow = get_flow(conn, flow_id)
        flow["tags"] = tags_of(conn, [flow_id]).get(flow_id, [])
        return flow, replays_of(conn, flow_id), get_rules(conn, READ_ONLY)
    finally:
        conn.close()


def print_flow(flow: dict, replays: list[dict], rules, as_json: bool) -> None:
    from .terminal import flush, write_json

    if as_json:
        from repost.store.flowview import flow_json

        write_json(flow_json(flow, replays, rules))
        return
    from .render import show_flow

    show_flow(flow, replays, rules)
    flush()
