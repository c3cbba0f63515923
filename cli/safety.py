"""Is it safe to send this request again? (RFC 9110 section 9.2, the Idempotency-Key draft).

``safe``: GET, HEAD, OPTIONS, TRACE; GraphQL queries sent by POST; endpoints the
user marked read-only. ``idempotent``: PUT, DELETE. ``keyed``: a POST or PATCH
that carried an Idempotency-Key, replayed with that key and body (a compliant
server answers with the stored result). ``unsafe``: everything else, and a keyed
flow replayed with a new key. One function, used by list's column and by replay.
"""

import json
import re

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})
KEYABLE_METHODS = frozenset({"POST", "PATCH"})

# The operation keyword, after any comments (# ...) and white space.
_GRAPHQL_COMMENT = re.compile(r"(\s*#[^\n]*\n?)*\s*")


def graphql_operation(body: bytes | None, content_type: str | None = None) -> str | None:
    """'query', 'mutation' or 'subscription' for a GraphQL request body; None otherwise.

    Handles ``{"query": "..."}``, a batch ``[{...}, ...]`` (the least safe operation
    wins) and ``application/graphql`` bodies; ``{ field }`` is the query shorthand.
    """
    if not body:
        return None
    ctype = (content_type or "").lower()
    text = body.decode("utf-8", "replace")
    if "application/graphql" in ctype:
        return _operation(text)
    if "json" not in ctype and text.lstrip()[:1] not in ("{", "["):
        return None
    try:
        doc = json.loads(text)
    except ValueError:
        return None
    docs = doc if isinstance(doc, list) else [doc]
    ops = []
    for d in docs:
        if not isinstance(d, dict) or not isinstance(d.get("query"), str):
            return None
        ops.append(_operation(d["query"]))
    if not ops or None in ops:
        return None
    return "query" if all(op == "query" for op in ops) else "mutation" if "mutation" in ops else ops[0]


def _operation(source: str) -> str | None:
    rest = source[_GRAPHQL_COMMENT.match(source).end() :]
    if rest.startswith("{"):
        return "query"
    m = re.match(r"(query|mutation|subscription)\b", rest)
    if m:
        return m.group(1)
    if rest.startswith("fragment"):
        # A document of fragments then an operation: look for the operation keyword.
        m = re.search(r"(?:^|\})\s*(query|mutation|subscription)\b", rest)
        return m.group(1) if m else None
    return None


def classify(
    method: str,
    idempotency_key: str | None = None,
    *,
    body: bytes | None = None,
    content_type: str | None = None,
    url: str = "",
    path: str = "",
    rules=(),
    new_idempotency_key: bool = False,
) -> str:
    """``safe``, ``idempotent``, ``keyed`` or ``unsafe``."""
    method = method.upper()
    if method in SAFE_METHODS:
        return "safe"
    if any(rule.matches(method, url, path) for rule in rules):
        return "safe"
    if method in IDEMPOTENT_METHODS:
        return "idempotent"
    if method == "POST" and graphql_operation(body, content_type) == "query":
        return "safe"
    if method in KEYABLE_METHODS and idempotency_key and not new_idempotency_key:
        return "keyed"
    return "unsafe"


UNSAFE_REASON = "non-idempotent write; replaying may create a duplicate"
