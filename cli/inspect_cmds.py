"""``repost list`` and ``repost show``."""

import click

from .options import db_option, json_option, selection_options


def _open(db_path):
    from repost.store.database import open_database

    return open_database(db_path)


@click.command("list")
@db_option
@selection_options(replays=True)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=0), help="Show at most this many flows.")
@json_option
def list_flows(db_path, selection, limit, as_json):
    """List recorded flows, newest first (by start time; replays included).

    \b
    Examples:
      repost list --path '/orders/*' --status 5xx --since 1h
      repost list --search 'insufficient funds'
      repost list --filter '~m POST & ~bq book & ~c 201'

    \b
    Columns: id, time (UTC), method, status (- when there was no response),
    host, path, response size, duration, the replay safety class (safe,
    idempotent, keyed, unsafe) and, for a replay, the flow it replayed (↺ 12).
    """
    from repost.store.queries import list_flows as query

    from .flowview import summary_json

    conn = _open(db_path)
    from repost.store.rules import READ_ONLY, get_rules

    rules = get_rules(conn, READ_ONLY)
    rows = [summary_json(r, rules) for r in query(conn, selection, limit)]
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


@click.command()
@click.argument("flow_id", metavar="ID", type=int)
@db_option
@click.option("--as", "as_format", type=click.Choice(["curl", "httpie", "python"]), help="Print the request as a curl or httpie command, or a Python (httpx) snippet.")
@click.option("--stream", "assemble", is_flag=True, help="Print the text a streamed (SSE) response assembles to, e.g. an OpenAI chat completion's.")
@json_option
def show(flow_id, db_path, as_format, assemble, as_json):
    """Show one flow: the request, the response, and SSE events if any.

    Bodies are decoded (gzip, br, zstd, deflate; charsets) and pretty-printed:
    JSON indented, forms as fields, binary as a size note.
    """
    from .show import load_flow, print_flow

    flow, replays, rules = load_flow(db_path, flow_id)
    if assemble:
        from repost.store.sse import Event, assemble_text

        text = assemble_text([Event(e["t_ms"], e["event"], e["id"], e["data"]) for e in flow["events"]])
        if text is None:
            raise click.ClickException(f"flow {flow_id} has no streamed chat or completion deltas to assemble")
        click.echo(text)
        return
    if as_format:
        from .snippets import redacted_headers, render_request

        try:
            click.echo(render_request(flow, as_format))
        except ValueError as e:
            raise click.ClickException(str(e)) from None
        missing = redacted_headers(flow)
        if missing:
            click.echo(f"repost: left out, redacted at capture: {', '.join(missing)}; add them yourself", err=True)
        return
    print_flow(flow, replays, rules, as_json)
