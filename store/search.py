"""Full-text search over decoded bodies (SQLite FTS5), indexed lazily.

Indexing decodes every body (gzip, br, charsets), which is too much work for the
proxy's path; the writer process indexes while idle, and ``list --search``
indexes whatever is left before it searches.
"""

import json
import sqlite3

from .bodies import decode_content, looks_binary, to_text
from .database import catch_up, meta_int
from .headers import header

INDEX_CAP = 1024 * 1024  # index at most the first MB of each decoded body
META_KEY = "fts_indexed_upto"


def indexed_upto(conn: sqlite3.Connection) -> int:
    return meta_int(conn, META_KEY)


def pending(conn: sqlite3.Connection) -> bool:
    return conn.execute("SELECT 1 FROM flows WHERE id > ? LIMIT 1", [indexed_upto(conn)]).fetchone() is not None


def _text(body, encoding, headers_json) -> str:
    if not body:
        return ""
    ctype = header(json.loads(headers_json or "[]"), "content-type") or ""
    decoded = decode_content(bytes(body), encoding, cap=INDEX_CAP)
    text, _ = to_text(decoded.data[:INDEX_CAP], ctype)
    return text or ""


def index_pending(conn: sqlite3.Connection, batch: int = 2000, limit: int | None = None) -> int:
    """Index flows not indexed yet, ``batch`` per transaction; returns how many were indexed."""

    def read(conn, after: int, batch: int) -> list:
        return conn.execute(
            "SELECT id, request_body, request_content_encoding, request_headers,"
            " response_body, response_content_encoding, response_headers"
            " FROM flows WHERE id > ? ORDER BY id LIMIT ?",
            [after, batch],
        ).fetchall()

    def write(conn, rows: list) -> int:
        index_docs(conn, [(r[0], _text(r[1], r[2], r[3]), _text(r[4], r[5], r[6])) for r in rows])
        return rows[-1][0]

    return catch_up(conn, META_KEY, read, write, batch, limit)


def index_docs(conn, docs: list[tuple[int, str, str]]) -> None:
    """Index (flow id, request text, response text)s."""
    if conn.__class__ is sqlite3.Connection:
        conn.executemany("INSERT INTO flows_fts (rowid, request_body, response_body) VALUES (?, ?, ?)", docs)
    else:  # PostgreSQL: the same words, as SQLite's tokenizer finds them, in a tsvector
        conn.executemany(
            "INSERT INTO flows_fts (id, words) VALUES (?, array_to_tsvector(?::text[])) ON CONFLICT DO NOTHING",
            [(i, lexemes(request, response)) for i, request, response in docs],
        )


def unindex_docs(conn, docs: list[tuple[int, str, str]]) -> None:
    """Take flows out of the index; SQLite's contentless FTS5 needs the very text it was given."""
    if conn.__class__ is sqlite3.Connection:
        conn.executemany("INSERT INTO flows_fts (flows_fts, rowid, request_body, response_body) VALUES ('delete', ?, ?, ?)", docs)
    elif docs:
        conn.execute("DELETE FROM flows_fts WHERE id IN (SELECT value FROM json_each(?))", [json.dumps([d[0] for d in docs])])


# -- what a search text means --------------------------------------------------------
#
# The index keeps no positions (detail=none), so FTS5 refuses a phrase, and a quoted
# string of several tokens (``"access_token"`` is two to unicode61: access, token) is
# a phrase. So the text is split into tokens by SQLite's own tokenizer (no guessing
# which characters separate words: the Unicode tables differ between Python and
# SQLite), the index is asked for flows holding every token, and a word that is
# several tokens is then checked as a phrase on those flows' decoded bodies, in a
# private in-memory FTS5 table that keeps positions. Every token is quoted, so no
# search text is ever query syntax (AND, NEAR, ^, *, :, quotes).

TOKENIZER = "unicode61"  # as flows_fts's (store/migrations.py)
_scratch: sqlite3.Connection | None = None


def _scratch_db() -> sqlite3.Connection:
    global _scratch
    if _scratch is None:
        conn = sqlite3.connect(":memory:", check_same_thread=False)
        conn.execute(f"CREATE VIRTUAL TABLE words USING fts5(text, tokenize='{TOKENIZER}')")
        conn.execute("CREATE VIRTUAL TABLE words_seen USING fts5vocab(words, instance)")
        conn.execute(f"CREATE VIRTUAL TABLE bodies USING fts5(request_body, response_body, tokenize='{TOKENIZER}')")
        _scratch = conn
    return _scratch


_TOKENS = "SELECT term FROM words_seen WHERE doc = 1 ORDER BY offset"
_DISTINCT_TOKENS = "SELECT DISTINCT term FROM words_seen WHERE doc = 1"


def tokens(text: str, query: str = _TOKENS) -> list[str]:
    """``text`` as the index's tokenizer splits it (folded to lower case, no diacritics)."""
    conn = _scratch_db()
    with conn:
        conn.execute("DELETE FROM words")
        conn.execute("INSERT INTO words (rowid, text) VALUES (1, ?)", [text])
        found = [r[0] for r in conn.execute(query)]
        conn.execute("DELETE FROM words")
    return found


