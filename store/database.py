"""Opening a repost database: checks first, so a foreign or broken file is never touched.

Every command goes through ``open_database``. It refuses, with one clear
sentence, a missing file (for readers), a file that is not SQLite, a SQLite
file of another program, a corrupt file and a schema newer than this repost;
only then does it switch to WAL mode and apply pending migrations.
"""

import os
import sqlite3

from .errors import CorruptDatabase, MissingDatabase, NewerSchema, NotARepostDatabase
from .schema import KNOWN_MIGRATIONS, MIGRATION_SET

SQLITE_MAGIC = b"SQLite format 3\x00"
_URL_PREFIXES = ("postgresql://", "postgres://")  # as store/pg.py's, without importing it
BUSY_TIMEOUT_MS = 10_000


def default_db_path() -> str:
    return os.environ.get("REPOST_DB") or "repost.db"


def open_database(path: str | os.PathLike, *, create: bool = False) -> sqlite3.Connection:
    """Open (and with ``create``, create or migrate) the database at ``path``.

    Readers get a connection that never writes unless migrations are pending.
    A ``postgresql://`` URL opens a PostgreSQL store instead (store/pg.py), which reads and
    writes through the same interface.
    """
    if path.__class__ is str and path.startswith(_URL_PREFIXES):
        from .pg import open_pg

        return open_pg(path, create=create)
    # os.path, not pathlib: pathlib's import is ~4 ms of `repost show`'s 50 ms budget.
    path = os.fspath(path)
    if not os.path.exists(path) or (os.path.getsize(path) == 0 and not create):
        if not create:
            raise MissingDatabase(f"no database at {path} (record some traffic first, or pass --db)")
        _create_private_file(path)
    elif os.path.isdir(path):
        raise NotARepostDatabase(f"{path} is a directory, not a repost database")
    _check_header(path)
    side_files = [f"{path}-wal", f"{path}-shm"]
    existed = [os.path.exists(p) for p in side_files]
    try:
        state = _inspect(path)
        if state == "foreign":
            raise NotARepostDatabase(f"{path} is a SQLite database of another program, not a repost database")
    except Exception:
        # Reading a WAL-mode file creates -wal/-shm beside it: leave no trace of a refused file.
        for side, was_there in zip(side_files, existed):
            if not was_there and os.path.exists(side) and os.path.getsize(side) in (0, 32768):
                try:
                    os.unlink(side)
                except FileNotFoundError:
                    pass
        raise
    conn = _connect(path)
    if state != "current":
        _migrate(conn)
    return conn


def is_url(path) -> bool:
    """A server's store (``postgresql://...``), not a file."""
    return path.__class__ is str and path.startswith(_URL_PREFIXES)


def describe(path) -> str:
    """The store as messages name it: a file's absolute path, a URL without its password."""
    if is_url(path):
        from .pg import shown

        return shown(path)
    return os.path.abspath(path)


def same_store(a, b) -> bool:
    """Whether two --db values name one store (one file by any path, or one URL)."""
    if is_url(a) or is_url(b):
        return a == b
    a, b = os.fspath(a), os.fspath(b)
    if os.path.exists(a) and os.path.exists(b):
        return os.path.samefile(a, b)
    return os.path.realpath(a) == os.path.realpath(b)


def exists(path) -> bool:
    """Whether a command would find the store there (a server's store: assumed so)."""
    return is_url(path) or os.path.exists(path)


def discard_created(path: str | os.PathLike, only_if_empty: bool = False) -> None:
    """Remove a database that a failed command created itself, with its -wal and -shm:
    a failure leaves nothing behind. ``only_if_empty``: unless it holds flows.
    A server's store is never removed."""
    if is_url(path):
        return
    path = os.fspath(path)
    if only_if_empty:
        try:
            conn = sqlite3.connect(f"file:{_quote(path)}?mode=ro", uri=True)
            try:
                if conn.execute("SELECT 1 FROM flows LIMIT 1").fetchone() is not None:
                    return
            finally:
                conn.close()
        except sqlite3.Error:
            pass  # no flows table: nothing recorded
    for name in (path, f"{path}-wal", f"{path}-shm", f"{path}-journal"):
        try:
            os.unlink(name)
        except FileNotFoundError:
            pass


