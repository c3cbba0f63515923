"""``repost ui``'s JSON API: list, show and diff's documents, bodies, snippets, export,
replay with replay's consent, and new flows pushed as Server-Sent Events.

Every document comes from the function the CLI uses for it (store/views.py for
list/show/diff, store/follow.py for what is new, cli/replay.py for a replay's plan
and sending, store/export.py for exports); no SQL here.
"""

import asyncio
import io
import json

from aiohttp import web

from repost.store.errors import FlowNotFound, StoreError

from .ui_parse import DOWNLOAD_CSP, PUSH_INTERVAL, PUSH_MAX, RASTER_IMAGES, json_response, parse_id, parse_limit, parse_selection


def routes() -> list:
    # {id}: ASCII digits (\d takes any script's), as many as an SQLite integer has.
    return [
        web.get("/api/flows", list_flows),
        web.get("/api/flows/{id:[0-9]{1,19}}", show_flow),
        web.get("/api/flows/{id:[0-9]{1,19}}/body/{side:request|response}", body),
        web.get("/api/flows/{id:[0-9]{1,19}}/as/{kind:curl|httpie|python}", snippet),
        web.get("/api/flows/{id:[0-9]{1,19}}/stream", stream_text),
        web.get("/api/diff", diff),
        web.get("/api/export", export),
        web.get("/api/events", events),
        web.post("/api/replay/plan", replay_plan),
        web.post("/api/replay", replay),
    ]


def bad_request(message: str) -> web.Response:
    return json_response({"error": message}, status=400)


def not_found(message: str) -> web.Response:
    return json_response({"error": message}, status=404)


def _flow_id(request: web.Request) -> int:
    return int(request.match_info["id"])


async def list_flows(request: web.Request) -> web.Response:
    """``list --json``'s array for the filters in the query; ``before=STARTED_AT,ID`` (the
    last row's) gives the next page by keyset, ``limit`` its size."""
    from repost.store.views import list_document

    try:
        selection = parse_selection(request.query)
        limit = parse_limit(request.query.get("limit"))
    except ValueError as e:
        return bad_request(str(e))
    return json_response(await request.app["store"].run(list_document, selection, limit))


async def show_flow(request: web.Request) -> web.Response:
    from repost.store.views import show_document

    try:
        return json_response(await request.app["store"].run(show_document, _flow_id(request)))
    except FlowNotFound as e:
        return not_found(str(e))


def _body_of(conn, flow_id: int, side: str):
    from repost.store.flowview import body_view
    from repost.store.queries import get_flow

    return body_view(get_flow(conn, flow_id), side)


async def body(request: web.Request) -> web.Response:
    """A body, decoded. Served as an image only when its recorded type is a raster image
    (never SVG: it can hold script); anything else is a download, never rendered."""
    flow_id, side = _flow_id(request), request.match_info["side"]
    try:
        view = await request.app["store"].run(_body_of, flow_id, side)
    except FlowNotFound as e:
        return not_found(str(e))
    if view is None:
        return not_found(f"flow {flow_id} has no {side} body")
    media = view.content_type.split(";")[0].strip().lower()
    if media in RASTER_IMAGES and request.query.get("download") != "1":
        response = web.Response(body=view.data, content_type=media)
    else:
        response = web.Response(body=view.data, content_type="application/octet-stream")
        response.headers["Content-Disposition"] = f'attachment; filename="flow-{flow_id}-{side}.bin"'
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


def _snippet(conn, flow_id: int, kind: str):
    from repost.store.queries import get_flow

    from .snippets import render_request

    return render_request(get_flow(conn, flow_id), kind)


async def snippet(request: web.Request) -> web.Response:
    """``show --as curl|httpie|python``: {"text", "notes"}."""
    try:
        text, notes = await request.app["store"].run(_snippet, _flow_id(request), request.match_info["kind"])
    except FlowNotFound as e:
        return not_found(str(e))
    except ValueError as e:
        return json_response({"error": str(e)}, status=422)
    return json_response({"text": text, "notes": notes})


def _assembled(conn, flow_id: int):
    from repost.store import assemble
    from repost.store.queries import get_flow

    assembled = assemble.assemble(get_flow(conn, flow_id)["events"])
    return None if assembled is None else assemble.render(assembled)


async def stream_text(request: web.Request) -> web.Response:
    """``show --stream``: the text a streamed response assembles to ({"text": null} if none)."""
    try:
        return json_response({"text": await request.app["store"].run(_assembled, _flow_id(request))})
    except FlowNotFound as e:
        return not_found(str(e))


def _diff(conn, a: int, b: int, ignores: list[str], sides, volatile: bool) -> dict:
    from repost.store.diff import Ignores, diff_flows
    from repost.store.queries import get_flow
    from repost.store.views import diff_document

    return diff_document(diff_flows(get_flow(conn, a), get_flow(conn, b), Ignores(ignores, volatile_headers=volatile), sides))


