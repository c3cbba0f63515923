"""What replay tells the user: refusals, redacted query parameters, errors in plain words, TLS trust."""

import json

from .helpers import free_port, post_flow, repost, show_json, store_flows
from .test_replay import run_on_a_terminal

JSON = {"content-type": "application/json"}


def replay(db, *args):
    return repost("replay", "--db", str(db), *map(str, args))


def test_answering_no_says_nothing_was_sent(tmp_path, counting_upstream):
    import os

    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/orders", body=b"{}", headers=JSON)])
    code, screen = run_on_a_terminal(["replay", str(i), "--db", str(db)], b"n\n", {"REPOST_KEY_FILE": os.environ["REPOST_KEY_FILE"]})
    assert code == 3
    assert "nothing sent" in screen
    assert counting_upstream.count() == 0


def test_a_redacted_query_parameter_is_left_out_and_said(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    url = f"{counting_upstream.url}/search?q=shoes&api_key=live-123&page=2"
    (i,) = store_flows(db, [post_flow(url=url, method="GET")])
    dry = replay(db, i, "--dry-run")
    assert "left out (redacted at capture): query parameter api_key" in dry.output
    assert "REDACTED-" not in dry.output.split("\n")[0]
    result = replay(db, i, "--json")
    assert result.exit_code == 0, result.output
    assert "not sent, redacted at capture: query parameter api_key" in result.output
    sent = show_json(db, json.loads(result.stdout)[0]["replay_id"])
    assert sent["request"]["url"] == f"{counting_upstream.url}/search?q=shoes&page=2"  # no fingerprint sent as if real
    assert counting_upstream.count("/search") == 1


def test_connection_errors_read_as_one_plain_line(tmp_path):
    db = tmp_path / "r.db"
    port = free_port()  # nothing listens there
    (i,) = store_flows(db, [post_flow(url=f"http://127.0.0.1:{port}/things", method="GET")])
    result = replay(db, i)
    assert result.exit_code == 1
    assert f"flow {i}: FAILED: cannot connect to 127.0.0.1:{port}: connection refused" in result.output
    assert "Client" not in result.output and "Errno" not in result.output


def test_cacert_trusts_a_private_ca_and_its_absence_says_what_to_do(tmp_path, tls_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{tls_upstream.url}/things", method="GET")])
    untrusted = replay(db, i)
    assert untrusted.exit_code == 1
    assert "TLS certificate is not trusted" in untrusted.output and "--cacert PATH" in untrusted.output
    trusted = replay(db, i, "--cacert", tls_upstream.ca_file, "--json")
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(trusted.stdout)[0]["status"] == 200
    insecure = replay(db, i, "--insecure", "--json")
    assert insecure.exit_code == 0 and json.loads(insecure.stdout)[0]["status"] == 200
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    bad = replay(db, i, "--cacert", not_pem)
    assert bad.exit_code == 2 and "holds no CA certificate" in bad.output
