"""Issue 17, scrubbing: `repost redact add/list/remove/apply`.

A canary recorded under names no rule knew (an unknown header, a JSON field, a query
parameter, a shape only a user's pattern describes) is taken out of the database by
`redact add` then `redact apply`: no trace in the .db, -wal and -shm files, raw, base64 or
percent-encoded (nor lower-cased, as the search index keeps words). A flow recorded after
`redact add` is redacted by the recorder already running.
"""

import gzip
import json
import sqlite3

import httpx
import pytest

from repost.store.redact import Redactor, is_secret_header, is_secret_name, is_secret_param
from repost.store.redact_rules import RedactRule, UserRules

from .helpers import RecordingProxy, count_flows, post_flow, repost, show_json, store_flows, wait_for
from .leaks import database_bytes, leaks, reply_app
from .upstream import Upstream

HEADER, FIELD_PATH, QUERY = "X-Mystery", "order.hint", "ref"
PATTERN = r"CANARYP[0-9]{12}"  # the rule's text is stored; the canaries it matches must not be


def canaries(tag: str) -> dict:
    return {
        "header": f"CANARYH{tag}a1b2c3d4",
        "field": f"CANARYF{tag}e5f6a7b8",
        "query": f"CANARYQ{tag}c9d0e1f2",
        "pattern": f"CANARYP{tag}{'7' * (12 - len(tag))}",
    }


def send(proxy: RecordingProxy, upstream: Upstream, c: dict) -> None:
    body = json.dumps({"order": {"hint": c["field"], "qty": 2}, "note": f"account {c['pattern']} on file"})
    with httpx.Client(proxy=proxy.url, timeout=10) as client:
        r = client.post(
            f"{upstream.url}/orders?page=1&{QUERY}={c['query']}",
            content=body,
            headers={"Content-Type": "application/json", HEADER: c["header"]},
        )
    assert r.status_code == 200  # the echo reflects all four in its response body too


def db_files(db) -> bytes:
    return database_bytes(db)


def traces(db, values: list[str]) -> list[str]:
    data = db_files(db)
    found = leaks(data, values)
    lowered = data.lower()  # the search index keeps words lower-cased
    return found + [v for v in values if v.lower().encode() in lowered and v not in found]


@pytest.fixture
def rig(tmp_path, confdir):
    upstream = Upstream(reply_app()).start()
    proxy = RecordingProxy(tmp_path / "rec.db", confdir)
    yield proxy, upstream
    proxy.stop()
    upstream.stop()


def test_names_are_unknown_to_the_table():
    # The point of the test below: nothing in repost's own table covers these.
    assert not is_secret_header(HEADER) and not is_secret_param(QUERY)
    assert not is_secret_name("hint") and not is_secret_name("order")


def test_acceptance_apply_leaves_no_trace_and_the_running_recorder_redacts(rig, tmp_path):
    proxy, upstream = rig
    db = str(proxy.db)
    before = canaries("1")
    send(proxy, upstream, before)
    wait_for(lambda: count_flows(proxy.db) == 1, 20, what="the first flow stored")
    # No rule knew the names: every canary is in the file as it came.
    wait_for(lambda: set(traces(proxy.db, list(before.values()))) == set(before.values()), 10, what="canaries stored")
    found = repost("list", "--db", db, "--search", before["field"], "--json")
    assert found.exit_code == 0 and len(json.loads(found.output)) == 1  # indexed for search, too

    for option, value in (("--header", HEADER), ("--field", FIELD_PATH), ("--query", QUERY), ("--pattern", PATTERN)):
        result = repost("redact", "add", option, value, "--db", db)
        assert result.exit_code == 0, result.output

    # The recorder already running redacts the next flow.
    after = canaries("2")
    send(proxy, upstream, after)
    wait_for(lambda: count_flows(proxy.db) == 2, 20, what="the second flow stored")
    flow = show_json(proxy.db, 2)
    sent = dict((k.lower(), v) for k, v in flow["request"]["headers"])
    assert sent[HEADER.lower()].startswith("REDACTED-")
    assert traces(proxy.db, list(after.values())) == []

    # Consent first: nothing changes without it.
    refused = repost("redact", "apply", "--db", db)
    assert refused.exit_code == 3, refused.output
    assert "refused" in refused.output
    dry = repost("redact", "apply", "--db", db, "--dry-run")
    assert dry.exit_code == 0 and "1 flow of 2 would be redacted" in dry.output, dry.output
    assert set(traces(proxy.db, list(before.values()))) == set(before.values())

    applied = repost("redact", "apply", "--db", db, "--yes")
    assert applied.exit_code == 0, applied.output
    assert "redacted 1 flow" in applied.output
    everything = list(before.values()) + list(after.values())
    assert traces(proxy.db, everything) == [], "a canary survived in the .db, -wal or -shm"

    # The flow is still whole and readable, its secrets fingerprinted; search no longer finds it.
    first = show_json(proxy.db, 1)
    assert "REDACTED-" in first["request"]["url"] and "page=1" in first["request"]["url"]
    assert dict((k.lower(), v) for k, v in first["request"]["headers"])[HEADER.lower()].startswith("REDACTED-")
    gone = repost("list", "--db", db, "--search", before["field"], "--json")
    assert gone.exit_code == 0 and json.loads(gone.output) == []
    again = repost("redact", "apply", "--db", db, "--yes")
    assert again.exit_code == 0 and "nothing to redact" in again.output

    assert proxy.stop() == 0
    assert traces(proxy.db, everything) == []


