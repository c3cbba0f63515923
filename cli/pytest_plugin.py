"""pytest plugin: recorded fixtures served to a test by ``repost serve``'s engine.

Off until a test asks for the ``repost`` fixture. One answering server per session (so a
suite of hundreds of tests pays start-up once), each test with its own recordings and a
fresh sequence state. Unlike libraries that patch HTTP clients inside the test process,
this answers over the network: a subprocess, a Node or Go client or a browser reach it too.

    @pytest.mark.repost("tests/fixtures/orders.har", ignore=["request.body.timestamp"])
    def test_orders(repost):
        r = httpx.post(f"{repost.url}/orders", json={...})

``--repost-mode``: ``replay`` (default; nothing leaves the machine, a miss fails the test
with the closest recording's differences), ``record`` (every request goes to the real
server, ``upstream=`` on the marker, and the fixture file is written at the end),
``auto`` (replay what matches, record the rest), ``off`` (repost stays out of the way:
``repost.url`` is the upstream itself).
"""

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

import pytest

MODES = ("replay", "record", "auto", "off")
# Headers that differ on every run: left out of fixture files so a re-record gives no diff.
VOLATILE_HEADERS = frozenset({
    "date", "age", "expires", "x-request-id", "request-id", "x-amzn-requestid", "x-amz-request-id", "x-trace-id",
    "traceparent", "tracestate", "cf-ray", "x-runtime", "server-timing", "openai-processing-ms", "set-cookie",
    "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens", "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens", "server",
})  # fmt: skip


def pytest_addoption(parser):
    group = parser.getgroup("repost", "recorded HTTP fixtures served by repost")
    group.addoption("--repost-mode", choices=MODES, default=None,
                    help="replay (default): serve fixture files, never the network; record: forward to the real "
                         "server and write the files; auto: replay what matches, record the rest; off: no repost.")  # fmt: skip
    group.addoption("--repost-strict", action="store_true", default=False, help="Also fail a test that left recordings unused.")
    parser.addini("repost_mode", "Default --repost-mode.", default="replay")
    parser.addini("repost_fixtures", "Folder of default fixture files (tests/fixtures).", default="tests/fixtures")


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "repost(file=None, **options): the fixture file the `repost` fixture serves (HAR, mitmproxy flows, VCR "
        "cassette or repost database) and serve's options: ignore=[...], match_headers=[...], match_secrets=True, "
        "repeat='last|cycle|none', speed=1.0, upstream='http://...' (record and auto modes)",
    )


@dataclass
class RepostFixture:
    """What a test gets: where to send requests, and what was served."""

    url: str
    proxy_url: str | None = None
    ca: str | None = None
    served: list = field(default_factory=list)
    misses: list = field(default_factory=list)
    file: Path | None = None
    mode: str = "replay"
    _session: "_Session | None" = None

    @property
    def proxy(self) -> str:
        """The proxy's URL (proxy mode, HTTPS through ``ca``): started on first use."""
        if self.proxy_url is None:
            self.proxy_url, self.ca = self._session.proxy()
        return self.proxy_url

    @property
    def env(self) -> dict:
        """The variables a subprocess needs to go through the proxy and trust its CA."""
        proxy = self.proxy
        return {
            "HTTP_PROXY": proxy, "HTTPS_PROXY": proxy, "http_proxy": proxy, "https_proxy": proxy,
            "SSL_CERT_FILE": self.ca, "REQUESTS_CA_BUNDLE": self.ca, "NODE_EXTRA_CA_CERTS": self.ca,
            "REPOST_URL": self.url, "NO_PROXY": "", "no_proxy": "",
        }  # fmt: skip


