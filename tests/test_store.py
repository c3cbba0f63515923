"""Unit tests for the store: opening/refusing database files, and the batched writer."""

import json
import os
import random
import sqlite3
import stat
import subprocess
from hashlib import sha256
from pathlib import Path

import pytest
from mitmproxy.test import tflow, tutils

from repost.store import database
from repost.store.capture import snapshot
from repost.store.database import open_database
from repost.store.errors import (
    CorruptDatabase,
    MissingDatabase,
    NewerSchema,
    NotARepostDatabase,
    StoreError,
)
from repost.store.redact import Redactor
from repost.store.writer import BatchWriter, ErrorUpdate
from repost.store.writer_process import WriterProcess


MB = 1024 * 1024


def post_flow(content: bytes = b'{"q": 1}', *, resp=True, err=False, headers=None, **req):
    request = tutils.treq(method=b"POST", content=content, **req)
    if headers is not None:
        request.headers.clear()
        for k, v in headers:
            request.headers.add(k, v)
    return tflow.tflow(req=request, resp=resp, err=err)


def rows(db: Path, where: str = "1") -> list[dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM flows WHERE {where} ORDER BY id")]
    finally:
        conn.close()


def dir_listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# -- migrations and opening ------------------------------------------------------


def test_known_migrations_match_registered_migrations():
    from sqlite_utils import Database

    from repost.store.migrations import MIGRATION_SET, migrations

    registered = [m.name for m in migrations.pending(Database(memory=True))]
    assert registered  # there is a schema at all
    assert tuple(registered) == database.KNOWN_MIGRATIONS
    assert MIGRATION_SET == database.MIGRATION_SET


def test_create_makes_private_wal_database(tmp_path):
    db = tmp_path / "new.db"
    old_umask = os.umask(0)  # even a permissive umask must not widen the mode
    try:
        conn = open_database(db, create=True)
    finally:
        os.umask(old_umask)
    try:
        assert stat.S_IMODE(db.stat().st_mode) == 0o600
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert "flows" in {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        with conn:
            conn.execute("INSERT INTO flows (started_at, method, url) VALUES ('2025-01-01T00:00:00Z', 'POST', 'http://x/')")
        for side in ("-wal", "-shm"):
            p = Path(str(db) + side)
            if p.exists():
                assert stat.S_IMODE(p.stat().st_mode) == 0o600, side
    finally:
        conn.close()
    # Opening it again (as a reader) finds it current.
    conn = open_database(db)
    assert conn.execute("SELECT count(*) FROM flows").fetchone()[0] == 1
    conn.close()


def test_missing_file_for_reader(tmp_path):
    db = tmp_path / "absent.db"
    with pytest.raises(MissingDatabase):
        open_database(db)
    assert not db.exists()
    assert dir_listing(tmp_path) == []


def test_empty_file_for_reader_is_missing(tmp_path):
    db = tmp_path / "empty.db"
    db.touch()
    with pytest.raises(MissingDatabase):
        open_database(db)
    assert db.read_bytes() == b""


def test_create_in_missing_folder_is_a_store_error(tmp_path):
    with pytest.raises(StoreError):
        open_database(tmp_path / "no" / "such" / "folder.db", create=True)
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("create", [False, True])
def test_non_sqlite_file_is_refused_untouched(tmp_path, create):
    db = tmp_path / "notes.txt"
    content = b"these are my notes, not a database\n" * 20
    db.write_bytes(content)
    os.chmod(db, 0o644)
    with pytest.raises(NotARepostDatabase):
        open_database(db, create=create)
    assert db.read_bytes() == content
    assert stat.S_IMODE(db.stat().st_mode) == 0o644
    assert dir_listing(tmp_path) == ["notes.txt"]


def test_directory_is_refused(tmp_path):
    with pytest.raises(NotARepostDatabase):
        open_database(tmp_path, create=True)


def _foreign_db(path: Path, journal_mode: str) -> None:
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA journal_mode = {journal_mode}")
    conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
    conn.execute("INSERT INTO notes (body) VALUES ('remember the milk')")
    conn.commit()
    conn.close()


@pytest.mark.parametrize(
    "journal_mode",
    [
        "delete",
        pytest.param(
            "wal"
        ),
    ],
)
@pytest.mark.parametrize("create", [False, True])
def test_foreign_sqlite_is_refused_untouched(tmp_path, journal_mode, create):
    db = tmp_path / "other-app.db"
    _foreign_db(db, journal_mode)
    before = db.read_bytes()
    listing = dir_listing(tmp_path)
    with pytest.raises(NotARepostDatabase):
        open_database(db, create=create)
    assert db.read_bytes() == before
    assert dir_listing(tmp_path) == listing  # no -wal, -shm or -journal appeared


def test_foreign_sqlite_utils_app_with_its_own_migrations_is_refused(tmp_path):
    db = tmp_path / "other-app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE _sqlite_migrations (id INTEGER PRIMARY KEY, migration_set TEXT, name TEXT, applied_at TEXT)")
    conn.execute("INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('otherapp', 'm001', 'x')")
    conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY)")
    conn.commit()
    conn.close()
    before = db.read_bytes()
    with pytest.raises(NotARepostDatabase):
        open_database(db, create=True)
    assert db.read_bytes() == before


