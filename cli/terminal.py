"""Styled output for `list`, `show` and `diff`, without rich.

The commands write rich-style markup (``[bold]flow 7[/]``, ``[red]unsafe[/]``).
On a terminal it becomes ANSI styles, word-wrapped to the terminal's width; in a
pipe it is stripped. rich would do the same, but its import and layout cost
`repost show` ~40 ms of its 50 ms budget and `repost list` ~55 ms of its 100
(measured at 1M flows, on a pseudo-terminal); rich stays for replay's progress bar.
"""

import json
import os
import re
import sys

SGR = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32", "yellow": "33", "blue": "34",
       "magenta": "35", "cyan": "36"}  # fmt: skip
COLOURS = frozenset({"red", "green", "yellow", "blue", "magenta", "cyan"})

# Markup: [name ...] opens a style, [/] closes the innermost; a backslash makes the
# next character literal (so escape() always round-trips, whatever the text ends with).
_MARKUP = re.compile(r"\\(.)|\[([a-z#/@][^\[\]]*)\]", re.DOTALL)
# JSON as json.dumps(indent=2) writes it: keys, strings, numbers, literals, brackets.
_JSON_TOKEN = re.compile(
    r'(?P<str>"[^"\\]*(?:\\.[^"\\]*)*")(?P<key>:)?'
    r"|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<lit>\b(?:true|false|null)\b)|(?P<punct>[{}\[\]])"
)
HIGHLIGHT_CAP = 1024 * 1024  # longer JSON is printed plain: styling every token of it takes seconds
JSON_STYLE = {"key": "bold blue", "str": "green", "num": "bold cyan", "lit": "italic", "punct": "bold"}