class _Session:
    """The answering server on its own event loop thread, and the proxy when a test wants one."""

    def __init__(self, workdir: Path):
        import socket

        self.workdir = workdir
        self.loop = asyncio.new_event_loop()
        self.answerer = None
        # The socket is bound and listening here, so the URL is known at once; the server itself
        # (importing aiohttp, most of it) comes up on the loop's thread while the first test
        # prepares its fixture file. A request made before it is up waits in the backlog.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self.loop.run_forever, name="repost-serve", daemon=True)
        self.thread.start()
        self._starting = asyncio.run_coroutine_threadsafe(self._start(), self.loop)
        self._runner = None
        self._proxy = None
        self.imported: dict[Path, Path] = {}
        self.matchers: dict[tuple, object] = {}  # (database, options) -> Matcher, replay mode

    def _started(self):
        """The server's runner, once it is up."""
        if self._runner is None:
            self._runner = self._starting.result(60)
        return self._runner

    def call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    async def _start(self):
        from aiohttp import web

        async def handle(request):
            if self.answerer is None:
                return web.json_response({"error": "no test is using the repost fixture now"}, status=502)
            return await self.answerer.handle(request)

        app = web.Application(client_max_size=1024**3)
        app.router.add_route("*", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, self.sock).start()
        return runner

    def use(self, db: Path, options, *, speed: float, forward: dict | None, on_served):
        """Answer from ``db`` with these options until the next test (made on the loop's thread:
        its SQLite connection belongs there)."""

        async def load():
            from repost.store.answering import Answerer

            await self._drop()
            if forward is None:
                matcher = self._replay_matcher(db, options)
                matcher.reset()  # each test starts every sequence from its first recording
                self.answerer = Answerer(matcher, speed=speed, on_served=on_served)
                return
            from repost.store.forwarding import Forwarder

            matcher = _new_matcher(db, options, create=True)
            settings = dict(forward)
            always = settings.pop("always", False)
            forwarder = Forwarder(str(db), matcher.redactor, **settings)
            self.answerer = Answerer(matcher, speed=speed, on_served=on_served, forwarder=forwarder)
            self.answerer.always_forward = always

        self._started()  # the server is up (or its failure raised here)
        matcher = self.matchers.get((db, repr(options))) if forward is None else None
        if matcher is not None and not self._forwarding():
            # Replay with a Matcher made before: nothing here touches SQLite or waits, so it is set
            # from this thread; two round trips to the loop's thread per test were ~1% of a suite.
            from repost.store.answering import Answerer

            matcher.reset()  # each test starts every sequence from its first recording
            self.answerer = Answerer(matcher, speed=speed, on_served=on_served)
            return
        self.call(load())

    def _forwarding(self) -> bool:
        """The current answerer forwards (record, auto): dropping it closes things on the loop."""
        return self.answerer is not None and self.answerer.forwarder is not None

    def _replay_matcher(self, db: Path, options):
        """One Matcher per fixture file and options for the whole session: opening the database and
        loading the key and the redaction rules on every test was most of the fixture's per-test cost
        (bench/plugin_overhead.py). Its caches follow the store's data_version, so a fixture database
        changed meanwhile is read again."""
        key = (db, repr(options))
        if key not in self.matchers:
            self.matchers[key] = _new_matcher(db, options, create=False)
        return self.matchers[key]

    async def _drop(self):
        answerer, self.answerer = self.answerer, None
        if answerer is not None and answerer.forwarder is not None:  # record/auto: this test's own database
            await answerer.forwarder.close()
            answerer.matcher.conn.close()

    async def _close_matchers(self):
        for matcher in self.matchers.values():
            matcher.conn.close()
        self.matchers.clear()

    def release(self):
        if self._forwarding():
            self.call(self._drop())
        else:
            self.answerer = None  # replay: nothing to close

    def proxy(self) -> tuple[str, str]:
        """mitmproxy in regular mode, sending every request to the answering server."""
        if self._proxy is None:
            confdir = self.workdir / "mitmproxy"
            port = free_port()
            script = Path(__file__).resolve().parent.parent / "addons" / "serve.py"
            mitmdump = shutil.which("mitmdump", path=os.path.dirname(sys.executable)) or "mitmdump"
            log = open(self.workdir / "proxy.log", "wb")
            proc = subprocess.Popen(
                [mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port), "--set", f"confdir={confdir}",
                 "-s", str(_addon_script(script)), "--set", f"repost_serve_port={self.port}"],  # fmt: skip
                stdout=log, stderr=subprocess.STDOUT,
            )
            if not _wait_for_port(port, 30, proc):
                raise RuntimeError(f"repost: the proxy did not start; see {self.workdir / 'proxy.log'}")
            self._proxy = (proc, log, f"http://127.0.0.1:{port}", str(confdir / "mitmproxy-ca-cert.pem"))
        return self._proxy[2], self._proxy[3]

    def close(self):
        if self._proxy is not None:
            proc, log, _, _ = self._proxy
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        self.call(self._drop())
        self.call(self._close_matchers())
        self.call(self._started().cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _new_matcher(db: Path, options, *, create: bool):
    from repost.store.database import open_database
    from repost.store.matching import Matcher
    from repost.store.redact_rules import redactor_for

    conn = open_database(db, create=create)
    return Matcher(conn, redactor_for(conn), options)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, timeout: float, proc) -> bool:
    import socket
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.25):
                return True
        except OSError:
            time.sleep(0.05)  # polling a port with a deadline
    return False


def _addon_script(script: Path) -> Path:
    """The serve addon as a script mitmdump can load (the installed module's file)."""
    if script.exists():
        return script
    import repost.addons.serve as module

    return Path(module.__file__)


_SESSION_KEY = pytest.StashKey["_Session"]()