def _flag(query, name: str) -> bool:
    return query.get(name, "") not in ("", "0", "false")


async def diff(request: web.Request) -> web.Response:
    """``diff --json`` of ?a=&b= with ``ignore`` (repeatable), ``request``, ``response``, ``all_headers``."""
    from repost.store.views import diff_sides

    q = request.query
    try:
        a, b = int(q["a"]), int(q["b"])
    except (KeyError, ValueError):
        return bad_request("give two flow ids: ?a=ID&b=ID")
    ignores = [p for value in q.getall("ignore", []) for p in value.splitlines() if p.strip()]
    sides = diff_sides(_flag(q, "request"), _flag(q, "response"))
    try:
        document = await request.app["store"].run(_diff, a, b, [p.strip() for p in ignores], sides, not _flag(q, "all_headers"))
    except FlowNotFound as e:
        return not_found(str(e))
    return json_response(document)


def _export(conn, fmt: str, selection, limit):
    from repost.store.export import FORMATS
    from repost.store.queries import select_full_flows
    from repost.store.tags import with_tags

    rows = with_tags(conn, select_full_flows(conn, selection, limit, newest_first=False))
    out = io.BytesIO() if FORMATS[fmt].binary else io.StringIO()
    count = FORMATS[fmt].write(rows, out, on_notes=lambda notes: None)
    data = out.getvalue()
    return (data if isinstance(data, bytes) else data.encode("utf-8")), count


EXPORT_NAMES = {"har": "flows.har", "vcr": "cassette.yaml", "curl": "flows.sh", "mitm": "flows.mitm"}


async def export(request: web.Request) -> web.Response:
    """``export --format F`` of the selection in the query (ids=1,2 or list's filters), as a download."""
    from repost.store import formats

    fmt = request.query.get("format", "")
    if fmt not in formats.EXPORT:
        return bad_request(f"format must be one of {', '.join(formats.EXPORT)}")
    try:
        selection = parse_selection(request.query)
        limit = parse_limit(request.query.get("limit"), default=None) if request.query.get("limit") else None
    except ValueError as e:
        return bad_request(str(e))
    data, count = await request.app["store"].run(_export, fmt, selection, limit)
    response = web.Response(body=data, content_type="application/octet-stream")
    response.headers["Content-Disposition"] = f'attachment; filename="{EXPORT_NAMES[fmt]}"'
    response.headers["X-Repost-Count"] = str(count)
    response.headers["Content-Security-Policy"] = DOWNLOAD_CSP
    return response


# -- new flows, pushed ---------------------------------------------------------------------


def _newest(conn) -> int:
    from repost.store.follow import newest_id

    return newest_id(conn)


def _new_flows(conn, selection, after: int, upto: int) -> list[dict]:
    from repost.store.follow import flows_after
    from repost.store.views import flow_summaries

    return flow_summaries(conn, flows_after(conn, selection, after, upto))