def test_apply_scrubs_compressed_bodies_free_pages_and_the_wal(tmp_path):
    db = tmp_path / "r.db"
    secret = "CANARYZ0123456789ab"
    body = gzip.compress(json.dumps({"order": {"hint": secret}}).encode())
    flows = [
        post_flow(body=body, headers={"content-type": "application/json", "content-encoding": "gzip"}),
        post_flow(body=b'{"x": 1}', headers={"content-type": "application/json"}),
        # A long value: its overflow pages are freed by the rewrite (free pages keep old bytes).
        post_flow(body=json.dumps({"order": {"hint": "y" * 300_000 + secret}}).encode(), headers={"content-type": "application/json"}),
    ]
    store_flows(db, flows)
    assert repost("list", "--db", str(db), "--search", "x").exit_code == 0  # index them
    assert repost("redact", "add", "--field", "order.hint", "--db", str(db)).exit_code == 0
    result = repost("redact", "apply", "--db", str(db), "--yes")
    assert result.exit_code == 0, result.output
    assert "redacted 2 flows" in result.output
    assert leaks(db_files(db) + gzip.decompress(body), [secret]) == [secret]  # the probe works
    assert leaks(db_files(db), [secret]) == []
    row = sqlite3.connect(db).execute("SELECT request_body, request_content_encoding, request_redacted FROM flows WHERE id = 1").fetchone()
    assert json.loads(row[0])["order"]["hint"].startswith("REDACTED-") and row[1] is None and row[2] == 1


def test_list_and_remove(tmp_path):
    db = str(tmp_path / "r.db")
    assert repost("redact", "list", "--db", db).exit_code != 0  # no database yet
    assert repost("redact", "add", "--header", "X-Internal", "--db", db).exit_code == 0
    assert repost("redact", "add", "--pattern", r"acct_\d{6}", "--db", db).exit_code == 0
    listed = repost("redact", "list", "--db", db, "--json")
    assert [(r["id"], r["kind"], r["value"]) for r in json.loads(listed.output)] == [(1, "header", "X-Internal"), (2, "pattern", r"acct_\d{6}")]
    assert "X-Internal" in repost("redact", "list", "--db", db).output
    removed = repost("redact", "remove", "1", "--db", db)
    assert removed.exit_code == 0 and "removed" in removed.output
    assert [r["id"] for r in json.loads(repost("redact", "list", "--db", db, "--json").output)] == [2]
    missing = repost("redact", "remove", "1", "--db", db)
    assert missing.exit_code == 1 and "no redaction rule with id 1" in missing.output


@pytest.mark.parametrize(
    "args, code, says",
    [
        (["--pattern", "("], 2, "does not compile"),
        (["--pattern", "a*"], 2, "matches the empty string"),
        (["--pattern", "x|"], 2, "matches the empty string"),
        (["--pattern", r"(x+)\1"], 2, "does not compile"),  # RE2: no backreferences ...
        (["--pattern", r"x(?=y)"], 2, "does not compile"),  # ... nor lookarounds
        (["--header", "X Bad"], 2, "not a header name"),
        (["--field", " "], 2, "needs a name"),
        ([], 2, "give one of"),
        (["--header", "A", "--query", "b"], 2, "give one of"),
    ],
)
def test_bad_rules_are_usage_errors(tmp_path, args, code, says):
    db = tmp_path / "r.db"
    result = repost("redact", "add", *args, "--db", str(db))
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert not db.exists()  # refused before a database is made for it


def test_duplicates_are_refused(tmp_path):
    db = str(tmp_path / "r.db")
    assert repost("redact", "add", "--header", "X-Internal", "--db", db).exit_code == 0
    again = repost("redact", "add", "--header", "x-internal", "--db", db)
    assert again.exit_code == 1 and "already says that" in again.output
    assert repost("redact", "add", "--query", "x-internal", "--db", db).exit_code == 0  # another kind: another rule


