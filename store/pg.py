"""PostgreSQL as a store, behind the slice of the ``sqlite3`` interface the store uses.

The store is written against ``sqlite3.Connection``: ``execute``/``executemany`` with ``?``
parameters, cursors with ``description``, ``lastrowid`` and ``rowcount``, ``with conn:`` for a
transaction. ``PgConnection`` gives the same to a psycopg 3 connection, so that every query
module (and every command above them) reads one code path; the SQLite connection stays the
plain ``sqlite3.Connection`` it always was, and its hot path pays nothing for this.

Where the two dialects differ, the difference is kept here, in one place per statement:
- mechanical rewrites every statement gets (``?`` placeholders, SQLite's planner hints,
  ``json_each`` id lists, ``INSERT OR IGNORE``, ``GLOB``), in ``translate``;
- whole statements that differ, side by side in ``STATEMENTS`` (SQLite's text -> PostgreSQL's);
- the full-text index (FTS5 there, tsvector + GIN here) in store/search.py, by ``is_pg``.

psycopg's errors are raised as the ``sqlite3`` exception of the same PEP 249 class (the
original chained), so the writer's "keep the rows and retry" and the CLI's one-line errors
work unchanged: a server that goes away is an ``OperationalError``, as a full disk is.
"""

import re
import sqlite3

from .errors import MissingDriver, StoreError

URL_PREFIXES = ("postgresql://", "postgres://")
MISSING_DRIVER = "PostgreSQL support needs psycopg: pip install 'repost[postgres]'"

# How long a command waits for the server before saying it cannot reach it.
CONNECT_TIMEOUT_S = 10


def is_url(path) -> bool:
    return isinstance(path, str) and path.startswith(URL_PREFIXES)


def is_pg(conn) -> bool:
    return type(conn) is PgConnection


_PASSWORD = re.compile(r"^(\w+://[^:/@]*):([^@/]*)@")


def shown(url: str) -> str:
    """The URL as messages show it: any password replaced by ***."""
    return _PASSWORD.sub(r"\1:***@", url)


def _hidden(text: str, url: str) -> str:
    """A driver's message about ``url`` (which may quote it) without its password."""
    found = _PASSWORD.match(url)
    text = " ".join(text.split())
    return text.replace(found[2], "***") if found and found[2] else text


def _psycopg():
    try:
        import psycopg
    except ImportError:
        raise MissingDriver(MISSING_DRIVER) from None
    return psycopg


# -- psycopg's errors as sqlite3's ------------------------------------------------------------


def _as_sqlite_error(e: Exception) -> sqlite3.Error:
    psycopg = _psycopg()
    for theirs, ours in (
        (psycopg.IntegrityError, sqlite3.IntegrityError),
        (psycopg.DataError, sqlite3.DataError),
        (psycopg.ProgrammingError, sqlite3.ProgrammingError),
        (psycopg.NotSupportedError, sqlite3.NotSupportedError),
        (psycopg.InterfaceError, sqlite3.OperationalError),  # a closed connection: like a lost server
        (psycopg.OperationalError, sqlite3.OperationalError),
    ):
        if isinstance(e, theirs):
            return ours(_one_line(e))
    return sqlite3.DatabaseError(_one_line(e))


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return f"PostgreSQL: {text}"


# -- statements -------------------------------------------------------------------------------

# Whole statements whose PostgreSQL form differs beyond the mechanical rewrites below.
STATEMENTS = {
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'":
        "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'events'",
    # Changes whenever a writing transaction starts or ends (any connection's, the snapshot's
    # in-progress list included): a cheap, conservative "may have changed".
    "PRAGMA data_version": "SELECT pg_current_snapshot()::text",
}  # fmt: skip