async def events(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: ``flows`` events whose data is list --json's array of the flows
    recorded since (oldest first), for the filters in the query; as ``list --follow`` reads them."""
    try:
        selection = parse_selection(request.query)
    except ValueError as e:
        return bad_request(str(e))
    store = request.app["store"]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store"})
    await response.prepare(request)
    upto = await store.run(_newest)
    # A browser that reconnects says what it saw last (the id of each event): what landed
    # while it was away is sent, not lost.
    try:
        seen = parse_id(request.headers.get("Last-Event-ID", ""))
    except ValueError:
        seen = None  # none, or not an id this server sent: from now on
    if seen is not None and seen < upto:
        upto = seen
    await response.write(b": ready\n\n")
    quiet = 0.0
    try:
        while True:
            await asyncio.sleep(PUSH_INTERVAL)
            if request.transport is None or request.transport.is_closing():
                break  # the page went away: stop polling for it
            newest = await store.run(_newest)
            if newest < upto:  # the newest flows were deleted: their ids come again
                upto = newest
            if newest > upto:
                rows = await store.run(_new_flows, selection, max(upto, newest - PUSH_MAX), newest)
                upto = newest
                if rows:
                    await response.write(f"id: {newest}\nevent: flows\ndata: {json.dumps(rows, ensure_ascii=False)}\n\n".encode())
                    quiet = 0.0
                    continue
            quiet += PUSH_INTERVAL
            if quiet >= 15:  # a comment now and then: a dead connection shows itself
                await response.write(b": keep-alive\n\n")
                quiet = 0.0
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


# -- replay, with replay's rules ---------------------------------------------------------------


class ReplayRequest:
    """What the page asks: {"id", "to"?, "headers"?: ["Name: value"], "confirm"?: ID}."""

    def __init__(self, document):
        from .replay import parse_header, parse_target

        if not isinstance(document, dict):
            raise ValueError("send a JSON object")
        flow_id = document.get("id")
        if not isinstance(flow_id, int) or isinstance(flow_id, bool):
            raise ValueError("give the flow's id as a number")
        self.id = flow_id
        to = document.get("to") or None
        if to is not None and not isinstance(to, str):
            raise ValueError("to: a target URL such as http://127.0.0.1:8000, or null")  # not silently the recorded host
        self.to = parse_target(to) if to else None
        headers = document.get("headers") or []
        if not isinstance(headers, list) or not all(isinstance(h, str) for h in headers):
            raise ValueError("headers: a list of 'Name: value' strings")
        self.extra = [parse_header(h) for h in headers if h.strip()]
        # Consent names the flow: {"confirm": 12} replays flow 12 only; nothing else will do
        # (not "12", not true, not 12.0: the page sends the integer the user typed).
        confirm = document.get("confirm")
        self.confirmed = type(confirm) is int and confirm == flow_id


def _plan(conn, ask: ReplayRequest):
    from repost.store.queries import get_flow, replay_history
    from repost.store.rules import READ_ONLY, get_rules

    from .replay import plan

    p = plan(get_flow(conn, ask.id), to=ask.to, extra=ask.extra, new_key=False, rules=get_rules(conn, READ_ONLY))
    return p, replay_history(conn, [ask.id]).get(ask.id)


def plan_json(p, history) -> dict:
    from repost.store.safety import UNSAFE_REASON

    times, last = history or (0, None)
    return {
        "id": p.flow["id"], "safety": p.safety, "method": p.method, "url": p.url, "headers": p.headers,
        "body_size": len(p.body), "left_out": p.left_out, "left_out_query": p.left_out_query,
        "redacted_body": bool(p.flow["request_redacted"]), "problem": p.problem,
        "history": {"times": times, "last": last},
        "needs_confirmation": p.safety == "unsafe" and not p.problem,
        "reason": UNSAFE_REASON if p.safety == "unsafe" else None,
    }  # fmt: skip


async def _read_ask(request: web.Request):
    try:
        return ReplayRequest(await request.json())
    except RecursionError:  # nesting deeper than json can parse: the page never sends that
        raise web.HTTPBadRequest(text=json.dumps({"error": "the JSON is nested too deeply"}), content_type="application/json") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise web.HTTPBadRequest(text=json.dumps({"error": str(e)}), content_type="application/json") from None


async def replay_plan(request: web.Request) -> web.Response:
    """What a replay would send and its class and history, sending nothing (replay --dry-run)."""
    ask = await _read_ask(request)
    try:
        p, history = await request.app["store"].run(_plan, ask)
    except FlowNotFound as e:
        return not_found(str(e))
    return json_response(plan_json(p, history))


def _store_replays(db_path: str, outcomes, redactor) -> dict[str, int]:
    from repost.store.database import open_database
    from repost.store.queries import ids_by_flow_id
    from repost.store.sizes import DEFAULT_MAX_BODY
    from repost.store.writer import BatchWriter

    writer = BatchWriter(db_path, redactor=redactor, max_body=DEFAULT_MAX_BODY)
    writer.write([o.snapshot for o in outcomes])
    writer.close()
    if writer.lost:
        raise StoreError(f"the replay could not be recorded: {writer.last_error}")
    conn = open_database(db_path)
    try:
        return ids_by_flow_id(conn, [o.snapshot[0] for o in outcomes])
    finally:
        conn.close()


async def replay(request: web.Request) -> web.Response:
    """Replay one flow as ``repost replay`` does: an unsafe one only with {"confirm": ID}
    naming it (else 409 and nothing sent); stored as a new flow, which the push then shows."""
    from repost.store.redact import Redactor, load_key

    from .replay import send_all

    ask = await _read_ask(request)
    try:
        p, history = await request.app["store"].run(_plan, ask)
    except FlowNotFound as e:
        return not_found(str(e))
    document = plan_json(p, history)
    if p.problem:
        return json_response({"error": f"flow {ask.id} cannot be sent: {p.problem}", "plan": document}, status=422)
    if p.safety == "unsafe" and not ask.confirmed:
        message = f"flow {ask.id} is unsafe ({document['reason']}): confirm with {{\"confirm\": {ask.id}}}; nothing sent"
        return json_response({"error": message, "plan": document}, status=409)
    redactor = Redactor(load_key())  # before anything goes out: a replay that cannot be stored redacted is not sent
    (outcome,) = await send_all([p], concurrency=1, timeout=30.0)
    try:
        ids = await asyncio.to_thread(_store_replays, request.app["db_path"], [outcome], redactor)
    except StoreError as e:
        return json_response({"error": str(e)}, status=500)
    return json_response({
        "id": ask.id, "replay_id": ids.get(outcome.snapshot[0]), "safety": p.safety, "url": p.url,
        "status": outcome.status, "error": outcome.error, "elapsed_ms": round(outcome.elapsed_ms, 1),
    })  # fmt: skip
