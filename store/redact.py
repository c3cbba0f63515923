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

from .errors import StoreError

REDACTED_PREFIX = "REDACTED-"
_LINE_END = re.compile(r"(\r\n|\r|\n)")
# Where one event ends and the next begins: a run of two or more line ends (a line's end,
# then blank lines). A run of CR and LF of two or more characters is one, except a lone
# "\r\n" (a single line end). One character class: a 10 MB run costs no backtracking state.
_BLANK_LINES = re.compile(r"[\r\n]{2,}")
_ESCAPED_LETTER = re.compile(rb"\\u00(?:[46][1-9a-fA-F]|[57][0-9aA])")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# Strings (skipped whole, escapes and all) and brackets, for finding where a container ends.
_CONTAINER_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"?|[\[\]{}]')

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


MIN_KEY_BYTES = 16
UNKEYED = REDACTED_PREFIX + "unkeyed"  # what a secret becomes when no key can be had: no fingerprint at all


class FingerprintKeyError(StoreError):
    """The fingerprint key cannot be made or read."""


def key_path() -> Path:
    """``$REPOST_KEY_FILE``, else ``$XDG_CONFIG_HOME/repost/fingerprint.key`` (``~/.config/...``)."""
    named = os.environ.get("REPOST_KEY_FILE")
    if named:
        return Path(named)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "repost" / "fingerprint.key"


def load_key() -> bytes:
    """The fingerprint key, made on first use (32 random bytes, 0600, in a 0700 folder).

    A key that cannot be made or read, or one too short to be secret (an empty file), is an
    error: falling back to a known key would let anyone with the database test guesses offline.
    """
    path = key_path()
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = _make_key(path)
    except OSError as e:
        raise FingerprintKeyError(f"cannot read the fingerprint key {path}: {e.strerror or e}") from None
    if len(key) < MIN_KEY_BYTES:
        raise FingerprintKeyError(
            f"the fingerprint key {path} holds {len(key)} bytes, fewer than {MIN_KEY_BYTES}: "
            "remove it to have a new one made, or set REPOST_KEY_FILE to another file"
        )
    return key


