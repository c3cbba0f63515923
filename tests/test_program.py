"""The program as a user runs it (a process): the same output as in process, errors in one
line with the documented exit codes, and no trouble with closed or full outputs."""

import json
import subprocess
import sys

import pytest

from .helpers import post_flow, repost, store_flows


def run(*args: str, **kw) -> subprocess.CompletedProcess:
    """The program as a user runs it (python -m repost.cli is the console script's main)."""
    return subprocess.run([sys.executable, "-m", "repost.cli", *args], capture_output=True, text=True, timeout=60, **kw)


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("quick") / "q.db"
    store_flows(path, [
        post_flow(body=b'{"order": {"sku": "A-1", "qty": 2}}', response_body=b'{"id": 7, "ok": true}'),
        post_flow(body=b"name=Ada&lang=en", headers={"content-type": "application/x-www-form-urlencoded"},
                  response_body=b"\x89PNG\r\n\x1a\n" + bytes(range(64)), response_headers={"content-type": "image/png"}),
    ])  # fmt: skip
    return path


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize("flow", [1, 2])
def test_the_program_prints_what_the_command_prints_in_process(db, flow, as_json):
    extra = ["--json"] if as_json else []
    quick = run("show", str(flow), "--db", str(db), *extra)
    through_click = repost("show", str(flow), "--db", str(db), *extra)  # in process
    assert quick.returncode == 0 and through_click.exit_code == 0
    assert quick.stdout == through_click.output
    assert quick.stderr == ""
    if as_json:
        assert json.loads(quick.stdout)["id"] == flow


def test_default_database_comes_from_repost_db(db, tmp_path):
    env = {**__import__("os").environ, "REPOST_DB": str(db)}
    result = run("show", "1", "--json", env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["request"]["body"] == '{"order": {"sku": "A-1", "qty": 2}}'


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["show", "99"], 2, "Error: no flow with id 99"),
        (["show", "abc"], 2, "'abc' is not a valid integer"),
        (["show", "1", "--db", "/nonexistent/r.db"], 1, "no database at /nonexistent/r.db"),
    ],
)
def test_errors_are_worded_by_click(db, args, code, message):
    if "--db" not in args:
        args = [*args, "--db", str(db)]
    result = run(*args)
    assert result.returncode == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize("flow_id", ["9" * 19, "1" * 5000])
def test_ids_too_large_for_sqlite_are_no_flows(db, flow_id):
    result = run("show", flow_id, "--db", str(db))
    assert "Traceback" not in result.stderr
    if len(flow_id) < 4300:  # click's int() refuses longer ones as a usage error
        assert result.returncode == 2 and f"no flow with id {flow_id}" in result.stderr
    else:
        assert result.returncode == 2 and "is not a valid integer" in result.stderr


@pytest.mark.parametrize("as_json", [[], ["--json"]])
def test_a_full_disk_while_printing_is_one_line(db, as_json):
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "repost.cli", "show", "1", "--db", str(db), *as_json],
                                stdout=full, stderr=subprocess.PIPE, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: [Errno 28] No space left on device"


@pytest.mark.parametrize("command", ["show 1 --json", "show 1", "list", "list --json", "diff 1 1"])
def test_no_stdout_at_all_is_not_an_error(db, command):
    result = subprocess.run(f"{sys.executable} -m repost.cli {command} --db {db} >&-",
                            shell=True, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and result.stderr == ""


def test_a_lone_surrogate_in_a_json_body_is_shown_not_an_error(db):
    (flow,) = store_flows(db, [post_flow(body=b'{"a": "\\ud800 x"}', headers={"content-type": "application/json"})])
    shown = run("show", str(flow), "--db", str(db))
    assert shown.returncode == 0 and "\\ud800 x" in shown.stdout, shown.stderr
    as_json = run("show", str(flow), "--json", "--db", str(db))
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["request"]["body"] == '{"a": "\\ud800 x"}'  # the body text, as stored
    diffed = run("diff", "1", str(flow), "--json", "--db", str(db))
    assert diffed.returncode == 1 and json.loads(diffed.stdout)["equal"] is False, diffed.stderr


def test_json_is_utf8_whatever_the_locale_says(db):
    (flow,) = store_flows(db, [post_flow(body='{"name": "Zoë 日本"}'.encode())])
    result = subprocess.run([sys.executable, "-m", "repost.cli", "show", str(flow), "--json", "--db", str(db)],
                            capture_output=True, timeout=60, env={**__import__("os").environ, "PYTHONIOENCODING": "ascii"})  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.decode("utf-8"))["request"]["body"] == '{"name": "Zoë 日本"}'
