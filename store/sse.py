"""Server-Sent Events, parsed as the WHATWG EventSource rules say, with arrival times.

``parse_sse(raw, chunks)`` takes the raw stream and, optionally, when each chunk
arrived (``[(t_ms, size), ...]``); each event gets the time of the chunk that
completed it (the blank line that dispatched it). A trailing event with no blank
line is not dispatched (the spec discards it); the raw stream is kept anyway.

Events are not stored: they are parsed from the stored stream whenever they are
read (``stored_events``), so a stream takes its own size in the database, not twice.
"""

import re
from bisect import bisect_right
from collections import namedtuple

from .headers import header

_LINE_END = re.compile(rb"\r\n|\r|\n")


# ``end``: the offset in the stream just past the line that dispatched the event.
# A named tuple, not a dataclass: `repost show` reads events, and dataclasses cost ~7 ms to import.
class Event(namedtuple("Event", "t_ms event id data retry end", defaults=(None, 0))):
    __slots__ = ()

    def as_json(self) -> dict:
        return {"t_ms": self.t_ms, "event": self.event, "id": self.id, "data": self.data}


class _Arrivals:
    """When the byte at an offset arrived: the time of the chunk holding it (a binary
    search: a stream of 50,000 events is parsed every time it is shown)."""

    def __init__(self, chunks, shift: int = 0):
        self.ends, self.times, total = [], [], -shift
        for t_ms, size in chunks or ():
            total += size
            self.ends.append(total)
            self.times.append(t_ms)

    def at(self, offset: int) -> float | None:
        if not self.times:
            return None
        i = bisect_right(self.ends, offset)
        return self.times[i] if i < len(self.times) else self.times[-1]


def parse_sse(raw: bytes, chunks: list | None = None) -> list[Event]:
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    if bom:
        raw = raw[3:]
    arrivals = _Arrivals(chunks, bom)
    events: list[Event] = []
    data: list[str] = []
    event_type = ""
    last_id: str | None = None
    retry: int | None = None
    pos = 0
    # A CR at the very end may be half of a CRLF still to come: the line is complete either way.
    for m in _LINE_END.finditer(raw):
        line = raw[pos : m.start()].decode("utf-8", "replace")
        pos = m.end()
        if line == "":
            if data:
                events.append(
                    Event(arrivals.at(m.start()), event_type or "message", last_id, "\n".join(data), retry, bom + m.end())
                )
            data, event_type, retry = [], "", None
            continue
        if line.startswith(":"):
            continue  # a comment
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "event":
            event_type = value
        elif name == "data":
            data.append(value)
        elif name == "id":
            if "\x00" not in value:
                last_id = value
        elif name == "retry":
            if value.isascii() and value.isdigit():
                retry = int(value)
    return events


def parse_ndjson(raw: bytes, chunks: list | None = None) -> list[Event]:
    """Newline-delimited JSON: each line an event."""
    arrivals = _Arrivals(chunks)
    events, pos = [], 0
    for m in re.finditer(rb"\n", raw):
        line = raw[pos : m.start()].rstrip(b"\r")
        if line.strip():
            events.append(Event(arrivals.at(m.start()), "message", None, line.decode("utf-8", "replace"), None, m.end()))
        pos = m.end()
    return events


STREAM_TYPES = ("text/event-stream", "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")


def is_stream_type(content_type: str | None) -> bool:
    ctype = (content_type or "").lower()
    return any(t in ctype for t in STREAM_TYPES)


def parse_events(raw: bytes, content_type: str | None, chunks: list | None = None) -> list[Event]:
    ctype = (content_type or "").lower()
    if "event-stream" in ctype:
        return parse_sse(raw, chunks)
    if is_stream_type(ctype):
        return parse_ndjson(raw, chunks)
    return []


def stored_events(headers: list, body: bytes | None, encoding: str | None, chunks_json: str | None) -> list[Event]:
    """The events of a stored response, parsed from its stored bytes (and when each
    chunk arrived); [] when it is not an event stream. Never raises on bad bytes."""
    ctype = header(headers, "content-type") or ""  # the first, as the writer reads it
    if not body or not is_stream_type(ctype):
        return []
    raw, chunks = bytes(body), None
    if encoding:  # rare for streams; the chunks count encoded bytes, so times are unknown
        from .bodies import decode_content

        raw = decode_content(raw, encoding, partial_ok=True).data
    elif chunks_json:
        import json

        chunks = json.loads(chunks_json)
    return parse_events(raw, ctype, chunks)


def rebase_chunks(raw: bytes, stored: bytes, content_type: str, chunks: tuple) -> tuple | None:
    """Arrival times for a stream that is stored changed (redacted): the stored bytes
    cut at each event's end, each part with the time its event arrived, so that
    ``stored_events`` gives the times the original stream had. None when the two do
    not pair up event for event (the times are then unknown rather than wrong)."""
    before = parse_events(raw, content_type, list(chunks))
    after = parse_events(stored, content_type)
    if not before or len(before) != len(after):
        return None
    out, prev = [], 0
    for b, a in zip(before, after):
        out.append((b.t_ms, a.end - prev))
        prev = a.end
    if prev < len(stored):  # an undispatched tail
        out.append((chunks[-1][0], len(stored) - prev))
    return tuple(out)
