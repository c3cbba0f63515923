"""``repost ui``'s web server: the page's static files and one JSON API under /api/.

The API's documents are ``list --json``, ``show --json`` and ``diff --json``, built by
the same store functions the CLI calls (store/views.py); replays go through replay's own
plan and safety class (cli/replay.py). No SQL here.

Recorded traffic is hostile input and this server can send writes, so every request
passes ``guard``: the target and Host header must name the listener (DNS rebinding), a
request the browser marks as from another site or port (Sec-Fetch-Site) is refused, the
random token must come in the URL once (then as an HttpOnly, SameSite=Strict cookie), and a
state-changing call needs a JSON body and a header a cross-site form cannot send. Every
response carries a strict Content-Security-Policy: the page runs its own script only.
"""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote, urlencode

from aiohttp import web

from .ui_parse import host_allowed, token_ok

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
CSRF_HEADER = "X-Repost-UI"  # a cross-site <form> cannot set it; fetch() from another origin needs a preflight we never grant


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
    app["once"] = set()  # single-use tokens: for a URL that passes through a command line (--open)
    app["hosts"] = hosts
    app["cookie"] = f"repost_ui_{port}"  # cookies ignore ports: two UIs on one host each keep theirs
    app["store"] = Store(db_path)
    app["db_path"] = db_path
    app.on_response_prepare.append(_security_headers)
    app.on_cleanup.append(_cleanup)
    from . import ui_api  # ui_api imports ui_parse, never this module

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
    if not request.raw_path.startswith("/"):
        # An absolute-form target (GET http://other/...) names another host than the Host
        # header does; only proxies are sent those, never this server.
        return forbidden("this request target does not name the repost ui listener")
    if not host_allowed(request.headers.get("Host"), app["hosts"]):
        return forbidden("this Host header does not name the repost ui listener")
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        # Another site, or a page on another port of this host ("same-site": the cookie's
        # SameSite=Strict does not keep it out), has no business here, whatever it asks.
        return forbidden("a request from another site is refused")
    given = request.query.get("token")
    if given is not None:
        if request.method != "GET" or not (token_ok(given, app["token"]) or _spend_once(app, given)):
            return forbidden("wrong token")
        # The token leaves the address bar (and history) at once; the cookie carries it from now on.
        rest = [(k, v) for k, v in request.query.items() if k != "token"]
        # One leading slash, the path quoted: "//other.test/" must not become an off-site redirect.
        location = "/" + quote(request.path.lstrip("/")) + (f"?{urlencode(rest)}" if rest else "")
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


def _spend_once(app: web.Application, given: str) -> bool:
    """A single-use token buys the cookie once: a copy read from another user's `ps` while
    the browser starts is worth nothing once the browser has used it."""
    spent = next((once for once in app["once"] if token_ok(given, once)), None)
    app["once"].discard(spent)
    return spent is not None


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
