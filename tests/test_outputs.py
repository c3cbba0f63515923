"""Outputs that run something, and what leaves through them: curl and httpie commands
re-send recorded bytes as bytes and nothing else (no local file, no command substitution),
no recorded control character reaches a terminal, redacted values are never sent on as
if real, and exports are as private as the database."""

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repost.store.commands import curl_command, httpie_command

from .helpers import post_flow, repost, store_flows

HOSTILE = "\x1b]0;pwn\x07\x1b[2J\rOK"  # a window title, a cleared screen, a line overwritten
TERMINAL_CONTROL = ("\x1b", "\x07", "\x9b", "\r")


def row(url: str, body: bytes = b"", headers=(), method: str = "POST", query: str = "") -> dict:
    """A stored request as the store hands it out (only what the commands read)."""
    return {"id": 1, "method": method, "url": url, "query": query, "request_headers": [list(h) for h in headers],
            "request_body": body, "request_redacted": 0}  # fmt: skip


# The test environment's own programs (httpie's `http`) first.
PATH = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


def run_sh(command: str, cwd: Path) -> bytes:
    done = subprocess.run(["sh", "-c", command], capture_output=True, timeout=30, cwd=cwd, env={**os.environ, "PATH": PATH})
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout


# -- curl: bytes as bytes ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def a_local_file(tmp_path_factory) -> Path:
    """A file curl must never upload: a body "@<its path>" names it."""
    path = tmp_path_factory.mktemp("local") / "notes.txt"
    path.write_bytes(b"LOCAL-FILE-CONTENTS\n")
    return path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.binary(min_size=1, max_size=300),
    st.text(min_size=1, max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.sampled_from([b"@", b"<", b"-", b"--data", b"%s%b\\c\\0101"]).flatmap(lambda p: st.binary(max_size=40).map(lambda b: p + b)),
))  # fmt: skip
@example(body=b"@/etc/hostname")
@example(body=b"@-")
@example(body=b"<script>")
@example(body=b"\x00")
@example(body=b"\x00\x00abc\x00")
@example(body=b"a\nb\r\n\n\n")
@example(body=b"it's \"quoted\" $(touch pwned) `touch pwned2` $HOME \\n \\0101")
@example(body=b"\xff\xfe non-UTF-8 \x80")
@example(body=b"\x1b]0;pwn\x07")
@example(body="é 日本 \u2028 \u202e".encode())
def test_curl_sends_every_byte_sequence_as_those_bytes(body, upstream, tmp_path_factory):
    folder = tmp_path_factory.mktemp("sh", numbered=True)
    command = curl_command(row(f"{upstream.url}/upload", body, [("Content-Type", "application/octet-stream")]))
    assert "\n" not in command and not any(c in command for c in TERMINAL_CONTROL)
    got = json.loads(run_sh(command, folder))
    assert got == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert list(folder.iterdir()) == []  # nothing in the body ran


def test_a_body_naming_a_file_is_sent_as_text_not_the_file(tmp_path, upstream, a_local_file):
    """`export --format curl | sh` with a recorded body "@/path": the bytes "@/path" go out."""
    db = tmp_path / "at.db"
    body = f"@{a_local_file}".encode()
    store_flows(db, [post_flow(url=f"{upstream.url}/upload", body=body, headers={"content-type": "text/plain"})])
    script = repost("export", "--format", "curl", "--db", str(db)).stdout
    got = json.loads(subprocess.run(["sh"], input=script.encode(), capture_output=True, check=True, timeout=30).stdout)
    assert got == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_show_as_curl_and_export_share_one_command(tmp_path, upstream):
    db = tmp_path / "one.db"
    store_flows(db, [post_flow(url=f"{upstream.url}/upload", body=b"\x00\x01 binary", headers={"content-type": "application/octet-stream"})])
    exported = repost("export", "--format", "curl", "--db", str(db), "1").stdout
    shown = repost("show", "1", "--db", str(db), "--as", "curl").stdout
    assert shown == exported


@pytest.mark.parametrize("value", ["it's \"q\" $(touch pwned) `touch pwned2` ${HOME} \\ ; | &", "=starts with equals", "@starts-with-at", "é 日本"])
def test_curl_headers_and_urls_are_sent_as_recorded_and_never_run(value, upstream, tmp_path):
    url_part = "$(touch${IFS}pwned)`touch${IFS}pwned2`'\"{a,b}[1-2]/../x"  # a URL has no spaces
    command = curl_command(row(f"{upstream.url}/echo/{url_part}?q={url_part}", b"{}", [("X-Value", value)]))
    echoed = json.loads(run_sh(command, tmp_path))
    assert echoed["headers"]["X-Value"] == value
    assert echoed["path"] == f"/echo/{url_part}" and echoed["query"] == {"q": url_part}
    assert list(tmp_path.iterdir()) == []


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")).map(lambda t: t.rstrip("\n")))
@example(text=HOSTILE)
@example(text="$(touch pwned)`touch pwned`'\"\\n\\0101%b%s")
def test_a_shell_word_is_its_text_exactly_and_holds_no_control_character(text, tmp_path):
    """A URL, method or header value (aiohttp, the upstream here, refuses control characters
    in headers, so the word itself is checked): the shell gets the exact text, the terminal
    none of its control characters. A value cannot hold a NUL, and no client sends one that
    ends with a line break."""
    from repost.store.commands import shell_word

    word = shell_word(text)
    assert not any(c in word for c in (*TERMINAL_CONTROL, "\n"))
    assert run_sh(f"printf '%s' {word}", tmp_path) == text.encode()
    assert list(tmp_path.iterdir()) == []