_HINTS = re.compile(r" (?:INDEXED BY \w+|NOT INDEXED)")
# Id lists are passed as one JSON array: json_each in SQLite, json_array_elements_text here.
_ID_LIST = "SELECT value FROM json_each(?)"
_PG_ID_LIST = "SELECT value::bigint FROM json_array_elements_text(?::json) AS value"
_GLOB = re.compile(r"(\w+) GLOB \?")
# FTS5's MATCH on the contentless flows_fts (rowid = the flow's id) -> tsvector @@ tsquery.
_FTS = (
    ("flows_fts MATCH ?", "flows_fts.words @@ repost_fts_query(?)"),
    ("flows_fts.rowid", "flows_fts.id"),
    ("SELECT rowid FROM flows_fts", "SELECT id FROM flows_fts"),
    ("AND rowid BETWEEN", "AND id BETWEEN"),
)
_INSERT_ID = re.compile(r"^INSERT INTO (flows|rules|redact_rules|events) ")
_TOKEN = re.compile(r"'(?:[^']|'')*'|\?|%")
_BEGIN = ("BEGIN", "BEGIN IMMEDIATE", "BEGIN DEFERRED", "BEGIN EXCLUSIVE")
# Statements that sqlite3 opens a transaction for (its legacy, default, isolation):
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")
# Two application-wide advisory locks, held to the end of a transaction:
# - SERIAL_LOCK serialises what SQLite's BEGIN IMMEDIATE does (the lazy indexers, pruning,
#   imports): those read a mark and move it, and must not take the same rows;
# - IDS_LOCK is held shared by every writing transaction, and alone, for a moment, by
#   ``settled_ids``.
SERIAL_LOCK, IDS_LOCK = 0x7265706F7374, 0x7265706F7375  # "repost", "repost"+1
_BEGIN_SHARED = f"BEGIN; SELECT pg_advisory_xact_lock_shared({IDS_LOCK})"
_BEGIN_SERIAL = f"BEGIN; SELECT pg_advisory_xact_lock({SERIAL_LOCK}); SELECT pg_advisory_xact_lock_shared({IDS_LOCK})"
_BEGIN_IDS = f"BEGIN; SELECT pg_advisory_xact_lock({IDS_LOCK})"


def translate(sql: str) -> str:
    """SQLite's statement in PostgreSQL's words (cached by the connection)."""
    whole = STATEMENTS.get(sql)
    if whole is not None:
        return whole.replace("%", "%%")
    if sql.startswith("PRAGMA "):
        raise sqlite3.NotSupportedError(f"{sql} has no PostgreSQL form")
    sql = _HINTS.sub("", sql)
    sql = sql.replace(_ID_LIST, _PG_ID_LIST)
    sql = _GLOB.sub(r"\1 ~ repost_glob(?)", sql)
    sql = sql.replace(" IS ?", " IS NOT DISTINCT FROM ?").replace(" IN ()", " IN (NULL)")
    if "flows_fts" in sql:
        for sqlite_text, pg_text in _FTS:
            sql = sql.replace(sqlite_text, pg_text)
    if sql.startswith("INSERT OR IGNORE INTO "):
        sql = "INSERT INTO " + sql[len("INSERT OR IGNORE INTO "):] + " ON CONFLICT DO NOTHING"
    if sql.startswith("INSERT INTO flows (") and "VALUES" in sql:
        # A flow already there (another recorder's, or a batch whose commit was cut off and is
        # sent again) is not stored twice: flow_id is unique here (store/pg_schema.py).
        sql += " ON CONFLICT (flow_id) DO NOTHING"
    # ? outside string literals is a placeholder; every % is doubled, since psycopg reads % as its
    # own (statements always run with a parameter list, so every % is read the same way).
    return _TOKEN.sub(lambda m: "%s" if m[0] == "?" else m[0].replace("%", "%%"), sql)


def _nul_free(row):
    """``row`` with NUL in its strings as U+FFFD: PostgreSQL's text cannot hold NUL (SQLite's
    can), and a hostile request line or reason phrase must not cost its flow. The row itself
    when it has none (a scan, cheaper than a Python-level psycopg dumper on every string)."""
    for value in row:
        if value.__class__ is str and "\x00" in value:
            return [v.replace("\x00", "\ufffd") if v.__class__ is str else v for v in row]
    return row


class PgCursor:
    """What the store reads of a sqlite3 cursor."""

    __slots__ = ("_cur", "lastrowid")

    def __init__(self, cur, lastrowid=None):
        self._cur = cur
        self.lastrowid = lastrowid

    @property
    def description(self):
        return self._cur.description

    @property
    def rowcount(self) -> int:
        return self._cur.rowcount

    def fetchone(self):
        try:
            return self._cur.fetchone()
        except Exception as e:
            raise _as_sqlite_error(e) from e

    def fetchall(self):
        try:
            return self._cur.fetchall()
        except Exception as e:
            raise _as_sqlite_error(e) from e

    def __iter__(self):
        return iter(self.fetchall())


