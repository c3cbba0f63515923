"""Streams pass through unbuffered, and are recorded on the way.

Plain mitmproxy buffers a response until it ends: a chat completion that streams
for ten seconds shows nothing for ten seconds. The recorder sets a ``BodyTee``
as the body's ``stream`` for event streams (SSE, NDJSON), for bodies above
the size cap, and for bodies of unknown length (chunked uploads and downloads):
every chunk goes on to the other side at once, and the tee keeps
the first ``cap`` bytes, the running SHA-256 and size, and, for event streams,
when each chunk arrived. Memory stays flat whatever the body's size.
"""

from repost.store.sse import is_stream_type
from repost.store.tee import BodyTee


def declared_size(headers) -> int | None:
    """The body's length as its headers declare it; None when unknown (chunked,
    or read until the connection closes): Transfer-Encoding overrides Content-Length."""
    if "transfer-encoding" in headers:
        return None
    try:
        return int(headers.get("content-length", ""))
    except ValueError:
        return None


def _needs_tee(headers, cap: int) -> bool:
    # A body of unknown length is teed from the start: left to mitmproxy, one
    # that outgrows stream_large_bodies is switched to a plain stream half-way
    # (no hook runs then) and would be recorded with no body at all. Bodies of a
    # known small length stay buffered: that is cheaper than a tee.
    size = declared_size(headers)
    return size is None or size > cap


def tee_request(flow, cap: int) -> None:
    """Stream a request body above the cap, or of unknown length, through a tee.

    A request with no body at all never calls the tee: mitmproxy then keeps its
    (empty) content, and that is what is recorded (store/capture.py ``_teed``)."""
    if _needs_tee(flow.request.headers, cap):
        tee = BodyTee(cap)
        flow.request.stream = tee
        flow.metadata.setdefault("repost_tees", {})["request"] = tee


def tee_response(flow, cap: int) -> None:
    """Stream an event stream (keeping when each chunk arrived), or a response
    body above the cap or of unknown length, through a tee."""
    response = flow.response
    if is_stream_type(response.headers.get("content-type")):
        tee = BodyTee(cap, t0=response.timestamp_start or time.time())
    else:
        size = declared_size(response.headers)
        if size is not None and size <= cap:
            return
        tee = BodyTee(cap)
    response.stream = tee
    flow.metadata.setdefault("repost_tees", {})["response"] = tee


def settle(flow, side: str) -> None:
    """A body that streamed through whole and within the cap becomes the flow's
    content again, as if mitmproxy had buffered it: filters on bodies (``~bq``,
    ``~bs``), later addons and mitmweb see it, and it is recorded as any other.
    Call when the side has ended (the ``request`` / ``response`` hooks). Event
    streams keep their tee: it holds when each chunk arrived."""
    tees = flow.metadata.get("repost_tees")
    tee = tees.get(side) if tees else None
    if tee is None or not tee.complete or tee.chunks is not None or tee.size > tee.cap:
        return
    message = flow.request if side == "request" else flow.response
    if message is not None and message.data.content is None:
        message.data.content = bytes(tee.prefix)
        del tees[side]
