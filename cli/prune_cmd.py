"""``repost prune``: delete flows older than a given age."""

import sys

import click

from .options import db_option


def _age(ctx, param, value):
    from repost.store.selection import parse_time

    try:
        return parse_time(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


@click.command()
@db_option
@click.option("--older-than", "before", required=True, callback=_age, metavar="DURATION", help="Delete flows started longer ago than this (30d, 12h) or before an ISO 8601 time.")
@click.option("--keep-last", default=0, type=click.IntRange(min=0), metavar="N", help="Keep the N most recently started flows, however old.")
@click.option("-y", "--yes", is_flag=True, help="Consent to deleting them.")
@click.option("--dry-run", is_flag=True, help="Say how many flows would be deleted; delete nothing.")
@click.option("--vacuum", is_flag=True, help="On a database made before repost shrank files as it goes: VACUUM it (rewrites the file).")
def prune(db_path, before, keep_last, yes, dry_run, vacuum):
    """Delete old flows, so a database does not only grow.

    States the count first and needs --yes, or a y/N answer on a terminal;
    without consent nothing is deleted (exit 3). Deletes in small batches, so a
    recorder writing to the same file goes on meanwhile. `repost record --retain
    7d` does the same while it records.

    \b
    Examples:
      repost prune --older-than 30d --dry-run
      repost prune --older-than 7d --keep-last 1000 --yes

    \b
    Exit status: 0 deleted (or nothing to delete), 2 usage error,
    3 refused: no consent (nothing deleted).
    """
    from repost.store.care import prunable_ids
    from repost.store.database import open_database

    from .delete_cmd import EXIT_REFUSED, consent, plural, remove

    conn = open_database(db_path)
    ids = prunable_ids(conn, before, keep_last)
    if not ids:
        click.echo(f"repost: no flows started before {before}; nothing deleted", err=True)
        return
    if dry_run:
        click.echo(f"dry run: {plural(len(ids))} started before {before} would be deleted; nothing deleted", err=True)
        return
    if not yes and not consent(len(ids), "Delete"):
        sys.exit(EXIT_REFUSED)
    remove(conn, ids, vacuum)
