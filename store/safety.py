"""Is it safe to send this request (again)? RFC 9110 section 9.2, and the Idempotency-Key draft.

``safe``: GET, HEAD, OPTIONS, TRACE; GraphQL queries sent by POST; endpoints the
user marked read-only. ``idempotent``: PUT, DELETE. ``keyed``: a POST or PATCH
that repeats a recorded request with its Idempotency-Key and body, to the server
that saw the key (a compliant server answers with the stored result). ``unsafe``:
everything else, and whatever cannot be told for sure.

What is classified is what will be sent: the method a server will run (a method
override header names it too), the headers and body after every change the user
asked for. One module, used by list's column, replay's consent, and later serve's
forwarding and the UI's replay button.
"""

import json

from .headers import header

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})
KEYABLE_METHODS = frozenset({"POST", "PATCH"})
# Headers that tell a server (Rails, Express's method-override, ASP.NET, Google APIs, ...)
# to run another method than the request line's.
METHOD_OVERRIDE_HEADERS = frozenset({"x-http-method-override", "x-http-method", "x-method-override"})
# The classes from least to most dangerous: a request is as dangerous as its worst reading.
CLASSES = ("safe", "idempotent", "keyed", "unsafe")
UNSAFE_REASON = "non-idempotent write; replaying may create a duplicate"

GRAPHQL_UNKNOWN = object()  # classify(graphql=...): not decided yet, parse the body
# A GraphQL document this long (in tokens) is refused rather than parsed: it is unsafe.
_MAX_GRAPHQL_TOKENS = 20_000


def graphql_operation(body: bytes | None, content_type: str | None = None, query_string: str = "") -> str | None:
    """'query', 'mutation' or 'subscription' for a GraphQL request; None when it is not one,
    or when the operation that would run cannot be told for sure (then the caller assumes the worst).

    A JSON body (``{"query": ..., "operationName": ...}``, or a batch of them) is read as JSON
    whatever its Content-Type says; a body is read as a bare document only under the exact media
    type ``application/graphql``. A ``query`` parameter in the URL counts too: some servers take it.
    """
    ops = []
    if body:
        text = body.decode("utf-8", "replace")
        try:
            doc = json.loads(text) if text.lstrip()[:1] in ("{", "[") else None
        except (ValueError, RecursionError):
            doc = None
        if doc is not None:
            requests = doc if isinstance(doc, list) else [doc]
            if not requests:
                return None
            for request in requests:
                if not isinstance(request, dict) or "query" not in request:
                    return None
                ops.append(_request_operation(request.get("query"), request.get("operationName")))
        elif _media_type(content_type) == "application/graphql":
            ops.append(_document_operation(text, None))
        else:
            return None
    if "query=" in query_string:
        from urllib.parse import parse_qsl

        params = parse_qsl(query_string, keep_blank_values=True)
        names = [v for k, v in params if k == "operationName"]
        for k, v in params:
            if k == "query":
                ops.append(_document_operation(v, names[0] if names else None))
    if not ops or None in ops:
        return None
    return max(ops, key=_OPERATION_RISK.index)


_OPERATION_RISK = ["query", "subscription", "mutation"]


def _media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def _request_operation(query, operation_name) -> str | None:
    if not isinstance(query, str):
        return None  # a persisted query (a hash) or garbage: which operation runs is unknown
    if operation_name is not None and not isinstance(operation_name, str):
        return None
    return _document_operation(query, operation_name or None)


def _document_operation(source: str, operation_name: str | None) -> str | None:
    """The operation a server would run, by graphql-core's parser (the reference implementation's
    port): strings, block strings and comments are its business, not a pattern's.

    With an operationName, the operation of that name (None if there is none); without, the only
    operation, or the least safe of several (a server should refuse an unnamed choice; some run
    the first: assume the worst)."""
    try:
        from graphql.language import OperationDefinitionNode
        from graphql.language.parser import parse
    except ImportError:  # pragma: no cover - a declared dependency; without it, assume the worst
        return None
    try:
        document = parse(source, no_location=True, max_tokens=_MAX_GRAPHQL_TOKENS)
    except Exception:  # GraphQLSyntaxError, RecursionError on deep nesting, anything: not a document we trust
        return None
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [op for op in operations if op.name is not None and op.name.value == operation_name]
    if not operations:
        return None
    return max((op.operation.value for op in operations), key=_OPERATION_RISK.index)


