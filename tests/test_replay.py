"""repost replay against real servers that count what they receive."""

import json
import os
import pty
import select
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest

from .helpers import count_flows, free_port, post_flow, repost, show_json, store_flows, wait_for
from .upstream import Upstream

JSON = {"content-type": "application/json"}


def replay(db, *args, input=None):
    return repost("replay", "--db", str(db), *map(str, args), input=input)


def test_unsafe_flows_are_refused_without_consent_and_nothing_is_sent(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    u = counting_upstream.url
    safe, unsafe = store_flows(db, [post_flow(url=f"{u}/things", method="GET"), post_flow(url=f"{u}/orders", body=b"{}", headers=JSON)])
    result = replay(db, safe, unsafe)
    assert result.exit_code == 3
    assert f"flow {unsafe} [unsafe] POST {u}/orders: non-idempotent write; replaying may create a duplicate" in result.output
    assert "nothing sent" in result.output
    assert counting_upstream.count() == 0  # not even the safe GET of the batch


def test_dry_run_sends_nothing(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/orders?x=1", body=b'{"a": 1}', headers=JSON)])
    result = replay(db, i, "--dry-run", "--to", "http://127.0.0.1:9")
    assert result.exit_code == 0
    assert f"flow {i} [unsafe] POST http://127.0.0.1:9/orders?x=1" in result.output
    assert '{"a": 1}' in result.output
    assert counting_upstream.count() == 0
    assert count_flows(db) == 1  # nothing stored either


def test_yes_sends_exactly_once_per_flow_and_a_second_replay_warns(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    u = counting_upstream.url
    ids = store_flows(db, [post_flow(url=f"{u}/orders/{n}", body=b"{}", headers=JSON) for n in range(3)])
    result = replay(db, *ids, "--yes", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    assert [counting_upstream.count(f"/orders/{n}") for n in range(3)] == [1, 1, 1]
    assert "already replayed" not in result.output
    again = replay(db, ids[0], "--yes")
    assert f"flow {ids[0]} was already replayed 1 time (last at " in again.output
    refused = replay(db, ids[0])
    assert refused.exit_code == 3 and "already replayed 2 times" in refused.output
    assert counting_upstream.count("/orders/0") == 2


def test_keyed_flows_go_without_consent_and_get_the_stored_result(start_proxy, counting_upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        first = c.post(f"{counting_upstream.url}/pay", json={"amount": 1999}, headers={"Idempotency-Key": "key-7"})
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="the payment recorded")
    result = replay(proxy.db, 1, "--json")
    assert result.exit_code == 0, result.output
    [outcome] = json.loads(result.output)
    assert outcome["safety"] == "keyed" and outcome["status"] == 201
    replayed = show_json(proxy.db, outcome["replay_id"])
    assert json.loads(replayed["response"]["body"]) == first.json()  # the stored result, no new payment
    assert ["Idempotent-Replayed", "true"] in replayed["response"]["headers"]
    assert len(counting_upstream.payments) == 1


def test_a_new_idempotency_key_needs_consent(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/pay", body=b'{"amount": 5}', headers={**JSON, "Idempotency-Key": "k1"})])
    assert replay(db, i, "--new-idempotency-key").exit_code == 3
    assert counting_upstream.count() == 0
    result = replay(db, i, "--new-idempotency-key", "--yes", "--json")
    assert result.exit_code == 0
    sent = show_json(db, json.loads(result.output)[0]["replay_id"])
    keys = [v for k, v in sent["request"]["headers"] if k.lower() == "idempotency-key"]
    assert keys and keys != ["k1"]


@pytest.mark.parametrize(
    "body, ctype, needs_consent",
    [
        (b'{"query": "query Me { me { id } }"}', "application/json", False),
        (b'{"query": "{ me { id } }"}', "application/json", False),
        (b'{"query": "# a comment\\n  query { me { id } }"}', "application/json", False),
        (b"{ me { id } }", "application/graphql", False),
        (b'{"query": "mutation { pay(amount: 5) { id } }"}', "application/json", True),
        (b'[{"query": "{ a }"}, {"query": "mutation { b }"}]', "application/json", True),
    ],
)
def test_graphql_queries_go_mutations_need_consent(tmp_path, counting_upstream, body, ctype, needs_consent):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/graphql", body=body, headers={"content-type": ctype})])
    result = replay(db, i)
    assert result.exit_code == (3 if needs_consent else 0), result.output
    assert counting_upstream.count("/graphql") == (0 if needs_consent else 1)


def test_a_read_only_rule_is_honoured(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/products/_search", body=b'{"query": {"match_all": {}}}', headers=JSON)])
    assert replay(db, i).exit_code == 3
    added = repost("rules", "add", "--read-only", "POST */_search", "--db", str(db))
    assert added.exit_code == 0 and "POST */_search" in added.output
    assert json.loads(repost("list", "--db", str(db), "--json").output)[0]["safety"] == "safe"
    assert replay(db, i).exit_code == 0
    assert counting_upstream.count("/products/_search") == 1
    assert "POST */_search" in repost("rules", "list", "--db", str(db)).output
    (rule,) = json.loads(repost("rules", "list", "--db", str(db), "--json").output)
    assert rule["kind"] == "read-only" and rule["method"] == "POST" and rule["url_glob"] == "*/_search"


def run_on_a_terminal(args: list[str], answer: bytes, env: dict) -> tuple[int, str]:
    """Run the CLI on a pseudo-terminal; answer its prompt; return (exit code, screen)."""
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "repost.cli", *args], stdin=terminal, stdout=terminal, stderr=terminal,
        env={**os.environ, **env}, start_new_session=True,
    )  # fmt: skip
    os.close(terminal)
    screen = b""
    answered = False
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(controller, 4096)
            except OSError:  # the terminal closed: the program ended
                break
            if not chunk:
                break
            screen += chunk
            if not answered and b"[y/N]" in screen:
                os.write(controller, answer)
                answered = True
        elif proc.poll() is not None:
            break
    code = proc.wait(30)
    os.close(controller)
    return code, screen.decode(errors="replace")


@pytest.mark.parametrize("answer, code, sent", [(b"n\n", 3, 0), (b"y\n", 0, 1)])
def test_on_a_terminal_the_prompt_appears_and_the_answer_rules(tmp_path, counting_upstream, answer, code, sent):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/orders", body=b"{}", headers=JSON)])
    exit_code, screen = run_on_a_terminal(["replay", str(i), "--db", str(db)], answer, {"REPOST_KEY_FILE": os.environ["REPOST_KEY_FILE"]})
    assert "Replay 1 unsafe flow? [y/N]" in screen
    assert exit_code == code
    assert counting_upstream.count("/orders") == sent


def test_to_reaches_the_other_server_only_and_headers_can_be_overridden(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    other = Upstream().start()
    try:
        (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/echo", body=b'{"a": 1}',
                                          headers={**JSON, "X-Client": "web", "Host": f"127.0.0.1:{counting_upstream.port}"})])  # fmt: skip
        result = replay(db, i, "--yes", "--to", other.url, "-H", "X-Client: replayed", "-H", "X-Extra: 1", "--json")
        assert result.exit_code == 0, result.output
        assert other.count("/echo") == 1 and counting_upstream.count() == 0
        rid = json.loads(result.output)[0]["replay_id"]
        echoed = json.loads(show_json(db, rid)["response"]["body"])
        assert echoed["headers"]["Host"] == f"127.0.0.1:{other.port}"
        assert echoed["headers"]["X-Client"] == "replayed" and echoed["headers"]["X-Extra"] == "1"
        assert echoed["body"] == '{"a": 1}'
    finally:
        other.stop()


def test_redacted_headers_are_reported_and_can_be_supplied(start_proxy, counting_upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        c.post(f"{counting_upstream.url}/echo", json={}, headers={"Authorization": "Bearer original-secret"})
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="recorded")
    result = replay(proxy.db, 1, "--yes", "--json")
    assert "not sent, redacted at capture: Authorization; supply it with -H 'Authorization: ...'" in result.output
    rid = json.loads(result.output[result.output.index("[") :])[0]["replay_id"]
    assert "Authorization" not in json.loads(show_json(proxy.db, rid)["response"]["body"])["headers"]
    supplied = replay(proxy.db, 1, "--yes", "-H", "Authorization: Bearer new-secret", "--json")
    assert "not sent, redacted" not in supplied.output
    rid2 = json.loads(supplied.output[supplied.output.index("["):])[0]["replay_id"]
    echoed = show_json(proxy.db, rid2)
    assert "new-secret" not in json.dumps(echoed)  # sent, but stored redacted
    assert json.loads(echoed["response"]["body"])["headers"]["Authorization"].startswith("REDACTED-")


def test_show_lists_replays_and_diff_shows_what_changed(start_proxy, counting_upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        c.post(f"{counting_upstream.url}/create", json={"item": "book"})
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="recorded")
    result = replay(proxy.db, 1, "--yes", "--diff")
    assert result.exit_code == 0
    import re

    m = re.search(r"response\.body\.id: (\d+) -> (\d+)", result.output)  # --diff printed at once
    assert m and int(m.group(2)) == int(m.group(1)) + 1
    replays = show_json(proxy.db, 1)["replays"]
    assert len(replays) == 1 and replays[0]["status"] == 201
    assert replays[0]["target"] == f"http://127.0.0.1:{counting_upstream.port}"
    rid = replays[0]["id"]
    assert show_json(proxy.db, rid)["replay_of"] == 1
    d = json.loads(repost("diff", "1", str(rid), "--db", str(proxy.db), "--json").output)
    assert [x["path"] for x in d["differences"]] == ["response.body.id", "response.body.created"]
    listed = json.loads(repost("list", "--db", str(proxy.db), "--json").output)
    assert listed[0]["replay_of"] == 1


def test_a_dead_target_fails_fast_with_exit_1_and_no_retries(tmp_path):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url="http://127.0.0.1:1/orders", body=b"{}", headers=JSON)])
    dead = free_port()
    t0 = time.monotonic()
    result = replay(db, i, "--yes", "--to", f"http://127.0.0.1:{dead}")
    assert time.monotonic() - t0 < 10
    assert result.exit_code == 1
    assert f"flow {i}: FAILED: " in result.output and "cannot connect to" in result.output

    # A server that accepts and hangs up: exactly one connection, never a retry.
    accepted = []
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()

    def hang_up():
        server.settimeout(5)
        try:
            while True:
                conn, _ = server.accept()
                accepted.append(conn)
                conn.recv(65536)
                conn.close()
        except OSError:
            pass

    t = threading.Thread(target=hang_up, daemon=True)
    t.start()
    result = replay(db, i, "--yes", "--to", f"http://127.0.0.1:{server.getsockname()[1]}")
    server.close()
    t.join(10)
    assert result.exit_code == 1
    assert len(accepted) == 1
    failed = json.loads(repost("list", "--db", str(db), "--json").output)[0]
    assert failed["replay_of"] == i and failed["status"] is None and failed["error"]


def test_replay_by_filters_and_usage_errors(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    u = counting_upstream.url
    store_flows(db, [post_flow(url=f"{u}/orders", method="PUT"), post_flow(url=f"{u}/other", method="PUT")])
    result = replay(db, "--path", "/orders")
    assert result.exit_code == 0  # PUT is idempotent: no consent needed
    assert counting_upstream.count("/orders") == 1 and counting_upstream.count("/other") == 0
    assert replay(db).exit_code == 2  # no ids, no filters: refuse to replay everything
    assert replay(db, "1", "--to", "ftp://x").exit_code == 2
    assert replay(db, "1", "-H", "no-colon").exit_code == 2
    assert replay(db, "99").exit_code == 2  # an id that names no flow: as in show and diff
