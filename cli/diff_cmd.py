"""``repost diff A B``."""

import json

import click

from .options import db_option, json_option


class DiffTrouble(click.ClickException):
    exit_code = 2  # like diff(1): 0 equal, 1 different, 2 trouble


def _elide(value, width: int = 60) -> str:
    from repost.store.diff import MISSING

    if value is MISSING:
        return "(absent)"
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@click.command()
@click.argument("a", metavar="A", type=int)
@click.argument("b", metavar="B", type=int)
@db_option
@click.option("--ignore", "ignores", multiple=True, metavar="PATTERN", help="Ignore a field name (id), a dotted path with * (response.body.items[*].price) or a header name; repeatable.")
@click.option("--request", "only_request", is_flag=True, help="Compare the requests only.")
@click.option("--response", "only_response", is_flag=True, help="Compare the responses only.")
@click.option("--all-headers", is_flag=True, help="Also compare volatile headers (Date, Age, request and trace ids, Content-Length).")
@json_option
def diff(a, b, db_path, ignores, only_request, only_response, all_headers, as_json):
    """Show what differs between flows A and B.

    Method, URL path and query, headers and bodies are compared structurally:
    JSON by path (response.body.items[2].price), forms by field, text by line,
    binary by hash. Volatile headers are ignored unless --all-headers.

    \b
    Exit status: 0 equal, 1 different, 2 trouble (like diff(1)).
    --json prints {"equal": bool, "differences": [{"path", "a", "b"}]}.
    """
    from repost.store.database import open_database
    from repost.store.errors import StoreError
    from repost.store.queries import get_flow

    from repost.store.diff import Ignores, diff_flows

    from repost.store.views import diff_document, diff_sides

    sides = diff_sides(only_request, only_response)
    try:
        conn = open_database(db_path)
        fa, fb = get_flow(conn, a), get_flow(conn, b)
    except (StoreError, OSError) as e:
        raise DiffTrouble(str(e)) from None
    differences = diff_flows(fa, fb, Ignores(list(ignores), volatile_headers=not all_headers), sides)
    if as_json:
        from .terminal import write_json

        write_json(diff_document(differences))
    else:
        print_differences(a, b, differences)
    if differences:
        click.get_current_context().exit(1)


def print_differences(a: int, b: int, differences) -> None:
    from .terminal import Console, escape

    con = Console()
    if not differences:
        con.print(f"flows {a} and {b} are equal")
        return
    con.print(f"[bold]{len(differences)} difference{'s' if len(differences) != 1 else ''}[/] between flows {a} and {b}:")
    for d in differences:
        con.print(f"  {escape(d.path)}: [red]{escape(_elide(d.a))}[/] -> [green]{escape(_elide(d.b))}[/]", soft_wrap=True)
