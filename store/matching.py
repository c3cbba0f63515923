"""Which recording answers a request (``repost serve``): matched by meaning, not by bytes.

A request and a recording are compared as ``diff`` compares two flows (store/diff.py):
method, path, query parameters in any order, the body by its shape (JSON by value, forms
and multipart by field, anything else by its bytes' hash); headers only when named; the
user's ``--ignore`` patterns left out. The incoming request first goes through the
recorder's own capture path (store/capture.py), redaction included, so a secret lands
on the same path in the same form on both sides: a redacted value then matches any
value, or with ``match_secrets`` only a value with the same keyed fingerprint.

Recordings are read per (method, path[, host]) group when a request first needs them,
through the ``path`` index, and kept only as a map from each recording's match key to
its ids: memory follows what is asked for, not the size of the store.
"""

import hashlib
import json
import threading
from array import array
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field

from .capture import COLUMNS, make_snapshot, row_from_snapshot
from .diff import MISSING, Ignores, diff_flows, flatten_flow
from .headers import headers_of
from .redact import REDACTED_PREFIX
from .sizes import DEFAULT_MAX_BODY

_WILDCARD = "\x00redacted"  # what any redacted value becomes in a match key
_CLOSEST_CANDIDATES = 200  # how many recordings a miss is compared with to name the closest
_GROUPS_KEPT = 1024  # (method, path, host) groups whose keys stay in memory
_IDS_KEPT = 1_000_000  # recording ids kept from stored-key lookups (8 bytes each), while no new flow is keyed


@dataclass
class IncomingRequest:
    method: str
    scheme: str
    host: str
    port: int
    target: str  # path and query, as sent
    headers: list  # [(name, value), ...] as text
    body: bytes
    http_version: str = "HTTP/1.1"


@dataclass
class MatchOptions:
    ignore: list = field(default_factory=list)  # diff's --ignore syntax
    match_headers: list = field(default_factory=list)  # header names compared too
    match_secrets: bool = False  # redacted values must have the same fingerprint
    match_host: bool = False  # proxy modes: the host is part of the request
    repeat: str = "last"  # after the last recording of a sequence: last | cycle | none


DEFAULT_OPTIONS = MatchOptions()
MATCH_META_KEY = "match_indexed_upto"


@dataclass
class Match:
    flow_id: int | None
    closest: dict | None = None  # on a miss: {"id", "differences": [{"path", "a", "b"}]}
    reason: str | None = None  # on a miss: why, in words


