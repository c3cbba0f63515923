"""``repost ui``'s web server: the page's static files and one JSON API under /api/.

The API's documents are ``list --json``, ``show --json`` and ``diff --json``, built by
the same store functions the CLI calls (store/views.py); replays go through replay's own
plan and safety class (cli/replay.py). No SQL here.

Recorded traffic is hostile input and this server can send writes, so every request
passes ``guard``: the Host header must name the listener (DNS rebinding), the random
token must come in the URL once (then as an HttpOnly, SameSite=Strict cookie), and a
state-changing call needs a JSON body and a header a cross-site form cannot send. Every
response carries a strict Content-Security-Policy: the page runs its own script only.
"""

import asyncio
import hmac
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

from aiohttp import web

STATIC = Path(__file__).resolve().parent / "ui_static"
STATIC_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token never leaves in a Referer
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# Shown as an image only when the recorded type is one of these: a browser never runs script in them.
RASTER_IMAGES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon",
    "image/vnd.microsoft.icon",
})  # fmt: skip
CSRF_HEADER = "X-Repost-UI"  # a cross-site <form> cannot set it; fetch() from another origin needs a preflight we never grant
PUSH_INTERVAL = 0.2  # seconds between looks for new flows (list --follow's pace)
LIST_LIMIT_MAX = 500


# -- the pure checks ---------------------------------------------------------------------


def token_ok(given: str | None, token: str) -> bool:
    """Constant-time: the time taken says nothing about how much of a guess was right."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode())


def allowed_hosts(listen_host: str, port: int, extra=()) -> frozenset[str]:
    """The Host headers that name this listener. A name another site's DNS can point at
    127.0.0.1 (rebinding) is not among them."""
    host = f"[{listen_host}]" if ":" in listen_host and not listen_host.startswith("[") else listen_host
    names = {host, "localhost", "127.0.0.1", "[::1]", *extra}
    return frozenset(f"{n.lower()}:{port}" for n in names)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    return host_header is not None and host_header.lower() in allowed


def parse_cursor(text: str) -> tuple[str, int]:
    """``before=STARTED_AT,ID`` (the last row of a page) -> the keyset cursor."""
    started_at, sep, flow_id = text.rpartition(",")
    if not sep or not started_at:
        raise ValueError(f"{text!r} is not a cursor: give before=STARTED_AT,ID")
    try:
        return started_at, int(flow_id)
    except ValueError:
        raise ValueError(f"{text!r} is not a cursor: give before=STARTED_AT,ID") from None


def parse_selection(query) -> "object":
    """list's filters from a query string (a MultiDict): the options of ``repost list``,
    checked as the CLI checks them. ValueError with the message the CLI would give."""
    from repost.store.queries import InvalidFilter, check_filter
    from repost.store.search import SearchTerms
    from repost.store.selection import Selection, parse_status, parse_time

    def one(name):
        value = query.get(name, "").strip()
        return value or None

    statuses = [parse_status(part) for value in query.getall("status", []) for part in value.split(",") if part.strip()]
    methods = [m.strip().upper() for value in query.getall("method", []) for m in value.split(",") if m.strip()]
    since, until = one("since"), one("until")
    search, filter_expr = one("search"), one("filter")
    if search is not None and SearchTerms(search).empty:
        raise ValueError(f"{search!r} has no word to search for")
    if filter_expr is not None:
        try:
            check_filter(filter_expr)
        except InvalidFilter as e:
            raise ValueError(str(e)) from None
    ids = [int(i) for value in query.getall("ids", []) for i in value.split(",") if i.strip()]
    before = parse_cursor(query["before"]) if query.get("before") else None
    return Selection(
        ids=ids, host=one("host"), path=one("path"), statuses=statuses,
        since=parse_time(since) if since else None, until=parse_time(until) if until else None,
        methods=methods, search=search, filter_expr=filter_expr, include_replays=True,
        tags=[t for t in query.getall("tag", []) if t.strip()], before=before,
    )  # fmt: skip


def parse_limit(text: str | None, default: int = 50) -> int:
    if text is None or text == "":
        return default
    value = int(text)
    if not 0 <= value <= LIST_LIMIT_MAX:
        raise ValueError(f"limit must be between 0 and {LIST_LIMIT_MAX}")
    return value


# -- the database, off the event loop -----------------------------------------------------


class Store:
    """SQLite reads in worker threads, one connection per thread (sqlite3's rule)."""

    def __init__(self, db_path: str):
        self.db_path = db_path
        self.local = threading.local()
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="repost-ui-db")

    def _conn(self):
        conn = getattr(self.local, "conn", None)
        if conn is None:
            from repost.store.database import open_database

            conn = self.local.conn = open_database(self.db_path)
        return conn

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.pool, lambda: fn(self._conn(), *args))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


