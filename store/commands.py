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

from .outgoing import Outgoing, outgoing

_SHORT_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\"}


class _Escapes(dict):
    """str.translate's table for printf %b, for characters outside printable ASCII:
    each worked out once, then looked up at C speed."""

    def __missing__(self, code: int) -> str:
        c = chr(code)
        if c in _SHORT_ESCAPES:
            out = _SHORT_ESCAPES[c]
        elif c.isprintable():
            out = c  # printable non-ASCII text stays readable
        else:
            out = "".join(f"\\0{b:03o}" for b in c.encode())
        if len(self) > 65536:  # all of Unicode would be a 100 MB table
            self.clear()
        self[code] = out
        return out


_ESCAPES = _Escapes()


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


# What is left after the common escapes: anything but printable ASCII, run by run.
_NOT_ASCII_TEXT = re.compile(r"[^\x20-\x7e]+")


def _escape_run(m: re.Match) -> str:
    return m.group().translate(_ESCAPES)


# Binary, byte by byte: a table lookup each (a 10 MB body in about a second).
_BYTE_ESCAPES = [chr(b) if 0x20 <= b < 0x7F and b not in b"'\\" else _SHORT_ESCAPES.get(chr(b), f"\\0{b:03o}") for b in range(256)]


def _escaped(data: bytes) -> str:
    """``data`` as the argument of printf %b: printable characters and escapes only."""
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return "".join(map(_BYTE_ESCAPES.__getitem__, data))
    text = text.replace("\\", "\\\\").replace("'", "\\0047").replace("\n", "\\n")  # C speed for the common ones
    return _NOT_ASCII_TEXT.sub(_escape_run, text)


def _printable(text: str) -> bool:
    return text.isprintable()  # no control, format or line-separator character (a space is printable)


_SHELL_SAFE = re.compile(r"[\w@%+=:,./-]+\Z", re.ASCII)  # shlex.quote's: needs no quotes


def shell_word(text: str) -> str:
    """One shell word that is exactly ``text`` and holds no control character.

    (Command substitution drops trailing newlines: nothing here ends with one that matters,
    since neither curl nor httpie sends a URL, method or header value ending in a newline.)"""
    if _SHELL_SAFE.match(text):
        return text
    if _printable(text):
        return "'" + text.replace("'", "'\"'\"'") + "'"  # as shlex.quote
    return f"\"$(printf '%b' '{_escaped(_utf8(text))}')\""


def stdin_of(body: bytes) -> str:
    """``printf ... | ``: the body on the next command's stdin, byte for byte."""
    try:
        text = body.decode()
    except UnicodeDecodeError:
        text = None
    if text is not None and _printable(text):
        return f"printf '%s' {shell_word(text)} | "
    return f"printf '%b' '{_escaped(body)}' | "


# Headers curl adds on its own unless told "Name:" (none at all); Expect only for large bodies.
CURL_ADDS = ("User-Agent", "Accept", "Content-Type", "Expect")
_CURL = "curl --silent --show-error --globoff --path-as-is --request "


def curl_command(row: dict, o: Outgoing | None = None) -> str:
    """curl, re-sending the stored request: --globoff so "[" and "{" in a URL are not
    ranges, --path-as-is so "/../" is sent as recorded."""
    o = o or outgoing(row)
    parts = [_CURL, shell_word(o.method), " --url ", shell_word(o.url)]
    for name, value in o.headers:
        parts += [" --header ", shell_word(f"{name}: {value}" if value else f"{name};")]  # "Name;" sends it empty
    sent = {name.lower() for name, _ in o.headers}
    parts += [f" --header {own}:" for own in CURL_ADDS if own.lower() not in sent]
    if o.body:
        return stdin_of(o.body) + "".join(parts) + " --data-binary @-"
    return "".join(parts)


HTTPIE_ADDS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


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