# PostgreSQL's limits: a lexeme under 2 KB, a tsvector under 1 MB (of distinct words).
MAX_LEXEME_BYTES = 2046
MAX_LEXEMES_BYTES = 900_000


def lexemes(*texts: str) -> list[str]:
    """The distinct words of ``texts`` as the index holds them (PostgreSQL's flows_fts)."""
    words, size = [], 0
    for word in dict.fromkeys(t for text in texts if text for t in _distinct_tokens(text)):
        n = len(word.encode("utf-8", "replace")) + 8
        if n - 8 > MAX_LEXEME_BYTES or size + n > MAX_LEXEMES_BYTES:
            continue
        words.append(word)
        size += n
    return words


def _distinct_tokens(text: str) -> list[str]:
    return tokens(text, _DISTINCT_TOKENS)


def _quoted(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


class SearchTerms:
    """A ``--search`` text: every word required, anywhere in the request or response body."""

    def __init__(self, text: str):
        words = [tokens(word) for word in text.split()]
        self.tokens = list(dict.fromkeys(t for word in words for t in word))
        # A word of several tokens (access_token, order-123, a.b) must appear as written.
        phrases = list(dict.fromkeys(tuple(word) for word in words if len(word) > 1))
        self.phrase_query = " AND ".join(_quoted(" ".join(p)) for p in phrases) or None
        # On ASCII text unicode61 is simple (letters and digits, any case, make tokens),
        # so there a pattern says exactly what the tokenizer would, some 20x faster.
        self._ascii_patterns = [_phrase_pattern(p) for p in phrases]

    @property
    def empty(self) -> bool:
        return not self.tokens

    def index_query(self) -> str:
        """An FTS5 query for the index: each token alone, all required (an implicit AND)."""
        return " ".join(_quoted(t) for t in self.tokens)

    def rows_matching(self, rows: list[dict]) -> set[int]:
        """The ids of those ``rows`` whose decoded bodies hold every word of several
        tokens, each as its tokens side by side (a phrase)."""
        if self.phrase_query is None:
            return {row["id"] for row in rows}
        found, others = set(), []
        for row in rows:
            request = _indexed_text(row["request_body"], row["request_content_encoding"], row["request_headers"])
            response = _indexed_text(row["response_body"], row["response_content_encoding"], row["response_headers"])
            if request.isascii() and response.isascii():
                request, response = request.lower(), response.lower()
                if all(_ascii_phrase_in(request, p) or _ascii_phrase_in(response, p) for p in self._ascii_patterns):
                    found.add(row["id"])
            else:
                others.append((row["id"], request, response))
        if others:  # SQLite's tokenizer itself, in a scratch table that keeps positions
            conn = _scratch_db()
            with conn:
                conn.executemany("INSERT INTO bodies (rowid, request_body, response_body) VALUES (?, ?, ?)", others)
                found.update(r[0] for r in conn.execute("SELECT rowid FROM bodies WHERE bodies MATCH ?", [self.phrase_query]))
                conn.execute("DELETE FROM bodies")
        return found


def _phrase_pattern(tokens: tuple[str, ...]):
    """A pattern for the tokens side by side in lower-cased ASCII; it starts with the
    first token, so the regex engine scans for it in C (a look-behind would have it
    tried at every position, ~50x slower): the token boundary before is checked apart."""
    import re

    # A token of non-ASCII letters never matches ASCII text: right, it is not there.
    return re.compile("[^a-z0-9]+".join(re.escape(t) for t in tokens) + "(?![a-z0-9])")


_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _ascii_phrase_in(text: str, pattern) -> bool:
    found = pattern.search(text)
    while found is not None:
        start = found.start()
        if start == 0 or text[start - 1] not in _ALNUM:
            return True
        found = pattern.search(text, start + 1)  # not finditer: a match may overlap the refused one
    return False


# In headers, what could make a plain ASCII body's text differ from its bytes: a binary
# type, or a charset that does not read ASCII as ASCII (UTF-16, EBCDIC...).
_BINARY_MARKERS = ("image/", "audio/", "video/", "font/", "protobuf", "zip")
_ASCII_CHARSETS = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252"}
_CHARSET = None


def _plain_headers(headers: str) -> bool:
    global _CHARSET
    lowered = headers.lower()
    if any(marker in lowered for marker in _BINARY_MARKERS):
        return False
    if "charset" not in lowered:
        return True
    if _CHARSET is None:
        import re

        _CHARSET = re.compile(r"charset\s*=\s*[\\\"']*([^\"';,\\\s]*)")
    names = _CHARSET.findall(lowered)
    return len(names) == lowered.count("charset") and all(n in _ASCII_CHARSETS for n in names)


def _indexed_text(body, encoding, headers) -> str:
    """What the index was given for a body (``_text``), without decoding the commonest
    kind: no content-encoding, ASCII, no NUL, headers naming no binary type and no
    charset but one that reads ASCII as ASCII."""
    if (
        body
        and not encoding
        and isinstance(headers, str)
        and body.isascii()
        and not looks_binary(body[:INDEX_CAP])
        and _plain_headers(headers)
    ):
        return bytes(body[:INDEX_CAP]).decode("ascii")
    return _text(body, encoding, _json_text(headers))


def _json_text(headers) -> str:
    return headers if isinstance(headers, str) or headers is None else json.dumps(headers)