# -- the app ---------------------------------------------------------------------------------


def make_app(db_path: str, token: str, hosts: frozenset[str], port: int) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=4 * 1024 * 1024)
    app["token"] = token
    app["hosts"] = hosts
    app["cookie"] = f"repost_ui_{port}"  # cookies ignore ports: two UIs on one host each keep theirs
    app["store"] = Store(db_path)
    app["db_path"] = db_path
    app.on_response_prepare.append(_security_headers)
    app.on_cleanup.append(_cleanup)
    from . import ui_api

    app.add_routes([
        web.get("/", _index),
        web.get("/static/{name}", _static),
        *ui_api.routes(),
    ])  # fmt: skip
    return app


async def _cleanup(app: web.Application) -> None:
    app["store"].close()


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def forbidden(why: str) -> web.Response:
    return web.json_response({"error": why}, status=403)


@web.middleware
async def _guard(request: web.Request, handler):
    app = request.app
    if not host_allowed(request.headers.get("Host"), app["hosts"]):
        return forbidden("this Host header does not name the repost ui listener")
    given = request.query.get("token")
    if given is not None:
        if not token_ok(given, app["token"]) or request.method != "GET":
            return forbidden("wrong token")
        # The token leaves the address bar (and history) at once; the cookie carries it from now on.
        rest = [(k, v) for k, v in request.query.items() if k != "token"]
        location = request.path + (f"?{urlencode(rest)}" if rest else "")
        response = web.HTTPFound(location)
        response.set_cookie(app["cookie"], app["token"], httponly=True, samesite="Strict", path="/")
        return response
    if not token_ok(request.cookies.get(app["cookie"]), app["token"]):
        return forbidden("open the URL `repost ui` printed (it carries the token)")
    if request.method not in ("GET", "HEAD"):
        if request.headers.get(CSRF_HEADER) != "1" or request.content_type != "application/json":
            return forbidden(f"a state-changing call needs the {CSRF_HEADER} header and a JSON body")
        origin = request.headers.get("Origin")
        if origin is not None and origin.lower().partition("://")[2] not in app["hosts"]:
            return forbidden("cross-origin call refused")
    return await handler(request)


async def _index(request: web.Request) -> web.StreamResponse:
    return _file("index.html")


async def _static(request: web.Request) -> web.StreamResponse:
    return _file(request.match_info["name"])


def _file(name: str) -> web.StreamResponse:
    # Only the files the package ships, by exact name: no path reaches outside ui_static.
    shipped = {p.name: p for p in STATIC.iterdir() if p.is_file()}
    path = shipped.get(name)
    if path is None or path.suffix not in STATIC_TYPES:
        raise web.HTTPNotFound()
    return web.Response(body=path.read_bytes(), content_type=STATIC_TYPES[path.suffix], charset="utf-8" if path.suffix != ".png" else None)


def json_response(document, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(document, ensure_ascii=False), status=status, content_type="application/json", charset="utf-8"
    )
