"""The fingerprint key: made private, never replaced by a known key when it cannot be had."""

import hmac
import json
import os
import stat
from hashlib import sha256

import httpx
import pytest

from repost.store.redact import UNKEYED, FingerprintKeyError, load_key

from .helpers import RecordingProxy, count_flows, post_flow, repost, show_json, store_flows, wait_for


def _no_traceback(output: str) -> None:
    assert "Traceback" not in output


def test_the_default_key_folder_is_private(tmp_path, monkeypatch):
    monkeypatch.delenv("REPOST_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    (tmp_path / "config" / "repost").mkdir(parents=True, mode=0o755)  # as an older repost left it
    key = load_key()
    folder = tmp_path / "config" / "repost"
    assert len(key) == 32
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "fingerprint.key").stat().st_mode) == 0o600
    assert load_key() == key


@pytest.mark.parametrize("content", [b"", b"short"])
def test_a_key_too_short_to_be_secret_is_an_error(tmp_path, monkeypatch, content):
    key_file = tmp_path / "k"
    key_file.write_bytes(content)
    monkeypatch.setenv("REPOST_KEY_FILE", str(key_file))
    with pytest.raises(FingerprintKeyError, match="fewer than 16"):
        load_key()
    har = tmp_path / "in.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "creator": {"name": "t", "version": "1"}, "entries": []}}))
    db = tmp_path / "r.db"
    result = repost("import", str(har), "--db", str(db))
    assert result.exit_code == 1
    assert "fingerprint key" in result.output and "fewer than 16" in result.output
    _no_traceback(result.output)


def test_a_key_that_cannot_be_made_stops_a_replay_before_anything_is_sent(tmp_path, monkeypatch, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/orders", body=b"{}", headers={"content-type": "application/json"})])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("REPOST_KEY_FILE", str(blocker / "fingerprint.key"))  # its folder is a file: cannot be made
    result = repost("replay", str(i), "--yes", "--db", str(db))
    assert result.exit_code == 1, result.output
    assert "fingerprint key" in result.output and "Not a directory" in result.output
    _no_traceback(result.output)
    assert counting_upstream.count() == 0


def test_the_recorder_without_a_key_warns_and_records_an_unkeyed_marker(tmp_path, confdir, upstream):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proxy = RecordingProxy(tmp_path / "r.db", confdir, env={"REPOST_KEY_FILE": str(blocker / "fingerprint.key")})
    try:
        with httpx.Client(proxy=proxy.url, timeout=10) as c:
            assert c.post(f"{upstream.url}/orders", json={"password": "hunter2"}, headers={"Authorization": "Bearer abc"}).status_code < 500
        wait_for(lambda: count_flows(proxy.db) == 1, 10, what="the flow recorded")
    finally:
        proxy.stop()
    output = proxy.output()
    assert "WARNING" in output and "fingerprint key" in output and "unkeyed REDACTED marker" in output
    flow = show_json(proxy.db, 1)
    assert ["Authorization", UNKEYED] in flow["request"]["headers"]
    assert json.loads(flow["request"]["body"]) == {"password": UNKEYED}
    # Not the fingerprint under any fixed key: nothing to test guesses against.
    guessable = "REDACTED-" + hmac.new(b"repost-unkeyed", b"Bearer abc", sha256).hexdigest()[:8]
    assert guessable not in json.dumps(flow)
    _no_traceback(output)
    assert os.path.exists(proxy.db)
