"""``repost redact``: the user's own redaction rules, and taking secrets out of flows already stored."""

import sys

import click

from .options import db_option, json_option, selection_options

EXIT_REFUSED = 3


@click.group()
def redact():
    """Redact what repost's own table of secret names and token shapes does not know.

    Rules are kept in the database: recording applies them from then on (a
    recorder already running takes them up within a second), and so do import,
    replay and serve. `redact apply` redacts flows already stored, and leaves no
    trace of the old values in the database file, its -wal or its free pages.

    \b
    repost redact add --header X-Internal-Token
    repost redact add --field customer.ssn           # a JSON path (diff's syntax), or a field name
    repost redact add --query sessionref
    repost redact add --pattern 'acct_[0-9]{12}'     # every match, anywhere
    repost redact list
    repost redact apply --yes                        # every stored flow
    repost redact remove 2
    """


_KINDS = {
    "header": "A header's name (any case): its value is redacted.",
    "field": "A JSON, form or multipart field's name, at any depth; or a dotted JSON path in diff's syntax (user.ssn, items[*].card).",
    "query": "A query (or path) parameter's name: its value is redacted.",
    "pattern": "A regular expression (RE2 syntax: Python's without backreferences or lookarounds; "
    "it runs in linear time, so no body can make it slow): every match in a body, header value or URL is redacted.",
}


@redact.command("add")
@click.option("--header", "header_name", metavar="NAME", help=_KINDS["header"])
@click.option("--field", metavar="PATH", help=_KINDS["field"])
@click.option("--query", metavar="NAME", help=_KINDS["query"])
@click.option("--pattern", metavar="REGEX", help=_KINDS["pattern"])
@db_option
def add(header_name, field, query, pattern, db_path):
    """Add a rule: one of --header, --field, --query, --pattern.

    \b
    Exit status: 0 added, 1 the same rule exists already, 2 usage error (none or
    several kinds, a name that is not one, a pattern that RE2 does not compile or
    that matches the empty string).
    """
    from repost.store.database import open_database
    from repost.store.redact_rules import BadRedactRule, add_redact_rule, check_rule

    given = [(k, v) for k, v in (("header", header_name), ("field", field), ("query", query), ("pattern", pattern)) if v is not None]
    if len(given) != 1:
        raise click.UsageError("give one of --header NAME, --field PATH, --query NAME, --pattern REGEX")
    kind, value = given[0]
    try:
        check_rule(kind, value)  # before the database is created for it
    except BadRedactRule as e:
        raise click.BadParameter(str(e), param_hint=f"--{kind}") from None
    rule = add_redact_rule(open_database(db_path, create=True), kind, value)
    click.echo(f"redaction rule {rule.id}: {rule.describe()}")
    click.echo("repost: recording applies it from now on; `repost redact apply` redacts flows already stored", err=True)


@redact.command("list")
@db_option
@json_option
def list_rules(db_path, as_json):
    """List the rules."""
    from repost.store.database import open_database
    from repost.store.redact_rules import get_redact_rules

    found = get_redact_rules(open_database(db_path))
    if as_json:
        from .terminal import write_json

        write_json([r._asdict() for r in found])
        return
    if not found:
        click.echo("no redaction rules (repost's own table of secret names still applies)", err=True)
        return
    from .render import aligned
    from .terminal import visible, write

    table = [["id", "kind", "rule", "created"]] + [[str(r.id), r.kind, visible(r.value, lines=False), r.created_at] for r in found]
    write(aligned(table, ["right", "left", "left", "left"]))


@redact.command("remove")
@click.argument("rule_id", type=int, metavar="ID")
@db_option
def remove(rule_id, db_path):
    """Remove a rule (flows it redacted stay redacted)."""
    from repost.store.database import open_database
    from repost.store.redact_rules import remove_redact_rule

    rule = remove_redact_rule(open_database(db_path), rule_id)
    click.echo(f"redaction rule {rule_id} removed: {rule.describe()}")


@redact.command("apply")
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@db_option
@selection_options(replays=True)
@click.option("-y", "--yes", is_flag=True, help="Consent to rewriting the flows that change.")
@click.option("--dry-run", is_flag=True, help="Count the flows that would change; change nothing.")
def apply(ids, db_path, selection, yes, dry_run):
    """Redact stored flows again, under repost's table and today's rules.

    Every selected flow (all of them without ids or filters, replays included)
    is redacted as recording would redact it now. The old values are then gone
    from the database file, its -wal and its free pages (secure delete, the
    search index merged, a checkpoint and a VACUUM): this cannot be undone. The
    count comes first, and it needs --yes, or a y/N answer on a terminal.

    \b
    Exit status: 0 redacted (or nothing to change), 1 failure (an id not found,
    another process kept the -wal from being emptied), 2 usage error,
    3 refused: no consent (nothing changed).
    """
    from dataclasses import replace

    from repost.store.care import missing_ids, selected_ids
    from repost.store.database import open_database
    from repost.store.redact_rules import redactor_for
    from repost.store.scrub import purge_old_bytes, rescrub

    from .delete_cmd import plural

    conn = open_database(db_path)
    if ids:
        missing = missing_ids(conn, list(ids))
        if missing:
            raise click.ClickException(f"no flow with id {', '.join(map(str, missing))}; nothing changed")
        selection = replace(selection, ids=sorted(set(ids)))
    chosen = selected_ids(conn, selection)
    redactor = redactor_for(conn)
    count = rescrub(conn, chosen, redactor, dry_run=True)
    if dry_run:
        click.echo(f"dry run: {plural(count)} of {len(chosen):,} would be redacted; nothing changed", err=True)
        return
    if not count:
        click.echo(f"repost: nothing to redact in {plural(len(chosen))}", err=True)
        return
    if not yes and not _consent(count):
        sys.exit(EXIT_REFUSED)
    changed = rescrub(conn, chosen, redactor)
    purge_old_bytes(conn)
    click.echo(f"repost: redacted {plural(changed)}; the old values are gone from the file, its -wal and its free pages", err=True)


def _consent(count: int) -> bool:
    """delete's rules: the count first; y/N on a terminal; elsewhere --yes or nothing."""
    from .delete_cmd import plural

    click.echo(f"repost: redact {plural(count)} for good? The values they hold now cannot be had back.", err=True)
    if sys.stdin.isatty():
        try:
            if click.confirm(f"Redact {plural(count)}?", default=False, err=True):
                return True
        except click.Abort:
            click.echo("", err=True)
        click.echo("repost: not redacted; nothing changed.", err=True)
        return False
    click.echo(
        f"repost: refused: would rewrite {plural(count)}; nothing changed. "
        "Check the count with --dry-run, then pass --yes to redact.",
        err=True,
    )
    return False
