"""Redaction rules the user keeps in the database (``repost redact add``), on top of
redact.py's table: a header, a field (a name, or a dotted path in diff's syntax), a query
parameter, or a pattern whose every match is a secret.

Every Redactor is made by ``redactor_for(conn)`` (capture, import, replay, serve), so one
set of rules holds everywhere; the recorder's writer re-reads them when the database
changed (``rules_changed``), so a rule added while it runs applies from its next batch.
"""

import re
import sqlite3
from collections import namedtuple

from .errors import StoreError
from .timefmt import now_iso

KINDS = ("header", "field", "query", "pattern")


class RedactRule(namedtuple("RedactRule", "id kind value created_at")):
    __slots__ = ()

    def describe(self) -> str:
        return f"--{self.kind} {self.value}"


class BadRedactRule(StoreError, ValueError):
    """A rule that cannot be used: a usage error."""


class DuplicateRedactRule(StoreError):
    """The same rule again."""


# -- checking a rule ------------------------------------------------------------------
#
# A pattern runs over every body recorded, so a slow one would slow the proxy, and a hostile
# body could be built to make it slow. Python's re backtracks: "(a+)+" takes exponential time,
# and even "a+b" takes quadratic time (11 s for 100 KB of "a"). So patterns run on RE2
# (google-re2, Google's bindings): an automaton, linear in the text for every pattern it
# accepts (10 MB in ~50 ms for "a+b"). Its syntax is Python's without backreferences and
# lookarounds (https://github.com/google/re2/wiki/Syntax); a pattern it does not accept is
# refused when the rule is added.

MAX_PATTERN = 1000


def compile_pattern(pattern: str):
    """The pattern as RE2 runs it: over UTF-8 bytes (a body's raw bytes kept as they came)."""
    import re2

    options = re2.Options()
    options.encoding = re2.Options.Encoding.UTF8
    options.log_errors = False  # the error is ours to report, in one line
    return re2.compile(pattern.encode("utf-8", "surrogatepass"), options)


