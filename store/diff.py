"""Structural comparison of two stored flows.

Each flow becomes a flat mapping of paths to values: ``request.method``,
``request.path``, ``request.query.page``, ``request.headers.content-type``,
``response.status``, and bodies by their shape: JSON by path
(``response.body.items[2].price``), forms by field (``request.body.email``),
text by line (``response.body:line 3``), binary by hash (``request.body.sha256``).
The differences are the paths whose values differ, in the order they appear.
"""

import hashlib
import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from .flowview import body_view

# Headers that differ between any two exchanges and say nothing about them: times,
# lengths, request and trace ids, hop-by-hop headers (a replay sends its own), and
# Host, which is the URL's host (not compared: a replay to staging is the same request).
VOLATILE_HEADERS = frozenset({
    "host", ":authority", "connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade",
    "date", "age", "expires", "content-length", "x-request-id", "request-id", "x-amzn-requestid",
    "x-amz-request-id", "x-amz-id-2", "x-correlation-id", "x-trace-id", "traceparent", "tracestate",
    "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled", "x-cloud-trace-context",
    "x-datadog-trace-id", "x-datadog-parent-id", "cf-ray", "x-runtime", "server-timing",
    "x-envoy-upstream-service-time", "openai-processing-ms", "x-ratelimit-remaining-requests",
    "x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens",
})  # fmt: skip

MISSING = object()


@dataclass
class Difference:
    path: str
    a: object
    b: object

    def as_json(self) -> dict:
        return {"path": self.path, "a": _plain(self.a), "b": _plain(self.b)}


def _plain(value):
    return None if value is MISSING else value


def flatten_flow(flow: dict, sides=("request", "response")) -> dict:
    out: dict = {}
    if "request" in sides:
        out["request.method"] = flow["method"]
        out["request.path"] = flow["path"]
        for name, value in _multi(parse_qsl(flow["query"] or "", keep_blank_values=True)).items():
            out[f"request.query.{name}"] = value
        _headers(out, "request", flow["request_headers"])
        _body(out, "request.body", flow, "request")
    if "response" in sides:
        out["response.status"] = flow["status"]
        if flow["error"]:
            out["response.error"] = flow["error"]
        _headers(out, "response", flow["response_headers"])
        if flow.get("events"):
            _events(out, flow["events"])
        else:
            _body(out, "response.body", flow, "response")
    return out


def _events(out: dict, events: list[dict]) -> None:
    """A stream by its events (type and data, JSON data by path) and its assembled text."""
    from .assemble import assemble

    out["response.events.count"] = len(events)
    for i, e in enumerate(events):
        out[f"response.events[{i}].event"] = e["event"]
        try:
            _json_leaves(out, f"response.events[{i}].data", json.loads(e["data"]))
        except ValueError:
            out[f"response.events[{i}].data"] = e["data"]
    assembled = assemble(events)
    if assembled is not None:
        out["response.text"] = assembled.text
        for i, call in enumerate(assembled.tool_calls):
            out[f"response.tool_calls[{i}]"] = f"{call.name}({call.arguments})"


def _multi(pairs) -> dict:
    out: dict = {}
    for name, value in pairs:
        if name in out:
            out[name] = (out[name] if isinstance(out[name], list) else [out[name]]) + [value]
        else:
            out[name] = value
    return out


def _headers(out: dict, side: str, headers: list) -> None:
    for name, value in _multi((n.lower(), v) for n, v in headers).items():
        out[f"{side}.headers.{name}"] = value


def _body(out: dict, prefix: str, flow: dict, side: str) -> None:
    view = body_view(flow, side)
    if view is None or not view.data:
        return
    ctype = view.content_type.lower()
    if view.text is None:
        out[f"{prefix}.sha256"] = hashlib.sha256(view.data).hexdigest()
        out[f"{prefix}.size"] = len(view.data)
        return
    if "json" in ctype or view.text.lstrip()[:1] in ("{", "["):
        try:
            _json_leaves(out, prefix, json.loads(view.text))
            return
        except ValueError:
            pass
    if "x-www-form-urlencoded" in ctype:
        for name, value in _multi(parse_qsl(view.text, keep_blank_values=True)).items():
            out[f"{prefix}.{name}"] = value
        return
    for number, line in enumerate(view.text.splitlines(), 1):
        out[f"{prefix}:line {number}"] = line


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-$@]+")


def _key(key: str) -> str:
    """``.name`` for a plain key; ``["a.b"]`` for one that would read as a path."""
    return f".{key}" if _PLAIN_KEY.fullmatch(key) else f"[{json.dumps(key, ensure_ascii=False)}]"


def _json_leaves(out: dict, path: str, value) -> None:
    if isinstance(value, dict) and value:
        for key, item in value.items():
            _json_leaves(out, f"{path}{_key(key)}", item)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _json_leaves(out, f"{path}[{i}]", item)
    else:
        out[path] = value


class Ignores:
    """``--ignore`` patterns: a field name (``id``), a dotted path with ``*``
    (``response.body.items[*].price``, ``items.*.price``) or a header name."""

    def __init__(self, patterns: list[str], volatile_headers: bool = True):
        self.headers = set(VOLATILE_HEADERS) if volatile_headers else set()
        self.names: set[str] = set()
        self.paths: list[re.Pattern] = []
        for p in patterns:
            if re.fullmatch(r"[A-Za-z0-9_\-]+", p):
                self.names.add(p)
                self.headers.add(p.lower())
            else:
                self.paths.append(_path_pattern(p))

    def __call__(self, path: str) -> bool:
        side, _, rest = path.partition(".")
        if rest.startswith("headers.") and rest[len("headers."):] in self.headers:
            return True
        segments = _segments(path)
        if segments[-1] in self.names:
            return True
        normal = ".".join(segments)
        return any(p.search(normal) for p in self.paths)


def _segments(path: str) -> list[str]:
    """``response.body.items[2].price`` -> ``['response', 'body', 'items', '2', 'price']``."""
    path = re.sub(r":line (\d+)$", r".\1", path)
    return [s for s in re.split(r"\.|\[|\]", path) if s != ""]


def _path_pattern(pattern: str) -> re.Pattern:
    normal = ".".join(_segments(pattern.replace("[*]", ".*")))
    regex = r"\.".join("[^.]*" if seg == "*" else re.escape(seg).replace(r"\*", "[^.]*") for seg in normal.split("."))
    return re.compile(r"(?:^|\.)" + regex + "$")  # the whole path, or a dotted suffix of it


def diff_flows(a: dict, b: dict, ignores: Ignores, sides=("request", "response")) -> list[Difference]:
    fa, fb = flatten_flow(a, sides), flatten_flow(b, sides)
    paths = list(fa) + [p for p in fb if p not in fa]
    out = []
    for path in paths:
        if ignores(path):
            continue
        va, vb = fa.get(path, MISSING), fb.get(path, MISSING)
        if va != vb or type(va) is not type(vb):
            out.append(Difference(path, va, vb))
    return out