def _create_private_file(path: str) -> None:
    # Created 0600 before SQLite sees it: SQLite gives the -wal and -shm files the
    # same mode as the database, so secrets never sit in a world-readable file.
    folder = os.path.dirname(path)
    if folder and not os.path.exists(folder):
        raise MissingDatabase(f"cannot create {path}: folder {folder} does not exist")
    fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)


def _check_header(path: str) -> None:
    head = _read_header(path)
    if len(head) == 0:
        return  # a file we just created
    if not head.startswith(SQLITE_MAGIC):
        raise NotARepostDatabase(f"{path} is not a SQLite database (wrong header); left untouched")
    if len(head) < 100:
        raise CorruptDatabase(f"{path} is a truncated SQLite file; left untouched")


# path -> a descriptor of the file, kept open for the life of the process (see _read_header).
_HEADER_FDS: dict[str, int] = {}


def _read_header(path: str) -> bytes:
    """The file's first 100 bytes, read through a descriptor this process never closes.

    Closing any descriptor of a file drops every POSIX lock the process holds on it,
    SQLite's included (SQLite guards only its own descriptors). A second open_database
    in a process that holds a connection (repost ui, a replay that stores what it sent)
    would drop that connection's shared lock; another process closing the database
    would then believe itself the last user, checkpoint and delete the WAL under it,
    and the connection would never see a commit again.
    """
    fd = _HEADER_FDS.get(path)
    if fd is not None:
        held, now = os.fstat(fd), os.stat(path)
        if (held.st_dev, held.st_ino) != (now.st_dev, now.st_ino):
            os.close(fd)  # the path names another file now; that descriptor's locks were the old file's
            fd = None
    if fd is None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        _HEADER_FDS[path] = fd
    return os.pread(fd, 100, 0)


def _inspect(path: str) -> str:
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


def _quote(path: str) -> str:
    # What a SQLite URI needs escaped (urllib.parse would cost ~2 ms to import).
    # realpath, not abspath: "link/../x.db" must name the file the OS opens.
    return os.path.realpath(path).replace("%", "%25").replace("?", "%3f").replace("#", "%23")


def _connect(path: str) -> sqlite3.Connection:
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
        # Deleted flows' pages can then be handed back to the file system a few at a
        # time (store/care.py), without a VACUUM that rewrites the whole file.
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    enable_wal(conn)
    migrations.apply(Database(conn))


# -- repost_meta: marks that lazy work (search index, match keys) keeps of how far it got --


def meta_int(conn: sqlite3.Connection, key: str) -> int:
    row = conn.execute("SELECT value FROM repost_meta WHERE key = ?", [key]).fetchone()
    return int(row[0]) if row else 0


def set_meta(conn: sqlite3.Connection, key: str, value) -> None:
    conn.execute(
        "INSERT INTO repost_meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, str(value)],
    )


# The marks of work done up to a flow id: a deleted newest flow's id can be given again.
UPTO_MARKS = ("fts_indexed_upto", "match_indexed_upto")


def lower_upto_marks(conn: sqlite3.Connection, newest: int) -> None:
    """After a delete: marks past the newest flow come back to it, so that flows given
    the deleted ids are indexed and keyed too."""
    for key in UPTO_MARKS:
        if meta_int(conn, key) > newest:
            set_meta(conn, key, newest)


def catch_up(conn: sqlite3.Connection, mark: str, read, write, batch: int, limit: int | None) -> int:
    """Lazy work over the flows past ``mark`` (the search index, the match keys), ``batch`` per
    transaction: ``read(conn, after_id, batch)`` gives rows, ``write(conn, rows)`` does the work
    and returns the last id done. IMMEDIATE, so that two workers (the writer, a search, serve)
    never take the same rows. Returns how many were done."""
    done = 0
    # PostgreSQL: ids given to concurrent writers commit out of order; go no further than
    # those settled, or a mark would pass a flow that commits later (store/pg.py).
    settled = conn.settled_ids() if conn.__class__ is not sqlite3.Connection else None
    while limit is None or done < limit:
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = read(conn, meta_int(conn, mark), batch)
            if settled is not None:
                rows = [r for r in rows if (r["id"] if isinstance(r, dict) else r[0]) <= settled]
            if rows:
                set_meta(conn, mark, write(conn, rows))
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        if not rows:
            break
        done += len(rows)
    return done
