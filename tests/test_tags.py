"""Tags (issue 17): repost tag / untag, list --tag, shown in list and show, kept by export and import."""

import json

from .helpers import list_json, post_flow, repost, show_json, store_flows


def _three(db):
    return store_flows(db, [post_flow(url=f"http://api.test/o/{n}", body=b"{}") for n in range(3)])


def test_tag_untag_and_list_by_tag(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = _three(db)
    result = repost("tag", str(a), str(c), "checkout-bug", "--db", str(db))
    assert result.exit_code == 0, result.output
    assert "tagged 2 flows" in result.stderr
    assert repost("tag", str(c), "slow", "--db", str(db)).exit_code == 0
    assert [f["id"] for f in list_json(db, "--tag", "checkout-bug")] == [c, a]
    assert [f["id"] for f in list_json(db, "--tag", "checkout-bug", "--tag", "slow")] == [c]
    assert {f["id"]: f["tags"] for f in list_json(db)} == {a: ["checkout-bug"], b: [], c: ["checkout-bug", "slow"]}
    assert show_json(db, c)["tags"] == ["checkout-bug", "slow"]
    assert repost("untag", str(c), "checkout-bug", "--db", str(db)).exit_code == 0
    assert [f["id"] for f in list_json(db, "--tag", "checkout-bug")] == [a]


def test_tags_show_in_the_table_and_in_show(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = _three(db)
    plain = repost("list", "--db", str(db)).stdout
    assert "tags" not in plain.splitlines()[0]  # no column while no flow has tags
    repost("tag", str(b), "look-here", "--db", str(db))
    lines = repost("list", "--db", str(db)).stdout.splitlines()
    assert lines[0].split()[-1] == "tags"
    assert [line.split()[-1] for line in lines[1:]] == ["unsafe", "look-here", "unsafe"]
    assert "tags: look-here" in repost("show", str(b), "--db", str(db)).stdout


def test_tagging_an_unknown_flow_or_a_bad_name_changes_nothing(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = _three(db)
    missing = repost("tag", str(a), "999", "x", "--db", str(db))
    assert missing.exit_code == 1 and "no flow with id 999" in missing.stderr
    for bad in ("", "a,b", "bell\x07", "x" * 101):
        assert repost("tag", str(a), bad, "--db", str(db)).exit_code == 2, bad
    assert repost("tag", "x", "--db", str(db)).exit_code == 2
    assert all(f["tags"] == [] for f in list_json(db))


def test_tags_travel_through_har_and_mitm(tmp_path):
    db = tmp_path / "r.db"
    a, b, c = _three(db)
    repost("tag", str(a), str(c), "keep", "--db", str(db))
    repost("tag", str(c), "second", "--db", str(db))
    har, mitm = tmp_path / "x.har", tmp_path / "x.mitm"
    assert repost("export", "--format", "har", "-o", str(har), "--db", str(db)).exit_code == 0
    entries = json.loads(har.read_text())["log"]["entries"]
    assert [e["_repost"].get("tags") for e in entries] == [["keep"], None, ["keep", "second"]]
    assert repost("export", "--format", "mitm", "-o", str(mitm), "--db", str(db)).exit_code == 0
    for path, name in ((har, "from-har.db"), (mitm, "from-mitm.db")):
        other = tmp_path / name
        result = repost("import", str(path), "--db", str(other))
        assert result.exit_code == 0, result.output
        assert [f["tags"] for f in reversed(list_json(other))] == [["keep"], [], ["keep", "second"]], name


def test_mitm_flow_file_tags_are_read_by_mitmproxy_too(tmp_path):
    from mitmproxy import io as mio

    db = tmp_path / "r.db"
    a, _, _ = _three(db)
    repost("tag", str(a), "keep", "--db", str(db))
    mitm = tmp_path / "x.mitm"
    repost("export", "--format", "mitm", str(a), "-o", str(mitm), "--db", str(db))
    with open(mitm, "rb") as f:
        (flow,) = list(mio.FlowReader(f).stream())
    assert flow.metadata["repost"]["tags"] == ["keep"]


def test_hostile_tags_in_an_imported_har_are_left_out(tmp_path):
    db = tmp_path / "r.db"
    (a,) = store_flows(db, [post_flow(body=b"{}")])
    har = tmp_path / "x.har"
    repost("export", "--format", "har", "-o", str(har), "--db", str(db))
    doc = json.loads(har.read_text())
    doc["log"]["entries"][0]["_repost"]["tags"] = ["ok", "\x1b[31mred", 5, None, "a,b", {"x": 1}] + ["many"] * 1000
    har.write_text(json.dumps(doc))
    other = tmp_path / "o.db"
    assert repost("import", str(har), "--db", str(other)).exit_code == 0
    assert list_json(other)[0]["tags"] == ["many", "ok"]
    doc["log"]["entries"][0]["_repost"]["tags"] = "not a list"
    har.write_text(json.dumps(doc))
    assert repost("import", str(har), "--db", str(other)).exit_code == 0
