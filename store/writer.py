"""Writing flows to SQLite in batches: converting snapshots to rows, committing,
retrying when the database fails, salvaging rows that cannot be stored whole.

``BatchWriter`` does the work synchronously: the CLI (replay, import) calls it
directly, and the recording proxy runs it in a separate process
(``writer_process.py``), because any Python work on a thread of the proxy's
process competes for its GIL.

A failed commit (disk full, read-only file, a lock held too long) keeps the rows
and retries on the next batch, logging loudly; nothing is dropped until the
backlog passes ``max_backlog`` rows, and then the loss is counted and logged.
"""

import logging
import sqlite3
import time
from typing import NamedTuple

from .capture import COLUMNS, INSERT_SQL, row_from_snapshot
from .database import open_database
from .errors import StoreError
from .redact import Redactor
from .timefmt import iso_utc

log = logging.getLogger("repost")

# Errors that belong to a row's data, not to the database: retrying cannot help.
ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, ValueError)

UPDATE_ERROR_SQL = "UPDATE flows SET error = ? WHERE flow_id = ? AND error IS NULL"


class ErrorUpdate(NamedTuple):
    """An error that came after the flow was handed over (e.g. the client left)."""

    message: str
    flow_id: str


class BatchWriter:
    def __init__(self, path: str, *, redactor: Redactor | None, max_body: int, max_backlog: int = 200_000,
                 retain: float | None = None):  # fmt: skip
        self.path = path
        self.retain = retain  # seconds: older flows are deleted while idle (record --retain)
        self.redactor = redactor
        self.max_body = max_body
        self.max_backlog = max_backlog
        self.written = 0
        self.lost = 0
        self.last_error: str | None = None
        self._unwritten: list[tuple] = []  # converted rows whose commit failed
        self._updates: list[tuple] = []
        self._reopen = False
        self._conn = open_database(path, create=True)
        self._rules_version: int | None = None
        self._follow_rules()

    def _follow_rules(self) -> None:
        """Take up the user's redaction rules (``repost redact add``) when they may have changed:
        one PRAGMA per batch or idle tick; the rules are read again only after another
        connection committed."""
        from .redact_rules import data_version, user_rules

        if self.redactor is None:  # --keep-secrets
            return
        try:
            version = data_version(self._conn)
            if version == self._rules_version:
                return
            rules = user_rules(self._conn)
        except sqlite3.Error as e:
            log.debug("repost: redaction rules not read: %s", e)
            return
        self._rules_version = version
        if rules != self.redactor.rules:
            self.redactor = self.redactor.with_rules(rules)

    def write(self, items) -> bool:
        """Convert and commit snapshots and error updates, with any backlog first.

        False when the database failed: the rows are kept for the next call."""
        self._follow_rules()
        rows = self._unwritten
        for item in items:
            if isinstance(item, ErrorUpdate):
                self._updates.append(item)
            else:
                rows.append(self._row(item))
        if not rows and not self._updates:
            self._unwritten = []
            return True
        if self._reopen and not self._reconnect():
            self._keep(rows)
            return False
        left = self._commit(rows)
        self._keep(left)
        return not left

    def idle(self, budget: int = 500) -> None:
        """Spare time: index up to ``budget`` flows' bodies for full-text search."""
        from .matching import index_match_keys
        from .search import index_pending

        if self._unwritten:
            self.write([])
            return
        self._follow_rules()
        if self.retain:
            self._prune(budget)
        try:
            index_pending(self._conn, batch=budget, limit=budget)
            index_match_keys(self._conn, batch=budget, limit=budget)
        except sqlite3.Error as e:
            log.debug("repost: search indexing postponed: %s", e)

    def _prune(self, budget: int) -> None:
        """Delete up to ``budget`` flows older than the retention (pruned first: indexing
        flows about to go would be wasted)."""
        from .care import prune_step

        before = iso_utc(time.time() - self.retain)
        try:
            pruned = prune_step(self._conn, before, budget)
        except sqlite3.Error as e:
            log.debug("repost: pruning postponed: %s", e)
            return
        if pruned:
            log.info("repost: deleted %d flows started before %s (--retain)", pruned, before)

    @property
    def backlog(self) -> int:
        return len(self._unwritten)

    def close(self) -> None:
        if self._unwritten or self._updates:
            self.write([])  # one last try
        self.lost += len(self._unwritten)
        self._unwritten = []
        self._conn.close()

    def _row(self, snap: tuple) -> tuple:
        try:
            return row_from_snapshot(snap, self.redactor, self.max_body)
        except Exception as e:  # a bug must not cost the flow: keep what is certain
            log.error("repost: could not convert flow %s (%s: %s); storing it without bodies", snap[0], type(e).__name__, e)
            return _minimal_row(snap, f"repost could not record this flow fully: {type(e).__name__}: {e}")

    def _commit(self, rows: list[tuple]) -> list[tuple]:
        """Write rows and error updates in one transaction; returns the rows not written."""
        try:
            with self._conn:
                if rows:
                    self._conn.executemany(INSERT_SQL, rows)
                if self._updates:
                    self._conn.executemany(UPDATE_ERROR_SQL, self._updates)
        except ROW_ERRORS:
            # One bad row must not hold back the batch: write them one by one.
            return self._commit_one_by_one(rows)
        except sqlite3.Error as e:
            self._failing(e, len(rows))
            return rows
        self._working()
        self.written += len(rows)
        self._updates = []
        return []

    def _commit_one_by_one(self, rows: list[tuple]) -> list[tuple]:
        for i, row in enumerate(rows):
            try:
                self._insert(row)
            except ROW_ERRORS as e:
                log.error("repost: flow %s could not be stored whole (%s); storing what is certain", row[0], e)
                try:
                    self._insert(_salvage(row, f"repost could not record this flow fully: {e}"))
                except ROW_ERRORS as e2:
                    self.lost += 1
                    log.error("repost: flow %s could not be stored at all (%s)", row[0], e2)
                except sqlite3.Error as e2:
                    self._failing(e2, len(rows) - i)
                    return rows[i:]
            except sqlite3.Error as e:
                self._failing(e, len(rows) - i)
                return rows[i:]
        try:
            with self._conn:
                self._conn.executemany(UPDATE_ERROR_SQL, self._updates)
        except ROW_ERRORS as e:
            log.error("repost: %d error notes could not be stored (%s)", len(self._updates), e)
        except sqlite3.Error as e:
            self._failing(e, 0)
            return []
        self._updates = []
        self._working()
        return []

    def _insert(self, row: tuple) -> None:
        with self._conn:
            self._conn.execute(INSERT_SQL, row)
        self.written += 1

    def _failing(self, error: sqlite3.Error, waiting: int) -> None:
        if self.last_error != str(error):
            log.error("repost: NOT RECORDING to %s: %s (%d flows waiting; retrying)", self.path, error, waiting)
        self.last_error = str(error)
        # A file made read-only (or replaced) needs a new connection once it is fixed.
        self._reopen = True

    def _working(self) -> None:
        if self.last_error is not None:
            log.warning("repost: recording to %s again", self.path)
            self.last_error = None

    def _reconnect(self) -> bool:
        try:
            conn = open_database(self.path, create=True)
        except (StoreError, sqlite3.Error, OSError) as e:
            if self.last_error != str(e):
                log.error("repost: NOT RECORDING to %s: %s", self.path, e)
            self.last_error = str(e)
            return False
        self._conn.close()
        self._conn = conn
        self._reopen = False
        return True

    def _keep(self, rows: list[tuple]) -> None:
        overflow = len(rows) - self.max_backlog
        if overflow > 0:
            self.lost += overflow
            log.error("repost: backlog full, %d flows dropped (%d in all)", overflow, self.lost)
            rows = rows[overflow:]
        self._unwritten = rows