@pytest.mark.parametrize("create", [False, True])
def test_newer_schema_is_refused_untouched(tmp_path, create):
    db = tmp_path / "future.db"
    conn = open_database(db, create=True)
    with conn:
        conn.execute(
            "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('repost', 'm999_from_the_future', 'x')"
        )
    conn.close()
    before = db.read_bytes()
    with pytest.raises(NewerSchema) as info:
        open_database(db, create=create)
    assert "m999_from_the_future" in str(info.value)
    assert db.read_bytes() == before


@pytest.mark.parametrize("keep", [100, 4096], ids=["header-only", "first-page"])
@pytest.mark.parametrize("create", [False, True])
def test_corrupt_repost_database_raises_store_error(tmp_path, keep, create):
    db = tmp_path / "corrupt.db"
    conn = open_database(db, create=True)
    with conn:
        conn.executemany(
            "INSERT INTO flows (started_at, method, url, request_body) VALUES ('t', 'POST', 'http://x/', ?)",
            [(os.urandom(3000),) for _ in range(5)],
        )
    conn.close()
    good = db.read_bytes()
    assert len(good) > keep
    garbage = random.Random(1234).randbytes(len(good) - keep)
    db.write_bytes(good[:keep] + garbage)
    corrupt = db.read_bytes()
    with pytest.raises(StoreError) as info:
        open_database(db, create=create)
    assert isinstance(info.value, (CorruptDatabase, NotARepostDatabase))
    assert db.read_bytes() == corrupt


def test_truncated_sqlite_header_is_corrupt(tmp_path):
    db = tmp_path / "short.db"
    db.write_bytes(database.SQLITE_MAGIC + b"\x10\x00")
    with pytest.raises(CorruptDatabase):
        open_database(db, create=True)
    assert db.read_bytes() == database.SQLITE_MAGIC + b"\x10\x00"


# -- the batch writer ------------------------------------------------------------


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "w.db"


