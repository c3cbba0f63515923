"""Server-Sent Events, parsed as the WHATWG EventSource rules say, with arrival times.

``parse_sse(raw, chunks)`` takes the raw stream and, optionally, when each chunk
arrived (``[(t_ms, size), ...]``); each event gets the time of the chunk that
completed it (the blank line that dispatched it). A trailing event with no blank
line is not dispatched (the spec discards it); the raw stream is kept anyway.
"""

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"\r\n|\r|\n")


@dataclass
class Event:
    t_ms: float | None
    event: str
    id: str | None
    data: str
    retry: int | None = None

    def as_json(self) -> dict:
        return {"t_ms": self.t_ms, "event": self.event, "id": self.id, "data": self.data}


def _time_at(offset: int, ends: list[tuple[int, float]]) -> float | None:
    """The arrival time of the chunk holding byte ``offset``."""
    for end, t in ends:
        if offset < end:
            return t
    return ends[-1][1] if ends else None


def parse_sse(raw: bytes, chunks: list | None = None) -> list[Event]:
    ends, total = [], 0
    for t_ms, size in chunks or ():
        total += size
        ends.append((total, t_ms))
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
        ends = [(end - 3, t) for end, t in ends]
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
                events.append(Event(_time_at(m.start(), ends), event_type or "message", last_id, "\n".join(data), retry))
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
    ends, total = [], 0
    for t_ms, size in chunks or ():
        total += size
        ends.append((total, t_ms))
    events, pos = [], 0
    for m in re.finditer(rb"\n", raw):
        line = raw[pos : m.start()].rstrip(b"\r")
        if line.strip():
            events.append(Event(_time_at(m.start(), ends), "message", None, line.decode("utf-8", "replace")))
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


def assemble_text(events: list[Event]) -> str | None:
    """OpenAI-style chat deltas (``choices[0].delta.content``) or completions
    (``choices[0].text``) joined into the final text; None if the stream has none."""
    import json

    parts, found = [], False
    for e in events:
        if e.data.strip() == "[DONE]":
            continue
        try:
            doc = json.loads(e.data)
        except ValueError:
            continue
        choices = doc.get("choices") if isinstance(doc, dict) else None
        if not choices or not isinstance(choices, list) or not isinstance(choices[0], dict):
            continue
        first = choices[0]
        piece = (first.get("delta") or {}).get("content") if isinstance(first.get("delta"), dict) else first.get("text")
        if isinstance(piece, str):
            parts.append(piece)
            found = True
    return "".join(parts) if found else None
