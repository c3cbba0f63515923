"""repost diff: structural differences, ignores, exit codes."""

import gzip
import json
import re

import httpx

from .helpers import count_flows, post_flow, repost, store_flows, wait_for


def diff(db, *args):
    return repost("diff", "--db", str(db), *map(str, args))


def diff_json(db, *args) -> dict:
    result = diff(db, *args, "--json")
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.output)


def paths(db, *args) -> list[str]:
    return [d["path"] for d in diff_json(db, *args)["differences"]]


JSON = {"content-type": "application/json"}


def test_identical_flows_are_equal_exit_0(tmp_path):
    db = tmp_path / "d.db"
    body = json.dumps({"item": "book", "items": [1, 2, 3]}).encode()
    a, b = store_flows(db, [post_flow(body=body, headers=JSON, response_body=body, response_headers=JSON) for _ in "ab"])
    result = diff(db, a, b)
    assert result.exit_code == 0
    assert "equal" in result.output
    assert diff_json(db, a, b) == {"equal": True, "differences": []}


def test_two_creations_of_one_order_differ_only_in_id_and_created(start_proxy, upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for _ in range(2):
            assert c.post(f"{upstream.url}/create", json={"item": "book"}).status_code == 201
    wait_for(lambda: count_flows(proxy.db) == 2, 5, what="two orders")
    # Date differs too, and is ignored as volatile by default
    assert paths(proxy.db, 1, 2) == ["response.body.id", "response.body.created"]
    result = diff(proxy.db, 1, 2)
    assert result.exit_code == 1
    assert re.search(r"response\.body\.id: (\d+) -> (\d+)", result.output)
    assert diff(proxy.db, 1, 2, "--ignore", "id", "--ignore", "created").exit_code == 0


def test_a_changed_array_element_is_reported_at_its_index(tmp_path):
    db = tmp_path / "d.db"
    a, b = store_flows(db, [
        post_flow(body=json.dumps({"items": [{"sku": "A", "price": 10}, {"sku": "B", "price": 20}]}).encode(), headers=JSON),
        post_flow(body=json.dumps({"items": [{"sku": "A", "price": 10}, {"sku": "B", "price": 25}]}).encode(), headers=JSON),
    ])  # fmt: skip
    [d] = diff_json(db, a, b)["differences"]
    assert d == {"path": "request.body.items[1].price", "a": 20, "b": 25}
    assert diff(db, a, b, "--ignore", "request.body.items[*].price").exit_code == 0
    assert diff(db, a, b, "--ignore", "items.*.price").exit_code == 0
    assert diff(db, a, b, "--ignore", "items.*.sku").exit_code == 1


def test_forms_are_compared_by_field(tmp_path):
    db = tmp_path / "d.db"
    form = {"content-type": "application/x-www-form-urlencoded"}
    a, b = store_flows(db, [post_flow(body=b"name=ada&lang=en", headers=form), post_flow(body=b"lang=en&name=bob", headers=form)])
    assert diff_json(db, a, b)["differences"] == [{"path": "request.body.name", "a": "ada", "b": "bob"}]


def test_text_is_compared_by_line(tmp_path):
    db = tmp_path / "d.db"
    text = {"content-type": "text/plain"}
    a, b = store_flows(db, [
        post_flow(response_body=b"one\ntwo\nthree\n", response_headers=text),
        post_flow(response_body=b"one\n2\nthree\n", response_headers=text),
    ])  # fmt: skip
    assert diff_json(db, a, b)["differences"] == [{"path": "response.body:line 2", "a": "two", "b": "2"}]


def test_binary_is_compared_by_hash(tmp_path):
    db = tmp_path / "d.db"
    png = {"content-type": "image/png"}
    a, b, c = store_flows(db, [
        post_flow(body=b"\x89PNG\x00\x01\x02", headers=png),
        post_flow(body=b"\x89PNG\x00\x01\x03", headers=png),
        post_flow(body=b"\x89PNG\x00\x01\x02", headers=png),
    ])  # fmt: skip
    assert paths(db, a, b) == ["request.body.sha256"]
    assert diff(db, a, c).exit_code == 0


def test_gzip_bodies_are_compared_decoded(tmp_path):
    db = tmp_path / "d.db"
    gz = {"content-type": "application/json", "content-encoding": "gzip"}
    a, b = store_flows(db, [
        post_flow(response_body=gzip.compress(b'{"total": 1}'), response_headers=gz),
        post_flow(response_body=gzip.compress(b'{"total": 2}', mtime=5), response_headers=gz),
    ])  # fmt: skip
    assert paths(db, a, b) == ["response.body.total"]


def test_header_differences_are_named_and_volatile_ones_ignored(tmp_path):
    db = tmp_path / "d.db"
    a, b = store_flows(db, [
        post_flow(headers={"X-Client": "web", "X-Request-Id": "r1"}, response_headers={"Date": "Mon", "ETag": "1"}),
        post_flow(headers={"X-Client": "ios", "X-Request-Id": "r2"}, response_headers={"Date": "Tue", "ETag": "2"}),
    ])  # fmt: skip
    assert paths(db, a, b) == ["request.headers.x-client", "response.headers.etag"]
    assert paths(db, a, b, "--ignore", "X-Client") == ["response.headers.etag"]
    assert paths(db, a, b, "--request") == ["request.headers.x-client"]
    assert paths(db, a, b, "--response") == ["response.headers.etag"]
    assert paths(db, a, b, "--all-headers") == [
        "request.headers.x-client", "request.headers.x-request-id", "response.headers.date", "response.headers.etag",
    ]  # fmt: skip


def test_method_url_and_query_are_compared(tmp_path):
    db = tmp_path / "d.db"
    a, b = store_flows(db, [
        post_flow(url="http://api.test/orders?page=1&sort=asc"),
        post_flow(url="http://other.test/orders/2?page=2&sort=asc", method="PUT"),
    ])  # fmt: skip
    # the host is not compared: a replay to staging is the same request
    assert paths(db, a, b) == ["request.method", "request.path", "request.query.page"]


def test_trouble_exits_2(tmp_path):
    db = tmp_path / "d.db"
    (a,) = store_flows(db, [post_flow()])
    result = diff(db, a, 999)
    assert result.exit_code == 2 and "no flow with id 999" in result.output
    assert diff(tmp_path / "missing.db", 1, 2).exit_code == 2


def test_long_values_are_elided_in_human_output(tmp_path):
    db = tmp_path / "d.db"
    a, b = store_flows(db, [
        post_flow(body=json.dumps({"note": "x" * 500}).encode(), headers=JSON),
        post_flow(body=json.dumps({"note": "y" * 500}).encode(), headers=JSON),
    ])  # fmt: skip
    result = diff(db, a, b)
    assert result.exit_code == 1
    line = next(line for line in result.output.splitlines() if "request.body.note" in line)
    assert len(line) < 200 and "…" in line
