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
        name = d.get("operationName")
        ops.append(_operation(d["query"], name if isinstance(name, str) else None))
    if not ops or None in ops:
        return None
    return "query" if all(op == "query" for op in ops) else "mutation" if "mutation" in ops else ops[0]


_STRINGS = re.compile(r'"""(?:[^"\\]|\\.|"(?!""))*"""|"(?:[^"\\\n]|\\.)*"')
_COMMENTS = re.compile(r"#[^\n\r]*")


def _operation(source: str, operation_name: str | None = None) -> str | None:
    """The kind of operation a GraphQL document runs: 'query', 'mutation', 'subscription'.

    With an operationName, the operation of that name; without, the least safe
    operation in the document (a document of several needs a name to run one;
    assuming the worst is the safe side). ``{ ... }`` is the query shorthand."""
    code = _COMMENTS.sub(" ", _STRINGS.sub('""', source))
    if operation_name:
        m = re.search(rf"\b(query|mutation|subscription)\s+{re.escape(operation_name)}\b", code)
        if m:
            return m.group(1)
    # Operation keywords where a definition can start: at the top level, outside braces.
    depth, kinds = 0, set()
    for m in re.finditer(r"[{}]|\b(query|mutation|subscription|fragment)\b", code):
        token = m.group(0)
        if token == "{":
            if depth == 0 and not _opens_a_definition(code, m.start()):
                kinds.add("query")  # the shorthand: a selection set on its own
            depth += 1
        elif token == "}":
            depth = max(0, depth - 1)
        elif depth == 0 and token != "fragment":
            kinds.add(token)
    for kind in ("mutation", "subscription", "query"):
        if kind in kinds:
            return kind
    return None


def _opens_a_definition(code: str, brace: int) -> bool:
    """Does the "{" at ``brace`` belong to a definition (query X(...) / fragment F on T)?"""
    before = code[:brace].rstrip()
    start = max(before.rfind("}"), -1)
    return bool(re.search(r"\b(query|mutation|subscription|fragment)\b", before[start + 1 :]))


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