@pytest.fixture(scope="session")
def _repost_session(request, tmp_path_factory):
    session = _Session(tmp_path_factory.mktemp("repost"))
    yield session
    session.close()


@pytest.fixture
def repost(request, _repost_session):
    """Recorded HTTP fixtures for this test: ``repost.url`` (as the server), ``repost.proxy``,
    ``repost.ca``, ``repost.env`` (for a subprocess), ``repost.served``, ``repost.misses``."""
    config = request.config
    mode = config.getoption("--repost-mode") or config.getini("repost_mode") or "replay"
    marker = request.node.get_closest_marker("repost")
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    upstream = kwargs.pop("upstream", None)
    speed = float(kwargs.pop("speed", 1.0))
    file = Path(args[0]) if args else _default_file(request)
    if not file.is_absolute():
        file = Path(config.rootpath) / file
    if mode == "off":
        if not upstream:
            pytest.fail("repost: --repost-mode=off needs upstream= on the marker (where requests then go)", pytrace=False)
        yield RepostFixture(url=upstream.rstrip("/"), mode=mode)
        return

    options = _match_options(kwargs)
    fixture = RepostFixture(url=f"http://127.0.0.1:{_repost_session.port}", file=file, mode=mode, _session=_repost_session)
    fixture.served, fixture.misses = [], []

    def on_served(outcome):
        (fixture.misses if outcome.flow_id is None else fixture.served).append(outcome)

    forward = None
    if mode in ("record", "auto"):
        to = _target(upstream) if upstream else None
        forward = {"to": to, "consent": True, "always": mode == "record"}
        db = Path(tempfile.mkdtemp(prefix="repost-test-", dir=_repost_session.workdir)) / "recorded.db"
        if mode == "auto" and file.exists():
            shutil.copy(_as_database(file, _repost_session), db)
    else:
        if not file.exists():
            pytest.fail(f"repost: no fixture file {file} (record it with --repost-mode=record)", pytrace=False)
        db = _as_database(file, _repost_session)
    _repost_session.use(db, options, speed=speed, forward=forward, on_served=on_served)
    try:
        yield fixture
    finally:
        _repost_session.release()
    if mode in ("record", "auto") and (mode == "record" or fixture.misses or any(o.forwarded for o in fixture.served)):
        write_fixture(db, file)
    if config.getoption("--repost-strict") and mode == "replay":
        unused = _unused(db, fixture.served)
        if unused:
            pytest.fail(f"repost: {len(unused)} recording(s) of {file.name} left unused: flows {', '.join(map(str, unused))}", pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    """A request that matched no recording fails the test itself, whatever the test then did
    with the 502, and the failure says how the request differs from the closest recording."""
    outcome = yield
    fixture = getattr(item, "funcargs", {}).get("repost")
    if not isinstance(fixture, RepostFixture) or fixture.mode != "replay" or not fixture.misses:
        return
    message = _miss_message(fixture.misses)
    if outcome.excinfo is not None:
        message += f"\n(then the test failed: {outcome.excinfo[1]!s:.300})"
    outcome.force_exception(pytest.fail.Exception(message, pytrace=False))


def _default_file(request) -> Path:
    """``tests/fixtures/<module>/<test>.har``, like pytest-recording's cassette folders."""
    folder = request.config.getini("repost_fixtures") or "tests/fixtures"
    module = Path(request.node.fspath).stem
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    return Path(folder) / module / f"{name}.har"


def _match_options(kwargs: dict):
    from repost.store.matching import MatchOptions

    unknown = set(kwargs) - {"ignore", "match_headers", "match_secrets", "repeat"}
    if unknown:
        pytest.fail(f"repost: unknown marker option(s): {', '.join(sorted(unknown))}", pytrace=False)
    return MatchOptions(ignore=list(kwargs.get("ignore", [])), match_headers=list(kwargs.get("match_headers", [])),
                        match_secrets=bool(kwargs.get("match_secrets", False)), repeat=kwargs.get("repeat", "last"))  # fmt: skip


def _target(url: str) -> tuple:
    from .replay import parse_target

    t = parse_target(url)
    return (t.scheme, t.host, t.port)


def _as_database(file: Path, session: _Session) -> Path:
    """A fixture file as a repost database: itself, or imported once per session."""
    from repost.store.database import SQLITE_MAGIC

    with open(file, "rb") as f:
        if f.read(16) == SQLITE_MAGIC:
            return file
    if file not in session.imported:
        session.imported[file] = _imported(file, session.workdir)
    return session.imported[file]


def _imported(file: Path, workdir: Path) -> Path:
    """The file imported into a repost database with its match keys made: taken from the cache
    of earlier sessions when the same bytes were imported by the same code with the same key
    (importing, creating the schema and keying were most of the plugin's start-up), else
    imported now and put in the cache."""
    cache = _cache_dir()
    name = _cache_name(file)
    cached = cache / name if cache else None
    if cached is not None and cached.exists():
        try:
            os.utime(cached)  # recently used: kept by the pruning below
            return cached
        except OSError:
            pass
    from repost.store.database import open_database
    from repost.store.importer import import_file
    from repost.store.matching import index_match_keys

    db = Path(tempfile.mkdtemp(dir=workdir)) / "fixture.db"
    import_file(file, db)
    conn = open_database(db)
    index_match_keys(conn)
    conn.close()
    if cached is None:
        return db
    try:
        cache.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = cache / f".{name}.{os.getpid()}.tmp"
        shutil.copy(db, tmp)  # its mode too (0600)
        os.replace(tmp, cached)  # whole or not at all, even with several sessions (xdist) at once
        _prune(cache)
    except OSError:
        pass  # no cache (a read-only home): this session's own copy serves
    return db


def _cache_dir() -> Path | None:
    """``$REPOST_FIXTURE_CACHE`` (empty: no cache), else ``$XDG_CACHE_HOME/repost/fixtures``."""
    named = os.environ.get("REPOST_FIXTURE_CACHE")
    if named is not None:
        return Path(named) if named else None
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "repost" / "fixtures"


def _cache_name(file: Path) -> str:
    """Names what the imported database depends on: the file's bytes and name (its format), the
    fingerprint key (redaction's fingerprints), and the store's code (schema, import, keys)."""
    import hashlib

    import repost.store
    from repost.store.redact import load_key

    h = hashlib.sha256()
    code = Path(repost.store.__file__).parent
    stamps = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in code.glob("*.py"))
    for part in (_CACHE_FORMAT, file.suffix.encode(), load_key(), repr(stamps).encode(), file.read_bytes()):
        h.update(len(part).to_bytes(8, "big") + part)
    return h.hexdigest()[:32] + ".db"


