"""The batched writer: one thread owns the SQLite connection and commits what
the proxy hands it, every ``interval`` seconds or ``batch_size`` rows.

The proxy's hooks only append to a deque (atomic under the GIL, no lock, no
wake-up), so recording adds next to nothing to a request's latency. A failed
commit (disk full, read-only file, a lock held too long) keeps the rows and
retries on the next tick, logging loudly; nothing is dropped until the backlog
passes ``max_backlog`` rows, and then the loss is counted and logged.
"""

import logging
import sqlite3
import threading
import time
from collections import deque

from .capture import COLUMNS, INSERT_SQL, flow_to_row
from .database import open_database
from .redact import Redactor
from .timefmt import iso_utc

log = logging.getLogger("repost")

# Errors that belong to a row's data, not to the database: retrying cannot help.
ROW_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.DataError, OverflowError, ValueError)

UPDATE_ERROR_SQL = "UPDATE flows SET error = ? WHERE flow_id = ? AND error IS NULL"


class FlowWriter:
    def __init__(
        self,
        path: str,
        *,
        redactor: Redactor | None,
        max_body: int,
        interval: float = 0.1,
        batch_size: int = 500,
        max_backlog: int = 200_000,
    ):
        self.path = path
        self.redactor = redactor
        self.max_body = max_body
        self.interval = interval
        self.batch_size = batch_size
        self.max_backlog = max_backlog
        self.written = 0
        self.lost = 0
        self.last_error: str | None = None
        self._queue: deque = deque()
        self._unwritten: list[tuple] = []  # converted rows whose commit failed
        self._updates: list[tuple] = []
        self._conn = open_database(path, create=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repost-writer", daemon=True)
        self._thread.start()

    # -- called on the proxy's event loop: keep these trivial --------------------

    def submit(self, flow, replay_of: int | None = None) -> None:
        self._queue.append((flow, replay_of))

    def submit_error(self, flow_id: str, message: str) -> None:
        """An error that came after the flow was already handed over (e.g. the client left)."""
        self._queue.append((None, (message, flow_id)))

    # -- the writer thread -------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()
        self.flush()

    def flush(self) -> None:
        while self._queue or self._unwritten or self._updates:
            rows = self._unwritten
            self._unwritten = []
            while self._queue and len(rows) < self.batch_size:
                flow, extra = self._queue.popleft()
                if flow is None:
                    self._updates.append(extra)
                else:
                    rows.append(self._row(flow, extra))
            if not self._commit(rows):
                self._keep(rows)
                return  # try again next tick

    def _row(self, flow, replay_of) -> tuple:
        try:
            return flow_to_row(flow, self.redactor, self.max_body, replay_of)
        except Exception as e:  # a bug must not cost the flow: keep what is certain
            log.error("repost: could not convert flow %s (%s: %s); storing it without bodies", flow.id, type(e).__name__, e)
            return _minimal_row(flow, f"repost could not record this flow fully: {type(e).__name__}: {e}")

    def _commit(self, rows: list[tuple]) -> bool:
        try:
            with self._conn:
                if rows:
                    self._conn.executemany(INSERT_SQL, rows)
                if self._updates:
                    self._conn.executemany(UPDATE_ERROR_SQL, self._updates)
        except ROW_ERRORS:
            # One bad row must not hold back the batch: write them one by one.
            rows = [self._insert_alone(row) for row in rows]
            return self._commit([r for r in rows if r is not None])
        except sqlite3.Error as e:
            if self.last_error != str(e):
                log.error("repost: NOT RECORDING to %s: %s (%d flows waiting; retrying)", self.path, e, len(rows))
            self.last_error = str(e)
            return False
        if self.last_error is not None:
            log.warning("repost: recording to %s again", self.path)
            self.last_error = None
        self.written += len(rows)
        self._updates = []
        return True

    def _insert_alone(self, row: tuple) -> tuple | None:
        """The row if it can be inserted, else a minimal row that can; None once written."""
        try:
            with self._conn:
                self._conn.execute(INSERT_SQL, row)
        except ROW_ERRORS as e:
            log.error("repost: flow %s could not be stored whole (%s); storing what is certain", row[0], e)
            return _salvage(row, f"repost could not record this flow fully: {e}")
        except sqlite3.Error:
            return row  # the database itself is failing: the caller retries
        self.written += 1
        return None

    def _keep(self, rows: list[tuple]) -> None:
        overflow = len(rows) - self.max_backlog
        if overflow > 0:
            self.lost += overflow
            log.error("repost: backlog full, %d flows dropped (%d in all)", overflow, self.lost)
            rows = rows[overflow:]
        self._unwritten = rows
        time.sleep(0)  # let the proxy run before the next attempt

    def close(self) -> None:
        """Flush everything and close. Safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        if self._queue or self._unwritten:
            self.flush()  # one more try
        self.lost += len(self._unwritten) + len(self._queue)
        self._conn.close()

    @property
    def pending(self) -> int:
        return len(self._queue) + len(self._unwritten)


def _salvage(row: tuple, error: str) -> tuple:
    """Keep the flow's identity, time, method and URL; drop what could not be stored."""
    keep = {"flow_id", "started_at", "method", "url", "scheme", "host", "port", "path", "query"}
    values = {c: (_plain(v) if c in keep else None) for c, v in zip(COLUMNS, row)}
    values["started_at"] = values["started_at"] or iso_utc(time.time())
    values["method"] = values["method"] or "?"
    values["url"] = values["url"] or "?"
    values.update(error=error, request_truncated=0, request_redacted=0, response_truncated=0, response_redacted=0)
    return tuple(values[c] for c in COLUMNS)


def _plain(value):
    return value.encode("utf-8", "replace").decode() if isinstance(value, str) else value


def _minimal_row(flow, error: str) -> tuple:
    values = dict.fromkeys(COLUMNS)
    req = flow.request
    values.update(
        flow_id=flow.id,
        started_at=iso_utc(req.timestamp_start),
        method=req.data.method.decode("latin-1"),
        url=req.url.split("?")[0],
        host=req.host,
        error=error,
        request_truncated=0,
        request_redacted=0,
        response_truncated=0,
        response_redacted=0,
    )
    return tuple(values[c] for c in COLUMNS)