def is_terminal() -> bool:
    """As rich decides it: TTY_COMPATIBLE, then FORCE_COLOR, then isatty."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    return sys.stdout is not None and sys.stdout.isatty()


def terminal_width() -> int:
    """COLUMNS, else the size of whichever of stdout, stderr, stdin is a terminal, else 80.
    (A fresh pseudo-terminal says 0 columns: that is "unknown" too.)"""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns > 0:
        return columns
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        try:
            columns = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):  # not a terminal, or a test's capture
            continue
        if columns > 0:
            return columns
    return 80


def escape(text: str) -> str:
    """User text as markup that prints as itself."""
    return text.replace("\\", "\\\\").replace("[", "\\[")


def spans(text: str) -> list[tuple[str, str]]:
    """Markup -> [(plain text, style), ...]."""
    out, stack, pos = [], [], 0
    for m in _MARKUP.finditer(text):
        out.append((text[pos : m.start()], " ".join(stack)))
        pos = m.end()
        literal, tag = m.group(1), m.group(2)
        if literal is not None:
            out.append((literal, " ".join(stack)))
        elif tag.startswith("/"):
            if stack:
                stack.pop()
        else:
            stack.append(tag)
    out.append((text[pos:], " ".join(stack)))
    return _join_runs([(t, s) for t, s in out if t])


def strip_markup(text: str) -> str:
    return "".join(t for t, _ in spans(text))


def json_spans(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for m in _JSON_TOKEN.finditer(text):
        out.append((text[pos : m.start()], ""))
        if m.group("key"):  # a string followed by a colon is a key
            out.append((m.group("str"), JSON_STYLE["key"]))
            out.append((":", ""))
        else:
            out.append((m.group(), JSON_STYLE[m.lastgroup]))
        pos = m.end()
    out.append((text[pos:], ""))
    return [(t, s) for t, s in out if t]


def wrap(line: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """One line's spans as lines of at most ``width`` terminal columns, broken after
    spaces where there is one, as rich word-wraps. East Asian wide characters take two."""
    text = "".join(t for t, _ in line)
    cuts = _cuts(text, width)
    if not cuts:
        return [line]
    out, piece, pos, bounds = [], [], 0, iter([*cuts, len(text) + 1])
    bound = next(bounds)
    for span, style in line:
        i = 0  # offsets, not re-slicing what is left: a 9 MB line has ~90,000 cuts
        while i < len(span):
            n = min(len(span) - i, bound - pos)
            piece.append((span[i : i + n], style))
            i, pos = i + n, pos + n
            if pos == bound:
                out.append(piece)
                piece, bound = [], next(bounds)
    out.append(piece)
    return out


def _wrap_plain(line: str, width: int) -> list[str]:
    cuts = _cuts(line, width)
    if not cuts:
        return [line]
    return [line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)])]


def _cuts(text: str, width: int) -> list[int]:
    """Where ``text`` breaks into lines of at most ``width`` terminal columns."""
    width = max(width, 2)
    return _ascii_cuts(text, width) if text.isascii() else _cell_cuts(text, width)


def _ascii_cuts(text: str, width: int) -> list[int]:
    cuts, start = [], 0
    while len(text) - start > width:
        space = text.rfind(" ", start, start + width)
        start = space + 1 if space >= start else start + width
        cuts.append(start)
    return cuts


def _cell_cuts(text: str, width: int) -> list[int]:
    cuts, start, used, last_space = [], 0, 0, None
    for i, c in enumerate(text):
        w = _cell_width(c)
        if used + w > width and i > start:
            cut = last_space + 1 if last_space is not None else i
            rest = sum(_cell_width(x) for x in text[cut:i])
            if rest + w > width:  # what follows the space would still not fit: cut here
                cut, rest = i, 0
            cuts.append(cut)
            start, used, last_space = cut, rest, None
        used += w
        if c == " ":
            last_space = i
    return cuts


def _cell_width(c: str) -> int:
    import unicodedata

    if unicodedata.combining(c):
        return 0
    return 2 if unicodedata.east_asian_width(c) in ("W", "F") else 1


def _join_runs(parts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for text, style in parts:
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + text, style)
        else:
            out.append((text, style))
    return out


# What recorded text must not send to a terminal: control characters (an escape
# sequence in a response body could rewrite the screen or the window title). Shown
# as control pictures; a tab as spaces, a CR before LF dropped.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_CONTROL_OR_NEWLINE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def visible(text: str, *, lines: bool = True) -> str:
    """The one sanitiser for every human-facing line that holds recorded text (list,
    show, diff, show --as and --stream on a terminal, replay's dry run and consent,
    notes on stderr). ``lines=False``: one recorded value on one line, its line
    breaks shown as pictures too, so it cannot fake a line of its own."""
    if lines:
        return _CONTROL.sub(_picture, text.replace("\r\n", "\n").replace("\t", "    "))
    return _CONTROL_OR_NEWLINE.sub(_picture, text.replace("\t", "    "))


_visible = visible


def _picture(m: re.Match) -> str:
    code = ord(m.group())
    return chr(0x2400 + code) if code < 0x20 else "\u2421" if code == 0x7F else "\u2424" if code > 0x2000 else "\ufffd"


def write(text: str) -> None:
    """Write to stdout whatever its encoding: UTF-8 bytes where it cannot encode the
    text (JSON is UTF-8 anyway); nothing when there is no stdout at all."""
    out = sys.stdout
    if out is None:
        return
    try:
        out.write(text)
    except UnicodeEncodeError:
        # backslashreplace: a lone surrogate (JSON allows "\\ud800") comes out as \\ud800,
        # which inside a JSON string is that same escape again.
        out.flush()
        out.buffer.write(text.encode("utf-8", "backslashreplace"))


def write_json(value) -> None:
    """``--json`` output: indented, UTF-8, and nothing else."""
    write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
    flush()


def flush() -> None:
    if sys.stdout is not None:  # `repost show 1 >&-`: nowhere to write, nothing to say
        sys.stdout.flush()


class Console:
    """print() as rich's Console prints markup: styled on a terminal, plain in a pipe.

    ``NO_COLOR`` drops colours and keeps bold and dim, as rich does; ``TERM=dumb``
    drops every style.
    """

    def __init__(self, terminal: bool | None = None, width: int | None = None):
        self.is_terminal = is_terminal() if terminal is None else terminal
        self.width = width or (terminal_width() if self.is_terminal else 10**9)
        self.colour = os.environ.get("NO_COLOR", "") == ""
        self.styles = os.environ.get("TERM") != "dumb"

    def print(self, text: str = "", *, markup: bool = True, style: str = "", soft_wrap: bool = False) -> None:
        parts = spans(text) if markup else [(text, "")]
        if style:
            parts = [(t, f"{style} {s}".strip()) for t, s in parts]
        self._write(parts, soft_wrap)

    def print_json(self, text: str) -> None:
        """Indented JSON text, highlighted on a terminal."""
        highlight = self.is_terminal and len(text) <= HIGHLIGHT_CAP
        self._write(json_spans(text) if highlight else [(text, "")], soft_wrap=False)

    def _write(self, parts: list[tuple[str, str]], soft_wrap: bool) -> None:
        if not self.is_terminal:
            write("".join(t for t, _ in parts) + "\n")
            return
        if not self.styles or all(not style for _, style in parts):
            # Unstyled (a long plain body, say): whole lines, no per-piece work.
            text = _visible("".join(t for t, _ in parts))
            lines = text.split("\n") if soft_wrap else [p for line in text.split("\n") for p in _wrap_plain(line, self.width)]
            write("\n".join(lines) + "\n")
            return
        parts = [(_visible(t), s) for t, s in parts]
        out = []
        for line in _lines(parts):
            for piece in [line] if soft_wrap else wrap(line, self.width):
                out.append("".join(self._styled(t, s) for t, s in piece))
        write("\n".join(out) + "\n")

    def _styled(self, text: str, style: str) -> str:
        codes = [SGR[w] for w in style.split() if w in SGR and (self.colour or w not in COLOURS)]
        return f"\x1b[{';'.join(codes)}m{text}\x1b[0m" if codes else text


def _lines(parts: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    lines: list[list[tuple[str, str]]] = [[]]
    for text, style in parts:
        first, *rest = text.split("\n")
        if first:
            lines[-1].append((first, style))
        for more in rest:
            lines.append([(more, style)] if more else [])
    return lines
