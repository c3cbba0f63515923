"""The ``repost`` command group and the error handling every command shares.

Commands import what they need inside their functions, so ``repost list`` does
not pay for mitmproxy's start-up.
"""

import sqlite3

import click

from repost.store.errors import StoreError

from .entry import debug, one_line, reader_left

# Each command's module is imported only when that command runs: start-up time is
# part of every command's latency (a `list` answers in well under 100 ms).
COMMANDS = {
    "record": ("record_cmd", "record"),
    "list": ("inspect_cmds", "list_flows"),
    "show": ("inspect_cmds", "show"),
    "diff": ("diff_cmd", "diff"),
    "replay": ("replay_cmd", "replay"),
    "rules": ("rules_cmd", "rules"),
    "export": ("export_cmd", "export"),
    "import": ("export_cmd", "import_"),
    "delete": ("delete_cmd", "delete"),
    "prune": ("prune_cmd", "prune"),
    "tag": ("tag_cmd", "tag"),
    "untag": ("tag_cmd", "untag"),
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
        except (StoreError, sqlite3.Error, OSError, UnicodeError, OverflowError) as e:
            # OverflowError: an id or number too large for SQLite's 64-bit integers.
            if _debug(ctx):
                raise
            raise click.ClickException(one_line(e)) from None


def _debug(ctx: click.Context) -> bool:
    return debug(bool((ctx.obj or {}).get("debug")))


@click.group(name="repost", cls=RepostGroup, context_settings={"help_option_names": ["-h", "--help"]})
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




if __name__ == "__main__":  # pragma: no cover
    cli(prog_name="repost")
