"""Which flows a command acts on: list's filters, shared by list, replay and export.

Everything but ``--filter`` becomes SQL; ``--filter`` (mitmproxy's filter language)
is applied to the SQL's candidates as mitmproxy flows, newest first, until enough match.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from .timefmt import iso_utc

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.I)
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_time(text: str, now: datetime | None = None) -> str:
    """``10m``, ``2d``, ``1h30m`` (that long ago) or an ISO 8601 time -> our stored form."""
    text = text.strip()
    parts = _DURATION.findall(text)
    if parts and "".join(f"{n}{u}" for n, u in parts).lower() == re.sub(r"\s+", "", text).lower():
        seconds = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
        now = now or datetime.now(timezone.utc)
        try:
            return iso_utc((now - timedelta(seconds=seconds)).timestamp())
        except (OverflowError, ValueError):  # 99999999d: before year 1
            raise ValueError(f"{text!r} reaches back before any time a flow can have") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (10m, 2h, 3d) nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return iso_utc(moment.timestamp())


def parse_status(text: str) -> tuple[int, int]:
    """``404`` -> (404, 404); ``4xx`` -> (400, 499)."""
    text = text.strip().lower()
    if re.fullmatch(r"[1-5]xx", text):
        low = int(text[0]) * 100
        return low, low + 99
    if re.fullmatch(r"\d{3}", text):
        return int(text), int(text)
    raise ValueError(f"{text!r} is not a status code (404) or class (4xx)")


@dataclass
class Selection:
    ids: list[int] = field(default_factory=list)
    host: str | None = None
    path: str | None = None
    statuses: list[tuple[int, int]] = field(default_factory=list)
    since: str | None = None
    until: str | None = None
    methods: list[str] = field(default_factory=list)
    search: str | None = None
    filter_expr: str | None = None
    # Replays of recorded flows (replay_of set): list shows them; replay and export
    # leave them out unless --include-replays, or named by id.
    include_replays: bool = True
    tags: list[str] = field(default_factory=list)  # every one of them
    # A keyset cursor, (started_at, id): only flows older than it in list's order (newest
    # first, the id breaking ties). The UI's next page; never an OFFSET.
    before: tuple[str, int] | None = None
    _terms: object = field(default=None, init=False, repr=False, compare=False)

    def narrows(self) -> bool:
        """Whether any filter was given (``replay`` with none would replay everything)."""
        return bool(
            self.ids or self.host or self.path or self.statuses or self.since or self.until
            or self.methods or self.search is not None or self.filter_expr or self.tags
        )  # fmt: skip

    def search_terms(self):
        """The ``--search`` text parsed by the index's own tokenizer (store/search.py)."""
        if self._terms is None and self.search is not None:
            from .search import SearchTerms

            self._terms = SearchTerms(self.search)
        return self._terms

    def needs_bodies(self) -> bool:
        """Whether rows must be checked one by one on their bodies: --filter, or a
        searched word of several tokens (a phrase the index cannot answer)."""
        terms = self.search_terms()
        return bool(self.filter_expr) or (terms is not None and terms.phrase_query is not None)

    def keep(self, rows: list[dict], match=None):
        """Those of ``rows`` that pass the checks SQL cannot make: searched phrases
        (a page at a time), then ``match`` (--filter; lazily, one row at a time, so
        a list stops converting flows at --limit)."""
        terms = self.search_terms()
        if terms is not None and terms.phrase_query is not None:
            hits = terms.rows_matching(rows)
            rows = [row for row in rows if row["id"] in hits]
        if match is None:
            yield from rows
            return
        from .flowmodel import row_to_flow

        yield from (row for row in rows if match(row_to_flow(row)))

    def where(self, search: bool = True) -> tuple[str, list]:
        """The SQL filters; ``search=False`` leaves the full-text one out."""
        clauses, params = [], []
        if self.ids:
            clauses.append(f"id IN ({', '.join('?' * len(self.ids))})")
            params += self.ids
        elif not self.include_replays:
            clauses.append("replay_of IS NULL")
        if self.host:
            clauses.append("host GLOB ?" if _is_glob(self.host) else "host = ?")
            params.append(self.host)
        if self.path:
            # A plain path matches itself exactly; a glob matches as a glob. Never the query.
            clauses.append("path GLOB ?" if _is_glob(self.path) else "path = ?")
            params.append(self.path)
        if self.statuses:
            parts = []
            for low, high in self.statuses:
                parts.append("status = ?" if low == high else "status BETWEEN ? AND ?")
                params += [low] if low == high else [low, high]
            clauses.append("(" + " OR ".join(parts) + ")")
        if self.since:
            clauses.append("started_at >= ?")
            params.append(self.since)
        if self.until:
            clauses.append("started_at < ?")
            params.append(self.until)
        if self.methods:
            clauses.append(f"method IN ({', '.join('?' * len(self.methods))})")
            params += [m.upper() for m in self.methods]
        if self.before is not None:
            clauses.append("(started_at < ? OR (started_at = ? AND id < ?))")
            params += [self.before[0], self.before[0], self.before[1]]
        for name in self.tags:
            clauses.append("id IN (SELECT flow FROM tags WHERE name = ?)")
            params.append(name)
        terms = self.search_terms() if search else None
        if terms is not None:
            if terms.empty:  # nothing but punctuation: no flow holds no word
                clauses.append("1 = 0")
            else:
                clauses.append("id IN (SELECT rowid FROM flows_fts WHERE flows_fts MATCH ?)")
                params.append(terms.index_query())
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _is_glob(text: str) -> bool:
    return any(c in text for c in "*?[")

