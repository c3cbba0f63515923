"""Consent is asked for what will actually be sent: every override, every way a server could read it.

Each case goes through the real `repost replay` to a real upstream that counts what it receives.
"""

import json
import os

import graphql
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from repost.store.safety import classify, graphql_operation

from .helpers import list_json, post_flow, repost, store_flows
from .test_replay import run_on_a_terminal

JSON = {"content-type": "application/json"}


def replay(db, *args):
    return repost("replay", "--db", str(db), *map(str, args))


def keyed_flow(url, **headers):
    return post_flow(url=url, body=b'{"amount": 5}', headers={**JSON, "Idempotency-Key": "k1", **headers})


def test_a_new_key_given_with_h_needs_consent_like_new_idempotency_key(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [keyed_flow(f"{counting_upstream.url}/pay")])
    for header in ("Idempotency-Key: new", "idempotency-key: k2", "Idempotency-Key:"):
        result = replay(db, i, "-H", header)
        assert result.exit_code == 3, (header, result.output)
        assert f"flow {i} [unsafe] POST" in result.output
    assert counting_upstream.count() == 0
    same = replay(db, i, "-H", "Idempotency-Key: k1", "--json")  # the recorded key again: still keyed
    assert same.exit_code == 0, same.output
    assert json.loads(same.output)[0]["safety"] == "keyed"
    assert counting_upstream.count("/pay") == 1


def test_a_keyed_flow_sent_to_another_server_is_a_fresh_write(tmp_path, counting_upstream):
    """The key was stored by the recorded server; another one (--to, a Host override) never saw it."""
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [keyed_flow("http://127.0.0.1:9/pay")])
    for args in (["--to", counting_upstream.url], ["--to", counting_upstream.url, "-H", "Host: other.test"]):
        result = replay(db, i, *args)
        assert result.exit_code == 3, result.output
        assert "[unsafe]" in result.output and "nothing sent" in result.output
    assert counting_upstream.count() == 0