class Matcher:
    """Finds recordings for requests and keeps each sequence's place (thread-safe)."""

    def __init__(self, conn, redactor, options: MatchOptions, selection=None, max_body: int = DEFAULT_MAX_BODY):
        self.conn = conn
        self.redactor = redactor
        self.options = options
        self.selection = selection
        self.max_body = max_body
        self.ignores = Ignores(options.ignore)
        # Without --ignore nothing outside the headers is left out: skip the per-path check
        # (a regex split of every path, the most of a lookup's Python time).
        self._ignoring = bool(self.ignores.names or self.ignores.paths)
        self._headers = {h.lower() for h in options.match_headers}
        self._groups: OrderedDict = OrderedDict()
        # (key, method, path, host) -> ((data_version, keyed_upto), ids in recorded order): a key's
        # recordings are read from the store once, not per request, until the store changes (a
        # flow recorded, keyed or deleted by any connection). Held as
        # arrays, at most _IDS_KEPT ids in all (least recently asked for go first).
        self._key_lookups: OrderedDict = OrderedDict()
        self._ids_kept = 0
        self._keyed_groups: OrderedDict = OrderedDict()  # (method, path, host) -> (data_version, _KeyedGroup)
        self._served: dict[tuple, int] = {}
        self._lock = threading.Lock()

    # -- the request as a row, then as a key ------------------------------------

    def request_row(self, req: IncomingRequest) -> dict:
        """The request as the recorder would have stored it (redacted the same way)."""
        snap = make_snapshot(
            flow_id=str(uuid.uuid4()), started=time.time(), method=req.method, scheme=req.scheme, host=req.host,
            port=req.port, target=req.target, headers=req.headers, body=req.body, response=None, error=None,
            http_version=req.http_version,
        )  # fmt: skip
        return dict(zip(COLUMNS, row_from_snapshot(snap, self.redactor, self.max_body)))

    def meaning(self, row: dict) -> dict:
        """The request's parts that take part in the match, path -> value."""
        flat = flatten_flow(_parsed(row), sides=("request",))
        out = {}
        for path, value in flat.items():
            if path.startswith("request.headers."):
                if path[len("request.headers.") :] not in self._headers:
                    continue
            elif self._ignoring and self.ignores(path):
                continue
            out[path] = value
        return out

    def key(self, meaning: dict) -> str:
        items = sorted((path, self._comparable(value)) for path, value in meaning.items())
        text = json.dumps(items, ensure_ascii=False, default=str, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()

    def _comparable(self, value):
        if isinstance(value, str) and value.startswith(REDACTED_PREFIX) and not self.options.match_secrets:
            return _WILDCARD
        if isinstance(value, list):
            return [self._comparable(v) for v in value]
        return value

    # -- finding ------------------------------------------------------------------

    def match(self, req: IncomingRequest) -> Match:
        row = self.request_row(req)
        meaning = self.meaning(row)
        key = self.key(meaning)
        group = self._group(row["method"], row["path"], row["host"] if self.options.match_host else None)
        ids = group.get(key)
        if not ids:
            ids = self._wildcard_match(group, row, meaning)
        if not ids:
            return self._miss(row, meaning)
        with self._lock:
            # The sequence's identity, without holding every id of it per sequence (memory
            # would follow the recordings per request, hence the store).
            ids_key = (len(ids), ids[0], ids[-1], hash(tuple(ids)))
            n = self._served.get(ids_key, 0)
            self._served[ids_key] = n + 1
        if n < len(ids):
            return Match(ids[n])
        if self.options.repeat == "cycle":
            return Match(ids[n % len(ids)])
        if self.options.repeat == "last":
            return Match(ids[-1])
        return Match(None, reason=f"the {len(ids)} matching recording{'s' if len(ids) != 1 else ''} were all served (--repeat none)")

    def forget(self, req: IncomingRequest) -> None:
        """A recording was added for this request's group (a forwarded miss): read it again."""
        with self._lock:
            for gkey in [k for k in self._groups if k[0] == req.method.upper()]:
                del self._groups[gkey]
            for gkey in [k for k in self._keyed_groups if k[0] == req.method.upper()]:
                del self._keyed_groups[gkey]
            for kkey in [k for k in self._key_lookups if k[1] == req.method.upper()]:
                self._ids_kept -= len(self._key_lookups.pop(kkey)[1])

    def reset(self) -> None:
        """Every sequence starts again from its first recording (a new test)."""
        with self._lock:
            self._served.clear()

    def _keyed(self) -> bool:
        """The options the stored keys were made with: then a lookup goes through their index."""
        o = self.options
        return not o.ignore and not o.match_headers and not o.match_secrets

    def _group(self, method: str, path: str, host: str | None) -> dict:
        """{match key: [ids in recorded order]} for one (method, path[, host]): from the stored
        keys when the options allow (only the flows not keyed yet are read), else all of them."""
        gkey = (method.upper(), path, host)
        if self._keyed():
            # Read again (how far the keys go, the flows recorded since) only when the store
            # changed: PRAGMA data_version moves whenever another connection commits.
            version = self.conn.execute("PRAGMA data_version").fetchone()[0]
            with self._lock:
                kept = self._keyed_groups.get(gkey)
                if kept is not None and kept[0] == version:
                    self._keyed_groups.move_to_end(gkey)
                    return kept[1]
            group = _KeyedGroup(self, *gkey, version=version)
            with self._lock:
                self._keyed_groups[gkey] = (version, group)
                while len(self._keyed_groups) > _GROUPS_KEPT:
                    self._keyed_groups.popitem(last=False)
            return group
        with self._lock:
            group = self._groups.get(gkey)
            if group is not None:
                self._groups.move_to_end(gkey)
                return group
        from .queries import serve_candidates

        group = {}
        for cand in serve_candidates(self.conn, method.upper(), path, host, self.selection):
            group.setdefault(self.key(self.meaning(cand)), []).append(cand["id"])
        with self._lock:
            self._groups[gkey] = group
            while len(self._groups) > _GROUPS_KEPT:
                self._groups.popitem(last=False)
        return group

    def _wildcard_match(self, group: dict, row: dict, meaning: dict) -> list[int]:
        """Recordings whose redacted values sit where this request has plain ones (an import of
        someone else's redaction, a rule added since): compared path by path."""
        if not group:
            return []
        from .queries import serve_candidates

        found = []
        host = row["host"] if self.options.match_host else None
        for cand in serve_candidates(self.conn, row["method"], row["path"], host, self.selection, limit=_CLOSEST_CANDIDATES):
            theirs = self.meaning(cand)
            if theirs.keys() == meaning.keys() and all(
                _same(theirs[p], meaning[p], self.options.match_secrets) for p in theirs
            ):
                found.append(cand["id"])
        return found

    def _miss(self, row: dict, meaning: dict) -> Match:
        from .queries import closest_candidates

        best = None
        host = row["host"] if self.options.match_host else None
        for cand in closest_candidates(self.conn, row["method"], row["path"], host, self.selection, _CLOSEST_CANDIDATES):
            diffs = [
                d for d in diff_flows(_parsed(cand), _parsed(row), self.ignores, sides=("request",))
                if self._counts(d.path) and not _same(d.a, d.b, self.options.match_secrets)
            ]  # fmt: skip
            if best is None or len(diffs) < len(best[1]):
                best = (cand["id"], diffs)
                if not diffs:
                    break
        if best is None:
            return Match(None, None, "no recording of this method and path")
        flow_id, diffs = best
        return Match(None, {"id": flow_id, "differences": [d.as_json() for d in diffs[:20]]}, "no recording matches")

    def _counts(self, path: str) -> bool:
        if path.startswith("request.headers."):
            return path[len("request.headers.") :] in self._headers
        return True


class _KeyedGroup:
    """A group looked up through ``flows.request_match``; flows recorded since the writer last
    made keys are keyed here on the fly."""

    def __init__(self, matcher: Matcher, method: str, path: str, host: str | None, version: int = 0):
        from .queries import serve_candidates

        self.matcher, self.method, self.path, self.host = matcher, method, path, host
        self.version = version  # the store's PRAGMA data_version when read: kept ids are good while it holds
        self.fresh: dict = {}
        # One reading of how far the keys go, for both halves: a flow keyed in between would
        # otherwise be found twice (or not at all).
        self.upto = keyed_upto(matcher.conn)
        for cand in serve_candidates(matcher.conn, method, path, host, matcher.selection, after_id=self.upto):
            self.fresh.setdefault(matcher.key(matcher.meaning(cand)), []).append((cand["started_at"], cand["id"]))

    def get(self, key: str) -> list[int]:
        from .queries import serve_keyed

        m = self.matcher
        ckey = (key, self.method, self.path, self.host)
        fresh = self.fresh.get(key)
        with m._lock:
            cached = m._key_lookups.get(ckey)
            if cached is not None and cached[0] == (self.version, self.upto):
                m._key_lookups.move_to_end(ckey)
                if not fresh:
                    return cached[1].tolist()
        # Reading a key's rows is most of a lookup's cost (each on its own page), so the ids
        # are kept while the stored keys stay as they are.
        found = sorted(serve_keyed(m.conn, key, self.method, self.path, self.host, m.selection, upto_id=self.upto))
        ids = array("q", (i for _, i in found))
        with m._lock:
            old = m._key_lookups.pop(ckey, None)
            m._ids_kept += len(ids) - (len(old[1]) if old else 0)
            m._key_lookups[ckey] = ((self.version, self.upto), ids)
            while m._ids_kept > _IDS_KEPT and len(m._key_lookups) > 1:
                m._ids_kept -= len(m._key_lookups.popitem(last=False)[1][1])
        if fresh:
            return [i for _, i in sorted(found + fresh)]
        return ids.tolist()

    def __bool__(self) -> bool:
        return True


def default_key(matcher_or_none, row: dict) -> str:
    """The key stored for a recording: its meaning under the default options."""
    m = matcher_or_none or _DEFAULT_MATCHER
    return m.key(m.meaning(row))


def keyed_upto(conn) -> int:
    from .database import meta_int

    return meta_int(conn, MATCH_META_KEY)


def index_match_keys(conn, batch: int = 2000, limit: int | None = None) -> int:
    """Store the match key of flows that have none yet, ``batch`` per transaction (the
    writer does it while idle; serve keys the rest itself). Returns how many were keyed."""
    from .database import catch_up
    from .queries import unkeyed_requests

    def write(conn, rows: list) -> int:
        conn.executemany("UPDATE flows SET request_match = ? WHERE id = ?", [(default_key(None, r), r["id"]) for r in rows])
        return rows[-1]["id"]

    return catch_up(conn, MATCH_META_KEY, unkeyed_requests, write, batch, limit)


def _parsed(row: dict) -> dict:
    """A row with its request headers as ``[[name, value], ...]`` (stored rows hold JSON text)."""
    if isinstance(row.get("request_headers"), str):
        return {**row, "request_headers": headers_of(row, "request")}
    return row


def _same(recorded, incoming, match_secrets: bool) -> bool:
    """A recorded redacted value matches any value that is there, unless ``match_secrets``."""
    if incoming is MISSING or recorded is MISSING:
        return recorded is incoming
    if isinstance(recorded, str) and recorded.startswith(REDACTED_PREFIX) and not match_secrets:
        return True
    return recorded == incoming and type(recorded) is type(incoming)


_DEFAULT_MATCHER = Matcher(None, None, DEFAULT_OPTIONS)