# Columns declared NOT NULL DEFAULT 0: a row made by hand must give them too.
_FLAGS = dict.fromkeys(
    ("request_truncated", "request_redacted", "response_truncated", "response_redacted", "response_incomplete"), 0
)


def _partial_row(values: dict, error: str) -> tuple:
    """A row with only ``values`` known, and the error that says why."""
    values = {**dict.fromkeys(COLUMNS), **values, **_FLAGS, "error": error}
    return tuple(values[c] for c in COLUMNS)


def _salvage(row: tuple, error: str) -> tuple:
    """Keep the flow's identity, time, method and URL; drop what could not be stored."""
    keep = {"flow_id", "started_at", "method", "url", "scheme", "host", "port", "path", "query"}
    values = {c: _plain(v) for c, v in zip(COLUMNS, row) if c in keep}
    values["started_at"] = values["started_at"] or iso_utc(time.time())
    values["method"] = values["method"] or "?"
    values["url"] = values["url"] or "?"
    return _partial_row(values, error)


def _plain(value):
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else value


def _minimal_row(snap: tuple, error: str) -> tuple:
    flow_id, started, method, scheme, host, port = snap[:6]
    values = {
        "flow_id": flow_id,
        "started_at": iso_utc(started),
        "method": method.decode("latin-1"),
        "url": f"{scheme.decode('latin-1')}://{host}:{port}/",
        "host": host,
    }
    return _partial_row(values, error)
