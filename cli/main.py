"""The ``repost`` command group and the error handling every command shares.

Commands import what they need inside their functions, so ``repost list`` does
not pay for mitmproxy's start-up.
"""

import os
import sqlite3
import sys

import click

from repost.store.errors import StoreError

from . import diff_cmd, inspect_cmds, record_cmd, replay_cmd, rules_cmd


class RepostGroup(click.Group):
    """Turns every error a user can cause into one line on stderr (``--debug`` for the traceback)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (StoreError, sqlite3.Error, OSError, UnicodeError) as e:
            if _debug(ctx):
                raise
            raise click.ClickException(_one_line(e)) from None


def _one_line(e: Exception) -> str:
    if isinstance(e, sqlite3.Error):
        return f"database error: {e}"
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or e}: {e.filename}"
    return str(e)


def _debug(ctx: click.Context) -> bool:
    return bool((ctx.obj or {}).get("debug")) or os.environ.get("REPOST_DEBUG", "") not in ("", "0")


@click.group(cls=RepostGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for errors (also REPOST_DEBUG=1).")
@click.version_option(package_name="repost")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Record, inspect and safely replay HTTP write traffic.

    repost runs mitmproxy with a recorder that stores POST requests and their
    responses in a SQLite file (secrets redacted), and reads them back.

    \b
    Quick start:
      repost record                      # proxy on 127.0.0.1:8080, records to ./repost.db
      curl -x http://127.0.0.1:8080 -d '{"a": 1}' http://example.test/orders
      repost list
      repost show 1

    Every command takes --db PATH (default $REPOST_DB, else ./repost.db).
    Exit codes: 0 success, 1 failure, 2 usage error.
    """
    ctx.ensure_object(dict)["debug"] = debug


cli.add_command(record_cmd.record)
cli.add_command(inspect_cmds.list_flows)
cli.add_command(inspect_cmds.show)
cli.add_command(diff_cmd.diff)
cli.add_command(replay_cmd.replay)
cli.add_command(rules_cmd.rules)


def main() -> None:  # pragma: no cover
    cli(prog_name="repost")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
