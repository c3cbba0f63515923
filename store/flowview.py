"""A stored flow as the contract's JSON object, and its bodies decoded for people."""

from collections import namedtuple

from .bodies import decode_content, to_text
from .headers import header, headers_of

from .safety import GRAPHQL_UNKNOWN, classify
from .sizes import DEFAULT_MAX_BODY


# text: decoded text, or None for binary / undecodable bodies; data: decoded bytes
# (raw when decoding failed). A named tuple: typing and dataclasses cost show ~5 ms.
BodyView = namedtuple("BodyView", "text data content_type note")


def body_view(flow: dict, side: str) -> BodyView | None:
    raw = flow[f"{side}_body"]
    if raw is None:
        return None
    ctype = header(flow[f"{side}_headers"], "content-type") or ""
    decoded = decode_content(bytes(raw), flow[f"{side}_content_encoding"])
    text, text_note = to_text(decoded.data, ctype)
    return BodyView(text, decoded.data, ctype, decoded.note or text_note)


# --json holds at most this much of each decoded body (and of a stream's event
# data): one flow's JSON stays within tens of MB whatever --max-body let in or a
# compressed body expands to. size and sha256 still describe the whole body.
JSON_BODY_CAP = DEFAULT_MAX_BODY  # the default --max-body: a body stored at the default cap is shown whole
JSON_EVENTS_CAP = 16 * 1024 * 1024


def _side_json(flow: dict, side: str) -> dict:
    view = body_view(flow, side)
    text, data = (view.text, view.data) if view else (None, None)
    cut = data is not None and len(data) > JSON_BODY_CAP
    if cut:
        data = data[:JSON_BODY_CAP]
        if text is not None:  # whole characters only
            text = text.encode("utf-8", "surrogatepass")[:JSON_BODY_CAP].decode("utf-8", "ignore")
    out = {
        "http_version": flow["http_version"] if side == "request" else flow["response_http_version"],
        "headers": flow[f"{side}_headers"],
        "body": text,
        "body_base64": _base64(data) if data is not None and text is None else None,
        "body_cut": cut,
        "size": flow[f"{side}_size"],
        "sha256": flow[f"{side}_sha256"],
        "truncated": bool(flow[f"{side}_truncated"]),
        "redacted": bool(flow[f"{side}_redacted"]),
        "content_encoding": flow[f"{side}_content_encoding"],
        "note": _note(flow, side, view, cut),
    }
    if side == "request":
        return {"method": flow["method"], "url": flow["url"], **out}
    return {"status": flow["status"], "reason": flow["reason"], **out}


# *_redacted == 2 (store/capture.py WITHHELD): nothing of the body was stored.
WITHHELD_NOTE = "not stored: it may hold secrets, and its encoding or charset did not decode for redaction"


def decoded_cut_note(flow: dict, side: str) -> str:
    """A body stored decoded and redacted, and cut off (it decoded past --max-body, or only its
    prefix arrived): its size and SHA-256 are of the bytes as sent."""
    return (
        f"decoded body cut off at {len(flow[f'{side}_body'] or b''):,} bytes and stored decoded "
        f"(redaction cannot work inside compressed bytes); {flow[f'{side}_size']:,} bytes as sent"
    )


def _note(flow: dict, side: str, view, json_cut: bool = False) -> str | None:
    """Why the body is not all there: withheld, cut off by decoding, then --json's own cap."""
    if flow[f"{side}_redacted"] == 2:
        note = WITHHELD_NOTE
    elif flow[f"{side}_redacted"] and flow[f"{side}_truncated"]:
        note = decoded_cut_note(flow, side)
    else:
        note = view.note if view else None
    cut = f"--json holds the first {JSON_BODY_CAP:,} bytes of the decoded body" if json_cut else None
    return "; ".join(filter(None, [note, cut])) or None


def _base64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def safety_of(row: dict, rules=(), new_idempotency_key: bool = False) -> str:
    """The safety class of a stored flow (its request's method, key, body and URL)."""
    headers = headers_of(row, "request")
    body = None
    if row["request_body"] is not None and row["method"].upper() == "POST" and row.get("request_graphql") is None:
        body = decode_content(bytes(row["request_body"]), row["request_content_encoding"], partial_ok=True).data
    # Keyed only if a replay would repeat it: a body stored redacted is not the body the key was sent with.
    key = row["idempotency_key"] if not row["request_redacted"] else None
    known = row.get("request_graphql")  # decided at capture; None for flows stored before
    return classify(
        row["method"], key, body=body, content_type=header(headers, "content-type"), url=row["url"],
        path=row["path"] or "", rules=rules, new_idempotency_key=new_idempotency_key, headers=headers,
        graphql=(known or None) if known is not None else GRAPHQL_UNKNOWN,
    )  # fmt: skip


def flow_json(flow: dict, replays: list[dict], rules=()) -> dict:
    return {
        "id": flow["id"],
        "started_at": flow["started_at"],
        "duration_ms": flow["duration_ms"],
        "safety": safety_of(flow, rules),
        "error": flow["error"],
        "replay_of": flow["replay_of"],
        "tags": flow.get("tags", []),
        "request": _side_json(flow, "request"),
        "response": _side_json(flow, "response") if flow["status"] is not None else None,
        **_events_json(flow.get("events", [])),
        "incomplete": bool(flow.get("response_incomplete")),
        "replays": replays,
    }


def _events_json(events: list[dict]) -> dict:
    """``events``, and ``events_cut`` when their data, as JSON writes it (a control
    character takes six), outgrew JSON_EVENTS_CAP: the rest are left out."""
    from json.encoder import encode_basestring  # json's own C escaper: one pass per event

    total = 0
    for i, e in enumerate(events):
        total += len(encode_basestring(e["data"]))
        if total > JSON_EVENTS_CAP:
            return {"events": events[:i], "events_cut": True}
    return {"events": events, "events_cut": False}


_INTERNAL = frozenset({
    "idempotency_key", "request_headers", "request_content_encoding", "request_body", "request_redacted", "request_graphql",
})  # fmt: skip


def summary_json(row: dict, rules=()) -> dict:
    out = {k: row[k] for k in row if k not in _INTERNAL}
    out["safety"] = safety_of(row, rules)
    return out