# -- httpie: the same rules, run by httpie itself when it is installed ---------------------------


@pytest.mark.skipif(shutil.which("http", path=PATH) is None, reason="httpie is not installed")
@pytest.mark.parametrize("body", [b"", b"@/etc/hostname", b"\x00\xff bytes\n"])
def test_httpie_sends_the_recorded_bytes_and_headers(body, upstream, tmp_path):
    headers = [("X-Eq", "=a"), ("X-At", "@b"), ("X-Colon", "a:=b;c"), ("X-Empty", ""), ("X-Shell", "$(touch pwned) `x` 'q'")]
    echo = json.loads(run_sh(httpie_command(row(f"{upstream.url}/echo?q=$(touch${{IFS}}pwned)", body, headers)), tmp_path))
    assert {k: echo["headers"].get(k) for k, _ in headers} == dict(headers)
    assert not {"User-Agent", "Accept", "Accept-Encoding", "Content-Type"} & set(echo["headers"])  # not recorded, not added
    assert echo["query"] == {"q": "$(touch${IFS}pwned)"}
    got = json.loads(run_sh(httpie_command(row(f"{upstream.url}/upload", body)), tmp_path))
    assert got == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
    assert list(tmp_path.iterdir()) == []


def test_httpie_refuses_a_value_it_would_change(tmp_path):
    db = tmp_path / "backslash.db"
    store_flows(db, [post_flow(body=b"\x00binary", headers={"X-Path": "a\\=b"})])
    result = repost("show", "1", "--db", str(db), "--as", "httpie")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "httpie cannot send the value of header 'X-Path' as recorded; use --as curl" in result.stderr
    assert repost("show", "1", "--db", str(db), "--as", "curl").exit_code == 0


# -- one sanitiser for every human-facing line ------------------------------------------------


@pytest.fixture
def hostile_db(tmp_path, upstream):
    """A flow with control sequences in its URL, a header, its body and its streamed text."""
    db = tmp_path / "hostile.db"
    stream = b'data: {"choices": [{"delta": {"content": "\\u001b]0;pwn\\u0007\\u001b[2J\\rOK"}}]}\n\ndata: [DONE]\n\n'
    store_flows(db, [post_flow(
        url=f"{upstream.url}/orders/%1B?x=\x1b[2J\rOK", body=HOSTILE.encode(),
        headers={"content-type": "text/plain", "X-Evil": HOSTILE},
        response_body=stream, response_headers={"content-type": "text/event-stream"},
    )])  # fmt: skip
    return db


def clean(result) -> None:
    for stream in (result.stdout, result.stderr):
        assert not any(c in stream for c in TERMINAL_CONTROL), repr(stream)


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("args", [["--as", "curl"], ["--as", "httpie"], ["--as", "python"], ["--stream"]])
def test_show_as_and_stream_send_no_control_sequence(hostile_db, monkeypatch, args, terminal):
    monkeypatch.setenv("TTY_COMPATIBLE", "1" if terminal else "0")
    result = repost("show", "1", "--db", str(hostile_db), *args)
    assert result.exit_code == 0, result.output
    if terminal or args[0] == "--as":  # commands are control-free anywhere; --stream's text is exact in a pipe
        clean(result)
    if args == ["--stream"]:
        assert ("\u241b]0;pwn\u2407" in result.stdout) is terminal


def test_export_curl_sends_no_control_sequence(hostile_db):
    result = repost("export", "--format", "curl", "--db", str(hostile_db))
    assert result.exit_code == 0
    clean(result)


@pytest.fixture
def hostile_sendable_db(tmp_path, upstream):
    """The hostile flow without its X-Evil header: HTTP can carry it, so replay gets as far as
    showing it and asking (a header with control characters is not sendable at all)."""
    db = tmp_path / "hostile-sendable.db"
    store_flows(db, [post_flow(
        url=f"{upstream.url}/orders/%1B?x=\x1b[2J\rOK", body=HOSTILE.encode(), headers={"content-type": "text/plain"},
    )])  # fmt: skip
    return db


def test_replay_dry_run_of_an_unsendable_flow_names_the_header_without_its_control_sequences(hostile_db):
    result = repost("replay", "1", "--db", str(hostile_db), "--dry-run")
    assert result.exit_code == 0, result.output
    clean(result)
    assert "not sendable: its header 'X-Evil'" in result.stdout


def test_replay_dry_run_sends_no_control_sequence(hostile_sendable_db):
    result = repost("replay", "1", "--db", str(hostile_sendable_db), "--dry-run")
    assert result.exit_code == 0, result.output
    clean(result)
    assert "?x=\u241b[2JOK" in result.stdout  # shown, as pictures


