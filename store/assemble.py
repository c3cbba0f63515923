"""The text (and tool calls) a streamed AI API response adds up to.

One assembler for ``show --stream``, show's hint and diff's ``response.text``.
Each API streams its own event shapes, as its documentation shows them:

- OpenAI chat completions: ``choices[].delta.content``, ``delta.tool_calls[]``
  (``function.arguments`` in pieces, by ``index``), the older ``delta.function_call``;
  legacy completions: ``choices[].text``.
- OpenAI Responses: ``response.output_text.delta``; ``response.output_item.added``
  (a ``function_call`` item) then ``response.function_call_arguments.delta``.
- Anthropic Messages: ``content_block_start`` (``text`` / ``tool_use`` blocks),
  ``content_block_delta`` with ``text_delta`` or ``input_json_delta``.
- Google Gemini ``streamGenerateContent?alt=sse``: ``candidates[0].content.parts[]``
  with ``text`` or a whole ``functionCall``.
- Ollama (NDJSON): ``message.content`` and ``message.tool_calls`` (/api/chat),
  ``response`` (/api/generate).

An event is read by its JSON ``type`` (or, failing that, its SSE event name)
and otherwise by its shape; events that match nothing (pings, usage, [DONE]) are
skipped. Hostile streams cost one ``json.loads`` per event, no more.
"""

import json
import re
from collections import namedtuple

# tool_calls: [ToolCall, ...] in the order they started.
Assembled = namedtuple("Assembled", "text tool_calls")
ToolCall = namedtuple("ToolCall", "name id arguments")


class _Calls:
    """Tool calls by a key of their API's choosing, their arguments in pieces."""

    def __init__(self):
        self.by_key: dict = {}

    def touch(self, key, name=None, call_id=None) -> list:
        call = self.by_key.get(key)
        if call is None:
            call = self.by_key[key] = [None, None, []]
        if isinstance(name, str) and name:
            call[0] = name
        if isinstance(call_id, str) and call_id:
            call[1] = call_id
        return call

    def add(self, key, piece) -> None:
        if isinstance(piece, str):
            self.touch(key)[2].append(piece)
        elif piece is not None:  # a whole JSON value (Gemini, Ollama)
            self.touch(key)[2].append(json.dumps(piece, ensure_ascii=False))

    def result(self) -> list:
        return [ToolCall(n or "?", i, "".join(a)) for n, i, a in self.by_key.values()]


def _name_and_data(event) -> tuple[str, str]:
    if isinstance(event, dict):
        return event.get("event") or "message", event.get("data") or ""
    return event.event, event.data


def assemble(events) -> Assembled | None:
    """The assembled text and tool calls; None when no event is one the known APIs stream."""
    text: list[str] = []
    calls = _Calls()
    found = False
    for doc, name in _documents(events):
        found = _read(doc, name, text, calls) or found
    return Assembled("".join(text), calls.result()) if found else None


def assembles(events) -> bool:
    """Whether assemble() would find anything: stops at the first event it knows
    (show prints its hint for streams of 50,000 events)."""
    sink = _Calls()
    return any(_read(doc, name, [], sink) for doc, name in _documents(events))


# An event the readers below can use names one of these keys (or is named for its
# type): the rest of a long stream is skipped without parsing its JSON.
_MARKERS = re.compile(r'"(?:choices|candidates|message|response|type)"')


def _documents(events):
    """(JSON object, event name) for each event whose data is a JSON object that may be known."""
    for event in events:
        name, data = _name_and_data(event)
        if not data.lstrip()[:1] == "{":
            continue  # [DONE], pings, plain text
        if name not in _BY_TYPE and not _MARKERS.search(data):
            continue
        try:
            doc = json.loads(data)
        except ValueError:
            continue
        if isinstance(doc, dict):
            yield doc, name


def _read(doc: dict, name: str, text: list, calls: _Calls) -> bool:
    """Add what one event holds; True if it is one of the known APIs' events."""
    kind = doc.get("type")
    if not isinstance(kind, str):
        kind = name
    reader = _BY_TYPE.get(kind)
    if reader is not None:
        return reader(doc, text, calls)
    if isinstance(doc.get("choices"), list):
        return _openai_chat(doc["choices"], text, calls)
    if isinstance(doc.get("candidates"), list):
        return _gemini(doc["candidates"], text, calls)
    message = doc.get("message")
    if isinstance(message, dict) and ("content" in message or "tool_calls" in message):
        return _ollama_chat(message, text, calls)
    if isinstance(doc.get("response"), str) and "done" in doc:  # Ollama's /api/generate
        text.append(doc["response"])
        return True
    return False