def check_rule(kind: str, value: str) -> str:
    """The rule's value as stored (names trimmed); raises BadRedactRule."""
    if kind not in KINDS:
        raise BadRedactRule(f"no such kind of rule: {kind}")
    if kind != "pattern":
        value = value.strip()
        if not value:
            raise BadRedactRule(f"--{kind} needs a name")
        if kind == "header" and not re.fullmatch(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", value):
            raise BadRedactRule(f"{value!r} is not a header name (RFC 9110 token characters only)")
        if kind == "field" and not _segments_of(value):
            raise BadRedactRule(f"{value!r} is not a field name or path")
        return value
    if len(value) > MAX_PATTERN:
        raise BadRedactRule(f"the pattern is longer than {MAX_PATTERN} characters")
    import re2

    try:
        compiled = compile_pattern(value)
    except re2.error as e:
        why = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise BadRedactRule(
            f"the pattern does not compile: {why} (RE2 syntax: no backreferences or lookarounds)"
        ) from None
    if compiled.search(b"") is not None:
        raise BadRedactRule(f"the pattern {value!r} matches the empty string: it would redact nothing, everywhere")
    return value


_BODY_PREFIX = re.compile(r"^(?:(?:request|response)\.)?body(?:\.|(?=\[))")


def _segments_of(path: str) -> list[str]:
    from .diff import _segments

    return _segments(_BODY_PREFIX.sub("", path))


# -- the rules as the Redactor uses them -------------------------------------------------


class UserRules:
    """The compiled rules: what the Redactor asks besides its own table."""

    def __init__(self, rules: list[RedactRule]):
        from .diff import _path_pattern
        from .redact import _normal

        self.source = tuple((r.kind, r.value) for r in rules)
        self.headers = frozenset(r.value.lower() for r in rules if r.kind == "header")
        self.queries = frozenset(r.value.lower() for r in rules if r.kind == "query")
        names, paths = set(), []
        for r in rules:
            if r.kind != "field":
                continue
            segments = _segments_of(r.value)
            if len(segments) == 1 and "*" not in segments[0]:
                names.add(_normal(segments[0]) or segments[0].lower())
            else:
                paths.append((_path_pattern(".".join(segments)), segments[-1]))
        # A header the user names is a secret name in a body too (an echo of the request's
        # headers), as the table's header names are.
        names |= {_normal(r.value) for r in rules if r.kind == "header"} - {""}
        self.fields = frozenset(names)
        self.paths = tuple(p for p, _ in paths)
        # In text that is not a whole JSON document (cut off, NDJSON, a log) a path cannot be
        # followed: its last name is redacted wherever it stands (more, never less).
        self.path_leaves = frozenset(_normal(leaf) or leaf.lower() for _, leaf in paths if "*" not in leaf)
        self.patterns = tuple(compile_pattern(r.value) for r in rules if r.kind == "pattern")
        # For the Redactor's fast look: a body holding none of these names (normalised, and
        # looked for in the body's letters and digits alone, as the table's are) and no
        # pattern's match holds nothing a rule names. A field's last name with a "*" in it
        # is looked for by its longest literal part; one that is all "*" opens every body.
        words, self.always_look = set(), False
        for r in rules:
            if r.kind in ("header", "query"):
                words.add(_normal(r.value))
            elif r.kind == "field":
                leaf = _segments_of(r.value)[-1]
                part = max((_normal(p) for p in leaf.split("*")), key=len)
                if part:
                    words.add(part)
                else:
                    self.always_look = True
        words.discard("")
        if any(r.kind in ("header", "query") and not _normal(r.value) for r in rules):
            self.always_look = True  # a name of punctuation alone ("-"): nothing to look for
        self.words = tuple(w.encode("utf-8", "surrogateescape") for w in sorted(words))

    def __bool__(self) -> bool:
        return bool(self.source)

    def __eq__(self, other) -> bool:
        return isinstance(other, UserRules) and self.source == other.source

    __hash__ = None

    def name(self, normal: str) -> bool:
        """A field name (normalised as redact.py does) a rule names, as a name or a path's end."""
        return normal in self.fields or normal in self.path_leaves

    def param(self, name: str) -> bool:
        """A query, form, path or multipart parameter a rule names."""
        from .redact import _normal

        return name.lower() in self.queries or self.name(_normal(name))

    def path(self, segments: tuple) -> bool:
        joined = ".".join(segments)
        return any(p.search(joined) for p in self.paths)


# -- the rules in the database -------------------------------------------------------------


def add_redact_rule(conn: sqlite3.Connection, kind: str, value: str) -> RedactRule:
    value = check_rule(kind, value)
    for rule in get_redact_rules(conn):
        if rule.kind == kind and (rule.value == value or (kind != "pattern" and rule.value.lower() == value.lower())):
            raise DuplicateRedactRule(f"redaction rule {rule.id} already says that: {rule.describe()}")
    with conn:
        cur = conn.execute(
            "INSERT INTO redact_rules (kind, value, created_at) VALUES (?, ?, ?)", [kind, value, now_iso()]
        )
    return RedactRule(cur.lastrowid, kind, value, now_iso())


def get_redact_rules(conn: sqlite3.Connection) -> list[RedactRule]:
    return [RedactRule(*r) for r in conn.execute("SELECT id, kind, value, created_at FROM redact_rules ORDER BY id")]


def remove_redact_rule(conn: sqlite3.Connection, rule_id: int) -> RedactRule:
    found = [r for r in get_redact_rules(conn) if r.id == rule_id]
    if not found:
        raise StoreError(f"no redaction rule with id {rule_id}")
    with conn:
        conn.execute("DELETE FROM redact_rules WHERE id = ?", [rule_id])
    return found[0]


def user_rules(conn: sqlite3.Connection) -> UserRules | None:
    """The database's rules, compiled; None when it has none."""
    try:
        rules = get_redact_rules(conn)
    except sqlite3.OperationalError:  # a database older than the table (read before migrating)
        return None
    return UserRules(rules) if rules else None


def redactor_for(conn: sqlite3.Connection | None, key: bytes | None = ...):
    """The one way to make a Redactor: the fingerprint key, and the database's own rules.
    ``key`` left out: loaded (raises FingerprintKeyError when it cannot be had)."""
    from .redact import Redactor, load_key

    return Redactor(load_key() if key is ... else key, user_rules(conn) if conn is not None else None)


def data_version(conn: sqlite3.Connection) -> int:
    """Changes whenever another connection commits: the cheap test for "rules may have changed"."""
    return conn.execute("PRAGMA data_version").fetchone()[0]