class _Empty:
    description = None
    rowcount = -1
    lastrowid = None

    def fetchone(self):
        return None

    def fetchall(self):
        return []

    def __iter__(self):
        return iter(())


class PgConnection:
    """A psycopg connection that takes SQLite's statements and transaction habits."""

    dialect = "postgresql"

    def __init__(self, url: str):
        psycopg = _psycopg()
        self.url = url
        try:
            # autocommit: transactions are opened here, as sqlite3 opens them (before a write,
            # or at an explicit BEGIN), so that a reader never sits idle in a transaction.
            self._conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, client_encoding="UTF8")
        except (psycopg.Error, ValueError) as e:  # ValueError: a URL psycopg cannot read
            raise StoreError(f"cannot connect to {shown(url)}: {_hidden(str(e), url)}") from e
        self.in_transaction = False
        self._sql: dict[str, str] = {}

    def _pg(self, sql: str) -> str:
        found = self._sql.get(sql)
        if found is None:
            found = self._sql[sql] = translate(sql)
        return found

    def _begin(self, serial: bool = False, begin: str | None = None) -> None:
        self._conn.execute(begin or (_BEGIN_SERIAL if serial else _BEGIN_SHARED))
        self.in_transaction = True

    def execute_raw(self, sql: str) -> None:
        """A statement as it is (DDL: store/pg_schema.py), no parameters."""
        try:
            self._conn.execute(sql)
        except Exception as e:
            raise self._failed(e) from e

    def settled_ids(self) -> int:
        """The highest id below which every flow id given out is committed or gone for good.

        PostgreSQL gives ids to concurrent writers that commit in any order, so the lazy
        indexers' "done up to id N" (database.catch_up) must not pass an id still in
        flight: writers hold IDS_LOCK shared from their first statement, so once it is had
        alone, every id given out so far is settled."""
        self._begin(begin=_BEGIN_IDS)
        try:
            return self._conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0]
        finally:
            self.commit()

    def execute(self, sql: str, params=()) -> PgCursor:
        try:
            head = sql.lstrip()[:7].upper()
            if sql.strip().upper() in _BEGIN:
                self._begin(serial=sql.strip().upper() != "BEGIN DEFERRED")
                return _Empty()
            if head.startswith(_WRITES) and not self.in_transaction:
                self._begin()
            pg = self._pg(sql)
            returning = _INSERT_ID.match(pg) is not None
            cur = self._conn.execute(pg + " RETURNING id" if returning else pg, _nul_free(list(params)))
            if returning:
                row = cur.fetchone()
                return PgCursor(cur, row[0] if row else None)
            return PgCursor(cur)
        except sqlite3.Error:
            raise
        except Exception as e:
            raise self._failed(e) from e

    def executemany(self, sql: str, rows) -> PgCursor:
        try:
            if not self.in_transaction:
                self._begin()
            cur = self._conn.cursor()
            cur.executemany(self._pg(sql), [_nul_free(row) for row in rows])
            return PgCursor(cur)
        except Exception as e:
            raise self._failed(e) from e

    def _failed(self, e: Exception) -> sqlite3.Error:
        """The error to raise; a failed transaction is over (PostgreSQL refuses the rest of it)."""
        if self.in_transaction:
            self.rollback()
        return _as_sqlite_error(e)

    def commit(self) -> None:
        if self.in_transaction:
            self.in_transaction = False
            try:
                self._conn.execute("COMMIT")
            except Exception as e:
                raise _as_sqlite_error(e) from e

    def rollback(self) -> None:
        if self.in_transaction:
            self.in_transaction = False
            try:
                self._conn.execute("ROLLBACK")
            except Exception:  # noqa: BLE001 - a lost connection has rolled it back already
                pass

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb) -> bool:
        if kind is None:
            self.commit()
        else:
            self.rollback()
        return False

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # noqa: BLE001
            pass

    @property
    def closed(self) -> bool:
        return self._conn.closed


def open_pg(url: str, *, create: bool = False) -> PgConnection:
    """Connect and bring the schema up to date (store/pg_schema.py); ``create``: a store with
    no repost tables yet is set up, else refused as no store, as a missing file is."""
    from .pg_schema import migrate

    conn = PgConnection(url)
    try:
        migrate(conn, url, create=create)
    except BaseException:
        conn.close()
        raise
    return conn
