"""Options that several commands share, as decorators (the sqlite-utils way)."""

import click

from repost.store.database import default_db_path


def db_option(fn):
    return click.option(
        "--db",
        "db_path",
        type=click.Path(dir_okay=False),
        callback=_db_path,
        show_default="$REPOST_DB, else ./repost.db",
        help="The store: a SQLite file, or a postgresql://user@host/dbname URL (also accepted before the command: repost --db X list).",
    )(fn)


def _db_path(ctx: click.Context, param, value: str | None) -> str:
    # The command's own --db wins; then one given before the command; then the default.
    if value is not None:
        return value
    given = (ctx.find_root().obj or {}).get("db_path")
    return given if given is not None else default_db_path()


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


def _filter(ctx, param, value):
    if value is None:
        return None
    from repost.store.queries import InvalidFilter, check_filter

    try:
        check_filter(value)
    except InvalidFilter as e:
        raise click.BadParameter(str(e)) from None
    return value


def _search(ctx, param, value):
    if value is None:
        return None
    from repost.store.search import SearchTerms

    if SearchTerms(value).empty:
        raise click.BadParameter(f"{value!r} has no word to search for")
    return value


def selection_options(fn=None, *, replays: bool = False):
    """list's filters, shared by list, replay and export; passes ``selection``.

    Replays of recorded flows are left out unless ``--include-replays``; with
    ``replays=True`` (list) they are always in (the option is accepted, and hidden).
    """
    if fn is None:
        return lambda f: _selection_options(f, replays)
    return _selection_options(fn, replays)


def _selection_options(fn, replays: bool):
    import functools

    options = [
        click.option("--host", help="Only this host (a glob such as '*.example.test' works)."),
        click.option("--path", help="Only this URL path, without the query (a glob: '/orders/*'); a plain path matches itself exactly."),
        click.option("--status", "statuses", multiple=True, callback=_statuses, help="Only this status code (404) or class (4xx); repeatable."),
        click.option("--since", callback=_times, help="Only flows started since a time ago (10m, 2h, 3d) or an ISO 8601 time."),
        click.option("--until", callback=_times, help="Only flows started before a time ago (10m, 2h, 3d) or an ISO 8601 time."),
        click.option("--method", "methods", multiple=True, callback=_methods, help="Only this method (repeatable, or POST,PUT)."),
        click.option("--search", callback=_search, help="Only flows whose decoded request or response body contains these words (full text)."),
        click.option("--tag", "tags", multiple=True, help="Only flows tagged NAME (repost tag); repeatable: all of them."),
        click.option("--filter", "filter_expr", callback=_filter, help="Only flows matching a mitmproxy filter expression, e.g. '~m POST & ~bq book & ~c 201'."),
    ]
    options.append(
        click.option("--include-replays", is_flag=True, help="Also select replays of recorded flows (left out unless named by id).")
        if not replays
        else click.option("--include-replays", is_flag=True, hidden=True)  # list shows them anyway: accepted, as elsewhere
    )

    @functools.wraps(fn)
    def wrapper(*args, host, path, statuses, since, until, methods, search, filter_expr, include_replays, tags, **kwargs):
        include_replays = include_replays or replays
        from repost.store.selection import Selection

        kwargs["selection"] = Selection(
            host=host, path=path, statuses=statuses, since=since, until=until,
            methods=methods, search=search, filter_expr=filter_expr, include_replays=include_replays,
            tags=list(tags),
        )  # fmt: skip
        return fn(*args, **kwargs)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper
