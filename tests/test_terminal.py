"""cli/terminal.py: markup to ANSI styles on a terminal, stripped in a pipe."""

import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from repost.cli.terminal import HIGHLIGHT_CAP, Console, _cell_width, _visible, _wrap_plain, escape, json_spans, spans, strip_markup, wrap

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def printed(console: Console, *args, method="print", **kw) -> str:
    import sys

    saved, sys.stdout = sys.stdout, io.StringIO()
    try:
        getattr(console, method)(*args, **kw)
        return sys.stdout.getvalue()
    finally:
        sys.stdout = saved


def test_markup_becomes_spans():
    assert spans("[bold]flow 7[/]  [red]unsafe[/] \\[x] [bold][cyan]k[/]v[/] \\\\[/] [1, 2]") == [
        ("flow 7", "bold"), ("  ", ""), ("unsafe", "red"), (" [x] ", ""), ("k", "bold cyan"), ("v", "bold"),
        (" \\ [1, 2]", ""),
    ]  # fmt: skip


@given(st.text())
def test_escaped_user_text_comes_out_as_it_went_in(text):
    assert strip_markup(escape(text)) == text
    assert printed(Console(terminal=False), escape(text)) == text + "\n"
    on_terminal = printed(Console(terminal=True, width=10**6), f"[red]{escape(text)}[/]", soft_wrap=True)
    assert ANSI.sub("", on_terminal) == _visible(text) + "\n"


def test_control_characters_never_reach_a_terminal():
    hostile = "title\x1b]0;pwned\x07 clear\x1b[2J\x9b31m cr\rlf\r\n tab\tend\x7f"
    out = printed(Console(terminal=True, width=200), escape(hostile))
    assert out == "title␛]0;pwned␇ clear␛[2J\ufffd31m cr␍lf\n tab    end␡\n"
    assert printed(Console(terminal=False), escape(hostile)) == hostile + "\n"  # a pipe gets the data as it is


def test_wide_characters_take_two_columns():
    out = printed(Console(terminal=True, width=10), "日本語のテキストです")
    assert out.splitlines() == ["日本語のテ", "キストです"]


@pytest.mark.parametrize("columns", [None, "0", "-3", "abc"])
def test_a_terminal_of_unknown_width_is_80_wide(monkeypatch, columns):
    import os

    from repost.cli import terminal

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    monkeypatch.setattr(os, "get_terminal_size", lambda fd: os.terminal_size((0, 0)))  # a fresh pty says 0x0
    assert terminal.terminal_width() == 80
    out = printed(Console(terminal=True, width=0), "word " * 40)  # and never a width of 0
    assert max(len(line) for line in out.splitlines()) <= 80


def test_term_dumb_gets_no_styles(monkeypatch):
    monkeypatch.setenv("TERM", "dumb")
    assert printed(Console(terminal=True, width=80), "[bold red]x[/]") == "x\n"


def test_styles_on_a_terminal_and_none_in_a_pipe(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert printed(Console(terminal=True, width=80), "[bold]POST[/] [green]200[/]") == "\x1b[1mPOST\x1b[0m \x1b[32m200\x1b[0m\n"
    assert printed(Console(terminal=False), "[bold]POST[/] [green]200[/]") == "POST 200\n"


def test_no_color_keeps_bold_and_drops_colours(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    out = printed(Console(terminal=True, width=80), "[bold red]error[/] [green]ok[/]")
    assert out == "\x1b[1merror\x1b[0m ok\n"


def test_long_lines_wrap_at_spaces_within_the_width():
    line = [("alpha beta gamma ", ""), ("delta-epsilon-zeta-eta-theta", "green")]
    lines = wrap(line, 12)
    texts = ["".join(t for t, _ in piece) for piece in lines]
    assert all(len(t) <= 12 for t in texts)
    assert "".join(texts) == "alpha beta gamma delta-epsilon-zeta-eta-theta"
    assert texts[0] == "alpha beta "  # broken after a space, not inside a word
    assert lines[-1][-1][1] == "green"  # styles carry over the breaks


@pytest.mark.parametrize("soft_wrap, longest", [(False, 20), (True, 60)])
def test_soft_wrap_leaves_long_lines_to_the_terminal(soft_wrap, longest):
    out = printed(Console(terminal=True, width=20), "word " * 12, soft_wrap=soft_wrap)
    assert max(len(ANSI.sub("", line)) for line in out.splitlines()) == longest


def test_json_is_highlighted_by_token():
    text = '{\n  "id": 7,\n  "name": "a \\"b\\" [c]",\n  "ok": true,\n  "price": -1.5e3\n}'
    parts = json_spans(text)
    assert "".join(t for t, _ in parts) == text
    styles = {t: s for t, s in parts if s}
    assert styles['"id"'] == "bold blue" and styles["7"] == "bold cyan"
    assert styles['"a \\"b\\" [c]"'] == "green" and styles["true"] == "italic" and styles["-1.5e3"] == "bold cyan"
    out = printed(Console(terminal=True, width=200), text, method="print_json")
    assert ANSI.sub("", out) == text + "\n"  # brackets in strings are text, not markup


def display_width(pieces) -> int:
    return sum(_cell_width(c) for text, _ in pieces for c in text)


@given(
    text=st.text(st.sampled_from(list("ab  xyz") + ["日", "本", "語", "é", "\u0301", "文"]), max_size=80),
    width=st.integers(2, 30),
)
def test_wrapped_lines_fit_and_lose_nothing(text, width):
    line = [(text[: len(text) // 2], "bold"), (text[len(text) // 2 :], "")]
    pieces = wrap(line, width)
    assert "".join(t for piece in pieces for t, _ in piece) == text
    assert all(display_width(piece) <= width for piece in pieces)
    plain = _wrap_plain(text, width)  # the unstyled road cuts at the same places
    assert plain == ["".join(t for t, _ in piece) for piece in pieces]


def test_huge_json_is_printed_plain_on_a_terminal():
    big = '{"a": "' + "x" * (HIGHLIGHT_CAP + 10) + '"}'
    out = printed(Console(terminal=True, width=100), big, method="print_json")
    assert "\x1b[" not in out and out.replace("\n", "") == big
    small = printed(Console(terminal=True, width=100), '{"a": 1}', method="print_json")
    assert "\x1b[" in small


def test_text_the_terminal_encoding_cannot_hold_is_written_as_utf8_escapes():
    import sys

    from repost.cli.terminal import write

    raw = io.BytesIO()
    ascii_out = io.TextIOWrapper(raw, encoding="ascii")
    saved, sys.stdout = sys.stdout, ascii_out
    try:
        write('{"a": "Zoë \ud800"}\n')
        ascii_out.flush()
    finally:
        sys.stdout = saved
    assert raw.getvalue().decode("utf-8") == '{"a": "Zoë \\ud800"}\n'
