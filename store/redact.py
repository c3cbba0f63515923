"""Secrets are replaced before anything is written.

A redacted value becomes ``REDACTED-<8 hex>``: a keyed fingerprint (HMAC-SHA256
with a per-user key kept outside the database, so a shared database does not
let anyone test password guesses) that lets ``diff`` tell equal from different.

The same name rule covers header names, JSON keys at any depth, form fields,
multipart fields and query parameters, in requests and responses alike.
"""

import hmac
import json
import os
import re
from functools import lru_cache
from hashlib import sha256
from pathlib import Path
from urllib.parse import unquote_plus

REDACTED_PREFIX = "REDACTED-"
_LINE_END = re.compile(r"(\r\n|\r|\n)")

# Normalised names (lower case, letters and digits only).
_SECRET_PARTS = (
    "password", "passwd", "secret", "apikey", "privatekey", "credential", "cookie", "authorization", "signature",
)  # fmt: skip
_SECRET_SUFFIXES = ("token", "sessionid", "sessid")
_SECRET_EXACT = {"auth", "pwd", "sid", "xauth"}
_NOT_SECRET = {"idempotencykey"}

# Cheap test on raw bytes: most bodies contain none of these and skip parsing.
# Every name is_secret_name accepts contains one of them (tests/test_redact.py
# checks it); lower() plus substring tests is 4-10x faster than one regex.
# The body is searched with its ASCII punctuation and spaces taken out, as names
# are normalised ("to_ken" and "p-wd" must not slip through).
_MAYBE_SECRET_WORDS = (b"pass", b"secret", b"token", b"key", b"credential", b"cookie", b"auth", b"sess", b"signature", b"pwd", b"sid")
_NOT_ALNUM = bytes(b for b in range(128) if not chr(b).isalnum())


@lru_cache(maxsize=4096)
def is_secret_name(name: str) -> bool:
    n = "".join(c for c in name.lower() if c.isalnum())
    if n in _NOT_SECRET:
        return False
    return n in _SECRET_EXACT or n.endswith(_SECRET_SUFFIXES) or any(p in n for p in _SECRET_PARTS)


def load_key() -> bytes:
    """The fingerprint key: ``$REPOST_KEY_FILE``, else ``~/.config/repost/fingerprint.key``."""
    path = Path(
        os.environ.get("REPOST_KEY_FILE")
        or Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "repost" / "fingerprint.key"
    )
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return path.read_bytes()  # another process made it first
    except OSError:
        return b"repost-unkeyed"  # no writable home: fingerprints still work, unkeyed
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    return path.read_bytes()


