"""`repost ui` as a real subprocess on a loopback port, and what its tests share."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import post_flow, store_flows, wait_for

JSON = {"content-type": "application/json"}
WRITE = {"X-Repost-UI": "1"}  # the header a cross-site form cannot send: every state-changing call carries it


class UiServer:
    """`repost ui --listen-port 0`: the URL (with its token) read from what it prints."""

    def __init__(self, db: Path, *args: str, log: Path | None = None):
        self.log = log or Path(str(db) + ".ui.log")  # a server's store (a URL) needs ``log``
        self._out = open(self.log, "wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "repost.cli", "ui", "--db", str(db), "--listen-port", "0", *args],
            stdout=self._out, stderr=subprocess.STDOUT, env=dict(os.environ),
        )  # fmt: skip
        found = wait_for(lambda: self._url() or self.proc.poll() is not None, 20, what="repost ui to print its URL")
        if not isinstance(found, str):
            raise AssertionError(f"repost ui exited early:\n{self.output()}")
        self.url = found
        self.base, _, self.token = found.partition("/?token=")
        self.port = int(self.base.rsplit(":", 1)[1])
        self.cookie = f"repost_ui_{self.port}"

    def _url(self) -> str | None:
        m = re.search(r"at (http://\S+/\?token=\S+)", self.output())
        return m.group(1) if m else None

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(errors="replace")

    def client(self, **kw):
        """An httpx client that already holds the cookie the token buys."""
        import httpx

        first = httpx.get(f"{self.base}/?token={self.token}", trust_env=False)
        assert first.status_code == 302, first.text
        return httpx.Client(base_url=self.base, timeout=10, trust_env=False, cookies=first.cookies, **kw)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._out.close()


@pytest.fixture
def one_unsafe(tmp_path, counting_upstream):
    """A store of one unsafe POST to the counting upstream, served by `repost ui`: (db, server, id)."""
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/create", body=b'{"item": "book"}', headers=JSON)])
    server = UiServer(db)
    yield db, server, i
    server.stop()
