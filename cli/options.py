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


def _times(ctx, param, value):
    from repost.store.selection import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def _statuses(ctx, param, values):
    from repost.store.selection import parse_status

    out = []
    for value in values:
        for part in value.split(","):
            try:
                out.append(parse_status(part))
            except ValueError as e:
                raise click.BadParameter(str(e)) from None
    return out


def _methods(ctx, param, values):
    return [m.strip().upper() for v in values for m in v.split(",") if m.strip()]


def selection_options(fn):
    """list's filters, shared by list, replay and export; passes ``selection``."""
    import functools

    options = [
        click.option("--host", help="Only this host (a glob such as '*.example.test' works)."),
        click.option("--path", help="Only this URL path, without the query (a glob: '/orders/*'); a plain path matches itself exactly."),
        click.option("--status", "statuses", multiple=True, callback=_statuses, help="Only this status code (404) or class (4xx); repeatable."),
        click.option("--since", callback=_times, help="Only flows started since a time ago (10m, 2h, 3d) or an ISO 8601 time."),
        click.option("--until", callback=_times, help="Only flows started before a time ago (10m, 2h, 3d) or an ISO 8601 time."),
        click.option("--method", "methods", multiple=True, callback=_methods, help="Only this method (repeatable, or POST,PUT)."),
        click.option("--search", help="Only flows whose decoded request or response body contains these words (full text)."),
        click.option("--tag", "tags", multiple=True, help="Only flows tagged NAME (repost tag); repeatable: all of them."),
        click.option("--filter", "filter_expr", help="Only flows matching a mitmproxy filter expression, e.g. '~m POST & ~bq book & ~c 201'."),
    ]

    @functools.wraps(fn)
    def wrapper(*args, host, path, statuses, since, until, methods, search, filter_expr, tags, **kwargs):
        from repost.store.selection import Selection

        kwargs["selection"] = Selection(
            host=host, path=path, statuses=statuses, since=since, until=until,
            methods=methods, search=search, filter_expr=filter_expr, tags=list(tags),
        )  # fmt: skip
        return fn(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
