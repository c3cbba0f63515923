"""``repost delete``: remove flows for good, with consent as replay's."""

import sys

import click

from .options import db_option, selection_options

EXIT_REFUSED = 3


@click.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@db_option
@selection_options
@click.option("-y", "--yes", is_flag=True, help="Consent to deleting the selected flows (not needed for ids alone).")
@click.option("--dry-run", is_flag=True, help="Print the flows that would be deleted; delete nothing.")
@click.option("--vacuum", is_flag=True, help="On a database made before repost shrank files as it goes: VACUUM it (rewrites the file).")
def delete(ids, db_path, selection, yes, dry_run, vacuum):
    """Delete flows for good: by id, or by list's filters.

    Ids alone are deleted at once. A selection by filters states the count
    first and needs --yes, or a y/N answer on a terminal; without consent
    nothing is deleted (exit 3). Deleted flows leave the search index, their
    tags go with them, and their replays stay (no longer marked as replays).
    The file shrinks by the space they took.

    \b
    Examples:
      repost delete 12 13
      repost delete --host staging.example.test --since 1d --dry-run
      repost delete --status 5xx --yes

    \b
    Exit status: 0 deleted (or nothing matched), 1 an id not found (nothing
    deleted), 2 usage error, 3 refused: no consent (nothing deleted).
    """
    from dataclasses import replace

    from repost.store.care import missing_ids, selected_ids
    from repost.store.database import open_database

    filtered = selection.narrows()
    if not ids and not filtered:
        raise click.UsageError("say which flows: give ids, or filters such as --host H --until 30d")
    conn = open_database(db_path)
    if ids:
        missing = missing_ids(conn, list(ids))
        if missing:
            raise click.ClickException(f"no flow with id {', '.join(map(str, missing))}; nothing deleted")
        chosen = selected_ids(conn, replace(selection, ids=sorted(set(ids)))) if filtered else sorted(set(ids))
    else:
        chosen = selected_ids(conn, selection)
    if not chosen:
        click.echo("repost: no flows match; nothing deleted", err=True)
        return
    if dry_run:
        print_doomed(conn, chosen)
        click.echo(f"dry run: {plural(len(chosen))} would be deleted; nothing deleted", err=True)
        return
    if not ids and not yes and not consent(len(chosen), "Delete"):
        sys.exit(EXIT_REFUSED)
    remove(conn, chosen, vacuum)


def plural(n: int) -> str:
    return f"{n:,} flow{'s' if n != 1 else ''}"


def print_doomed(conn, ids: list[int]) -> None:
    from repost.store.queries import flow_lines

    from .terminal import visible

    for flow_id, method, url in flow_lines(conn, ids):
        click.echo(visible(f"flow {flow_id} {method} {url}", lines=False))


def consent(count: int, verb: str) -> bool:
    """replay's rules: the count first; a y/N prompt on a terminal (Ctrl-D, Ctrl-C and
    "n" refuse); elsewhere --yes or nothing."""
    from .consent import ask

    click.echo(f"repost: {verb.lower()} {plural(count)}? This cannot be undone.", err=True)
    return ask(
        f"{verb} {plural(count)}?", "repost: not deleted; nothing changed.",
        f"repost: refused: would delete {plural(count)}; nothing deleted. Check them with --dry-run, then pass --yes to delete.",
    )  # fmt: skip


def remove(conn, ids: list[int], vacuum: bool) -> None:
    """Delete, say how many, and hand the space back (or say how to)."""
    from repost.store.care import delete_flows, file_size, free_bytes, give_back_space

    from .render import human_size

    before = file_size(conn)
    if len(ids) >= 10_000 and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import Progress

        with Progress(transient=True, console=Console(stderr=True)) as progress:
            task = progress.add_task("deleting", total=len(ids))
            deleted = delete_flows(conn, ids, on_batch=lambda n: progress.advance(task, n))
    else:
        deleted = delete_flows(conn, ids)
    click.echo(f"repost: deleted {plural(deleted)}", err=True)
    if give_back_space(conn, vacuum=vacuum):
        after = file_size(conn)
        if after < before:
            click.echo(f"repost: the database shrank from {human_size(before)} to {human_size(after)}", err=True)
    else:
        click.echo(
            f"repost: {human_size(free_bytes(conn))} now free inside the file, reused by new flows; "
            "--vacuum gives it back (and makes later deletes shrink the file as they go)",
            err=True,
        )