_CACHE_FORMAT = b"repost-fixture-cache-1"
_CACHE_KEPT = 64  # databases kept in the cache, the most recently used


def _prune(cache: Path) -> None:
    entries = sorted(cache.glob("*.db"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[_CACHE_KEPT:]:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{old}{suffix}").unlink(missing_ok=True)


def write_fixture(db: Path, file: Path) -> None:
    """The recorded flows as a stable HAR file: recorded order, secrets redacted (they were at
    capture), volatile headers and times left out, so re-recording unchanged traffic changes nothing."""
    import io

    from repost.store.database import open_database
    from repost.store.export import write_har
    from repost.store.queries import select_full_flows
    from repost.store.selection import Selection

    conn = open_database(db)
    try:
        out = io.StringIO()
        write_har(select_full_flows(conn, Selection(), newest_first=False), out)
    finally:
        conn.close()
    har = json.loads(out.getvalue())
    for i, entry in enumerate(har["log"]["entries"]):
        _stabilise(entry, i)
    har["log"]["creator"] = {"name": "repost", "version": "fixture"}
    har["log"].pop("pages", None)
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".tmp")
    tmp.write_text(json.dumps(har, indent=2, ensure_ascii=False, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, file)


def _stabilise(entry: dict, index: int) -> None:
    entry["startedDateTime"] = f"2000-01-01T00:00:{index // 1000:02d}.{index % 1000:03d}Z"  # keeps the order, not the time
    entry["time"] = 0
    entry["timings"] = {"send": 0, "wait": 0, "receive": 0}
    for key in ("serverIPAddress", "connection", "_repost", "cache", "pageref"):
        entry.pop(key, None)
    for side in ("request", "response"):
        part = entry.get(side, {})
        part["headers"] = [h for h in part.get("headers", []) if h.get("name", "").lower() not in VOLATILE_HEADERS]
        if side == "response":
            part["cookies"] = []


def _miss_message(misses) -> str:
    lines = [f"repost: {len(misses)} request(s) matched no recording:"]
    for m in misses:
        lines.append(f"  {m.method} {m.target}: {m.miss}")
        if m.closest:
            lines.append(f"    closest recording: flow {m.closest['id']}")
            for d in m.closest["differences"]:
                lines.append(f"      {d['path']}: recorded {d['a']!r}, sent {d['b']!r}")
    return "\n".join(lines)


def _unused(db: Path, served) -> list[int]:
    from repost.store.database import open_database
    from repost.store.queries import list_flows

    conn = open_database(db)
    try:
        ids = {row["id"] for row in list_flows(conn, None, limit=None)}
    finally:
        conn.close()
    return sorted(ids - {o.flow_id for o in served})