def test_patterns_run_in_linear_time(tmp_path):
    # Patterns that backtrack for ages in Python's re (exponential, or quadratic: "a+b" takes
    # 11 s on 100 KB of "a") are fine on RE2: each is accepted, and a hostile 4 MB body is
    # redacted in well under a second each.
    import time

    db = str(tmp_path / "r.db")
    slow = (r"(a+)+b", r"a+b", r"(a|aa)+c", r"(\w*\s?)*x")
    for pattern in slow + (r"acct_[0-9]{12}", r"\bINV-\d+\b"):
        result = repost("redact", "add", "--pattern", pattern, "--db", db)
        assert result.exit_code == 0, (pattern, result.output)
    for pattern in slow:
        r = Redactor(b"k" * 32, rules(("pattern", pattern)))
        started = time.monotonic()
        assert r.body(b"a" * 4_000_000 + b" secret", "text/plain") is None
        assert time.monotonic() - started < 5, pattern


def test_patterns_see_text_as_it_is_and_leave_bytes_alone():
    r = Redactor(b"k" * 32, rules(("pattern", r"é\w+"), ("pattern", r"(?i)acct-\d{4}")))
    new = r.body("x ACCT-1234 y \u00e9t\u00e9s z".encode() + b"\xff", "text/plain")
    assert b"ACCT-1234" not in new and "ét".encode() not in new and new.endswith(b"z\xff")


def rules(*pairs) -> UserRules:
    return UserRules([RedactRule(i, kind, value, "") for i, (kind, value) in enumerate(pairs, 1)])


def test_a_path_names_one_place_a_name_every_place():
    r = Redactor(b"k" * 32, rules(("field", "order.hint"), ("field", "pet")))
    out = json.loads(r.body(b'{"order": {"hint": "a"}, "hint": "b", "x": {"pet": "c"}}', "application/json"))
    assert out["order"]["hint"].startswith("REDACTED-") and out["hint"] == "b" and out["x"]["pet"].startswith("REDACTED-")
    out = json.loads(r.body(b'{"items": [{"order": {"hint": "a"}}]}', "application/json"))
    assert out["items"][0]["order"]["hint"].startswith("REDACTED-")  # a dotted suffix, as diff's --ignore


def test_a_pattern_does_not_eat_its_own_fingerprints():
    r = Redactor(b"k" * 32, rules(("pattern", r"[0-9a-f]{8}")))
    once = r.body(b"see deadbeef here", "text/plain")
    assert once is not None and b"deadbeef" not in once
    assert r.body(once, "text/plain") is None  # applied again: nothing left to change


def test_without_rules_the_redactor_is_as_before():
    r = Redactor(b"k" * 32)
    assert r.may_hold_secret.__func__ is Redactor.may_hold_secret  # the fast path, untouched
    assert r.body(b'{"hint": "x"}', "application/json") is None


def test_a_rule_finds_its_name_however_it_is_spelled():
    r = Redactor(b"k" * 32, rules(("field", "userSsn"), ("field", "items[*].card*"), ("header", "X-Mystery")))
    for body in (b'{"user_ssn": "1"}', b'{"USER-SSN": "1"}', b"user_ssn=1&b=2"):
        ctype = "application/json" if body.startswith(b"{") else "application/x-www-form-urlencoded"
        new = r.body(body, ctype)
        assert new is not None and b'"1"' not in new and b"=1&" not in new, body
    new = json.loads(r.body(b'{"items": [{"cardNo": "4111"}], "cardNo": "keep"}', "application/json"))
    assert new["items"][0]["cardNo"].startswith("REDACTED-") and new["cardNo"] == "keep"
    assert r.header_value("x-mystery", "v").startswith("REDACTED-")
    assert r.body(b'{"headers": [["X-Mystery", "v"]]}', "application/json") != b'{"headers": [["X-Mystery", "v"]]}'


def test_import_applies_the_databases_rules(tmp_path):
    source, target = tmp_path / "a.db", tmp_path / "b.db"
    secret = "CANARYI0123456789ab"
    store_flows(source, [post_flow(body=b'{"a": 1}', headers={HEADER: secret, "content-type": "application/json"})], keep_secrets=True)
    har = tmp_path / "a.har"
    assert repost("export", "--db", str(source), "--format", "har", "-o", str(har)).exit_code == 0
    assert secret.encode() in har.read_bytes()
    assert repost("redact", "add", "--header", HEADER, "--db", str(target)).exit_code == 0
    result = repost("import", str(har), "--db", str(target))
    assert result.exit_code == 0, result.output
    assert leaks(db_files(target), [secret]) == []
    assert dict((k.lower(), v) for k, v in show_json(target, 1)["request"]["headers"])[HEADER.lower()].startswith("REDACTED-")
