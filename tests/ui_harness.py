"""`repost ui` as a real subprocess on a loopback port, and what its tests share."""

import os
import re
import subprocess
import sys
from pathlib import Path

from .helpers import wait_for


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
