"""Secrets are replaced before anything is written.

A redacted value becomes ``REDACTED-<8 hex>``: a keyed fingerprint (HMAC-SHA256
with a per-user key kept outside the database, so a shared database does not
let anyone test password guesses) that lets ``diff`` tell equal from different.

The same name rule covers header names, JSON keys at any depth, form fields,
multipart fields and query parameters, in requests and responses alike.
"""

import codecs
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

# -- what counts as a secret ------------------------------------------------------------
#
# The one list of secret names, kept here and printed in the README ("Secrets"; the test
# tests/test_redact.py::test_readme_lists_every_secret_name keeps the two in step).
# Names are compared normalised: lower case, letters and digits only ("X-Api-Key",
# "x_api_key" and "apiKey" are all "xapikey"/"apikey").
#
# Header names: those OWASP names as credentials in its REST Security and Session
# Management cheat sheets, and those the major API vendors document for keys and tokens.
SECRET_HEADERS = {
    "authorization": "RFC 9110",
    "proxy-authorization": "RFC 9110",
    "authentication": "used instead of Authorization by some APIs",
    "cookie": "RFC 6265",
    "set-cookie": "RFC 6265",
    "x-api-key": "AWS API Gateway, Anthropic, many others",
    "api-key": "Azure OpenAI",
    "x-auth-key": "Cloudflare",
    "x-auth-token": "OpenStack, OWASP",
    "x-access-token": "common",
    "x-session": "common (session headers, OWASP Session Management)",
    "x-session-token": "common",
    "x-csrf-token": "OWASP CSRF cheat sheet",
    "x-xsrf-token": "Angular",
    "ocp-apim-subscription-key": "Azure API Management",
    "x-functions-key": "Azure Functions",
    "x-goog-api-key": "Google Cloud",
    "x-amz-security-token": "AWS",
    "x-vault-token": "HashiCorp Vault",
    "private-token": "GitLab",
    "x-gitlab-token": "GitLab webhooks",
    "x-shopify-access-token": "Shopify",
    "dd-api-key": "Datadog",
    "dd-application-key": "Datadog",
    "x-algolia-api-key": "Algolia",
    "x-rapidapi-key": "RapidAPI",
    "x-hub-signature": "GitHub webhooks",
    "x-hub-signature-256": "GitHub webhooks",
    "stripe-signature": "Stripe webhooks",
    "x-slack-signature": "Slack",
    "x-twilio-signature": "Twilio",
}
# Any header whose name, normalised, ends in "key" or "auth", starts with "auth" or "x-auth"
# (not "author"), or holds "session" is secret as well (X-Foo-Key, X-Auth-User, X-Session-Id),
# except these: they carry no credential.
NOT_SECRET_HEADERS = {"idempotency-key", "sec-websocket-key", "www-authenticate", "proxy-authenticate", "authentication-info"}

# Field names (JSON keys at any depth, form and multipart fields, query and path parameters,
# and header names too): a name that contains one of these ...
SECRET_NAME_PARTS = (
    "password", "passwd", "passphrase", "secret", "credential", "cookie", "authorization", "authentication",
    "signature", "apikey", "privatekey", "accesskey", "secretkey", "authkey", "sessionkey", "subscriptionkey",
    "signingkey", "encryptionkey", "masterkey", "clientkey", "appkey", "consumerkey", "licensekey", "accountkey",
)  # fmt: skip
# ... or ends in one of these ...
SECRET_NAME_SUFFIXES = ("token", "sessionid", "sessid", "jwt", "pincode")
# ... or is one of these.
SECRET_NAME_EXACT = {"auth", "xauth", "pwd", "pass", "pin", "sid", "jwt", "otp"}
# As query, form, path or multipart parameters also these (a JSON "key" or "session" is
# too often something else: a translation key, an object holding a session's details).
SECRET_PARAMS_EXACT = {"key", "sig", "session"}
# Named like a secret, but never one.
NOT_SECRET_NAMES = {"idempotencykey"}

