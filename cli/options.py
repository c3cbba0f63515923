"""Options that several commands share, as decorators (the sqlite-utils way)."""

import click

from repost.store.database import default_db_path


def db_option(fn):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        default=default_db_path,
        show_default="$REPOST_DB, else ./repost.db",
        help="The SQLite database file.",
    )(fn)


def json_option(fn):
    return click.option("--json", "as_json", is_flag=True, help="Print JSON, and nothing else, on stdout.")(fn)


def size_option(ctx, param, value: str | int) -> int:
    """Click callback for options that take a size such as ``10MB``."""
    from repost.store.sizes import parse_size

    try:
        return parse_size(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
