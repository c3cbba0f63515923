"""Opening a repost database: checks first, so a foreign or broken file is never touched.

Every command goes through ``open_database``. It refuses, with one clear
sentence, a missing file (for readers), a file that is not SQLite, a SQLite
file of another program, a corrupt file and a schema newer than this repost;
only then does it switch to WAL mode and apply pending migrations.
"""

import os
import sqlite3
from pathlib import Path

from .errors import CorruptDatabase, MissingDatabase, NewerSchema, NotARepostDatabase

MIGRATION_SET = "repost"
# Every migration name in migrations.py, in order (tests/test_store.py checks it).
KNOWN_MIGRATIONS = (
    "m001_initial",
    "m002_list_indexes_and_search",
    "m003_rules",
    "m004_streams",
    "m005_smaller_search_index",
)

SQLITE_MAGIC = b"SQLite format 3\x00"
BUSY_TIMEOUT_MS = 10_000


def default_db_path() -> str:
    return os.environ.get("REPOST_DB") or "repost.db"


def open_database(path: str | os.PathLike, *, create: bool = False) -> sqlite3.Connection:
    """Open (and with ``create``, create or migrate) the database at ``path``.

    Readers get a connection that never writes unless migrations are pending.
    """
    path = Path(path)
    if not path.exists() or (path.stat().st_size == 0 and not create):
        if not create:
            raise MissingDatabase(f"no database at {path} (record some traffic first, or pass --db)")
        _create_private_file(path)
    elif path.is_dir():
        raise NotARepostDatabase(f"{path} is a directory, not a repost database")
    _check_header(path)
    side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    existed = [p.exists() for p in side_files]
    try:
        state = _inspect(path)
        if state == "foreign":
            raise NotARepostDatabase(f"{path} is a SQLite database of another program, not a repost database")
    except Exception:
        # Reading a WAL-mode file creates -wal/-shm beside it: leave no trace of a refused file.
        for side, was_there in zip(side_files, existed):
            if not was_there and side.exists() and side.stat().st_size in (0, 32768):
                side.unlink(missing_ok=True)
        raise
    conn = _connect(path)
    if state != "current":
        _migrate(conn)
    return conn


def _create_private_file(path: Path) -> None:
    # Created 0600 before SQLite sees it: SQLite gives the -wal and -shm files the
    # same mode as the database, so secrets never sit in a world-readable file.
    if path.parent and not path.parent.exists():
        raise MissingDatabase(f"cannot create {path}: folder {path.parent} does not exist")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _check_header(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(100)
    if len(head) == 0:
        return  # a file we just created
    if not head.startswith(SQLITE_MAGIC):
        raise NotARepostDatabase(f"{path} is not a SQLite database (wrong header); left untouched")
    if len(head) < 100:
        raise CorruptDatabase(f"{path} is a truncated SQLite file; left untouched")


def _inspect(path: Path) -> str:
    """'new', 'current', 'outdated' or 'foreign', read without writing a byte."""
    uri = f"file:{_quote(path)}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                return "new"
            if "_sqlite_migrations" not in tables:
                return "foreign"
            applied = [
                r[0]
                for r in conn.execute(
                    "SELECT name FROM _sqlite_migrations WHERE migration_set = ? ORDER BY rowid",
                    [MIGRATION_SET],
                )
            ]
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CorruptDatabase(f"{path} cannot be read as a SQLite database ({e}); left untouched") from e
    if not applied:
        return "foreign" if "flows" in tables or len(tables) > 1 else "new"
    unknown = [name for name in applied if name not in KNOWN_MIGRATIONS]
    if unknown:
        raise NewerSchema(
            f"{path} was written by a newer repost (schema {unknown[-1]}); upgrade repost to read it"
        )
    return "current" if len(applied) == len(KNOWN_MIGRATIONS) else "outdated"


def _quote(path: Path) -> str:
    from urllib.parse import quote

    return quote(str(path.resolve()))


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    return conn


def enable_wal(conn: sqlite3.Connection) -> None:
    """WAL lets readers run while the recorder writes; NORMAL sync survives a
    killed process (only an OS crash can lose the last commits)."""
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")


def _migrate(conn: sqlite3.Connection) -> None:
    from sqlite_utils import Database

    from .migrations import migrations

    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        # A new file: 32 KB pages hold several 2-3 KB flows each (4 KB pages held
        # ~1.1, the rest wasted): 2.15x -> 1.59x of the bodies' size, measured.
        # Only possible before the first table, and before WAL.
        conn.execute("PRAGMA page_size = 32768")
    enable_wal(conn)
    migrations.apply(Database(conn))
