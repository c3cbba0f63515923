"""``repost show``: one flow in full (or as JSON, a command, its assembled stream, or one body)."""

import click

from .options import db_option, json_option


def load_flow(db_path: str, flow_id: int) -> tuple[dict, list[dict], list]:
    """The flow, its replays and the read-only rules (for its safety class)."""
    from repost.store.database import open_database
    from repost.store.views import load_flow as load

    conn = open_database(db_path)
    try:
        return load(conn, flow_id)
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
