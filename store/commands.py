"""A stored request as a POSIX shell command that re-sends it: curl (``export --format
curl`` and ``show --as curl`` alike) and httpie (``show --as httpie``).

Two rules make the commands safe to pipe to ``sh`` and to print on a terminal:

- The body never rides in an argument. ``--data-binary TEXT`` reads a file when TEXT
  starts with "@" (and a shell word cannot hold a NUL, nor exec take one over 128 KB),
  so the body goes to the client's stdin from the shell's own ``printf``: ``%s`` with
  one quoted word when every character is printable, else ``%b`` with octal escapes.
  Every byte sequence goes out as those bytes.
- No control character is written raw. A word holding one (a URL, a header value)
  is ``"$(printf '%b' '...')"`` with the same escapes, so what reaches a terminal is
  printable text and the shell still gets the exact value.
"""

import re
import shlex

from .outgoing import Outgoing, outgoing

# What may stand for itself inside '...' given to printf %b: printable ASCII but the
# quote and the backslash. Anything else is looked at character by character.
_NOT_PLAIN = re.compile(r"[^\x20-\x26\x28-\x5b\x5d-\x7e]+")
_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def _escape_run(m: re.Match) -> str:
    out = []
    for c in m.group():
        if c in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[c])
        elif c != "'" and c.isprintable():
            out.append(c)  # printable non-ASCII text stays readable
        else:
            out.append("".join(f"\\0{b:03o}" for b in _utf8(c)))
    return "".join(out)


def _escaped(data: bytes) -> str:
    """``data`` as the argument of printf %b: printable characters and escapes only."""
    return _NOT_PLAIN.sub(_escape_run, data.decode("utf-8", "surrogateescape"))


def _printable(text: str) -> bool:
    return text.isprintable()  # no control, format or line-separator character (a space is printable)


def shell_word(text: str) -> str:
    """One shell word that is exactly ``text`` and holds no control character.

    (Command substitution drops trailing newlines: nothing here ends with one that matters,
    since neither curl nor httpie sends a URL, method or header value ending in a newline.)"""
    if _printable(text):
        return shlex.quote(text)
    return f"\"$(printf '%b' '{_escaped(_utf8(text))}')\""


def stdin_of(body: bytes) -> str:
    """``printf ... | ``: the body on the next command's stdin, byte for byte."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and _printable(text):
        return f"printf '%s' {shlex.quote(text)} | "
    return f"printf '%b' '{_escaped(body)}' | "


# Headers curl adds on its own unless told "Name:" (none at all); Expect only for large bodies.
CURL_ADDS = ("User-Agent", "Accept", "Content-Type", "Expect")


def curl_command(row: dict, o: Outgoing | None = None) -> str:
    """curl, re-sending the stored request: --globoff so "[" and "{" in a URL are not
    ranges, --path-as-is so "/../" is sent as recorded."""
    o = o or outgoing(row)
    args = ["curl", "--silent", "--show-error", "--globoff", "--path-as-is", "--request", o.method, "--url", o.url]
    for name, value in o.headers:
        args += ["--header", f"{name}: {value}" if value else f"{name};"]  # "Name;" sends it empty
    sent = {name.lower() for name, _ in o.headers}
    args += [arg for own in CURL_ADDS if own.lower() not in sent for arg in ("--header", f"{own}:")]
    if o.body:
        args += ["--data-binary", "@-"]
    return (stdin_of(o.body) if o.body else "") + " ".join(shell_word(a) for a in args)


HTTPIE_ADDS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
# Characters httpie's request items split on; escaped with a backslash they are literal.
_HTTPIE_SPECIAL = frozenset(":;=@")


def httpie_command(row: dict, o: Outgoing | None = None) -> str:
    """httpie: the body on stdin as for curl; each header a ``Name:value`` item.

    httpie reads "Name:=v" as JSON and "Name:@v" as a file, so a value's first "=" or "@"
    is escaped. Its parser drops a backslash before ":;=@" and has no way to keep one:
    such a value is refused rather than sent changed."""
    o = o or outgoing(row)
    args = ["http"] + ([] if o.body else ["--ignore-stdin"]) + [o.method, o.url]
    for name, value in o.headers:
        if re.search(r"\\[:;=@]", value):
            raise ValueError(f"httpie cannot send the value of header {name!r} as recorded; use --as curl")
        if not value:
            args.append(f"{name};")  # "Name;" sends it empty
        else:
            args.append(f"{name}:" + ("\\" if value[0] in "=@" else "") + value)
    sent = {name.lower() for name, _ in o.headers}
    args += [f"{own}:" for own in HTTPIE_ADDS if own.lower() not in sent]  # "Name:" sends none
    return (stdin_of(o.body) if o.body else "") + " ".join(shell_word(a) for a in args)
