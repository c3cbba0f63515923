"""Rules the user keeps in the database: endpoints marked read-only."""

import re
import sqlite3
from collections import namedtuple
from fnmatch import fnmatchcase

from .errors import StoreError
from .timefmt import now_iso

READ_ONLY = "read-only"


# A named tuple, not a dataclass: dataclasses imports inspect, ~7 ms of `repost show`.
class Rule(namedtuple("Rule", "id kind method url_glob created_at")):
    """A rule; ``method`` None matches any method."""

    __slots__ = ()

    def matches(self, method: str, url: str, path: str) -> bool:
        if self.method and self.method != method.upper():
            return False
        base = url.split("?", 1)[0]
        # "*/_search" matches a full URL; "/v1/search" (starting with /) a path.
        return fnmatchcase(path if self.url_glob.startswith("/") else base, self.url_glob)

    def describe(self) -> str:
        return f"{self.method or '*'} {self.url_glob}"


def parse_rule(text: str) -> tuple[str | None, str]:
    """``'POST */_search'`` -> ('POST', '*/_search'); ``'*/_search'`` -> (None, '*/_search')."""
    parts = text.split()
    if len(parts) == 1:
        return None, parts[0]
    if len(parts) == 2 and parts[0].isalpha():
        return parts[0].upper(), parts[1]
    raise StoreError(f"{text!r} is not a rule: give 'METHOD URL-GLOB' or 'URL-GLOB', e.g. 'POST */_search'")


class UnmatchableRule(StoreError, ValueError):
    """A rule that no recorded flow could ever match."""


SCHEMES = ("http://", "https://")  # how every stored URL starts


def check_can_match(glob: str) -> None:
    """Refuse a glob no flow could match: a URL glob must allow the URL's scheme; a path
    glob is matched without the query."""
    literal = re.split(r"[*?\[]", glob, maxsplit=1)[0]
    if glob.startswith("/"):
        if re.search(r"\?[^/]*=", glob):
            raise UnmatchableRule(f"{glob!r} would never match: a path glob is matched without the query (?...)")
        return
    if not any(s.startswith(literal) or literal.startswith(s) for s in SCHEMES):
        hint = "" if literal.lower().startswith(SCHEMES) else f", or '*{glob}'"
        raise UnmatchableRule(
            f"{glob!r} would never match: a URL glob matches the whole URL from its scheme, lower case "
            f"('https://host/path', '*/path'{hint}); a glob starting with / matches the path"
        )


def add_rule(conn: sqlite3.Connection, kind: str, text: str) -> Rule:
    method, glob = parse_rule(text)
    check_can_match(glob)
    same = conn.execute(
        "SELECT id FROM rules WHERE kind = ? AND method IS ? AND url_glob = ?", [kind, method, glob]
    ).fetchone()
    if same is not None:
        raise StoreError(f"rule {same[0]} already says that: {Rule(same[0], kind, method, glob, '').describe()}")
    with conn:
        cur = conn.execute(
            "INSERT INTO rules (kind, method, url_glob, created_at) VALUES (?, ?, ?, ?)", [kind, method, glob, now_iso()]
        )
    return get_rules(conn, ids=[cur.lastrowid])[0]


def get_rules(conn: sqlite3.Connection, kind: str | None = None, ids: list[int] | None = None) -> list[Rule]:
    sql, params = "SELECT id, kind, method, url_glob, created_at FROM rules WHERE 1 = 1", []
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    if ids:
        sql += f" AND id IN ({', '.join('?' * len(ids))})"
        params += ids
    return [Rule(*row) for row in conn.execute(sql + " ORDER BY id", params)]


def remove_rule(conn: sqlite3.Connection, rule_id: int) -> None:
    with conn:
        if conn.execute("DELETE FROM rules WHERE id = ?", [rule_id]).rowcount == 0:
            raise StoreError(f"no rule with id {rule_id}")
