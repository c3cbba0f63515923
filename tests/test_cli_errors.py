"""Errors a user can cause: one clear line, a non-zero exit, no traceback, the file untouched."""

import hashlib
import sqlite3
import subprocess
import sys

import pytest

from .helpers import free_port


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "repost.cli", *args], capture_output=True, text=True, timeout=60, env=env
    )


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_db(path):
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO customers (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    return path


def not_sqlite(path):
    path.write_bytes(b"this is a text file, not a database\n" * 10)
    return path


def corrupt_db(path):
    path.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4080)
    return path


def newer_db(path):
    run("list", "--db", str(path))  # nothing there yet: an error, creates nothing
    from repost.store.database import open_database

    open_database(path, create=True).close()
    conn = sqlite3.connect(path)
    conn.execute(
        "INSERT INTO _sqlite_migrations (migration_set, name, applied_at) VALUES ('repost', 'm999_future', 'x')"
    )
    conn.commit()
    conn.close()
    return path


BAD_FILES = {
    "foreign": (foreign_db, "another program"),
    "not-sqlite": (not_sqlite, "not a SQLite database"),
    "corrupt": (corrupt_db, "database"),
    "newer": (newer_db, "newer repost"),
}


@pytest.mark.parametrize("kind", BAD_FILES)
@pytest.mark.parametrize("command", [["list"], ["list", "--json"], ["show", "1"]])
def test_read_commands_refuse_a_bad_file_clearly(tmp_path, kind, command):
    make, message = BAD_FILES[kind]
    path = make(tmp_path / f"{kind}.db")
    before = digest(path)
    result = run(*command, "--db", str(path))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""
    assert digest(path) == before
    wal = tmp_path / f"{kind}.db-wal"
    assert not wal.exists() or wal.stat().st_size == 0  # nothing written beside it either


@pytest.mark.parametrize("kind", BAD_FILES)
def test_record_refuses_a_bad_file_before_listening(tmp_path, kind):
    make, message = BAD_FILES[kind]
    path = make(tmp_path / f"{kind}.db")
    before = digest(path)
    result = run("record", "--db", str(path), "--listen-port", str(free_port()))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert "listening" not in result.stderr
    assert digest(path) == before


def test_missing_database_for_a_reader(tmp_path):
    result = run("list", "--db", str(tmp_path / "nope.db"))
    assert result.returncode == 1
    assert "no database at" in result.stderr
    assert not (tmp_path / "nope.db").exists()


def test_unknown_flow_id(tmp_path):
    from repost.store.database import open_database

    open_database(tmp_path / "r.db", create=True).close()
    result = run("show", "42", "--db", str(tmp_path / "r.db"))
    assert result.returncode == 2 and "no flow with id 42" in result.stderr


def test_non_number_id_is_a_usage_error(tmp_path):
    result = run("show", "abc", "--db", str(tmp_path / "r.db"))
    assert result.returncode == 2 and "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [
    ["export", "--format", "har", "99999999999999999999"], ["rules", "remove", "99999999999999999999"],
    ["list", "--limit", "99999999999999999999"], ["replay", "--dry-run", "99999999999999999999"],
    ["diff", "1", "99999999999999999999"],
])  # fmt: skip
def test_numbers_too_large_for_sqlite_are_one_line(tmp_path, args):
    from repost.store.database import open_database

    open_database(tmp_path / "r.db", create=True).close()
    result = run(*args, "--db", str(tmp_path / "r.db"))
    assert result.returncode in (1, 2), result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_debug_shows_the_traceback(tmp_path):
    path = not_sqlite(tmp_path / "x.db")
    result = run("--debug", "list", "--db", str(path))
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_bad_record_options_are_usage_errors(tmp_path):
    for args in (["--methods", "PO ST"], ["--max-body", "lots"], ["--listen-port", "99999"]):
        result = run("record", "--db", str(tmp_path / "r.db"), *args)
        assert result.returncode == 2, args
        assert "Traceback" not in result.stderr


def test_bad_filter_expression_is_refused(tmp_path):
    result = run("record", "--db", str(tmp_path / "r.db"), "--listen-port", str(free_port()), "--filter", "~q ~~(")
    assert result.returncode == 1
    assert "filter" in result.stderr.lower()
    assert "Traceback" not in result.stderr
