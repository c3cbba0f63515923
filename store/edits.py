"""Edits to a request before it is sent again (``replay --set PATH=VALUE``, ``--body @FILE``).

Paths are ``diff``'s: ``request.body.items[0].qty`` (JSON, or a form's field),
``request.query.page``, ``request.headers.X-Env``. A value is read as JSON when it
parses (``3``, ``true``, ``"3"``, ``{"a": 1}``), else taken as text. The edited request
is what gets classified for consent, so an edit can make a keyed or safe flow unsafe.
"""

import json
import re
from urllib.parse import parse_qsl, urlencode

from .bodies import decode_content
from .headers import header


class EditError(ValueError):
    pass


def parse_set(text: str) -> tuple[list[str], object]:
    """``request.body.qty=3`` -> (["body", "qty"], 3)."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise EditError(f"{text!r} is not PATH=VALUE, e.g. request.body.qty=3")
    segments = [s for s in re.split(r"\.|\[|\]", path.strip()) if s != ""]
    if segments and segments[0] == "request":
        segments = segments[1:]
    if len(segments) < 2 or segments[0] not in ("body", "query", "headers"):
        raise EditError(f"{path!r}: give request.body.FIELD, request.query.NAME or request.headers.NAME")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return segments, value


def apply_edits(target: str, headers: list, body: bytes, encoding: str | None, edits: list, new_body: bytes | None = None):
    """(target, headers, body) with the edits made. ``encoding`` is the body's Content-Encoding:
    an edited body goes decoded, without it."""
    path, _, query = target.partition("?")
    headers = list(headers)
    body_changed = new_body is not None
    if new_body is not None:
        body = new_body
    body_edits = [(s[1:], v) for s, v in edits if s[0] == "body"]
    if body_edits:
        if encoding and not body_changed:
            decoded = decode_content(body, encoding)
            if decoded.note:
                raise EditError(f"cannot edit the body: {decoded.note}")
            body = decoded.data
        body = _edit_body(body, header(headers, "content-type") or "", body_edits)
        body_changed = True
    if body_changed and encoding:
        headers = [(k, v) for k, v in headers if k.lower() != "content-encoding"]
    for segments, value in edits:
        if segments[0] == "query":
            query = _set_query(query, ".".join(segments[1:]), _text(value))
        elif segments[0] == "headers":
            name = ".".join(segments[1:])
            headers = [(k, v) for k, v in headers if k.lower() != name.lower()] + [(name, _text(value))]
    return path + (f"?{query}" if query else ""), headers, body


def _edit_body(body: bytes, content_type: str, edits: list) -> bytes:
    ctype = content_type.lower()
    text = body.decode("utf-8", "surrogateescape")
    if "x-www-form-urlencoded" in ctype:
        form = text
        for segments, value in edits:
            form = _set_query(form, ".".join(segments), _text(value))
        return form.encode("utf-8", "surrogateescape")
    try:
        doc = json.loads(text) if text.strip() else {}
    except ValueError:
        raise EditError("cannot set a body field: the body is neither JSON nor a form; give the whole body with --body @FILE") from None
    for segments, value in edits:
        doc = _set_json(doc, segments, value)
    return json.dumps(doc, ensure_ascii=False).encode()


def _set_json(doc, segments: list[str], value):
    if not segments:
        return value
    head, rest = segments[0], segments[1:]
    if isinstance(doc, list):
        try:
            i = int(head)
        except ValueError:
            raise EditError(f"{head!r} is not an index of a list") from None
        if not -len(doc) <= i < len(doc):
            if i != len(doc):
                raise EditError(f"index {i} is past the end of a list of {len(doc)}")
            doc.append(None)
        doc[i] = _set_json(doc[i], rest, value)
        return doc
    if not isinstance(doc, dict):
        doc = {}
    doc[head] = _set_json(doc.get(head), rest, value)
    return doc


def _set_query(query: str, name: str, value: str) -> str:
    """The query (or form) with ``name`` set to ``value``; the other pairs kept as they were."""
    pairs = query.split("&") if query else []
    kept = [p for p in pairs if dict(parse_qsl(p, keep_blank_values=True)).keys() != {name}]
    return "&".join(kept + [urlencode({name: value})])


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value)