def effective_methods(method: str, headers=()) -> list[str]:
    """The request line's method and every method an override header names, upper-cased."""
    methods = [method.upper()]
    for name, value in headers:
        if name.lower() in METHOD_OVERRIDE_HEADERS:
            methods += [v.strip().upper() for v in value.split(",") if v.strip()] or ["?"]
    return methods


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
    headers=(),
    query_string: str | None = None,
    graphql=GRAPHQL_UNKNOWN,
) -> str:
    """``safe``, ``idempotent``, ``keyed`` or ``unsafe`` for a request as it will be sent.

    ``idempotency_key`` is the key it carries when that key is the recorded one, sent again with
    the recorded body to the server that saw it (the caller knows; see ``replay_safety``).
    ``headers`` are scanned for method overrides: the request is as dangerous as the worst
    method a server could run for it.
    """
    if query_string is None:
        query_string = url.partition("?")[2]
    worst = "safe"
    for m in effective_methods(method, headers):
        kind = _classify_method(m, idempotency_key, body, content_type, url, path, rules, new_idempotency_key, query_string, graphql)
        worst = max(worst, kind, key=CLASSES.index)
    return worst


def _classify_method(method, idempotency_key, body, content_type, url, path, rules, new_idempotency_key, query_string,
                     graphql=GRAPHQL_UNKNOWN):  # fmt: skip
    if method in SAFE_METHODS:
        return "safe"
    if any(rule.matches(method, url, path) for rule in rules):
        return "safe"
    if method in IDEMPOTENT_METHODS:
        return "idempotent"
    if method == "POST":
        op = graphql_operation(body, content_type, query_string) if graphql is GRAPHQL_UNKNOWN else graphql
        if op == "query":
            return "safe"
    if method in KEYABLE_METHODS and idempotency_key and not new_idempotency_key:
        return "keyed"
    return "unsafe"


def replay_safety(
    *,
    recorded_method: str,
    recorded_key: str | None,
    recorded_body: bytes | None,
    recorded_origin: tuple,
    method: str,
    headers,
    body: bytes | None,
    origin: tuple,
    url: str,
    path: str,
    rules=(),
) -> str:
    """The class of a request about to be sent again, after every override the user asked for
    (headers added or replaced, another target, an edited body, a new key).

    It is ``keyed`` only if it repeats the recorded request: the same method, the recorded
    Idempotency-Key (sent once), the recorded body byte for byte (a body stored redacted is not
    it), to the origin that saw the key. Any other key, body or server makes a fresh write."""
    keys = [v for k, v in headers if k.lower() == "idempotency-key"]
    repeats = (
        recorded_key is not None
        and keys == [recorded_key]
        and method.upper() == recorded_method.upper()
        and body is not None
        and recorded_body is not None
        and bytes(body) == bytes(recorded_body)
        and origin == recorded_origin
    )
    body_for_graphql = _decoded(body, headers) if method.upper() == "POST" else None
    return classify(
        method, recorded_key if repeats else None, body=body_for_graphql, content_type=header(headers, "content-type"),
        url=url, path=path, rules=rules, headers=headers,
    )  # fmt: skip


def _decoded(body: bytes | None, headers) -> bytes | None:
    """The body as the server will read it (its Content-Encoding undone); None if that fails."""
    encoding = header(headers, "content-encoding")
    if not body or not encoding:
        return body
    from .bodies import decode_content

    decoded = decode_content(bytes(body), encoding)
    return None if decoded.note else decoded.data
