"""A throw-away PostgreSQL for the tests: a cluster in a temporary folder, on 127.0.0.1, trust
auth, fsync off; or the server $REPOST_TEST_PG_URL names. Each test gets a database of its own.

Found: initdb and pg_ctl on PATH, or Debian's /usr/lib/postgresql/*/bin. As root (CI), the
cluster runs as the ``postgres`` user (initdb refuses root), through runuser.
"""

import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time

ENV_URL = "REPOST_TEST_PG_URL"


def find_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    return candidates[0] if candidates else None


def why_unavailable() -> str | None:
    """None when a cluster can be had; else the reason the PostgreSQL tests skip."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    if os.environ.get("REPOST_TEST_PG") == "skip":
        return "REPOST_TEST_PG=skip (CI runs them on one Python line only)"
    if os.environ.get(ENV_URL):
        return None
    if not find_bin("initdb") or not find_bin("pg_ctl"):
        return f"no PostgreSQL here: neither initdb/pg_ctl nor ${ENV_URL} (apt-get install postgresql)"
    if os.geteuid() == 0 and not (shutil.which("runuser") and _user_exists("postgres")):
        return "running as root, and no 'postgres' user to run the cluster as"
    return None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A running server; ``url(db)`` for a database on it; ``stop``/``start`` for the tests
    of a server that goes away (only on a cluster of our own)."""

    def __init__(self):
        self.external = os.environ.get(ENV_URL)
        self.folder = None
        self._names = itertools.count(1)
        if self.external:
            return
        # As root the cluster runs as postgres, who must reach the folder: /tmp, not a private $TMPDIR.
        self.folder = tempfile.mkdtemp(prefix="repost-pg-", dir="/tmp" if os.geteuid() == 0 else None)
        self.data = os.path.join(self.folder, "data")
        self.port = _free_port()
        self._as_root = os.geteuid() == 0
        if self._as_root:
            shutil.chown(self.folder, "postgres")
        self._run(
            find_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "repost", "-E", "UTF8", "--locale=C", "--no-sync"
        )
        self.start()

    def _run(self, *argv: str) -> None:
        if self._as_root:
            argv = ("runuser", "-u", "postgres", "--", *argv)
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {result.stdout}{result.stderr}")

    def start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.folder}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        self._run(find_bin("pg_ctl"), "-D", self.data, "-l", os.path.join(self.folder, "log"), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run(find_bin("pg_ctl"), "-D", self.data, "-m", mode, "-w", "stop")

    @property
    def can_restart(self) -> bool:
        return not self.external

    def admin_url(self) -> str:
        return self.external or f"postgresql://repost@127.0.0.1:{self.port}/postgres"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = f"repost_t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.admin_url(), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
        return _with_database(self.admin_url(), name)

    def wait_ready(self, deadline_s: float = 30) -> None:
        import psycopg

        end = time.monotonic() + deadline_s
        while True:
            try:
                psycopg.connect(self.admin_url(), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        if self.folder is None:
            return
        try:
            self.stop("immediate")
        except RuntimeError:
            pass  # already stopped
        shutil.rmtree(self.folder, ignore_errors=True)


def _with_database(url: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))
