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
    from repost.store.queries import list_flows as query

    from repost.store.flowview import summary_json

    conn = _open(db_path)
    if follow:
        from .follow import follow_flows

        follow_flows(conn, selection, limit, as_json)
        return
    from repost.store.rules import READ_ONLY, get_rules

    rules = get_rules(conn, READ_ONLY)
    from repost.store.tags import attach_tags

    rows = [summary_json(r, rules) for r in attach_tags(conn, query(conn, selection, limit))]
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
@click.option("--stream", "assemble", is_flag=True, help="Print the text (then any tool calls) a streamed response assembles to: OpenAI chat, completions and Responses, Anthropic Messages, Gemini, Ollama/NDJSON.")
@click.option("--body", "body_side", type=click.Choice(["request", "response"]), help="Print only this body, decoded (binary to a terminal needs -o).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), help="With --body: write it to this file.")
@click.option("--raw", is_flag=True, help="With --body: the bytes as on the wire (content-encoding kept).")
@json_option
def show(flow_id, db_path, as_format, assemble, body_side, output, raw, as_json):
    """Show one flow: the request, the response, and SSE events if any.

    Bodies are decoded (gzip, br, zstd, deflate; charsets) and pretty-printed:
    JSON indented, forms as fields, binary as a size note.
    """
    from .show import load_flow, print_flow
    from .terminal import is_terminal, visible

    if (output or raw) and not body_side:
        raise click.UsageError("-o and --raw go with --body request|response")
    if body_side and (as_json or as_format or assemble):
        raise click.UsageError("--body prints the body alone: not with --json, --as or --stream")
    flow, replays, rules = load_flow(db_path, flow_id)
    if body_side:
        from .body_out import write_body

        write_body(flow, body_side, output, raw)
        return
    # What goes to a terminal goes through the sanitiser; to a pipe it stays exact.
    shown = visible if is_terminal() else str
    if assemble:
        from repost.store import assemble as assembly

        assembled = assembly.assemble(flow["events"])
        if assembled is None:
            raise click.ClickException(_nothing_to_assemble(flow_id, flow["events"], assembly.event_names))
        from .terminal import Console, flush

        Console().print(assembly.render(assembled), markup=False, soft_wrap=True)  # on a terminal: no control sequences
        flush()
        return
    if as_format:
        from .snippets import render_request

        try:
            text, notes = render_request(flow, as_format)
        except ValueError as e:
            raise click.ClickException(visible(str(e), lines=False)) from None
        click.echo(shown(text))
        for note in notes:
            click.echo(visible(f"repost: {note}", lines=False), err=True)
        return
    print_flow(flow, replays, rules, as_json)


def _nothing_to_assemble(flow_id: int, events: list, event_names) -> str:
    if not events:
        return f"flow {flow_id} is not a stream (no events): nothing to assemble"
    names = ", ".join(event_names(events))
    return f"flow {flow_id} has no text deltas of a known API to assemble; its events: {names}"