def test_replay_consent_line_cannot_be_rewritten_by_a_url(hostile_sendable_db, upstream):
    hostile_db = hostile_sendable_db
    result = repost("replay", "1", "--db", str(hostile_db))  # unsafe, no --yes, no terminal: refused
    assert result.exit_code == 3
    clean(result)
    [warning] = [line for line in result.stderr.splitlines() if "[unsafe]" in line]
    assert "?x=\u241b[2JOK: non-idempotent write" in warning  # the URL shown, as pictures; the warning whole


# -- redacted values are never sent on as if real --------------------------------------------


@pytest.fixture
def redacted_db(tmp_path, counting_upstream):
    db = tmp_path / "redacted.db"
    store_flows(db, [post_flow(
        url=f"{counting_upstream.url}/echo?api_key=k-CANARY&page=2", body=b'{"password": "pw-CANARY", "a": 1}',
        headers={"content-type": "application/json", "Authorization": "Bearer tok-CANARY", "Proxy-Connection": "keep-alive",
                 "Keep-Alive": "300", "X-Client": "web"},
    )])  # fmt: skip
    return db, counting_upstream


def test_export_curl_leaves_redacted_headers_out_and_says_so(redacted_db):
    db, upstream = redacted_db
    result = repost("export", "--format", "curl", "--db", str(db))
    assert result.exit_code == 0
    assert "REDACTED" not in result.stdout.split("--url")[1].split("?")[0] and "Authorization" not in result.stdout
    assert "flow 1: left out, redacted at capture: Authorization" in result.stderr
    assert "query parameters redacted at capture, sent as stored: api_key" in result.stderr
    assert "secrets in its body were redacted at capture" in result.stderr
    echoed = json.loads(subprocess.run(["sh"], input=result.stdout.encode(), capture_output=True, check=True, timeout=30).stdout)
    assert "Authorization" not in echoed["headers"] and echoed["headers"]["X-Client"] == "web"
    assert not any(v.startswith("REDACTED-") for v in echoed["headers"].values())


@pytest.mark.parametrize("kind", ["curl", "httpie", "python"])
def test_show_as_leaves_out_redacted_hop_by_hop_and_tool_set_headers(redacted_db, kind):
    db, _ = redacted_db
    result = repost("show", "1", "--db", str(db), "--as", kind)
    assert result.exit_code == 0
    for name in ("Authorization", "Proxy-Connection", "Keep-Alive", "Content-Length", "Host"):
        assert name.lower() not in result.stdout.lower()
    assert "X-Client" in result.stdout
    assert "left out, redacted at capture: Authorization" in result.stderr
    assert "sent as stored: api_key" in result.stderr


def test_show_as_python_sends_the_request(redacted_db):
    db, upstream = redacted_db
    code = repost("show", "1", "--db", str(db), "--as", "python").stdout
    code = code.replace("print(response.status_code, response.text)", "print(response.text)")
    done = subprocess.run([os.sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    echoed = json.loads(done.stdout)
    assert "Authorization" not in echoed["headers"] and "Proxy-Connection" not in echoed["headers"]
    assert not {"User-Agent", "Accept", "Accept-Encoding", "Connection"} & set(echoed["headers"])  # none of httpx's own
    assert echoed["headers"]["X-Client"] == "web" and echoed["body"].startswith('{"password": "REDACTED-')  # as stored


def test_a_header_name_curl_would_read_as_a_file_is_left_out(tmp_path, upstream, a_local_file):
    db = tmp_path / "names.db"
    store_flows(db, [post_flow(url=f"{upstream.url}/echo", body=b"{}", headers={f"@{a_local_file}": "x", "X-Ok": "1"})])
    result = repost("export", "--format", "curl", "--db", str(db))
    assert str(a_local_file) not in result.stdout and "X-Ok" in result.stdout
    assert "left out, not valid header names" in result.stderr


def test_a_truncated_body_is_said_to_be_so(tmp_path):
    from repost.store.capture import snapshot
    from repost.store.writer import BatchWriter

    db = tmp_path / "cut.db"
    writer = BatchWriter(str(db), redactor=None, max_body=1024)
    assert writer.write([snapshot(post_flow(body=b"x" * 5000, headers={"content-type": "text/plain"}))])
    writer.close()
    result = repost("show", "1", "--db", str(db), "--as", "curl")
    assert "flow 1: its body was stored truncated; only the 1,024 bytes stored are sent" in result.stderr


# -- exports are as private as the database --------------------------------------------------


@pytest.mark.parametrize("fmt", ["har", "vcr", "curl", "mitm"])
def test_export_files_are_0600(redacted_db, tmp_path, fmt):
    db, _ = redacted_db
    old = os.umask(0o022)
    try:
        out = tmp_path / f"x.{fmt}"
        out.write_text("an older export")
        out.chmod(0o644)
        assert repost("export", "--format", fmt, "--db", str(db), "-o", str(out)).exit_code == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".repost-export-")] == []
