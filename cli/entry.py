"""The ``repost`` program: a quick road for ``repost show ID``, click for the rest.

Importing click takes ~21 ms here, and ``repost show`` has 50 ms in all (start-up
included). So the plainest invocations of show (an id, ``--json``, ``--db PATH``)
run without it. Anything else, and every error, takes click's road, so help,
error messages and exit codes read the same whichever road a command starts on.
"""

import os
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    plain = plain_show(args)
    if plain is not None and quick_show(*plain):
        return
    from .main import cli

    cli.main(args=args, prog_name="repost")


def plain_show(args: list[str]) -> tuple[int, str | None, bool] | None:
    """(id, db path or None, --json) for ``show ID [--json] [--db PATH]``, else None."""
    if not args or args[0] != "show":
        return None
    flow_id, db_path, as_json = None, None, False
    rest = iter(args[1:])
    for arg in rest:
        if arg == "--json" and not as_json:
            as_json = True
        elif arg == "--db" and db_path is None:
            db_path = next(rest, "")
            if not db_path:
                return None
        elif arg.startswith("--db=") and db_path is None and len(arg) > 5:
            db_path = arg[5:]
        elif arg.isascii() and arg.isdigit() and len(arg) <= 18 and flow_id is None:  # a SQLite integer
            flow_id = int(arg)
        else:
            return None
    return None if flow_id is None else (flow_id, db_path, as_json)


def quick_show(flow_id: int, db_path: str | None, as_json: bool) -> bool:
    """Print the flow; False (having printed nothing) when click's road must say why not."""
    from repost.store.database import default_db_path

    from .show import load_flow, print_flow

    try:
        flow, replays, rules = load_flow(db_path or default_db_path(), flow_id)
    except Exception:  # an unknown id, no database, ...: click's road words it as always
        return False
    try:
        print_flow(flow, replays, rules, as_json)
    except BrokenPipeError:
        reader_left()
        sys.exit(141)
    except (OSError, UnicodeError) as e:  # a full disk, say: worded as click's road words it
        if debug():
            raise
        sys.stderr.write(f"Error: {one_line(e)}\n")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.stderr.write("\nAborted!\n")  # as click says it
        sys.exit(1)
    return True


def reader_left() -> None:
    """``repost ... | head``: the reader left; stop quietly, as cat does."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def one_line(e: Exception) -> str:
    """An error a user can cause, as the one line repost prints for it."""
    import sqlite3

    if isinstance(e, sqlite3.Error):
        return f"database error: {e}"
    if isinstance(e, OSError) and e.filename:
        return f"{e.strerror or e}: {e.filename}"
    return str(e)


def debug(flag: bool = False) -> bool:
    """--debug, or REPOST_DEBUG=1: show tracebacks."""
    return flag or os.environ.get("REPOST_DEBUG", "") not in ("", "0")
