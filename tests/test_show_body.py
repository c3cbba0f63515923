"""repost show ID --body request|response [-o FILE] [--raw] (issue 17)."""

import gzip
import os
import subprocess
import sys

from .helpers import post_flow, repost, store_flows
from .test_replay import run_on_a_terminal

PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 40


def _binary_gzip_flow(db):
    wire = gzip.compress(PNG)
    (i,) = store_flows(db, [post_flow(body=b'{"a": 1}', headers={"content-type": "application/json"}, response_body=wire,
                                      response_headers={"content-type": "image/png", "content-encoding": "gzip"})])  # fmt: skip
    return i, wire


def test_body_to_a_file_is_the_exact_decoded_bytes(tmp_path):
    db = tmp_path / "r.db"
    i, wire = _binary_gzip_flow(db)
    out = tmp_path / "body.png"
    result = repost("show", str(i), "--body", "response", "-o", str(out), "--db", str(db))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == PNG
    assert os.stat(out).st_mode & 0o777 == 0o600
    raw = tmp_path / "body.gz"
    result = repost("show", str(i), "--body", "response", "-o", str(raw), "--raw", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert raw.read_bytes() == wire


def test_body_to_a_pipe_is_the_exact_bytes(tmp_path):
    db = tmp_path / "r.db"
    i, wire = _binary_gzip_flow(db)
    run = lambda *extra: subprocess.run([sys.executable, "-m", "repost.cli", "show", str(i), "--db", str(db), *extra], capture_output=True)  # noqa: E731
    assert run("--body", "response").stdout == PNG
    assert run("--body", "response", "--raw").stdout == wire
    assert run("--body", "request").stdout == b'{"a": 1}'


def test_a_binary_body_to_a_terminal_needs_o(tmp_path):
    db = tmp_path / "r.db"
    i, _ = _binary_gzip_flow(db)
    code, screen = run_on_a_terminal(["show", str(i), "--body", "response", "--db", str(db)], b"", {})
    assert code == 1
    assert "binary" in screen and "-o FILE" in screen
    assert "PNG" not in screen


def test_a_text_body_on_a_terminal_is_sanitised(tmp_path):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(body=b"hello \x1b]0;pwned\x07 world", headers={"content-type": "text/plain"})])
    code, screen = run_on_a_terminal(["show", str(i), "--body", "request", "--db", str(db)], b"", {})
    assert code == 0
    assert "hello" in screen and "\x1b]0" not in screen


def test_body_of_a_flow_without_response_is_one_clear_line(tmp_path):
    from mitmproxy import flow as mflow

    db = tmp_path / "r.db"
    f = post_flow(body=b"x")
    f.response = None
    f.error = mflow.Error("connection refused")
    (i,) = store_flows(db, [f])
    result = repost("show", str(i), "--body", "response", "--db", str(db))
    assert result.exit_code == 1
    assert "has no response" in result.stderr


def test_o_without_body_is_a_usage_error(tmp_path):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(body=b"x")])
    assert repost("show", str(i), "-o", str(tmp_path / "x"), "--db", str(db)).exit_code == 2
    assert repost("show", str(i), "--body", "request", "--json", "--db", str(db)).exit_code == 2