def _make_key(path: Path) -> bytes:
    try:
        if not os.environ.get("REPOST_KEY_FILE"):
            # repost's own folder: private, even if an older repost made it 0755.
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(path.parent, 0o700)
        elif not path.parent.exists():
            path.parent.mkdir(mode=0o700, parents=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return path.read_bytes()  # another process made it first
    except OSError as e:
        raise FingerprintKeyError(
            f"cannot make the fingerprint key {path}: {e.strerror or e}; set REPOST_KEY_FILE to a writable path"
        ) from None
    with os.fdopen(fd, "wb") as f:
        f.write(os.urandom(32))
    return path.read_bytes()


class Redactor:
    def __init__(self, key: bytes | None):
        """``key`` None: no key could be had; every secret becomes the same unkeyed marker."""
        self._key = key
        # In a query string or a URL inside text: a name cannot hold "/", "?" or ":",
        # so "https://x/reset-password?user=bob" names "user", not the whole URL.
        self._query_pair = re.compile(r"(^|[?&;])([^=&;#\s\"'/?:]+)=([^&;#\s\"']*)")
        # In a form body, a value runs to the next "&" whatever it holds.
        self._form_pair = re.compile(r"(^|&)([^=&]+)=([^&]*)")
        # A JSON pair in text. Names and strings stay on one line (JSON escapes newlines), and
        # are matched possessively: a 10 MB string with no end must not cost gigabytes of
        # backtracking. A string may be cut off by the end of the text (a body stored as its
        # prefix, a stream cut off): what arrived of a secret is a secret.
        name = r'"((?:[^"\\\r\n]|\\.){1,100}+)"'  # at most 100 characters, as before
        string = r'"(?:[^"\\\r\n]++|\\.)*+(?:"|\\?\Z)'
        # Each also matches any other whole string (group 1 None), so that a match never
        # starts at a string's closing quote: '"a":[":"]"token":"x"' must not hide the token.
        plain = r'|"(?:[^"\\\r\n]++|\\.)*+"'
        self._json_pair = re.compile(name + r"(\s*:\s*)(" + string + r"|-?[0-9][0-9.eE+-]*|true|false)" + plain)
        # A secret name whose value is an array or an object: redacted to its end (or the text's).
        self._json_container = re.compile(name + r"(\s*:\s*)(?=[\[{])" + plain)

    def fingerprint(self, value: str | bytes) -> str:
        if self._key is None:
            return UNKEYED
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
        # A letter written as a JSON escape ("\u0074oken") hides a name from the words above.
        return b"\\u00" in data and _ESCAPED_LETTER.search(data) is not None

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
        """The document redacted; the text itself when nothing changed; None if not JSON
        (or JSON this cannot redact safely: a name twice, nesting deeper than Python recurses)."""
        twice = []

        def pairs(items: list) -> dict:
            obj = dict(items)
            if len(obj) < len(items):
                twice.append(True)
            return obj

        try:
            doc = json.loads(text, object_pairs_hook=pairs)
            redacted = self.json_value(doc)
        except (ValueError, RecursionError):
            return None
        if twice:  # a reader may take either value of a name given twice: the text pass sees every pair
            return None
        if redacted == doc:
            return text  # re-serialised only when something changed: the stored bytes stay the wire bytes
        if _SURROGATE_ESCAPE.search(text):
            # "\ud83d" (half an emoji) must stay an escape, not become raw (invalid) UTF-8.
            new = json.dumps(redacted)
        else:
            new = json.dumps(redacted, ensure_ascii=False)
        # The whitespace around the document stays (an NDJSON line's newline ends its event).
        return text[: len(text) - len(text.lstrip())] + new + text[len(text.rstrip()) :]

    def _event_stream(self, text: str) -> str:
        """Server-Sent Events, event by event: each event's data (its ``data:`` lines
        joined, as a reader sees it) redacted as a JSON document or as text, and written
        back as ``data:`` lines; a secret split over two lines is caught too. Nothing
        crosses a blank line, so the events stay where they were and pair up with their
        arrival times. Events with nothing that looks secret are not even split into lines."""
        bom = "\ufeff" if text.startswith("\ufeff") else ""  # only at the very start, as readers take it
        out, pos = [bom], len(bom)
        for m in _BLANK_LINES.finditer(text, pos):
            if m.group() == "\r\n":
                continue
            out += [self._event_text(text[pos : m.start()]), m.group()]
            pos = m.end()
        out.append(self._event_text(text[pos:]))
        return "".join(out)

    def _event_text(self, event: str) -> str:
        if not event or not self.may_hold_secret(_utf8(event)):
            return event
        parts = _LINE_END.split(event)  # line, ending, line, ending, ..., last line
        block = list(zip(parts[0::2], [*parts[1::2], ""]))
        return "".join(line + end for line, end in self._event_block(block))

    def _event_block(self, block: list) -> list:
        data_at = [i for i, (line, _) in enumerate(block) if line.partition(":")[0] == "data"]
        skip = set(data_at)
        # Other fields and comments, line by line.
        block = [
            pair if i in skip or not self.may_hold_secret(_utf8(pair[0])) else (self._field(pair[0]), pair[1])
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
            new = "\n".join(self._line(line) for line in self.text(data).split("\n"))
        if new == data:
            return block
        kept = [line for i, (line, _) in enumerate(block) if i not in skip]
        at = data_at[0]
        lines = kept[:at] + [f"data: {value}" for value in new.split("\n")] + kept[at:]
        # Line ends by position: the event's last line keeps the event's (none: the blank
        # lines after it are outside), every other line the event's first line end.
        end = block[0][1] or "\n"
        return [(line, end) for line in lines[:-1]] + [(lines[-1], block[-1][1])]

    def _field(self, line: str) -> str:
        """A field other than data, or a comment: the redacted value after its name."""
        name, colon, value = line.partition(":")
        return name + colon + self._line(value) if colon else self.text(line)

    def _line(self, line: str) -> str:
        """A line of text, a name=value pair at its start included (after any spaces)."""
        rest = line.lstrip(" ")
        return line[: len(line) - len(rest)] + self.text(rest)

    def _json_lines(self, text: str) -> str | None:
        """NDJSON: each non-empty line a JSON document, redacted; the last may be cut off
        (redacted as text, on its own). None if it is not that (pretty-printed JSON cut off,
        say: the text pass then sees pairs and arrays across lines)."""
        lines = text.split("\n")
        last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
        out = []
        for i, line in enumerate(lines):
            if not line.strip():
                out.append(line)
                continue
            new = self._json_document(line)
            if new is None:
                if i != last or i == 0:
                    return None
                new = self.text(line)
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
            if m.group(1) is None or not is_secret_name(_unescaped(m.group(1))) or REDACTED_PREFIX in m.group(3):
                return m.group(0)  # a plain string, or a pair that is not secret
            return f'"{m.group(1)}"{m.group(2)}"{self.fingerprint(m.group(3).strip(chr(34)))}"'

        return self.query(self._containers(self._json_pair.sub(json_pair, text)))

    def _containers(self, text: str) -> str:
        """Arrays and objects under a secret name, fingerprinted whole (to the text's end if cut off)."""
        out, pos = [], 0
        for m in self._json_container.finditer(text):
            if m.start() < pos or m.group(1) is None or not is_secret_name(_unescaped(m.group(1))):
                continue
            end = _container_end(text, m.end())
            out += [text[pos : m.end()], f'"{self.fingerprint(text[m.end() : end])}"']
            pos = end
        return "".join(out) + text[pos:] if out else text

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
            if not sep:
                continue
            if not name or not is_secret_name(name.group(1)):
                if self.may_hold_secret(_utf8(value)):  # a JSON or form document in a part
                    pieces[i] = head + sep + self.text(value)
                continue
            end = "\r\n" if value.endswith("\r\n") else "\n" if value.endswith("\n") else ""
            secret = value[: len(value) - len(end)]
            if secret and not secret.startswith(REDACTED_PREFIX):
                pieces[i] = head + sep + self.fingerprint(secret) + end
        return delimiter.join(pieces)


def _container_end(text: str, start: int) -> int:
    """Where the JSON array or object opening at ``start`` ends (its close, or the text's end)."""
    depth = 0
    for m in _CONTAINER_TOKEN.finditer(text, start):
        token = m.group()
        if token in "[{":
            depth += 1
        elif token in "]}":
            depth -= 1
            if depth == 0:
                return m.end()
    return len(text)


def _unescaped(name: str) -> str:
    """A JSON name as a reader sees it ("\\u0074oken" is "token")."""
    if "\\" not in name:
        return name
    try:
        return json.loads(f'"{name}"')
    except ValueError:
        return name


def _utf8(text: str) -> bytes:
    """Text back to bytes: raw bytes kept as surrogates come back as they were; a lone
    surrogate from a JSON escape ("\\ud83d") is encoded rather than raising."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _already(value) -> bool:
    return isinstance(value, str) and value.startswith(REDACTED_PREFIX)
