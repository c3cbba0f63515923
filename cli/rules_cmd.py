"""``repost rules``: endpoints marked read-only, kept in the database."""

import click

from .options import db_option, json_option


@click.group()
def rules():
    """Mark endpoints read-only, so that replaying them needs no consent.

    \b
    repost rules add --read-only 'POST */_search'      # Elasticsearch searches
    repost rules add --read-only '/v1/embeddings'       # a path, any host and method
    repost rules list
    repost rules remove 1
    """


@rules.command("add")
@click.argument("rule", metavar="'[METHOD] URL-GLOB'")
@click.option("--read-only", is_flag=True, required=True, help="The endpoint does not change anything (the only kind of rule so far).")
@db_option
def add(rule, read_only, db_path):
    """Add a rule. A glob starting with / matches the path; otherwise the URL (without the query)."""
    from repost.store.database import open_database
    from repost.store.rules import READ_ONLY, UnmatchableRule, add_rule, check_can_match, parse_rule

    try:
        check_can_match(parse_rule(rule)[1])  # before the database is created for it
    except UnmatchableRule as e:
        raise click.BadParameter(str(e), param_hint="'[METHOD] URL-GLOB'") from None
    added = add_rule(open_database(db_path, create=True), READ_ONLY, rule)
    click.echo(f"rule {added.id}: {added.describe()} is read-only")


@rules.command("list")
@db_option
@json_option
def list_rules(db_path, as_json):
    """List the rules."""
    from repost.store.database import open_database
    from repost.store.rules import get_rules

    found = get_rules(open_database(db_path))
    if as_json:
        from .terminal import write_json

        write_json([r._asdict() for r in found])
        return
    if not found:
        click.echo("no rules", err=True)
        return
    from .render import aligned
    from .terminal import write

    table = [["id", "kind", "rule", "created"]] + [[str(r.id), r.kind, r.describe(), r.created_at] for r in found]
    write(aligned(table, ["right", "left", "left", "left"]))


@rules.command("remove")
@click.argument("rule_id", type=int, metavar="ID")
@db_option
def remove(rule_id, db_path):
    """Remove a rule."""
    from repost.store.database import open_database
    from repost.store.rules import remove_rule

    remove_rule(open_database(db_path), rule_id)
    click.echo(f"rule {rule_id} removed")