def test_writes_rows_from_flows(db):
    f = post_flow(b'{"hello": "world"}', path=b"/v1/things?page=2")
    w = BatchWriter(str(db), redactor=Redactor(b"k"), max_body=MB)
    assert w.write([snapshot(f)]) is True
    w.close()
    assert w.written == 1 and w.lost == 0
    (row,) = rows(db)
    assert row["flow_id"] == f.id
    assert row["started_at"] == "1999-12-31T23:00:00.000Z"
    assert row["method"] == "POST"
    assert row["url"] == "http://address:22/v1/things?page=2"
    assert (row["host"], row["port"], row["path"], row["query"]) == ("address", 22, "/v1/things", "page=2")
    assert row["http_version"] == "HTTP/1.1"
    assert json.loads(row["request_headers"]) == [["header", "qvalue"], ["content-length", "7"]]
    assert row["request_body"] == b'{"hello": "world"}'
    assert row["request_size"] == len(b'{"hello": "world"}')
    assert row["request_sha256"] == sha256(b'{"hello": "world"}').hexdigest()
    assert (row["request_truncated"], row["request_redacted"]) == (0, 0)
    assert (row["status"], row["reason"], row["response_http_version"]) == (200, "OK", "HTTP/1.1")
    assert json.loads(row["response_headers"]) == [["header-response", "svalue"], ["content-length", "7"]]
    assert row["response_body"] == b"message"
    assert row["duration_ms"] == 3000
    assert row["error"] is None and row["replay_of"] is None


def test_secrets_are_redacted_before_writing(db):
    import gzip

    body = gzip.compress(b'{"user": "bob", "password": "CANARY-1"}')
    f = post_flow(
        body,
        path=b"/login?access_token=CANARY-2&page=1",
        headers=[(b"Authorization", b"Bearer CANARY-3"), (b"Content-Type", b"application/json"),
                 (b"Content-Encoding", b"gzip"), (b"Idempotency-Key", b"ik-1")],
    )  # fmt: skip
    f.response.headers["Set-Cookie"] = "session=CANARY-4"
    w = BatchWriter(str(db), redactor=Redactor(b"k"), max_body=MB)
    assert w.write([snapshot(f)])
    w.close()
    (row,) = rows(db)
    everything = repr(row)
    assert "CANARY" not in everything
    assert row["request_redacted"] == 1
    assert row["request_content_encoding"] is None  # stored decoded
    assert json.loads(row["request_body"])["user"] == "bob"
    assert row["request_sha256"] == sha256(body).hexdigest()  # of the body as sent
    assert row["request_size"] == len(body)
    assert row["idempotency_key"] == "ik-1"
    assert "page=1" in row["url"]


def test_error_update_sets_error_on_existing_row(db):
    f = post_flow()
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    assert w.write([snapshot(f)])
    assert rows(db)[0]["error"] is None
    assert w.write([ErrorUpdate(message="client disconnected", flow_id=f.id)])
    w.close()
    (row,) = rows(db)
    assert row["error"] == "client disconnected"
    assert row["status"] == 200  # the response stays


def test_error_update_in_same_batch_as_its_flow(db):
    f = post_flow()
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    assert w.write([snapshot(f), ErrorUpdate(message="client disconnected", flow_id=f.id)])
    w.close()
    assert rows(db)[0]["error"] == "client disconnected"


def test_flow_with_error_and_no_response(db):
    f = post_flow(resp=False, err=True)
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    assert w.write([snapshot(f)])
    w.close()
    (row,) = rows(db)
    assert row["status"] is None
    assert row["error"] == f.error.msg == "error"
    assert row["response_headers"] is None and row["response_body"] is None
    assert (row["response_truncated"], row["response_redacted"]) == (0, 0)
    assert row["duration_ms"] == 7000  # until the error
    assert row["request_body"] == b'{"q": 1}'


def test_body_above_max_body_keeps_prefix_size_and_hash(db):
    body = bytes(range(256)) * 8  # 2048 bytes
    f = post_flow(body)
    w = BatchWriter(str(db), redactor=Redactor(b"k"), max_body=100)
    assert w.write([snapshot(f)])
    w.close()
    (row,) = rows(db)
    assert row["request_body"] == body[:100]
    assert row["request_size"] == 2048
    assert row["request_sha256"] == sha256(body).hexdigest()
    assert row["request_truncated"] == 1
    assert row["response_body"] == b"message" and row["response_truncated"] == 0


