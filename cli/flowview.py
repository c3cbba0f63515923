"""A stored flow as the contract's JSON object, and its bodies decoded for people."""

from collections import namedtuple

from repost.store.bodies import decode_content, to_text
from repost.store.queries import header

from .safety import classify


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


def _side_json(flow: dict, side: str) -> dict:
    view = body_view(flow, side)
    out = {
        "http_version": flow["http_version"] if side == "request" else flow["response_http_version"],
        "headers": flow[f"{side}_headers"],
        "body": view.text if view else None,
        "body_base64": _base64(view.data) if view and view.text is None else None,
        "size": flow[f"{side}_size"],
        "sha256": flow[f"{side}_sha256"],
        "truncated": bool(flow[f"{side}_truncated"]),
        "redacted": bool(flow[f"{side}_redacted"]),
        "content_encoding": flow[f"{side}_content_encoding"],
        "note": _note(flow, side, view),
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


def _note(flow: dict, side: str, view) -> str | None:
    if flow[f"{side}_redacted"] == 2:
        return WITHHELD_NOTE
    if flow[f"{side}_redacted"] and flow[f"{side}_truncated"]:
        return decoded_cut_note(flow, side)
    return view.note if view else None


def _base64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def safety_of(row: dict, rules=(), new_idempotency_key: bool = False) -> str:
    """The safety class of a stored flow (its request's method, key, body and URL)."""
    from repost.store.queries import headers_of

    headers = headers_of(row, "request")
    body = None
    if row["request_body"] is not None and row["method"].upper() == "POST":
        body = decode_content(bytes(row["request_body"]), row["request_content_encoding"], partial_ok=True).data
    return classify(
        row["method"], row["idempotency_key"], body=body, content_type=header(headers, "content-type"),
        url=row["url"], path=row["path"] or "", rules=rules, new_idempotency_key=new_idempotency_key,
    )  # fmt: skip


def flow_json(flow: dict, replays: list[dict], rules=()) -> dict:
    return {
        "id": flow["id"],
        "started_at": flow["started_at"],
        "duration_ms": flow["duration_ms"],
        "safety": safety_of(flow, rules),
        "error": flow["error"],
        "replay_of": flow["replay_of"],
        "request": _side_json(flow, "request"),
        "response": _side_json(flow, "response") if flow["status"] is not None else None,
        "events": flow.get("events", []),
        "incomplete": bool(flow.get("response_incomplete")),
        "replays": replays,
    }


_INTERNAL = frozenset({"idempotency_key", "request_headers", "request_content_encoding", "request_body"})


def summary_json(row: dict, rules=()) -> dict:
    out = {k: row[k] for k in row if k not in _INTERNAL}
    out["safety"] = safety_of(row, rules)
    return out
