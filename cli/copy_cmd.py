"""``repost copy``: recordings from one store to another (SQLite <-> PostgreSQL)."""

import click


@click.command()
@click.option("--from", "source", required=True, metavar="STORE", help="The store to copy from: a SQLite file or a postgresql:// URL.")
@click.option("--to", "target", required=True, metavar="STORE", help="The store to copy to (created, or set up, when new).")
def copy(source, target):
    """Copy recordings from one store to another, skipping flows already there.

    \b
    repost copy --from repost.db --to postgresql://me@db.internal/repost
    repost copy --from postgresql://me@db.internal/repost --to team.db

    Every field is copied as it is (bodies byte for byte, redaction marks,
    headers), with tags, replays linked to their originals, stored events, and
    the store's rules and redaction rules. A flow is known by its flow id
    (mitmproxy's): copying again copies only what is new.
    """
    from repost.store.copy import copy_store
    from repost.store.database import describe, discard_created, exists, open_database, same_store

    if same_store(source, target):
        raise click.UsageError("--from and --to name the same store")
    source_conn = open_database(source)  # a read: nothing to copy from a store that is not there
    created = not exists(target)
    try:
        target_conn = open_database(target, create=True)
        try:
            done = copy_store(source_conn, target_conn)
        finally:
            target_conn.close()
    except BaseException:
        if created:
            discard_created(target, only_if_empty=True)
        raise
    finally:
        source_conn.close()
    skipped = f" ({done.skipped} already there, skipped)" if done.skipped else ""
    rules = [f"{n} {what}{'' if n == 1 else 's'}" for n, what in ((done.rules, "rule"), (done.redact_rules, "redaction rule")) if n]
    also = f", and {' and '.join(rules)}" if rules else ""
    plural = "" if done.flows == 1 else "s"
    click.echo(f"repost: copied {done.flows} flow{plural}{also} from {describe(source)} to {describe(target)}{skipped}", err=True)