def test_row_that_cannot_be_stored_whole_is_salvaged(db):
    good = post_flow(b"good")
    bad = post_flow(b"bad")
    bad.request.data.host = "ex\udcffample.com"  # a lone surrogate: SQLite cannot bind it
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    assert w.write([snapshot(good), snapshot(bad)]) is True
    w.close()
    assert w.written == 2 and w.lost == 0
    got = {r["flow_id"]: r for r in rows(db)}
    assert set(got) == {good.id, bad.id}
    assert got[good.id]["request_body"] == b"good" and got[good.id]["error"] is None
    salvaged = got[bad.id]
    assert salvaged["method"] == "POST"
    assert salvaged["started_at"] == "1999-12-31T23:00:00.000Z"
    assert "ample.com" in salvaged["url"]
    assert "could not record" in salvaged["error"]


def test_salvage_that_still_fails_does_not_crash_write(db):
    good = post_flow(b"good")
    bad = post_flow(b"bad")
    bad.request.data.port = 2**64
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    crashed = False
    try:
        w.write([snapshot(good), snapshot(bad)])
    except RecursionError:
        crashed = True  # reported outside the handler: a 1000-frame traceback is slow to format
    finally:
        w._conn.close()
    assert not crashed, "write() raised RecursionError"
    assert good.id in {r["flow_id"] for r in rows(db)}


def _count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT count(*) FROM flows").fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize("failure", ["disk-full", "read-only", "locked"])
def test_failing_database_keeps_rows_and_recovers(db, failure):
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    w._conn.execute("PRAGMA busy_timeout = 50")  # keep "locked" fast
    # The failures below are simulated on this connection; the writer's reconnect
    # after a failure would shed them, so keep the connection (reconnect has its own test).
    w._reconnect = lambda: True
    blocker = None
    body_size = 3000
    if failure == "disk-full":
        pages = w._conn.execute("PRAGMA page_count").fetchone()[0]
        w._conn.execute(f"PRAGMA max_page_count = {pages}")
        # No room at all: each body larger than the free pages the schema's migrations left.
        free_pages, page_size = (w._conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("freelist_count", "page_size"))
        body_size = max(body_size, (free_pages + 1) * page_size)
    elif failure == "read-only":
        w._conn.execute("PRAGMA query_only = ON")
    else:
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
    flows = [post_flow(os.urandom(body_size)) for _ in range(10)]
    items = [snapshot(f) for f in flows] + [ErrorUpdate(message="client disconnected", flow_id=flows[0].id)]

    assert w.write(items) is False
    assert w.backlog == 10
    assert w.last_error
    assert w.write([]) is False  # still failing: nothing lost, nothing doubled
    assert w.backlog == 10
    assert _count(db) == 0

    if failure == "disk-full":
        w._conn.execute("PRAGMA max_page_count = 1073741823")
    elif failure == "read-only":
        w._conn.execute("PRAGMA query_only = OFF")
    else:
        blocker.execute("COMMIT")
        blocker.close()
    assert w.write([]) is True
    assert w.backlog == 0 and w.last_error is None
    w.close()
    got = rows(db)
    assert sorted(r["flow_id"] for r in got) == sorted(f.id for f in flows)
    assert {r["flow_id"]: r["error"] for r in got}[flows[0].id] == "client disconnected"
    assert w.written == 10 and w.lost == 0


def _make_unwritable(path: Path):
    """Make a file unwritable even for root (chattr +i), else with chmod 0400; returns the undo."""
    if os.geteuid() == 0:
        if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
            pytest.skip("running as root and chattr +i is not available here")
        return lambda: subprocess.run(["chattr", "-i", str(path)], check=True)
    os.chmod(path, 0o400)
    return lambda: os.chmod(path, 0o600)


