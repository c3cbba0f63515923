"""repost list --follow (issue 17): a flow shows within 1 s of its response, in a pipe and
on a terminal, with list's filters; Ctrl-C ends it quietly. A real recording proxy."""

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time

import httpx

from .helpers import post_flow, store_flows, wait_for


class Output:
    """What a process writes to ``fd``, read as it comes, with deadlines."""

    def __init__(self, fd: int):
        self.fd = fd
        self.text = ""

    def wait_for(self, needle: str, deadline: float) -> bool:
        while needle not in self.text:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    return needle in self.text
                if not chunk:
                    return needle in self.text
                self.text += chunk.decode(errors="replace")
        return True


def _post(proxy, url) -> float:
    """POST through the proxy; the moment the response arrived."""
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        assert c.post(url, json={"a": 1}).status_code == 201
    return time.monotonic()


def _follower(db, *args, terminal=False):
    cmd = [sys.executable, "-m", "repost.cli", "list", "--follow", "--db", str(db), *args]
    if not terminal:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return proc, Output(proc.stdout.fileno())
    controller, tty = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=tty, stdout=tty, stderr=tty, env={**os.environ, "COLUMNS": "160"})
    os.close(tty)
    proc.controller = controller
    return proc, Output(controller)


def test_in_a_pipe_json_lines_with_filters_within_a_second(start_proxy, upstream, tmp_path):
    proxy = start_proxy()
    store_flows(proxy.db, [post_flow(url=f"{upstream.url}/follow-me/old", body=b"{}")])
    proc, out = _follower(proxy.db, "--json", "--path", "/follow-me/*")
    try:
        assert out.wait_for("/follow-me/old", time.monotonic() + 10)  # what was there already
        _post(proxy, f"{upstream.url}/elsewhere")
        answered = _post(proxy, f"{upstream.url}/follow-me/new")
        assert out.wait_for("/follow-me/new", answered + 1.0), out.text
        lines = [json.loads(line) for line in out.text.splitlines()]
        assert [r["path"] for r in lines] == ["/follow-me/old", "/follow-me/new"]
        assert lines[1]["status"] == 201 and lines[1]["safety"] == "unsafe" and lines[1]["tags"] == []
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
    assert code == 0
    assert proc.stderr.read() == b""  # quietly: no traceback, no "Aborted!"


def test_on_a_terminal_rows_within_a_second_and_the_header_once(start_proxy, upstream):
    proxy = start_proxy()
    proc, out = _follower(proxy.db, terminal=True)
    try:
        assert out.wait_for("safety", time.monotonic() + 10)  # the header: it is running
        for n in range(2):
            answered = _post(proxy, f"{upstream.url}/tty-{n}")
            assert out.wait_for(f"/tty-{n}", answered + 1.0), out.text
        assert out.text.count("safety") == 1
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(10)
        out.wait_for("never", time.monotonic() + 0.5)
        os.close(proc.controller)
    assert code == 0
    assert "Traceback" not in out.text and "Aborted" not in out.text


def test_following_an_empty_store_then_a_flow_arrives(tmp_path):
    """No proxy: a flow written by the store's writer (as replay and import write) shows too."""
    db = tmp_path / "r.db"
    store_flows(db, [])
    proc, out = _follower(db, "--json")
    try:
        wait_for(lambda: proc.poll() is None, 2, what="follower running")
        store_flows(db, [post_flow(url="http://api.test/late", body=b"{}")])
        written = time.monotonic()
        assert out.wait_for("/late", written + 1.0), out.text
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(10) == 0
