"""The ``repost`` command group and the error handling every command shares.

Commands import what they need inside their functions, so ``repost list`` does
not pay for mitmproxy's start-up.
"""

import os
import sqlite3
import sys

import click

from repost.store.errors import FlowNotFound, MissingDriver, StoreError

# Each command's module is imported only when that command runs: start-up time is
# part of every command's latency (a `list` answers in well under 100 ms).
COMMANDS = {
    "record": ("record_cmd", "record"),
    "list": ("list_cmd", "list_flows"),
    "show": ("show", "show"),
    "diff": ("diff_cmd", "diff"),
    "replay": ("replay_cmd", "replay"),
    "rules": ("rules_cmd", "rules"),
    "redact": ("redact_cmd", "redact"),
    "export": ("export_cmd", "export"),
    "import": ("export_cmd", "import_"),
    "serve": ("serve_cmd", "serve"),
    "delete": ("delete_cmd", "delete"),
    "prune": ("prune_cmd", "prune"),
    "tag": ("tag_cmd", "tag"),
    "untag": ("tag_cmd", "untag"),
    "ui": ("ui_cmd", "ui"),
    "copy": ("copy_cmd", "copy"),
}


class RepostGroup(click.Group):
    """Loads commands lazily, and turns every error a user can cause into one line
    on stderr (``--debug`` for the traceback)."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        if name not in COMMANDS:
            return None
        import importlib

        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"repost.cli.{module}"), attr)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            reader_left()
            ctx.exit(141)
        except FlowNotFound as e:
            if _debug(ctx):
                raise
            raise NoSuchFlow(one_line(e)) from None
        except MissingDriver as e:
            if _debug(ctx):
                raise
            raise MissingInstall(str(e)) from None
        except (StoreError, sqlite3.Error, OSError, UnicodeError, OverflowError) as e:
            # OverflowError: an id or number too large for SQLite's 64-bit integers.
            if _debug(ctx):
                raise
            raise click.ClickException(one_line(e)) from None


class NoSuchFlow(click.ClickException):
    """An id that names no flow: a usage error (2), in every command alike (diff's
    1 means "different", so 1 could not say it there)."""

    exit_code = 2


class MissingInstall(click.ClickException):
    """A store that needs an optional extra (``--db postgresql://`` without psycopg): what to
    install, in one line; 2, as a usage error, since nothing was tried."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"repost: {self.format_message()}", err=True)


def reader_left() -> None:
    """``repost ... | head``: the reader left; stop quietly, as cat does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def one_line(e: Exception) -> str:
    """An error a user can cause, as the one line repost prints for it."""
    if isinstance(e, sqlite3.Error):
        return f"database error: {e}"
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or e}: {e.filename}"
    return str(e)


def debug(flag: bool = False) -> bool:
    """--debug, or REPOST_DEBUG=1: show tracebacks."""
    return flag or os.environ.get("REPOST_DEBUG", "") not in ("", "0")


def _debug(ctx: click.Context) -> bool:
    return debug(bool((ctx.obj or {}).get("debug")))


@click.group(name="repost", cls=RepostGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also REPOST_DEBUG=1).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False), help="The store (a SQLite file, or a postgresql:// URL), for the command that follows (its own --db wins).")
@click.version_option(package_name="repost")
@click.pass_context
def cli(ctx: click.Context, debug: bool, db_path: str | None) -> None:
    """Record, inspect and safely replay HTTP write traffic.

    repost runs mitmproxy with a recorder that stores POST requests and their
    responses in a SQLite file (secrets redacted), and reads them back.

    \b
    Quick start:
      repost record                      # proxy on 127.0.0.1:8080, records to ./repost.db
      curl -x http://127.0.0.1:8080 -d '{"a": 1}' http://example.test/orders
      repost list
      repost show 1

    Every command takes --db PATH (default $REPOST_DB, else ./repost.db), before
    or after its name. Exit codes: 0 success, 1 failure, 2 usage error (an id
    that names no flow included).
    """
    ctx.ensure_object(dict).update(debug=debug, db_path=db_path)




def main(argv: list[str] | None = None) -> None:
    """The ``repost`` program: one parser (click's), one path for every command."""
    cli.main(args=argv, prog_name="repost")


if __name__ == "__main__":  # pragma: no cover
    main()