# Secrets recognised by their shape, whatever their name (a header, a JSON string, text):
# an Authorization-style credential, a JWT, and the key formats of major vendors.
TOKEN_SHAPES = {  # what it is: (where it starts, in lower case; the pattern)
    "Bearer <token> (RFC 6750), with a digit or punctuation in the token": (
        ("bearer",), r"[Bb](?<!\w[Bb])[Ee][Aa][Rr][Ee][Rr]\s+(?=[\w.~+/=-]*[\d.~+/=_-])[\w.~+/=-]{8,}"),
    "Basic <base64 of user:password> (RFC 7617)": (("basic",), r"[Bb](?<!\w[Bb])[Aa][Ss][Ii][Cc]\s+[A-Za-z0-9+/]{6,}={0,2}"),
    "JWT / JWS / JWE (eyJ...)": (("eyj",), r"eyJ(?<!\weyJ)[\w-]{6,}\.[\w-]{6,}(?:\.[\w-]*)*"),
    "OpenAI / Anthropic keys (sk-...)": (("sk-",), r"sk-(?<!\wsk-)[\w-]{16,}"),
    "Stripe secret and restricted keys (sk_live_, rk_test_, ...)": (("k_live_", "k_test_"), r"[sr]k_(?<!\w[sr]k_)(?:live|test)_\w{10,}"),
    "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)": (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"), r"g(?<!\wg)h(?:[pousr]_\w{20,}|ithub_pat_\w{20,})"),
    "GitLab tokens (glpat-)": (("glpat-",), r"glpat-(?<!\wglpat-)[\w-]{20,}"),
    "Slack tokens (xoxb-, xoxp-, xoxa-, xoxr-, xoxs-)": (("xox",), r"xox(?<!\wxox)[abprs]-[\w-]{10,}"),
    "AWS access key ids (AKIA..., ASIA...)": (("akia", "asia"), r"A(?<!\wA)(?:KIA|SIA)[0-9A-Z]{16}\b"),
    "Google API keys (AIza...)": (("aiza",), r"AIza(?<!\wAIza)[\w-]{30,}"),
    "Hugging Face tokens (hf_)": (("hf_",), r"hf_(?<!\whf_)[A-Za-z0-9]{30,}"),
    "npm tokens (npm_)": (("npm_",), r"npm_(?<!\wnpm_)[A-Za-z0-9]{30,}"),
    "SendGrid keys (SG.x.y)": (("sg.",), r"SG\.(?<!\wSG\.)[\w-]{16,}\.[\w-]{16,}"),
    "PEM private keys": (
        ("private key",),
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----(?:[^-]|-(?!----END))*+(?:-----END [A-Z ]*PRIVATE KEY-----)?"),
}  # fmt: skip

_NORMAL_SECRET_HEADERS = frozenset("".join(c for c in n if c.isalnum()) for n in SECRET_HEADERS)
_NORMAL_NOT_SECRET_HEADERS = frozenset("".join(c for c in n if c.isalnum()) for n in NOT_SECRET_HEADERS)
# One pass per shape, each only where one of its starts is: one pattern of all of them was
# tried at every character (11 s for 10 MB). Each pattern begins with a literal or a class
# (the word boundary is a lookbehind after it), so the regex engine skips ahead to it.
_TOKEN_PASSES = [(starts, re.compile(pattern)) for starts, pattern in TOKEN_SHAPES.values()]
_SCHEME_TOKEN = re.compile(r"([A-Za-z]+\s+)(.*)", re.S)

# Cheap test on raw bytes: most bodies contain none of these and skip parsing.
# Every name is_secret_name accepts contains one of them (tests/test_redact.py
# checks it); lower() plus substring tests is 4-10x faster than one regex.
# The body is searched with its ASCII punctuation and spaces taken out, as names
# are normalised ("to_ken" and "p-wd" must not slip through).
_MAYBE_SECRET_WORDS = (
    b"pass", b"secret", b"token", b"key", b"credential", b"cookie", b"auth", b"sess", b"signature", b"pwd", b"sid",
    b"jwt", b"pincode", b"bearer", b"basic", b"eyj", b"akia", b"aiza", b"xox", b"glpat", b"githubpat",
)  # fmt: skip
# Token shapes whose prefix has punctuation or case that matters: searched in the raw bytes.
_MAYBE_TOKEN_PREFIXES = (b"sk-", b"k_live_", b"k_test_", b"hp_", b"ho_", b"hu_", b"hs_", b"hr_", b"ASIA", b"hf_", b"npm_", b"SG.")
# Short names ("pin", "otp", "sig") are common inside words: only standing alone.
_SHORT_NAMES = (b"pin", b"otp", b"sig")
_NOT_ALNUM = bytes(b for b in range(128) if not chr(b).isalnum())


def _normal(name: str) -> str:
    return "".join(c for c in name.lower() if c.isalnum())


def _secret_normal(n: str) -> bool:
    if n in NOT_SECRET_NAMES:
        return False
    return (
        n in SECRET_NAME_EXACT or n in _NORMAL_SECRET_HEADERS  # "dd-application-key" as a JSON key too
        or n.endswith(SECRET_NAME_SUFFIXES) or any(p in n for p in SECRET_NAME_PARTS)
    )  # fmt: skip


@lru_cache(maxsize=4096)
def _is_secret_name_cached(name: str) -> bool:
    return _secret_normal(_normal(name))


def is_secret_name(name: str) -> bool:
    """A JSON key, form or multipart field, parameter or header named like a secret."""
    if len(name) > 200:  # a very long name is still a name, but not worth caching
        return _secret_normal(_normal(name))
    return _is_secret_name_cached(name)


@lru_cache(maxsize=4096)
def _is_secret_param_cached(name: str) -> bool:
    n = _normal(name)
    return n in SECRET_PARAMS_EXACT or _secret_normal(n)


def is_secret_param(name: str) -> bool:
    """A query, form, path or multipart parameter: the field rule, plus "key", "sig", "session"."""
    if len(name) > 200:
        n = _normal(name)
        return n in SECRET_PARAMS_EXACT or _secret_normal(n)
    return _is_secret_param_cached(name)


@lru_cache(maxsize=4096)
def is_secret_header(name: str) -> bool:
    """A header: the field rule, SECRET_HEADERS, and any name ending in "key" or "auth",
    starting with "auth" or "x-auth" (not "author"), or holding "session" (X-Auth-Key,
    X-Session), but NOT_SECRET_HEADERS."""
    n = _normal(name)
    if n in _NORMAL_NOT_SECRET_HEADERS:
        return False
    if n in _NORMAL_SECRET_HEADERS or n.endswith(("key", "auth")) or "session" in n:
        return True
    if n.startswith(("auth", "xauth")) and not n.startswith(("author", "xauthor")):
        return True
    return _secret_normal(n)


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


class CannotRedact(Exception):
    """A body that may hold a secret but cannot be read to redact it (a charset that does not
    decode it): it must not be stored as it came."""


class Redactor:
    def __init__(self, key: bytes | None, rules=None):
        """``key`` None: no key could be had; every secret becomes the same unkeyed marker.
        ``rules``: the user's own (store/redact_rules.py UserRules), on top of the table here;
        make it with ``redact_rules.redactor_for(conn)``."""
        self._key = key
        self.rules = rules or None
        if self.rules is None:  # the table alone: the module's cached tests, no extra call
            self._secret_name = self._secret_key = is_secret_name
            self._secret_param = is_secret_param
            self._secret_header = is_secret_header
        else:
            self._secret_name = self._user_secret_name
            self._secret_key = self._user_secret_key
            self._secret_param = self._user_secret_param
            self._secret_header = self._user_secret_header
            self.may_hold_secret = self._user_may_hold_secret
        # Where a parameter's name starts (after "?", "&" or ";", or at the start) and ends ("=").
        # A name cannot hold "/", "?" or ":", so "https://x/reset-password?user=bob" names "user".
        self._param_name = re.compile(r"(^|[?&;#])([^=&;#\s\"'/?:<>]+)=")
        # In text, a pair may also start a line or follow a space, a quote or a bracket ("x password=y").
        self._text_param_name = re.compile(r"(^|[?&;#\s\"'(\[{,])([^=&;#\s\"'/?:<>(){}\[\],]+)=", re.M)
        # A secret value in a real query string runs to the next "&" (or "#", or the end);
        # where there is no "&", ";" separates too, but only before another "name=".
        self._value_amp = re.compile(r"[^&#]*")
        self._value_semi = re.compile(r"(?:[^&#;]|;(?![^=;&#]*=))*")
        # In text (a URL in a log line, a JSON string), also whitespace or an angle bracket ends
        # it (neither is legal in a URL), and a double quote that closes a JSON string (one
        # followed by a comma, a bracket, a colon or the end); a single quote does not.
        self._value_text = re.compile(r'(?:[^&#;\s"<>]|"(?!\s*(?:[,}\]:]|\Z))|;(?![^=;&#\s"<>]*=))*')
        # A parameter's value, for token shapes written percent-encoded.
        self._encoded_value = re.compile(r"(=)([^&;#/?\s]*)")
        # A path parameter: "/x;jsessionid=ABC/y".
        self._path_param = re.compile(r";([^=;/?#]+)=([^;/?#]*)")
        # In a form body, a value runs to the next "&" whatever it holds.
        self._form_pair = re.compile(r"(^|&)([^=&]+)=([^&]*)")
        # A JSON pair in text. Names and strings stay on one line (JSON escapes newlines), and
        # are matched possessively: a 10 MB string with no end must not cost gigabytes of
        # backtracking. A string may be cut off by the end of the text (a body stored as its
        # prefix, a stream cut off): what arrived of a secret is a secret.
        name = r'"((?:[^"\\\r\n]++|\\.)++)"'
        string = r'"(?:[^"\\\r\n]++|\\.)*+(?:"|\\?\Z)'
        # Each also matches any other whole string (group 1 None), so that a match never
        # starts at a string's closing quote: '"a":[":"]"token":"x"' must not hide the token.
        plain = r'|"(?:[^"\\\r\n]++|\\.)*+(?:"|\\?\Z)'
        self._json_pair = re.compile(name + r"(\s*:\s*)(" + string + r"|-?[0-9][0-9.eE+-]*|true|false)" + plain)
        # A secret name whose value is an array or an object: redacted to its end (or the text's).
        self._json_container = re.compile(name + r"(\s*:\s*)(?=[\[{])" + plain)
        # An unquoted name and a value: GraphQL arguments (login(password: "x")), a header line
        # in text ("Authorization: Bearer x"), YAML. An unquoted value runs to the line's end or a
        # comma or closing bracket ("pin: 1234)").
        # (Found from each colon backwards: a pattern tried at every character cost seconds
        # for 10 MB of text.)
        self._loose_value = re.compile(
            r"""[ \t]*("(?:[^"\\\r\n]++|\\.)*+(?:"|\Z)|'(?:[^'\\\r\n]++|\\.)*+(?:'|\Z)|[^\s"',)}\]][^\r\n"',)}\]]*)"""
        )

    def with_rules(self, rules) -> "Redactor":
        """The same key with other user rules (the recorder's, when the rules changed)."""
        return Redactor(self._key, rules)

    # -- the user's rules (repost redact add) ------------------------------------------

    def _user_secret_name(self, name: str) -> bool:
        return is_secret_name(name) or self.rules.name(_normal(name))

    def _user_secret_key(self, name: str) -> bool:
        """A JSON key: a path's last name is not enough (the path is followed, _user_paths)."""
        return is_secret_name(name) or _normal(name) in self.rules.fields

    def _user_secret_param(self, name: str) -> bool:
        return is_secret_param(name) or self.rules.param(name)

    def _user_secret_header(self, name: str) -> bool:
        return is_secret_header(name) or name.lower() in self.rules.headers

    def _user_may_hold_secret(self, data: bytes) -> bool:
        if Redactor.may_hold_secret(self, data):
            return True
        if self.rules.always_look:
            return True
        squeezed = data.lower().translate(None, _NOT_ALNUM)
        if any(word in squeezed for word in self.rules.words):
            return True
        return any(p.search(data) for p in self.rules.patterns)

    def _user_patterns(self, text: str) -> str:
        """Every match of a user's pattern, fingerprinted (a match inside a fingerprint left
        alone). RE2 runs over the UTF-8 bytes (store/redact_rules.py says why)."""
        data = _utf8(text)
        new = data
        for pattern in self.rules.patterns:
            if pattern.search(new):
                new = pattern.sub(lambda m, s=new: self._pattern_match(m, s), new)
        return text if new is data else new.decode("utf-8", "surrogateescape")

    def _pattern_match(self, m, s: bytes) -> bytes:
        found = m.group()
        if not found:
            return found
        start, prefix = m.start(), REDACTED_PREFIX.encode()
        marker = s.rfind(prefix, max(0, start - len(prefix) - 8), m.end())
        if marker != -1 and marker <= start and m.end() <= marker + len(prefix) + 8:
            return found  # inside a fingerprint already
        return self.fingerprint(found).encode()

    def _user_paths(self, value, at: tuple):
        """JSON values at the paths the user's field rules name, fingerprinted."""
        if isinstance(value, dict):
            items = []
            for k, v in value.items():
                here = (*at, k)
                items.append((k, self._secret_json(v) if self.rules.path(here) else self._user_paths(v, here)))
            return _Pairs(items) if isinstance(value, _Pairs) else dict(items)
        if isinstance(value, list):
            out = []
            for i, v in enumerate(value):
                here = (*at, str(i))
                out.append(self._secret_json(v) if self.rules.path(here) else self._user_paths(v, here))
            return out
        return value

    def fingerprint(self, value: str | bytes) -> str:
        if self._key is None:
            return UNKEYED
        if isinstance(value, str):
            value = _utf8(value)
        return REDACTED_PREFIX + hmac.new(self._key, value, sha256).hexdigest()[:8]

    # -- headers and URLs ------------------------------------------------------

    def header_value(self, name: str, value: str, check_value: bool = True) -> str:
        """A header's value: fingerprinted whole when the name is secret; else its secrets
        (a URL's parameters, a token's shape) redacted in place. ``check_value=False`` when
        the caller knows no header value looks secret."""
        if value.startswith(REDACTED_PREFIX):
            return value  # redacted already (an import of an export)
        if self._secret_header(name):
            return self.fingerprint(value)
        if not check_value or not self.may_hold_secret(_utf8(value)):
            return value
        if name.lower() in URL_HEADERS:
            return self.url(value)
        return self._unknown(value)  # JSON ([["X-Api-Key", "..."]]), a form, text

    def url(self, url: str) -> str:
        """A URL or request target: path parameters, query and fragment parameters, token shapes."""
        rest, hash_, fragment = url.partition("#")
        path, q, query = rest.partition("?")
        out = self.path(path) + q + (self.query(query) if q else "")
        return out + hash_ + (self.query(fragment) if hash_ else "")

    def path(self, path: str) -> str:
        if ";" in path:
            path = self._path_param.sub(self._path_pair, path)
        return self.tokens(self._encoded_tokens(path))

    def _path_pair(self, m: re.Match) -> str:
        if not self._secret_param(unquote_plus(m.group(1))) or m.group(2).startswith(REDACTED_PREFIX):
            return m.group(0)
        return f";{m.group(1)}={self.fingerprint(unquote_plus(m.group(2)))}"

    def query(self, query: str) -> str:
        """Redact secret-named parameters in a query string, leaving the rest byte for byte."""
        value = self._value_amp if "&" in query else self._value_semi
        return self.tokens(self._encoded_tokens(self._params(query, value)))

    def form(self, form: str) -> str:
        """Redact secret-named fields of an urlencoded form, leaving the rest byte for byte."""
        return self.tokens(self._encoded_tokens(self._form_pair.sub(self._form_field, form)))

    def _form_field(self, m: re.Match) -> str:
        if not self._secret_param(unquote_plus(m.group(2))) or m.group(3).startswith(REDACTED_PREFIX):
            return m.group(0)
        return f"{m.group(1)}{m.group(2)}={self.fingerprint(unquote_plus(m.group(3)))}"

    def _params(self, text: str, value: re.Pattern, names: re.Pattern | None = None) -> str:
        """Each "name=" whose name is secret: its value (as far as ``value`` reaches) fingerprinted.
        A value that is not secret is not skipped: a name inside it ("a=1;token=x") still counts."""
        out, pos = [], 0
        for m in (names or self._param_name).finditer(text):
            if m.start() < pos or not self._secret_param(unquote_plus(m.group(2))):
                continue
            end = value.match(text, m.end()).end()
            secret = text[m.end() : end]
            if secret and not secret.startswith(REDACTED_PREFIX):
                out += [text[pos : m.end()], self.fingerprint(unquote_plus(secret))]
                pos = end
        return "".join(out) + text[pos:] if out else text

    def _encoded_tokens(self, text: str) -> str:
        """A value percent-encoded ("Bearer%20x", a PEM key with %0A) hides a token's shape:
        each such value is decoded, and fingerprinted whole if it holds one."""
        if "%" not in text and "+" not in text:
            return text
        return self._encoded_value.sub(self._encoded_token, text)

    def _encoded_token(self, m: re.Match) -> str:
        value = m.group(2)
        if ("%" not in value and "+" not in value) or value.startswith(REDACTED_PREFIX):
            return m.group()
        plain = unquote_plus(value)
        if self.tokens(plain) == plain:
            return m.group()
        return m.group(1) + self.fingerprint(plain)

    def tokens(self, text: str) -> str:
        """Secrets known by their shape (a bearer token, a JWT, a vendor's key), whatever their name."""
        low = text.lower()
        for starts, shape in _TOKEN_PASSES:
            if any(start in low for start in starts):
                text = shape.sub(self._token, text)
        if self.rules is not None and self.rules.patterns:
            text = self._user_patterns(text)
        return text

    def _token(self, m: re.Match) -> str:
        found = m.group()
        scheme, value = "", found
        if found[:6].lower() in ("bearer", "basic "):  # "Bearer x", "Basic x": the scheme stays readable
            scheme, value = _SCHEME_TOKEN.match(found).groups()
            if scheme.lower().startswith("basic") and not _is_basic_credential(value):
                return found
        if value.startswith(REDACTED_PREFIX):
            return found
        return scheme + self.fingerprint(value)

    # -- bodies ----------------------------------------------------------------

    def may_hold_secret(self, data: bytes) -> bool:
        if b"\x00" in data:  # UTF-16 or -32 text (or its echo): the ASCII letters without the NULs
            data = data.replace(b"\x00", b"")
        escapes = b"\\u00" in data
        if escapes and b"\\u0000" in data:  # the same escaped in a JSON string
            data = data.replace(b"\\u0000", b"")
        low = data.lower()
        squeezed = low.translate(None, _NOT_ALNUM)
        for word in _MAYBE_SECRET_WORDS:
            if word in squeezed:
                return True
        for prefix in _MAYBE_TOKEN_PREFIXES:
            if prefix in data:
                return True
        if (b"pin" in low or b"otp" in low or b"sig" in low) and _short_name_in(low):
            return True
        # A letter written as a JSON escape ("\u0074oken") hides a name from the words above.
        return escapes and _ESCAPED_LETTER.search(data) is not None

    def body(self, data: bytes, content_type: str) -> bytes | None:
        """Redacted bytes of a decoded body, or None when nothing needed redacting.

        Text in a charset other than UTF-8 (or ASCII) is decoded with it first and written back
        in it, so the stored Content-Type stays true. Raises CannotRedact for a body that may
        hold a secret but does not decode in its charset."""
        if _binary(content_type, data):
            return None  # an image, an archive, protobuf: not text, and text patterns would corrupt it
        codec = _codec_of(content_type, data)
        if codec is None:
            if not self.may_hold_secret(data):
                return None
            text = data.decode("utf-8", "surrogateescape")
        else:
            try:
                text = data.decode(codec)
            except (UnicodeError, LookupError, ValueError) as e:  # "charset=undefined" raises UnicodeError
                if not self.may_hold_secret(data):
                    return None
                if b"\x00" in data[:64]:  # wide text this cannot read: not stored as it came
                    raise CannotRedact(f"not valid {codec}") from e
                codec, text = None, data.decode("utf-8", "surrogateescape")  # a wrong or unknown label
            if not self.may_hold_secret(_utf8(text)):
                if b"\x00" in data[:64]:
                    return None
                # Mislabelled (ASCII text declared UTF-16 reads as CJK): read it as UTF-8 too.
                codec, text = None, data.decode("utf-8", "surrogateescape")
        new = self._text_body(text, content_type)
        if self.rules is not None and self.rules.patterns:
            new = self._user_patterns(new)  # also where no pass above looks (JSON keys, numbers)
        if new == text:
            return None
        if codec is None:
            return _utf8(new)
        try:
            return new.encode(codec)
        except (UnicodeError, LookupError, ValueError) as e:
            raise CannotRedact(f"cannot write the redacted text back as {codec}") from e

    def _text_body(self, text: str, content_type: str) -> str:
        ctype = content_type.lower()
        if "multipart/" in ctype:
            return self._multipart(text, content_type)
        if "event-stream" in ctype:
            return self._event_stream(text)
        if "x-www-form-urlencoded" in ctype:
            return self.form(text)
        return self._unknown(text, "json" in ctype)

    def _unknown(self, text: str, json_hint: bool = False) -> str:
        """Text whose shape is guessed: a JSON document, NDJSON, a multipart body (as an echo
        service reflects one, with no Content-Type to name its boundary), else text."""
        if "\x00" in text[:8] and text.count("\x00") * 4 > len(text):
            # UTF-16 or -32 text read as bytes (an echo service that took a UTF-16 body for
            # UTF-8): its ASCII letters are apart. Read without the NULs; if that holds a
            # secret, what is kept is the redacted reading (the echo was garbled already).
            narrow = text.replace("\x00", "")
            new = self._unknown(narrow, json_hint)
            return text if new == narrow else new
        if json_hint or text.lstrip()[:1] in ("{", "["):
            new = self._json_document(text)
            if new is None and "\n" in text.strip():
                new = self._json_lines(text)
            if new is not None:
                return new
        m = _MULTIPART_START.match(text)
        if m:
            return self._multipart_parts(text, m.group(1))
        return self.text(text)

    def _json_document(self, text: str) -> str | None:
        """The document redacted; the text itself when nothing changed; None if not JSON
        (or nesting deeper than Python recurses). A name given twice keeps both pairs, each
        redacted (a reader may take either)."""
        try:
            doc = json.loads(text, object_pairs_hook=_object)
            redacted = self.json_value(doc)
            if self.rules is not None and self.rules.paths:
                redacted = self._user_paths(redacted, ())
        except (ValueError, RecursionError):
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
            # {"name": "password", "value": "x"}: a header or field list written as objects
            named = any(isinstance(value.get(k), str) and self._secret_header(value[k]) for k in _NAME_KEYS)
            items = [
                (k, self._secret_json(v) if (self._secret_key(k) or (named and k in _VALUE_KEYS)) else self.json_value(v))
                for k, v in value.items()
            ]
            return _Pairs(items) if isinstance(value, _Pairs) else dict(items)
        if isinstance(value, list):
            # ["Authorization", "Bearer x"]: headers echoed as [name, value] pairs
            if len(value) == 2 and isinstance(value[0], str) and self._secret_header(value[0]) and not isinstance(value[1], (dict, list)):
                return [value[0], self._secret_json(value[1])]
            return [self.json_value(v) for v in value]
        if isinstance(value, str) and len(value) > 4 and self.may_hold_secret(_utf8(value)):
            return self._unknown(value)  # a URL, form, multipart or JSON document reflected in a string
        return value

    def _secret_json(self, v):
        if v is None or _already(v):
            return v
        return self.fingerprint(v) if isinstance(v, str) else self.fingerprint(json.dumps(v, sort_keys=True))

    def text(self, text: str) -> str:
        """Text of unknown shape (NDJSON, truncated JSON, logs, GraphQL): JSON pairs, strings
        holding documents of their own (escaped), unquoted pairs, query pairs, token shapes."""
        text = self._containers(self._json_pair.sub(self._json_pair_in_text, text))
        if ":" in text:
            text = self._loose_pairs(text)
        if "=" in text:
            text = self._encoded_tokens(self._params(text, self._value_text, self._text_param_name))
        return self.tokens(text)

    def _json_pair_in_text(self, m: re.Match) -> str:
        if m.group(1) is None:
            return self._escaped_string(m.group())  # a plain string
        if not self._secret_name(_unescaped(m.group(1))):
            value = m.group(3)
            if value.startswith('"'):
                return m.group()[: m.start(3) - m.start()] + self._escaped_string(value)
            return m.group()
        if REDACTED_PREFIX in m.group(3):
            return m.group()
        return f'"{m.group(1)}"{m.group(2)}"{self.fingerprint(m.group(3).strip(chr(34)))}"'

    def _escaped_string(self, s: str) -> str:
        """A JSON string in text that holds a document of its own, escaped (an echo of a
        request's JSON, cut off or not): unescaped, redacted, escaped again."""
        if "\\" not in s or len(s) < 6 or not self.may_hold_secret(_utf8(s)):
            return s
        closed = len(s) > 1 and s.endswith('"') and not _ends_escaped(s[:-1])
        inner = s[1:-1] if closed else _cut_escape(s[1:])
        try:
            value = json.loads(f'"{inner}"')
        except ValueError:
            return s
        new = self._unknown(value)
        if new == value:
            return s
        return json.dumps(new, ensure_ascii=False)[: None if closed else -1]

    def _loose_pairs(self, text: str) -> str:
        """Unquoted names and their values: for each colon, the name just before it."""
        out, pos = [], 0
        i = text.find(":")
        while i != -1:
            start = max(pos, i - 110)
            m = _NAME_BEFORE.match(text[i - 1 : start - 1 if start else None : -1]) if i > start else None
            name = m.group(1)[::-1] if m else ""
            at = i - m.end() if m else i
            v = None
            if (
                name[:1].isascii() and (name[:1].isalpha() or name[:1] == "_")
                and (at == 0 or text[at - 1] not in _NOT_BEFORE_NAME)
                and (self._secret_name(name) or name.lower() in SECRET_HEADERS)
            ):  # fmt: skip
                v = self._loose_value.match(text, i + 1)
            if v and v.group(1) and REDACTED_PREFIX not in v.group(1):
                value = v.group(1)
                if value[:1] in ("'", '"'):
                    quote = value[0]
                    inner = value[1:-1] if len(value) > 1 and value.endswith(quote) else value[1:]
                    new = f"{quote}{self.fingerprint(inner)}{quote}"
                else:
                    new = self.fingerprint(value.rstrip()) + value[len(value.rstrip()) :]
                out += [text[pos : v.start(1)], new]
                pos = v.end()
                i = text.find(":", pos)
                continue
            i = text.find(":", i + 1)
        return "".join(out) + text[pos:] if out else text

    def _containers(self, text: str) -> str:
        """Arrays and objects under a secret name, fingerprinted whole (to the text's end if cut off)."""
        out, pos = [], 0
        for m in self._json_container.finditer(text):
            if m.start() < pos or m.group(1) is None or not self._secret_name(_unescaped(m.group(1))):
                continue
            end = _container_end(text, m.end())
            out += [text[pos : m.end()], f'"{self.fingerprint(text[m.end() : end])}"']
            pos = end
        return "".join(out) + text[pos:] if out else text

    def _multipart(self, text: str, content_type: str) -> str:
        boundary = _param_of(content_type, "content-type", "boundary")
        if not boundary:
            m = _MULTIPART_START.match(text)
            if not m:
                return self.text(text)
            boundary = m.group(1)
        return self._multipart_parts(text, boundary)

    def _multipart_parts(self, text: str, boundary: str) -> str:
        """Split on the boundary; each part's name read by the email package's header parser
        (quoted or not, any case, RFC 2231); secret-named parts fingerprinted whole, the
        others redacted as documents of their own, byte for byte where nothing is secret."""
        delimiter = "--" + boundary
        pieces = text.split(delimiter)
        if self.may_hold_secret(_utf8(pieces[0])):
            pieces[0] = self.text(pieces[0])  # a preamble
        for i, piece in enumerate(pieces[1:], 1):
            head, sep, value = piece.partition("\r\n\r\n")
            if not sep:
                head, sep, value = piece.partition("\n\n")
            if not sep:  # the closing "--", or a part cut off inside its headers
                if self.may_hold_secret(_utf8(piece)):
                    pieces[i] = self.text(piece)
                continue
            name = _param_of(head, "content-disposition", "name")
            if name is None or not self._secret_param(name):
                new_head = self.text(head) if self.may_hold_secret(_utf8(head)) else head
                if self.may_hold_secret(_utf8(value)):  # a JSON or form document in a part
                    value = self._unknown(value)
                pieces[i] = new_head + sep + value
                continue
            end = "\r\n" if value.endswith("\r\n") else "\n" if value.endswith("\n") else ""
            secret = value[: len(value) - len(end)]
            if secret and not secret.startswith(REDACTED_PREFIX):
                pieces[i] = head + sep + self.fingerprint(secret) + end
        return delimiter.join(pieces)


# A name read backwards from a colon (spaces, then name characters), and what may not come
# just before a name (it would be inside a word, a string or a longer name).
_NAME_BEFORE = re.compile(r"[ \t]*([\w.-]{1,101})")
_NOT_BEFORE_NAME = frozenset("\"'$.\\-_") | frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")

# Headers whose value is a URL: redacted like the request's own URL.
URL_HEADERS = frozenset({"referer", "location", "content-location", "origin", "link", "refresh", "x-original-url", "x-rewrite-url"})
_NAME_KEYS = ("name", "Name", "key", "Key", "header", "field")
_VALUE_KEYS = frozenset({"value", "Value", "values", "val"})
# A multipart body seen without its Content-Type: its first line is the delimiter.
_MULTIPART_START = re.compile(r"\s*--([!-~]{1,70})\r?\n(?=[\s\S]{0,200}?content-disposition)", re.I)
_HEADER_PARSER = None


def _param_of(head: str, header: str, param: str) -> str | None:
    """A parameter of a MIME header (a part's Content-Disposition name, a Content-Type's
    boundary), read by the email package: quoted or not, any case, RFC 2231."""
    global _HEADER_PARSER
    if _HEADER_PARSER is None:
        from email.parser import HeaderParser
        from email.policy import compat32

        _HEADER_PARSER = HeaderParser(policy=compat32)
    from email.utils import collapse_rfc2231_value

    block = head.lstrip("\r\n")
    if header == "content-type" and ":" not in block.partition("\n")[0].partition(";")[0]:
        block = "Content-Type: " + block
    msg = _HEADER_PARSER.parsestr(block.replace("\r\n", "\n") + "\n\n")
    value = msg.get_param(param, header=header)
    if value is None:
        return None
    return collapse_rfc2231_value(value)


class _Pairs(dict):
    """A JSON object that gives a name twice: every pair kept, in order (json.dumps writes
    what items() gives, so both go back out, each redacted)."""

    def __init__(self, pairs: list):
        super().__init__(pairs)
        self._pairs = list(pairs)

    def items(self):
        return self._pairs

    def __eq__(self, other):
        return isinstance(other, _Pairs) and self._pairs == other._pairs

    __hash__ = None


def _object(pairs: list) -> dict:
    obj = dict(pairs)
    return obj if len(obj) == len(pairs) else _Pairs(pairs)


_BINARY_TYPES = ("image/", "audio/", "video/", "font/", "octet-stream", "protobuf", "zip", "pdf", "msgpack", "grpc")


def _binary(content_type: str, data: bytes) -> bool:
    """A body of a binary type that is binary indeed (a NUL in its first kilobyte)."""
    ctype = content_type.lower()
    return any(t in ctype for t in _BINARY_TYPES) and b"\x00" in data[:1024] and "charset" not in ctype


def _codec_of(content_type: str, data: bytes) -> str | None:
    """The codec a text body must be decoded with before redaction; None for UTF-8 and
    ASCII-compatible single-byte charsets (redacted as UTF-8 with raw bytes kept as they were)."""
    if "harset" not in content_type and data[:1] not in (b"\xff", b"\xfe") and b"\x00" not in data[:4]:
        return None  # the common case, decided without parsing
    charset = None
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.strip().lower() == "charset" and value.strip("\"' "):
            charset = value.strip("\"' ")
    if charset is None:
        if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
            return "utf-32"
        if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
            return "utf-16"
        if b"\x00" in data[:4]:
            return json.detect_encoding(data[:4])  # JSON's own rule (RFC 4627): UTF-16 or -32
        return None
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return charset  # decoding will say so
    if name in _ASCII_SAFE or name.startswith(("iso8859", "cp125", "latin", "mac-", "koi8")):
        return None
    return name


_ASCII_SAFE = {"utf-8", "ascii", "latin-1", "iso8859-1", "cp1252", "utf-8-sig"}


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


def _short_name_in(low: bytes) -> bool:
    """Whether "pin", "otp" or "sig" (or "pincode") stands alone in the text: they are common
    inside words ("shipping", "design"), where they are not names. A loop over where they
    occur: a regex tried at every character cost 8 ms for 100 KB of prose."""
    for word in _SHORT_NAMES:
        i = low.find(word)
        while i != -1:
            end = i + 3
            if word == b"pin" and low.startswith(b"code", end):
                end += 4
            if not low[i - 1 : i].isalnum() if i else True:
                if not low[end : end + 1].isalnum():
                    return True
            i = low.find(word, i + 1)
    return False


def _ends_escaped(s: str) -> bool:
    """Whether the character after ``s`` is escaped (an odd run of backslashes ends ``s``)."""
    return (len(s) - len(s.rstrip("\\"))) % 2 == 1


def _cut_escape(s: str) -> str:
    """A string cut off mid-escape ("ab\\", "ab\\u00") without its broken end."""
    if _ends_escaped(s):
        return s[:-1]
    m = re.search(r"\\u[0-9a-fA-F]{0,3}\Z", s)
    if m and not _ends_escaped(s[: m.start()]):
        return s[: m.start()]
    return s


def _is_basic_credential(value: str) -> bool:
    """Base64 of "user:password" (so "Basic Information" in prose is left alone)."""
    import base64
    import binascii

    try:
        return b":" in base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
