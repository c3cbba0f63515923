"""Shared test helpers: ports, waiting with a deadline, a real `repost record` process."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"):
    """Poll until condition() is truthy; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


class RecordingProxy:
    """`repost record` as a real subprocess on a loopback port."""

    def __init__(self, db: Path, confdir: Path, *args: str, env: dict | None = None, host_check: str = "127.0.0.1",
                 log: Path | None = None):  # fmt: skip
        # A postgresql:// URL stays a string (Path would fold its //); its log goes where ``log`` says.
        self.db = db if is_url(db) else Path(db)
        self.port = free_port()
        self.log = Path(log or str(db) + ".proxy.log")
        cmd = [
            sys.executable, "-m", "repost.cli", "record", "--db", str(db),
            "--listen-port", str(self.port), "--set", f"confdir={confdir}", *args,
        ]  # fmt: skip
        self._log_file = open(self.log, "wb")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log_file, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}
        )
        try:
            wait_for(lambda: port_open(self.port, host_check) or self.proc.poll() is not None, 20, what="proxy to listen")
        except AssertionError:
            self.stop()
            raise
        if self.proc.poll() is not None:
            raise AssertionError(f"proxy exited early:\n{self.output()}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log_file.close()
        return self.proc.returncode

    def kill9(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self._log_file.close()


def repost(*args: str, input: str | None = None):
    """Run the CLI in-process, as a user would, and return click's Result."""
    from repost.cli.main import cli

    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def list_json(db: Path, *args: str) -> list[dict]:
    result = repost("list", "--db", str(db), "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def show_json(db: Path, flow_id: int) -> dict:
    result = repost("show", str(flow_id), "--db", str(db), "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def is_url(db) -> bool:
    return isinstance(db, str) and db.startswith(("postgresql://", "postgres://"))


def count_flows(db: Path) -> int:
    import sqlite3

    if is_url(db):
        import psycopg

        with psycopg.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM flows").fetchone()[0]

    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return conn.execute("SELECT count(*) FROM flows").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def stop_signal(name: str) -> int:
    return getattr(signal, name)


def store_flows(db: Path, flows: list, keep_secrets: bool = False) -> list[int]:
    """Write mitmproxy flows through the store's own write path; returns their ids."""
    import sqlite3

    from repost.store.capture import snapshot
    from repost.store.redact import Redactor, load_key
    from repost.store.writer import BatchWriter

    from repost.store.database import open_database

    writer = BatchWriter(str(db), redactor=None if keep_secrets else Redactor(load_key()), max_body=10 * 1024 * 1024)
    conn = open_database(db) if is_url(db) else sqlite3.connect(db)
    before = conn.execute("SELECT coalesce(max(id), 0) FROM flows").fetchone()[0]
    assert writer.write([snapshot(f) for f in flows])
    writer.close()
    ids = [r[0] for r in conn.execute("SELECT id FROM flows WHERE id > ? ORDER BY id", [before])]
    conn.close()
    return ids


def post_flow(url: str = "http://api.test/orders", body: bytes = b"", headers: dict | None = None,
              status: int = 200, response_body: bytes = b"", response_headers: dict | None = None,
              method: str = "POST"):  # fmt: skip
    """A finished mitmproxy flow with the given request and response."""
    import time

    from mitmproxy import http
    from mitmproxy.test import tflow

    f = tflow.tflow(resp=True)
    f.request = http.Request.make(method, url, b"", headers or {})
    f.request.raw_content = body  # the wire bytes as given (make() would encode them again)
    f.request.headers["content-length"] = str(len(body))
    f.request.timestamp_start = time.time()
    f.request.timestamp_end = f.request.timestamp_start + 0.001
    f.response = http.Response.make(status, b"", response_headers or {})
    f.response.raw_content = response_body
    f.response.headers["content-length"] = str(len(response_body))
    f.response.timestamp_start = f.request.timestamp_end
    f.response.timestamp_end = f.response.timestamp_start + 0.002
    return f