def _openai_chat(choices: list, text: list, calls: _Calls) -> bool:
    found = False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("index", 0) != 0:
            continue  # n > 1: the first choice only
        delta = choice.get("delta")
        if isinstance(delta, dict):
            found = True
            if isinstance(delta.get("content"), str):
                text.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                if isinstance(tc, dict):
                    fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
                    key = ("tool", tc.get("index", 0) if isinstance(tc.get("index", 0), int) else 0)
                    calls.touch(key, fn.get("name"), tc.get("id"))
                    calls.add(key, fn.get("arguments"))
            fc = delta.get("function_call")
            if isinstance(fc, dict):
                calls.touch(("function", 0), fc.get("name"))
                calls.add(("function", 0), fc.get("arguments"))
        elif isinstance(choice.get("text"), str):  # legacy completions
            text.append(choice["text"])
            found = True
    return found


def _responses_text(doc: dict, text: list, calls: _Calls) -> bool:
    if isinstance(doc.get("delta"), str):
        text.append(doc["delta"])
    return True


def _responses_item(doc: dict, text: list, calls: _Calls) -> bool:
    item = doc.get("item")
    if isinstance(item, dict) and item.get("type") == "function_call":
        key = ("item", item.get("id") or doc.get("output_index"))
        calls.touch(key, item.get("name"), item.get("call_id"))
        if item.get("arguments"):
            calls.add(key, item["arguments"])
    return True


def _responses_arguments(doc: dict, text: list, calls: _Calls) -> bool:
    key = ("item", doc.get("item_id") or doc.get("output_index"))
    calls.add(key, doc.get("delta"))
    return True


def _anthropic_start(doc: dict, text: list, calls: _Calls) -> bool:
    block = doc.get("content_block")
    if isinstance(block, dict):
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            text.append(block["text"])
        elif block.get("type") in ("tool_use", "server_tool_use"):
            calls.touch(("block", doc.get("index")), block.get("name"), block.get("id"))
    return True


def _anthropic_delta(doc: dict, text: list, calls: _Calls) -> bool:
    delta = doc.get("delta")
    if isinstance(delta, dict):
        if delta.get("type") == "text_delta" and isinstance(delta.get("text"), str):
            text.append(delta["text"])
        elif delta.get("type") == "input_json_delta":
            calls.add(("block", doc.get("index")), delta.get("partial_json"))
    return True


def _gemini(candidates: list, text: list, calls: _Calls) -> bool:
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    content = first.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list):
        return bool(first)  # a last chunk with only a finishReason
    for part in parts:
        if not isinstance(part, dict) or part.get("thought"):
            continue
        if isinstance(part.get("text"), str):
            text.append(part["text"])
        fc = part.get("functionCall")
        if isinstance(fc, dict):
            key = ("gemini", len(calls.by_key))
            calls.touch(key, fc.get("name"), fc.get("id"))
            calls.add(key, fc.get("args", {}))
    return True


def _ollama_chat(message: dict, text: list, calls: _Calls) -> bool:
    if isinstance(message.get("content"), str):
        text.append(message["content"])
    for tc in message.get("tool_calls") or ():
        fn = tc.get("function") if isinstance(tc, dict) else None
        if isinstance(fn, dict):
            key = ("ollama", len(calls.by_key))
            calls.touch(key, fn.get("name"), tc.get("id"))
            calls.add(key, fn.get("arguments", {}))
    return True


_BY_TYPE = {
    "response.output_text.delta": _responses_text,
    "response.refusal.delta": _responses_text,
    "response.output_item.added": _responses_item,
    "response.function_call_arguments.delta": _responses_arguments,
    "content_block_start": _anthropic_start,
    "content_block_delta": _anthropic_delta,
}


def render(assembled: Assembled) -> str:
    """The text, then each tool call on its own line: ``tool call NAME (ID): ARGUMENTS``."""
    lines = [assembled.text] if assembled.text or not assembled.tool_calls else []
    if assembled.text and assembled.tool_calls:
        lines.append("")
    for call in assembled.tool_calls:
        lines.append(f"tool call {call.name}{f' ({call.id})' if call.id else ''}: {call.arguments}")
    return "\n".join(lines)


def event_names(events, limit: int = 10) -> list[str]:
    """The distinct kinds of events a stream holds, in order: the JSON ``type`` of
    an event's data when it has one, else its SSE event name."""
    seen: dict[str, None] = {}
    for event in events:
        name, data = _name_and_data(event)
        if name == "message" and '"type"' in data and data.lstrip().startswith("{"):
            try:
                doc = json.loads(data)
            except ValueError:
                doc = None
            if isinstance(doc, dict) and isinstance(doc.get("type"), str):
                name = doc["type"]
        name = name[:60]
        seen.setdefault(name if name.isprintable() else ascii(name), None)  # no control sequences on stderr
        if len(seen) >= limit:
            break
    return list(seen)