def test_a_keyed_flow_whose_body_was_redacted_is_not_a_repeat(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    flow = post_flow(url=f"{counting_upstream.url}/login", body=b'{"password": "hunter2"}', headers={**JSON, "Idempotency-Key": "k1"})
    (i,) = store_flows(db, [flow])
    assert list_json(db)[0]["safety"] == "unsafe"
    result = replay(db, i)
    assert result.exit_code == 3, result.output
    assert counting_upstream.count() == 0


@pytest.mark.parametrize(
    "body, ctype",
    [
        # A JSON body under a GraphQL-looking type was read as a bare document (a shorthand query).
        (b'{"query": "mutation { pay(amount: 5) { id } }"}', "application/graphql+json"),
        (b'{"query": "mutation { pay(amount: 5) { id } }"}', "application/graphql; charset=utf-8"),
        # A comment holding three quotes hid the mutation from a pattern that strips strings.
        (b'{"query": "# \\"\\"\\" a comment\\nmutation { pay(amount: 5) { id } }"}', "application/json"),
        (b'{"query": "{ a } # \\"\\"\\"\\nmutation { pay(amount: 5) { id } }\\n# \\"\\"\\""}', "application/json"),
        (b'{"query": "query Q { a(s: \\"\\"\\"x\\"\\"\\") } mutation M { pay }", "operationName": "M"}', "application/json"),
        # Unparseable, a persisted query, an unknown operation name: which operation runs is unknown.
        (b'{"query": "{ a "}', "application/json"),
        (b'{"extensions": {"persistedQuery": {"sha256Hash": "abc"}}, "query": null}', "application/json"),
        (b'{"query": "query A { a }", "operationName": "B"}', "application/json"),
        (b'{"query": "query A { a } mutation B { b }"}', "application/json"),
    ],
)
def test_graphql_that_is_not_surely_a_query_needs_consent(tmp_path, counting_upstream, body, ctype):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/graphql", body=body, headers={"content-type": ctype})])
    result = replay(db, i)
    assert result.exit_code == 3, result.output
    assert counting_upstream.count() == 0


def test_a_graphql_mutation_in_the_url_needs_consent(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    url = f"{counting_upstream.url}/graphql?query=mutation%20%7B%20pay%20%7D"
    (i,) = store_flows(db, [post_flow(url=url, body=b'{"query": "{ me { id } }"}', headers=JSON)])
    assert replay(db, i).exit_code == 3
    assert counting_upstream.count() == 0


@pytest.mark.parametrize("name", ["X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "x-http-method-override"])
def test_a_method_override_names_the_method_the_server_runs(tmp_path, counting_upstream, name):
    db = tmp_path / "r.db"
    recorded, query = store_flows(db, [
        post_flow(url=f"{counting_upstream.url}/orders", method="GET", headers={name: "POST"}),
        post_flow(url=f"{counting_upstream.url}/graphql", body=b'{"query": "{ me { id } }"}', headers=JSON),
    ])  # fmt: skip
    assert {f["id"]: f["safety"] for f in list_json(db)} == {recorded: "unsafe", query: "safe"}
    assert replay(db, recorded).exit_code == 3
    added = replay(db, query, "-H", f"{name}: DELETE")  # a safe query turned into a DELETE by -H
    assert added.exit_code == 0 and "[idempotent]" in replay(db, query, "-H", f"{name}: DELETE", "--dry-run").output
    refused = replay(db, query, "-H", f"{name}: PATCH")
    assert refused.exit_code == 3, refused.output
    assert counting_upstream.count("/orders") == 0
    assert counting_upstream.count("/graphql") == 1  # the DELETE-overridden one went, with consent not needed


def test_ctrl_d_at_the_prompt_is_a_refusal(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/orders", body=b"{}", headers=JSON)])
    code, screen = run_on_a_terminal(["replay", str(i), "--db", str(db)], b"\x04", {"REPOST_KEY_FILE": os.environ["REPOST_KEY_FILE"]})
    assert code == 3, screen
    assert "nothing sent" in screen
    assert "Aborted" not in screen
    assert counting_upstream.count() == 0


# -- the property: safe only if graphql-core parses it and the selected operation is a query ----

_pieces = st.sampled_from([
    "query", "mutation", "subscription", "fragment", "on", "Q", "M", "F", "a", "b", "pay", "{", "}", "(", ")",
    ":", "$v", "Int", "...", "@skip", "#", '"""', '"', "\\", "\n", " ", "x: 1", '"s"', '"""block"""', "# c\n",
])  # fmt: skip
documents = st.lists(_pieces, max_size=24).map("".join)


def _selected(source: str, name: str | None) -> list[str]:
    doc = graphql.parse(source)
    ops = [d for d in doc.definitions if isinstance(d, graphql.OperationDefinitionNode)]
    if name is not None:
        ops = [op for op in ops if op.name and op.name.value == name]
    return [op.operation.value for op in ops]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(doc=documents, name=st.none() | st.sampled_from(["Q", "M", "F"]), form=st.sampled_from(["json", "raw", "variant"]))
@example(doc='# """\nmutation { pay }', name=None, form="json")
@example(doc='{ a(s: """ # """) } mutation { pay }', name=None, form="raw")
@example(doc="mutation { pay }", name=None, form="variant")
def test_safe_only_if_the_parser_selects_a_query(doc, name, form):
    if form == "raw":
        body, ctype = doc.encode(), "application/graphql"
    else:
        body = json.dumps({"query": doc, "operationName": name}).encode()
        ctype = "application/json" if form == "json" else "application/graphql+json"
    if classify("POST", None, body=body, content_type=ctype) != "safe":
        return
    assert graphql_operation(body, ctype) == "query"
    ops = _selected(doc, name if form != "raw" else None)  # raises if graphql-core cannot parse it
    assert ops and set(ops) == {"query"}


# -- edited replays (--set, --body): classified by what will be sent -----------------------


def test_set_edits_json_form_and_query_values_and_headers(tmp_path, counting_upstream):
    from .helpers import show_json

    db = tmp_path / "r.db"
    u = counting_upstream.url
    j, f = store_flows(db, [
        post_flow(url=f"{u}/orders?page=1&sort=asc", body=b'{"item": "book", "qty": 1, "lines": [{"sku": "A"}]}', headers=JSON),
        post_flow(url=f"{u}/login", body=b"user=ada&lang=en", headers={"content-type": "application/x-www-form-urlencoded"}),
    ])  # fmt: skip
    result = replay(db, j, "--yes", "--json", "--set", "request.body.qty=3", "--set", "request.body.lines[0].sku=B",
                    "--set", "request.query.page=2", "--set", "request.headers.X-Env=staging")  # fmt: skip
    assert result.exit_code == 0, result.output
    sent = show_json(db, json.loads(result.stdout)[0]["replay_id"])["request"]
    assert json.loads(sent["body"]) == {"item": "book", "qty": 3, "lines": [{"sku": "B"}]}
    assert sent["url"] == f"{u}/orders?sort=asc&page=2"
    assert ["X-Env", "staging"] in sent["headers"]
    form = replay(db, f, "--yes", "--json", "--set", "request.body.lang=fr")
    assert show_json(db, json.loads(form.stdout)[0]["replay_id"])["request"]["body"] == "user=ada&lang=fr"


def test_an_edit_makes_a_keyed_or_safe_flow_unsafe(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    keyed, query = store_flows(db, [
        keyed_flow(f"{counting_upstream.url}/pay"),
        post_flow(url=f"{counting_upstream.url}/graphql", body=b'{"query": "{ me { id } }"}', headers=JSON),
    ])  # fmt: skip
    assert "[keyed]" in replay(db, keyed, "--dry-run").output
    assert replay(db, keyed, "--set", "request.body.amount=500").exit_code == 3
    mutation = tmp_path / "mutation.json"
    mutation.write_text('{"query": "mutation { pay(amount: 5) { id } }"}')
    assert replay(db, query, "--body", f"@{mutation}").exit_code == 3
    assert replay(db, query, "--set", 'request.body.query="mutation { pay }"').exit_code == 3
    assert counting_upstream.count() == 0
    assert replay(db, query, "--set", 'request.body.query="{ me { name } }"').exit_code == 0  # still a query
    assert counting_upstream.count("/graphql") == 1


def test_a_bad_edit_is_a_usage_error_or_names_the_flow(tmp_path, counting_upstream):
    db = tmp_path / "r.db"
    (i,) = store_flows(db, [post_flow(url=f"{counting_upstream.url}/raw", body=b"plain text", headers={"content-type": "text/plain"})])
    assert replay(db, i, "--set", "nonsense").exit_code == 2
    assert replay(db, i, "--set", "response.status=200").exit_code == 2
    bad = replay(db, i, "--yes", "--set", "request.body.x=1")
    assert bad.exit_code == 1 and "neither JSON nor a form" in bad.output
    assert replay(db, i, "--body", "@/nonexistent/file").exit_code == 2
    assert counting_upstream.count() == 0


def test_the_graphql_operation_is_decided_at_capture_so_list_never_imports_the_parser(tmp_path):
    import sqlite3
    import subprocess
    import sys

    db = tmp_path / "r.db"
    q, m, p = store_flows(db, [
        post_flow(url="http://api.test/graphql", body=b'{"query": "{ me { id } }"}', headers=JSON),
        post_flow(url="http://api.test/graphql", body=b'{"query": "mutation { pay }"}', headers=JSON),
        post_flow(url="http://api.test/graphql", body=b'{"extensions": {"persistedQuery": {}}, "query": null}', headers=JSON),
    ])  # fmt: skip
    stored = dict(sqlite3.connect(db).execute("SELECT id, request_graphql FROM flows").fetchall())
    assert stored == {q: "query", m: "mutation", p: "unknown"}
    code = (
        "import sys, io, contextlib\n"
        "from repost.cli.main import main\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out):\n"
        "    try:\n"
        f"        main(['list', '--json', '--db', {str(db)!r}])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('graphql' in sys.modules, out.getvalue().count('\"safe\"'))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "1"], result.stderr
    # A flow stored before the column existed (NULL) is classified by parsing, as before.
    sqlite3.connect(db, isolation_level=None).execute("UPDATE flows SET request_graphql = NULL")
    assert {f["id"]: f["safety"] for f in list_json(db)} == {q: "safe", m: "unsafe", p: "unsafe"}
