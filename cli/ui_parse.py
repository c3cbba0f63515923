"""``repost ui``'s pure parts: the token and Host checks, list's filters read from a query
string, and the JSON response every API call answers with. No I/O: tested directly."""

import hmac
import json

from aiohttp import web

# Shown as an image only when the recorded type is one of these: a browser never runs script in them.
RASTER_IMAGES = frozenset({
    "image/png", "image/jpeg", "image/gif", "image/webp", "image/avif", "image/bmp", "image/x-icon",
    "image/vnd.microsoft.icon",
})  # fmt: skip
# On a recorded body or an export, should a browser ever open one as a page of its own: no
# script, no plugin, a unique origin (attachment and nosniff already stop that; this backs them).
DOWNLOAD_CSP = "default-src 'none'; img-src 'self'; sandbox; frame-ancestors 'none'"
PUSH_INTERVAL = 0.2  # seconds between looks for new flows (list --follow's pace)
# At most this many of the newest ids in one push: an import of a million flows, or a
# Last-Event-ID from long ago, must not become one event the server builds and the page draws.
PUSH_MAX = 1000
LIST_LIMIT_MAX = 500
ID_MAX = 2**63 - 1  # SQLite's largest integer: a bigger id names no flow, and must not reach SQLite


def parse_id(text: str, what: str = "an id") -> int:
    """A flow id from a query: a whole number SQLite can hold, else ValueError (a 400)."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= ID_MAX):
        raise ValueError(f"{text[:40]!r} is not {what}: give a whole number")
    return int(text)


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
    allowed = {f"{n.lower()}:{port}" for n in names}
    if port == 80:  # a browser leaves out the scheme's default port
        allowed |= {n.lower() for n in names}
    return frozenset(allowed)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    return host_header is not None and host_header.lower() in allowed


def parse_cursor(text: str) -> tuple[str, int]:
    """``before=STARTED_AT,ID`` (the last row of a page) -> the keyset cursor."""
    started_at, sep, flow_id = text.rpartition(",")
    if not sep or not started_at:
        raise ValueError(f"{text!r} is not a cursor: give before=STARTED_AT,ID")
    try:
        return started_at, parse_id(flow_id)
    except ValueError:
        raise ValueError(f"{text[:80]!r} is not a cursor: give before=STARTED_AT,ID") from None


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
    ids = [parse_id(i, "a flow id") for value in query.getall("ids", []) for i in value.split(",") if i.strip()]
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
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 6) or int(text) > LIST_LIMIT_MAX:
        raise ValueError(f"limit must be between 0 and {LIST_LIMIT_MAX}")
    return int(text)


def json_response(document, status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(document, ensure_ascii=False), status=status, content_type="application/json", charset="utf-8"
    )
