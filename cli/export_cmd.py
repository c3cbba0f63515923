"""``repost export`` and ``repost import``: fixtures out, captures in."""

import sys

import click

from repost.store import formats

from .options import db_option, selection_options


@click.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@click.option("--format", "fmt", required=True, type=click.Choice(list(formats.EXPORT)),
              help=", ".join(f"{name} ({words})" for name, words in formats.EXPORT.items()) + ".")  # fmt: skip
@db_option
@selection_options
@click.option("--limit", type=click.IntRange(min=1), help="Export at most this many of the selected flows.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, allow_dash=True), default="-", help="Write here instead of stdout.")
def export(ids, fmt, db_path, selection, limit, output):
    """Export flows (all of them, or the ids and filters given), oldest first.

    \b
    repost export --format har -o traffic.har
    repost export --format vcr --path '/v1/*' -o tests/cassettes/api.yaml
    repost export --format curl 12 | sh          # re-send flow 12, exact bytes
    repost export --format mitm -o flows.mitm    # mitmproxy -r flows.mitm

    Redacted values stay redacted; curl commands leave headers redacted at
    capture out, and say so on stderr. Files are created 0600. A VCR cassette
    leaves out flows with no response. vcrpy matches requests on method and URI
    by default: for several POSTs to one URL, add "body" to match_on (see the
    README).
    """
    from dataclasses import replace

    from repost.store.database import open_database
    from repost.store.export import FORMATS
    from repost.store.queries import select_full_flows

    conn = open_database(db_path)
    if ids:
        selection = replace(selection, ids=list(ids))
    from repost.store.tags import with_tags

    rows = with_tags(conn, select_full_flows(conn, selection, limit, newest_first=False))
    binary = FORMATS[fmt].binary
    if output == "-":
        if binary and sys.stdout.isatty():
            raise click.UsageError("a mitmproxy flow file is binary: give -o FILE, or pipe it")
        out = sys.stdout.buffer if binary else sys.stdout
        count = FORMATS[fmt].write(rows, out, on_notes=_tell)
        out.flush()
    else:
        count = _write_file(fmt, rows, output, binary)
    click.echo(f"repost: exported {count} flow{'s' if count != 1 else ''} as {fmt}", err=True)


def _write_file(fmt, rows, output: str, binary: bool) -> int:
    from repost.store.export import FORMATS

    """Write beside ``output`` and rename it into place: an export that fails half way
    (a full disk, a bad id) leaves no half-written file, and an old one stays whole."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(output))
    fd, partial = tempfile.mkstemp(prefix=".repost-export-", dir=folder)
    try:
        with open(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as out:
            count = FORMATS[fmt].write(rows, out, on_notes=_tell)
        # mkstemp made it 0600, as the database is: an export holds the same data.
        os.replace(partial, output)
    except BaseException:
        os.unlink(partial)
        raise
    return count


def _tell(notes: list[str]) -> None:
    from .terminal import visible

    for note in notes:
        click.echo(visible(f"repost: {note}", lines=False), err=True)


@click.command("import")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(list(formats.IMPORT)), help="The file's format (detected when not given).")
@click.option("--keep-secrets", is_flag=True, help="Do not redact secrets on the way in.")
@db_option
def import_(path, fmt, keep_secrets, db_path):
    """Import a HAR file (a browser's, or repost's own), a VCR.py cassette or a
    mitmproxy flow file.

    Secrets are redacted on the way in, as the recorder does. All or nothing: a
    file with anything unreadable imports no flow. Flows already in the database
    (the same flow id) are skipped, so importing a file twice adds nothing.
    """
    from repost.store.importer import import_file

    done = import_file(path, db_path, fmt=fmt, keep_secrets=keep_secrets)
    count = done.imported
    line = f"repost: imported {count} flow{'s' if count != 1 else ''} from {path}"
    if done.skipped:
        line += f" ({done.skipped} already present, skipped)"
    click.echo(line, err=True)