def test_read_only_file_fails_then_recovers_once_fixed(db):
    open_database(db, create=True).close()
    undo = _make_unwritable(db)
    try:
        w = BatchWriter(str(db), redactor=None, max_body=MB)
        f = post_flow()
        assert w.write([snapshot(f)]) is False
        assert w.backlog == 1
    finally:
        undo()
    try:
        assert w.write([]) is True
        assert [r["flow_id"] for r in rows(db)] == [f.id]
    finally:
        w._conn.close()


class _FailAfterFirstSingleInsert:
    """The real connection, until the disk fills up right after one single-row insert."""

    def __init__(self, real):
        self.real = real
        self.broken = False

    def __enter__(self):
        return self.real.__enter__()

    def __exit__(self, *exc):
        return self.real.__exit__(*exc)

    def executemany(self, *args):
        if self.broken:
            raise sqlite3.OperationalError("database or disk is full")
        return self.real.executemany(*args)

    def execute(self, *args):
        if self.broken:
            raise sqlite3.OperationalError("database or disk is full")
        result = self.real.execute(*args)
        self.broken = True
        return result


def test_database_failure_during_salvage_does_not_duplicate_rows(db):
    good = post_flow(b"good")
    bad = post_flow(b"bad")
    bad.request.data.host = "ex\udcffample.com"
    w = BatchWriter(str(db), redactor=None, max_body=MB)
    real = w._conn
    w._conn = _FailAfterFirstSingleInsert(real)
    assert w.write([snapshot(good), snapshot(bad)]) is False
    w._conn = real  # the disk has room again
    assert w.write([]) is True
    w.close()
    ids = [r["flow_id"] for r in rows(db)]
    assert sorted(ids) == sorted([good.id, bad.id])
    assert w.written == 2


# -- the writer process (what the recorder runs) ---------------------------------------


def test_writer_process_writes_everything_on_close(db):
    flows = [post_flow(b"n=%d" % i) for i in range(25)]
    wp = WriterProcess(str(db), keep_secrets=False, max_body=MB, interval=0.01)
    for f in flows:
        wp.submit(f)
    wp.submit_error(flows[3].id, "client disconnected")
    wp.close()
    wp.close()  # idempotent
    assert wp.written == 25 and wp.lost == 0
    got = rows(db)
    assert [r["flow_id"] for r in got] == [f.id for f in flows]
    assert got[3]["error"] == "client disconnected"


def test_writer_process_records_replay_of(db):
    wp = WriterProcess(str(db), keep_secrets=True, max_body=MB, interval=0.01)
    wp.submit(post_flow(b"first"))
    wp.close()
    original_id = rows(db)[0]["id"]
    wp = WriterProcess(str(db), keep_secrets=True, max_body=MB, interval=0.01)
    wp.submit(post_flow(b"first"), replay_of=original_id)
    wp.close()
    assert [r["replay_of"] for r in rows(db)] == [None, original_id]


def test_writer_process_waits_for_a_locked_database(db):
    open_database(db, create=True).close()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    wp = WriterProcess(str(db), keep_secrets=True, max_body=MB, interval=0.01)
    flows = [post_flow(b"n=%d" % i) for i in range(5)]
    for f in flows:
        wp.submit(f)
    assert _count(db) == 0
    blocker.execute("COMMIT")
    blocker.close()
    wp.close()
    assert wp.written == 5 and wp.lost == 0
    assert sorted(r["flow_id"] for r in rows(db)) == sorted(f.id for f in flows)


@pytest.mark.parametrize("name", ["x.db", "with space.db", "per%25cent?q#h.db", "ünï.db"])
def test_paths_through_a_symlink_and_dotdot_name_the_file_the_os_opens(tmp_path, monkeypatch, name):
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    monkeypatch.chdir(tmp_path)
    path = f"link/../{name}"  # the OS resolves the link first: real/<name>
    open_database(path, create=True).close()
    assert (tmp_path / "real" / name).exists() and not (tmp_path / name).exists()
    conn = open_database(path)  # read back through the same spelling
    assert conn.execute("SELECT count(*) FROM flows").fetchone() == (0,)
    conn.close()
