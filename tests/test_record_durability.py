"""What a stop, a kill -9 or plain mitmdump does to the recording."""

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from .helpers import count_flows, free_port, port_open, wait_for


def children_of(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    return kids


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie child of ours counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except FileNotFoundError:
        return True


class Load:
    """Client threads POSTing unique paths; remembers when each response arrived."""

    def __init__(self, proxy_url: str, upstream_url: str, threads: int = 4):
        self.proxy_url, self.upstream_url = proxy_url, upstream_url
        self.answered: dict[str, float] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        with httpx.Client(proxy=self.proxy_url, timeout=5) as c:
            while not self._stop.is_set():
                key = uuid.uuid4().hex
                try:
                    r = c.post(f"{self.upstream_url}/load/{key}", json={"key": key})
                except httpx.HTTPError:
                    continue
                if r.status_code == 201:
                    self.answered[key] = time.monotonic()

    def start(self) -> "Load":
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)


def recorded_keys(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {p.removeprefix("/load/") for (p,) in conn.execute("SELECT path FROM flows")}
    finally:
        conn.close()


def integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()


def kill_9_under_load(proxy, upstream_url: str, answered: int, seconds: float, threads: int = 4) -> set[str]:
    """Load the proxy for ``seconds`` (and ``answered`` responses), kill -9 it, let its
    writer process finish; returns the keys answered at least 0.5 s before the kill."""
    load = Load(proxy.url, upstream_url, threads=threads).start()
    started = time.monotonic()
    wait_for(lambda: len(load.answered) >= answered and time.monotonic() - started > seconds, 30, what="load")
    writers = children_of(proxy.proc.pid)
    killed_at = time.monotonic()
    proxy.kill9()
    load.stop()
    for pid in writers:  # the writer process commits what it got, then exits
        wait_for(lambda: pid_gone(pid), 10, what="the writer process to finish")
    return {k for k, t in load.answered.items() if t <= killed_at - 0.5}


def test_kill_9_under_load_keeps_the_database_intact_and_loses_at_most_half_a_second(start_proxy, upstream):
    proxy = start_proxy()
    must_have = kill_9_under_load(proxy, upstream.url, answered=300, seconds=2)
    assert integrity(proxy.db) == "ok"
    missing = must_have - recorded_keys(proxy.db)
    assert len(must_have) >= 200
    assert not missing, f"{len(missing)} of {len(must_have)} answered POSTs were lost"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_under_load_loses_nothing(start_proxy, upstream, sig):
    proxy = start_proxy()
    load = Load(proxy.url, upstream.url).start()
    wait_for(lambda: len(load.answered) >= 200, 30, what="200 answered requests")
    assert proxy.stop(sig) == 0
    load.stop()
    answered = set(load.answered)
    missing = answered - recorded_keys(proxy.db)
    assert not missing, f"{len(missing)} of {len(answered)} answered POSTs were lost"
    assert integrity(proxy.db) == "ok"


def test_the_addon_records_in_plain_mitmdump(tmp_path, upstream, confdir):
    mitmdump = Path(sys.executable).with_name("mitmdump")
    db = tmp_path / "plain.db"
    port = free_port()
    log = open(tmp_path / "mitmdump.log", "wb")
    proc = subprocess.Popen(
        [str(mitmdump), "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
         "-s", str(Path(__file__).parent.parent / "addons" / "recorder.py"), "--set", f"repost_db={db}"],  # fmt: skip
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 20, what="mitmdump to listen")
        with httpx.Client(proxy=f"http://127.0.0.1:{port}", timeout=10) as c:
            c.post(f"{upstream.url}/plain", json={"via": "mitmdump"})
            c.get(f"{upstream.url}/not-recorded")
        wait_for(lambda: count_flows(db) == 1, 5, what="the POST recorded")
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(20)
        log.close()
    assert count_flows(db) == 1
    assert (tmp_path / "mitmdump.log").read_text(errors="replace").count("Traceback") == 0