class Redactor:
    def __init__(self, key: bytes):
        self._key = key
        # In a query string or a URL inside text: a name cannot hold "/", "?" or ":",
        # so "https://x/reset-password?user=bob" names "user", not the whole URL.
        self._query_pair = re.compile(r"(^|[?&;])([^=&;#\s\"'/?:]+)=([^&;#\s\"']*)")
        # In a form body, a value runs to the next "&" whatever it holds.
        self._form_pair = re.compile(r"(^|&)([^=&]+)=([^&]*)")
        # A string value may be cut off by the end of the text (a body stored as its prefix,
        # a stream cut off): what arrived of a secret is a secret.
        self._json_pair = re.compile(
            r'"([^"\\]{1,100})"(\s*:\s*)("(?:[^"\\]|\\.)*(?:"|\\?\Z)|-?[0-9][0-9.eE+-]*|true|false)'
        )

    def fingerprint(self, value: str | bytes) -> str:
        if isinstance(value, str):
            value = _utf8(value)
        return REDACTED_PREFIX + hmac.new(self._key, value, sha256).hexdigest()[:8]

    # -- headers and URLs ------------------------------------------------------

    def header_value(self, name: str, value: str) -> str:
        if not is_secret_name(name) or value.startswith(REDACTED_PREFIX):
            return value  # not a secret, or redacted already (an import of an export)
        return self.fingerprint(value)

    def query(self, query: str) -> str:
        """Redact secret-named parameters in a query string, leaving the rest byte for byte."""
        return self._query_pair.sub(self._pair, query)

    def form(self, form: str) -> str:
        """Redact secret-named fields of an urlencoded form, leaving the rest byte for byte."""
        return self._form_pair.sub(self._pair, form)

    def _pair(self, m: re.Match) -> str:
        if not is_secret_name(unquote_plus(m.group(2))) or m.group(3).startswith(REDACTED_PREFIX):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}={self.fingerprint(unquote_plus(m.group(3)))}"

    # -- bodies ----------------------------------------------------------------

    def may_hold_secret(self, data: bytes) -> bool:
        low = data.lower().translate(None, _NOT_ALNUM)
        for word in _MAYBE_SECRET_WORDS:
            if word in low:
                return True
        return False

    def body(self, data: bytes, content_type: str) -> bytes | None:
        """Redacted bytes of a decoded body, or None when nothing needed redacting."""
        if not self.may_hold_secret(data):
            return None
        ctype = content_type.lower()
        text = data.decode("utf-8", "surrogateescape")
        if "multipart/" in ctype:
            new = self._multipart(text, content_type)
        elif "event-stream" in ctype:
            new = self._event_stream(text)
        elif "x-www-form-urlencoded" in ctype:
            new = self.form(text)
        else:
            new = None
            if "json" in ctype or text.lstrip()[:1] in ("{", "["):
                new = self._json_document(text)
                if new is None and "\n" in text.strip():
                    new = self._json_lines(text)
            if new is None:
                new = self.text(text)
        if new == text:
            return None
        return new.encode("utf-8", "surrogateescape")

    def _json_document(self, text: str) -> str | None:
        """The document redacted; the text itself when nothing changed; None if not JSON."""
        try:
            doc = json.loads(text)
        except ValueError:
            return None
        redacted = self.json_value(doc)
        if redacted == doc:
            return text  # re-serialised only when something changed: the stored bytes stay the wire bytes
        new = json.dumps(redacted, ensure_ascii=False)
        try:
            new.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate escape ("\ud83d", half an emoji): keep it escaped
            new = json.dumps(redacted)
        # The whitespace around the document stays (an NDJSON line's newline ends its event).
        return text[: len(text) - len(text.lstrip())] + new + text[len(text.rstrip()) :]

    def _event_stream(self, text: str) -> str:
        """Server-Sent Events, event by event: each event's data (its ``data:`` lines
        joined, as a reader sees it) redacted as a JSON document or as text, and written
        back as ``data:`` lines; a secret split over two lines is caught too. Nothing
        crosses a blank line, so the events stay where they were and pair up with their
        arrival times."""
        bom = "\ufeff" if text.startswith("\ufeff") else ""  # only at the very start, as readers take it
        parts = _LINE_END.split(text[len(bom) :])  # line, ending, line, ending, ..., last line
        out, block = [], []
        for line, end in zip(parts[0::2], [*parts[1::2], ""]):
            if line == "" and end:
                out += self._event_block(block)
                out.append((line, end))
                block = []
            else:
                block.append((line, end))
        out += self._event_block(block)
        return bom + "".join(line + end for line, end in out)

    def _event_block(self, block: list) -> list:
        data_at = [i for i, (line, _) in enumerate(block) if line.partition(":")[0] == "data"]
        skip = set(data_at)
        # Other fields and comments, line by line.
        block = [
            pair if i in skip or not self.may_hold_secret(_utf8(pair[0])) else (self.text(pair[0]), pair[1])
            for i, pair in enumerate(block)
        ]
        if not data_at:
            return block
        values = []
        for i in data_at:
            value = block[i][0].partition(":")[2]
            values.append(value[1:] if value.startswith(" ") else value)
        data = "\n".join(values)
        if not self.may_hold_secret(_utf8(data)):
            return block
        new = self._json_document(data)
        if new is None:  # text: JSON pairs (also split over lines), and name=value pairs at each line's start
            new = "\n".join(self.query(line) for line in self.text(data).split("\n"))
        if new == data:
            return block
        end = block[data_at[0]][1] or "\n"
        rewritten = [(f"data: {value}", end) for value in new.split("\n")]
        rewritten[-1] = (rewritten[-1][0], block[data_at[-1]][1])
        kept = [pair for i, pair in enumerate(block) if i not in skip]
        at = data_at[0]
        return kept[:at] + rewritten + kept[at:]

    def _json_lines(self, text: str) -> str | None:
        """NDJSON: every non-empty line a JSON document, each redacted; None if it is not that."""
        lines = text.split("\n")
        out = []
        for line in lines:
            if not line.strip():
                out.append(line)
                continue
            new = self._json_document(line)
            if new is None:
                return None
            out.append(new)
        return "\n".join(out)

    def json_value(self, value):
        if isinstance(value, dict):
            return {
                k: (self.fingerprint(json.dumps(v, sort_keys=True)) if not isinstance(v, str) else self.fingerprint(v))
                if is_secret_name(k) and v is not None and not _already(v)
                else self.json_value(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        if isinstance(value, str) and len(value) > 4 and self.may_hold_secret(_utf8(value)):
            return self.text(value)  # a URL, form or JSON document reflected in a string
        return value

    def text(self, text: str) -> str:
        """Text of unknown shape (NDJSON, truncated JSON, logs): JSON pairs and query pairs."""

        def json_pair(m: re.Match) -> str:
            if not is_secret_name(m.group(1)) or REDACTED_PREFIX in m.group(3):
                return m.group(0)
            return f'"{m.group(1)}"{m.group(2)}"{self.fingerprint(m.group(3).strip(chr(34)))}"'

        return self.query(self._json_pair.sub(json_pair, text))

    def _multipart(self, text: str, content_type: str) -> str:
        """Split on the declared boundary; redact the parts named like secrets."""
        m = re.search(r'boundary=(?:"([^"]+)"|([^;\s]+))', content_type, re.I)
        if not m:
            return self.text(text)
        delimiter = "--" + (m.group(1) or m.group(2))
        pieces = text.split(delimiter)
        for i, piece in enumerate(pieces[1:], 1):
            head, sep, value = piece.partition("\r\n\r\n")
            if not sep:
                head, sep, value = piece.partition("\n\n")
            name = re.search(r'\bname="([^"]*)"', head)
            if not sep or not name or not is_secret_name(name.group(1)):
                continue
            end = "\r\n" if value.endswith("\r\n") else "\n" if value.endswith("\n") else ""
            secret = value[: len(value) - len(end)]
            if secret and not secret.startswith(REDACTED_PREFIX):
                pieces[i] = head + sep + self.fingerprint(secret) + end
        return delimiter.join(pieces)


def _utf8(text: str) -> bytes:
    """Text back to bytes: raw bytes kept as surrogates come back as they were; a lone
    surrogate from a JSON escape ("\\ud83d") is encoded rather than raising."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _already(value) -> bool:
    return isinstance(value, str) and value.startswith(REDACTED_PREFIX)
