"""Secrets never reach the disk or the screen; files are private; the proxy stays on loopback."""

import stat

import httpx

from .helpers import count_flows, list_json, repost, wait_for
from .upstream import ISSUED_TOKEN

CANARIES = {
    "authorization": "CANARY-auth-1f2e",
    "cookie": "CANARY-cookie-2d3c",
    "api_key_header": "CANARY-keyhdr-3b4a",
    "json_api_key": "CANARY-json-4a5b",
    "nested_password": "CANARY-nested-5c6d",
    "form_password": "CANARY-form-6e7f",
    "query_token": "CANARY-query-7a8b",
    "set_cookie": "CANARY-setcookie-8c9d",
    "issued_token": ISSUED_TOKEN,
}
IDEMPOTENCY_KEY = "idem-KEEP-4242"


def send_secrets(proxy, upstream) -> None:
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        c.post(
            f"{upstream.url}/orders?token={CANARIES['query_token']}&page=2",
            headers={
                "Authorization": f"Bearer {CANARIES['authorization']}",
                "Cookie": f"session={CANARIES['cookie']}",
                "X-Api-Key": CANARIES["api_key_header"],
                "Idempotency-Key": IDEMPOTENCY_KEY,
            },
            json={"api_key": CANARIES["json_api_key"], "order": {"items": [{"user": {"password": CANARIES["nested_password"]}}]}},
        )
        c.post(f"{upstream.url}/login", data={"user": "ada", "password": CANARIES["form_password"]})
        c.post(f"{upstream.url}/cookie?cookie={CANARIES['set_cookie']}", json={})


def everything_written(proxy) -> bytes:
    data = b""
    for suffix in ("", "-wal", "-shm"):
        path = proxy.db.with_name(proxy.db.name + suffix)
        if path.exists():
            data += path.read_bytes()
    return data


def cli_output(db) -> str:
    out = [repost("list", "--db", str(db)).output, repost("list", "--db", str(db), "--json").output]
    for row in list_json(db):
        out.append(repost("show", str(row["id"]), "--db", str(db)).output)
        out.append(repost("show", str(row["id"]), "--db", str(db), "--json").output)
    return "\n".join(out)


def test_canary_secrets_appear_nowhere(start_proxy, upstream):
    proxy = start_proxy()
    send_secrets(proxy, upstream)
    wait_for(lambda: count_flows(proxy.db) == 3, 5, what="3 flows")
    written_while_running = everything_written(proxy)  # the WAL holds the newest pages now
    output = cli_output(proxy.db)
    assert proxy.stop() == 0
    written = written_while_running + everything_written(proxy)
    for name, canary in CANARIES.items():
        assert canary.encode() not in written, f"{name} reached the database"
        assert canary not in output, f"{name} reached the CLI output"
        assert canary not in proxy.output(), f"{name} reached the proxy's output"
    assert IDEMPOTENCY_KEY in output  # not a secret
    assert "REDACTED-" in output


def test_redacted_values_keep_a_fingerprint_that_tells_equal_from_different(start_proxy, upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        for token in ("same-secret", "same-secret", "other-secret"):
            c.post(f"{upstream.url}/fp", headers={"Authorization": token}, json={})
    wait_for(lambda: count_flows(proxy.db) == 3, 5, what="3 flows")
    from .helpers import show_json

    values = []
    for row in sorted(list_json(proxy.db), key=lambda r: r["id"]):
        headers = dict((k.lower(), v) for k, v in show_json(proxy.db, row["id"])["request"]["headers"])
        values.append(headers["authorization"])
    assert all(v.startswith("REDACTED-") for v in values)
    assert values[0] == values[1] != values[2]


def test_keep_secrets_keeps_them(start_proxy, upstream):
    proxy = start_proxy("--keep-secrets")
    send_secrets(proxy, upstream)
    wait_for(lambda: count_flows(proxy.db) == 3, 5, what="3 flows")
    assert proxy.stop() == 0
    written = everything_written(proxy)
    for canary in CANARIES.values():
        assert canary.encode() in written


def test_database_files_are_private(start_proxy, upstream):
    proxy = start_proxy()
    with httpx.Client(proxy=proxy.url, timeout=10) as c:
        c.post(f"{upstream.url}/x", json={})
    wait_for(lambda: count_flows(proxy.db) == 1, 5, what="a flow")
    for suffix in ("", "-wal", "-shm"):
        path = proxy.db.with_name(proxy.db.name + suffix)
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on `port`, from /proc/net/tcp{,6}."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                fields = line.split()
                addr, hexport = fields[1].split(":")
                if fields[3] == "0A" and int(hexport, 16) == port:
                    found.add(addr)
    return found


def test_proxy_listens_on_loopback_by_default(start_proxy):
    proxy = start_proxy()
    assert listening_addresses(proxy.port) == {"0100007F"}  # 127.0.0.1 only
    wait_for(lambda: f"listening on 127.0.0.1:{proxy.port}" in proxy.output(), 5, what="the listening line")


def test_record_prints_where_it_listens_records_and_how_to_trust_the_ca(start_proxy):
    proxy = start_proxy()
    out = wait_for(lambda: "Ctrl-C" in proxy.output() and proxy.output(), 5, what="the start-up lines")
    assert str(proxy.db) in out
    assert "mitmproxy-ca-cert.pem" in out
