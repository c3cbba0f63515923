"""``repost list``: the recorded flows, newest first, as a table, JSON, or as they come (--follow)."""

import click

from .options import db_option, json_option, selection_options


def _open(db_path):
    from repost.store.database import open_database

    return open_database(db_path)


@click.command("list")
@db_option
@selection_options(replays=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0), help="Show at most this many flows.")
@click.option("-f", "--follow", is_flag=True, help="Then print flows as they are recorded (JSON lines with --json), until Ctrl-C.")
@json_option
def list_flows(db_path, selection, limit, follow, as_json):
    """List recorded flows, newest first (by start time; replays included).

    \b
    Examples:
      repost list --path '/orders/*' --status 5xx --since 1h
      repost list --search 'insufficient funds'
      repost list --filter '~m POST & ~bq book & ~c 201'

    \b
    Columns: id, time (UTC), method, status (- when there was no response),
    host, path, response size, duration, the replay safety class (safe,
    idempotent, keyed, unsafe), for a replay the flow it replayed (↺ 12), and tags
    when a flow has some.

    --follow prints flows as they are recorded, like tail -f, with the same
    filters (--limit counts only the flows shown first); Ctrl-C ends it.
    """
    conn = _open(db_path)
    if follow:
        from .follow import follow_flows

        follow_flows(conn, selection, limit, as_json)
        return
    from repost.store.views import list_document

    rows = list_document(conn, selection, limit)  # the very rows `repost ui`'s /api/flows serves
    if as_json:
        from .terminal import write_json

        write_json(rows)
        return
    from .render import flows_table

    if rows:
        flows_table(rows)
        return
    from repost.store.queries import has_flows

    flows_table(rows, empty="no flows match" if has_flows(conn) else "no flows recorded yet")
