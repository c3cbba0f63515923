"""What `repost record` and the addon under mitmdump say: in repost's words, once, with one path."""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from .helpers import free_port, port_open, repost, wait_for


def test_a_busy_port_names_repost_s_option_and_leaves_nothing_behind(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        db = tmp_path / "r.db"
        result = repost("record", "--db", str(db), "--listen-port", str(port))
    assert result.exit_code == 1
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use; choose another with --listen-port" in result.output
    assert "regular@" not in result.output and "Traceback" not in result.output
    assert not db.exists()


def test_start_and_stop_lines_name_the_same_absolute_database(tmp_path, confdir):
    port = free_port()
    env = {**os.environ, "REPOST_DB": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "repost.cli", "record", "--db", "rel.db", "--listen-port", str(port), "--set", f"confdir={confdir}"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        wait_for(lambda: port_open(port) or proc.poll() is not None, 20, what="the proxy to listen")
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=20)[0].decode()
    absolute = str(tmp_path / "rel.db")
    assert f"recording POST flows to {absolute} (secrets redacted)" in out
    assert f"repost: recorded 0 flows to {absolute}" in out
    assert out.count("listening on") == 1


def test_the_addon_under_mitmdump_says_where_it_records(tmp_path, confdir):
    mitmdump = Path(sys.executable).with_name("mitmdump")
    db = tmp_path / "plain.db"
    port = free_port()
    log_path = tmp_path / "mitmdump.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [str(mitmdump), "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
             "-s", str(Path(__file__).parent.parent / "addons" / "recorder.py"), "--set", f"repost_db={db}"],  # fmt: skip
            stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            wait_for(lambda: f"repost: recording POST flows to {db}" in log_path.read_text(errors="replace"), 20,
                     what="the recorder's line")  # fmt: skip
        finally:
            proc.send_signal(signal.SIGINT)
            proc.wait(20)
    assert "(secrets redacted)" in log_path.read_text(errors="replace")
