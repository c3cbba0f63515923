"""Is it safe to send this request again? (RFC 9110 section 9.2, the Idempotency-Key draft)."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
IDEMPOTENT_METHODS = frozenset({"PUT", "DELETE"})
KEYABLE_METHODS = frozenset({"POST", "PATCH"})


def classify(method: str, idempotency_key: str | None = None) -> str:
    """``safe``, ``idempotent``, ``keyed`` or ``unsafe``."""
    method = method.upper()
    if method in SAFE_METHODS:
        return "safe"
    if method in IDEMPOTENT_METHODS:
        return "idempotent"
    if method in KEYABLE_METHODS and idempotency_key:
        return "keyed"
    return "unsafe"
