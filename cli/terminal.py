"""Styled output for `list`, `show` and `diff`, without rich.

The commands write rich-style markup (``[bold]flow 7[/]``, ``[red]unsafe[/]``).
On a terminal it becomes ANSI styles, word-wrapped to the terminal's width; in a
pipe it is stripped. rich would do the same, but its import and layout cost
`repost show` ~40 ms of its 50 ms budget and `repost list` ~55 ms of its 100
(measured at 1M flows, on a pseudo-terminal); rich stays for replay's progress bar.
"""

import os
import re
import sys

SGR = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32", "yellow": "33", "blue": "34",
       "magenta": "35", "cyan": "36"}  # fmt: skip
COLOURS = frozenset({"red", "green", "yellow", "blue", "magenta", "cyan"})

# A tag is [name ...] or [/]; a backslash before it makes it literal text (rich's rules).
_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")
_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")
# JSON as json.dumps(indent=2) writes it: keys, strings, numbers, literals, brackets.
_JSON_TOKEN = re.compile(
    r'(?P<key>"(?:[^"\\]|\\.)*")(?=:)|(?P<str>"(?:[^"\\]|\\.)*")'
    r"|(?P<num>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)|(?P<lit>\b(?:true|false|null)\b)|(?P<punct>[{}\[\]])"
)
JSON_STYLE = {"key": "bold blue", "str": "green", "num": "bold cyan", "lit": "italic", "punct": "bold"}


def is_terminal() -> bool:
    """As rich decides it: TTY_COMPATIBLE, then FORCE_COLOR, then isatty."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    return sys.stdout.isatty()


def terminal_width() -> int:
    try:
        return max(int(os.environ["COLUMNS"]), 1)
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.stdout.fileno()).columns
    except (OSError, ValueError, AttributeError):  # not a real terminal (a test's capture, say)
        return 80


def escape(text: str) -> str:
    """rich.markup.escape: user text never reads as markup."""
    text = _ESCAPE.sub(r"\1\1\\\2", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"
    return text


def spans(text: str) -> list[tuple[str, str]]:
    """Markup -> [(plain text, style), ...]; ``[/]`` ends the innermost open tag."""
    out, stack, pos = [], [], 0
    for m in _TAG.finditer(text):
        slashes, tag = m.group(1), m.group(2)
        out.append((text[pos : m.start()] + slashes[: len(slashes) // 2], " ".join(stack)))
        pos = m.end()
        if len(slashes) % 2:  # an escaped tag is text
            out.append((f"[{tag}]", " ".join(stack)))
        elif tag.startswith("/"):
            if stack:
                stack.pop()
        else:
            stack.append(tag)
    out.append((text[pos:], " ".join(stack)))
    return [(t, s) for t, s in out if t]


def strip_markup(text: str) -> str:
    return "".join(t for t, _ in spans(text))


def json_spans(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for m in _JSON_TOKEN.finditer(text):
        out.append((text[pos : m.start()], ""))
        out.append((m.group(), JSON_STYLE[m.lastgroup]))
        pos = m.end()
    out.append((text[pos:], ""))
    return [(t, s) for t, s in out if t]


def wrap(line: list[tuple[str, str]], width: int) -> list[list[tuple[str, str]]]:
    """One line's spans as lines of at most ``width`` characters, broken after spaces
    where there is one, as rich word-wraps."""
    if sum(len(text) for text, _ in line) <= width:
        return [line]
    chars = [(c, style) for text, style in line for c in text]
    lines = []
    while len(chars) > width:
        cut = next((i + 1 for i in range(width - 1, 0, -1) if chars[i][0] == " "), width)
        lines.append(chars[:cut])
        chars = chars[cut:]
    lines.append(chars)
    return [_join(chars) for chars in lines]


def _join(chars: list[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for c, style in chars:
        if out and out[-1][1] == style:
            out[-1] = (out[-1][0] + c, style)
        else:
            out.append((c, style))
    return out


class Console:
    """print() as rich's Console prints markup: styled on a terminal, plain in a pipe.

    ``NO_COLOR`` drops colours and keeps bold and dim, as rich does.
    """

    def __init__(self, terminal: bool | None = None, width: int | None = None):
        self.is_terminal = is_terminal() if terminal is None else terminal
        self.width = width or (terminal_width() if self.is_terminal else 10**9)
        self.colour = os.environ.get("NO_COLOR", "") == ""

    def print(self, text: str = "", *, markup: bool = True, style: str = "", soft_wrap: bool = False) -> None:
        parts = spans(text) if markup else [(text, "")]
        if style:
            parts = [(t, f"{style} {s}".strip()) for t, s in parts]
        self._write(parts, soft_wrap)

    def print_json(self, text: str) -> None:
        """Indented JSON text, highlighted on a terminal."""
        self._write(json_spans(text) if self.is_terminal else [(text, "")], soft_wrap=False)

    def _write(self, parts: list[tuple[str, str]], soft_wrap: bool) -> None:
        if not self.is_terminal:
            sys.stdout.write("".join(t for t, _ in parts) + "\n")
            return
        out = []
        for line in _lines(parts):
            for piece in [line] if soft_wrap else wrap(line, self.width):
                out.append("".join(self._styled(t, s) for t, s in piece))
        sys.stdout.write("\n".join(out) + "\n")

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
