"""``repost tag`` and ``repost untag``: names for flows, to find them again (list --tag)."""

import click

from .options import db_option


def _split(args: tuple[str, ...]) -> tuple[list[int], str]:
    from repost.store.tags import check_name

    if len(args) < 2:
        raise click.UsageError("give one or more flow ids, then the tag name: repost tag 12 13 checkout-bug")
    *ids, name = args
    try:
        numbers = [int(i) for i in ids]
    except ValueError:
        raise click.BadParameter(f"flow ids are numbers; got {', '.join(i for i in ids if not i.lstrip('-').isdigit())!r}", param_hint="ID") from None
    try:
        return sorted(set(numbers)), check_name(name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="NAME") from None


def _open_with(db_path, ids):
    from repost.store.care import missing_ids
    from repost.store.database import open_database

    conn = open_database(db_path)
    missing = missing_ids(conn, ids)
    if missing:
        raise click.ClickException(f"no flow with id {', '.join(map(str, missing))}; nothing changed")
    return conn


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="ID... NAME")
@db_option
def tag(args, db_path):
    """Tag flows with a name: repost tag 12 13 checkout-bug.

    Tags show in list and show, select with `repost list --tag NAME` (and
    replay, export, delete), and travel with HAR and mitmproxy exports.

    Exit status: 0 tagged, 1 an id not found (nothing tagged), 2 usage error.
    """
    from repost.store.tags import add_tag

    ids, name = _split(args)
    added = add_tag(_open_with(db_path, ids), ids, name)
    click.echo(f"repost: tagged {added} flow{'s' if added != 1 else ''} {name!r}" + (f" ({len(ids) - added} already were)" if added < len(ids) else ""), err=True)


@click.command()
@click.argument("args", nargs=-1, required=True, metavar="ID... NAME")
@db_option
def untag(args, db_path):
    """Remove a tag from flows: repost untag 12 checkout-bug.

    Exit status: 0 done (also when a flow did not have the tag), 1 an id not
    found (nothing changed), 2 usage error.
    """
    from repost.store.tags import remove_tag

    ids, name = _split(args)
    removed = remove_tag(_open_with(db_path, ids), ids, name)
    click.echo(f"repost: untagged {removed} flow{'s' if removed != 1 else ''} {name!r}", err=True)
