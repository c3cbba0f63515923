"""Output for people: a table of flows, one flow in full. Colour only on a terminal."""

import json
import os
import re
import sys

from .flowview import BodyView, body_view, header, safety_of

SAFETY_STYLE = {"safe": "green", "idempotent": "cyan", "keyed": "yellow", "unsafe": "red"}


def is_terminal() -> bool:
    """As rich decides it (TTY_COMPATIBLE, FORCE_COLOR, isatty), without importing rich."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    force = os.environ.get("FORCE_COLOR")
    if force is not None:
        return force != ""
    return sys.stdout.isatty()


class PlainConsole:
    """Output for a pipe: the same markup strings, printed without it. Not importing
    rich here saves ~60 ms of a command's start-up (measured on 1M flows)."""

    is_terminal = False

    def print(self, text: str = "", *args, markup: bool = True, **kwargs) -> None:
        sys.stdout.write((strip_markup(text) if markup else text) + "\n")


_TAG = re.compile(r"(\\*)\[([a-z#/@][^[]*?)]")


def strip_markup(text: str) -> str:
    def sub(m: re.Match) -> str:
        slashes, tag = m.group(1), m.group(2)
        return slashes[: len(slashes) // 2] + (f"[{tag}]" if len(slashes) % 2 else "")

    return _TAG.sub(sub, text)


def console():
    if not is_terminal():
        return PlainConsole()
    from rich.console import Console

    return Console(highlight=False)  # honours NO_COLOR and COLUMNS


def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _status_style(status: int | None) -> str:
    if status is None:
        return "red"
    return "green" if status < 300 else "yellow" if status < 400 else "red"


COLUMNS = [
    ("id", "right"), ("time", "left"), ("method", "left"), ("status", "right"), ("host", "left"),
    ("path", "left"), ("size", "right"), ("duration", "right"), ("safety", "left"),
]  # fmt: skip


def flows_table(rows: list[dict]) -> None:
    if not rows:
        console().print("no flows recorded yet")
        return
    cells = [
        [
            str(r["id"]),
            r["started_at"].replace("T", " ")[:19],
            r["method"],
            str(r["status"]) if r["status"] is not None else "-",
            r["host"] or "",
            r["path"] or "",
            human_size(r["response_size"]),
            f"{r['duration_ms']:.0f} ms" if r["duration_ms"] is not None else "-",
            r["safety"],
        ]
        for r in rows
    ]
    if not is_terminal():
        _plain_table(cells)
        return
    from rich import box
    from rich.table import Table

    con = console()
    if con.width < 100:  # the year is the first thing a narrow terminal can spare
        for row in cells:
            row[1] = row[1][5:]
    widths = _fit([max(len(name), *(len(row[i]) for row in cells)) for i, (name, _) in enumerate(COLUMNS)], con.width)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    shown = [i for i, w in enumerate(widths) if w]
    for i in shown:
        name, justify = COLUMNS[i]
        table.add_column(name, justify=justify, no_wrap=True, overflow="ellipsis", width=widths[i])
    for r, row in zip(rows, cells):
        row[3] = f"[{_status_style(r['status'])}]{row[3]}[/]"
        row[8] = f"[{SAFETY_STYLE[r['safety']]}]{row[8]}[/]"
        table.add_row(*(row[i] if i in (3, 8) else _escape(row[i]) for i in shown))
    con.print(table)


FLEXIBLE = ("host", "path")  # cut short with an ellipsis when the terminal is narrow
DROPPABLE = ("duration", "size", "method", "time")  # left out, in this order, when that is not enough
FLEX_MIN = 12
GAP = 3  # a space of padding each side and one between columns


def _fit(widths: list[int], room: int) -> list[int]:
    """Column widths (0: left out) for a terminal ``room`` columns wide.

    rich would shrink every column alike, cutting ids and statuses short and
    squeezing the path out; here the short columns stay whole, host and path
    share what is left, and duration, size, method and time go, in that order, when
    it is not enough.
    """
    names = [name for name, _ in COLUMNS]
    flex = [names.index(n) for n in FLEXIBLE]
    widths = list(widths)

    def fixed_need() -> int:
        shown = [i for i, w in enumerate(widths) if w]
        return sum(widths[i] for i in shown if i not in flex) + GAP * (len(shown) - 1)

    for name in DROPPABLE:
        if fixed_need() + sum(min(widths[i], FLEX_MIN) for i in flex) <= room:
            break
        widths[names.index(name)] = 0
    spare = room - fixed_need()
    host, path = flex
    if widths[host] + widths[path] > spare:
        # The path says more than the host: it gets the larger share.
        widths[host] = max(1, min(widths[host], max(spare * 2 // 5, min(FLEX_MIN, spare // 2))))
        widths[path] = max(1, min(widths[path], spare - widths[host]))
    return widths


def _plain_table(cells: list[list[str]]) -> None:
    """Aligned columns, two spaces apart: easy on the eye and for cut/awk."""
    header = [name for name, _ in COLUMNS]
    widths = [max(len(header[i]), *(len(row[i]) for row in cells)) for i in range(len(header))]
    lines = []
    for row in [header, *cells]:
        parts = [c.rjust(w) if COLUMNS[i][1] == "right" else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(parts).rstrip())
    sys.stdout.write("\n".join(lines) + "\n")


def show_flow(flow: dict, replays: list[dict], rules=()) -> None:
    con = console()
    safety = safety_of(flow, rules)
    duration = f"{flow['duration_ms']:.1f} ms" if flow["duration_ms"] is not None else "-"
    con.print(
        f"[bold]flow {flow['id']}[/]  {flow['started_at']}  {duration}  [{SAFETY_STYLE[safety]}]{safety}[/]",
        markup=True,
    )
    if flow["replay_of"]:
        con.print(f"replay of flow {flow['replay_of']}", style="dim")
    con.print()
    con.print(f"[bold]{flow['method']}[/] {_escape(flow['url'])} {flow['http_version'] or ''}")
    _headers(con, flow["request_headers"])
    _body(con, flow, "request")
    con.print()
    if flow["status"] is None:
        con.print(f"[red]no response[/]: {_escape(flow['error'] or 'unknown error')}")
    else:
        con.print(
            f"{flow['response_http_version'] or ''} [{_status_style(flow['status'])}]{flow['status']}[/] {_escape(flow['reason'] or '')}"
        )
        _headers(con, flow["response_headers"])
        if flow.get("events"):
            _events(con, flow)
        else:
            _body(con, flow, "response")
        if flow.get("response_incomplete"):
            con.print("[red]the stream was cut off[/]: what arrived is recorded")
        if flow["error"]:
            con.print(f"[red]error[/]: {_escape(flow['error'])}")
    if replays:
        con.print()
        con.print(f"replayed {len(replays)} time{'s' if len(replays) != 1 else ''}:")
        for r in replays:
            con.print(f"  flow {r['id']}  {r['started_at']}  {_escape(r['target'] or '')}  {r['status'] or '-'}")


def _events(con, flow: dict) -> None:
    events = flow["events"]
    con.print()
    con.print(f"[dim]\\[{len(events)} events, streamed; `repost show {flow['id']} --stream` assembles the text][/]")
    for e in events:
        t = f"{e['t_ms']:>9.1f} ms" if e["t_ms"] is not None else "        -   "
        label = e["event"] + (f" id={e['id']}" if e["id"] else "")
        con.print(f"[cyan]{t}[/]  [bold]{_escape(label)}[/]  {_escape(e['data'])}", soft_wrap=True)


_ESCAPE = re.compile(r"(\\*)(\[[a-z#/@][^[]*?])")


def _escape(text: str) -> str:
    """rich.markup.escape, without importing rich: user text never reads as markup."""
    text = _ESCAPE.sub(r"\1\1\\\2", text)
    if text.endswith("\\") and not text.endswith("\\\\"):
        text += "\\"
    return text


def _headers(con, headers: list) -> None:
    for name, value in headers:
        con.print(f"[cyan]{_escape(name)}[/]: {_escape(value)}", soft_wrap=True)


def _body(con, flow: dict, side: str) -> None:
    view = body_view(flow, side)
    notes = []
    if flow[f"{side}_truncated"]:
        notes.append(f"truncated: the first {len(flow[f'{side}_body']):,} of {flow[f'{side}_size']:,} bytes were stored")
    if flow[f"{side}_redacted"]:
        notes.append("secrets in this body were redacted before it was stored")
    if view is None or (not view.data and not notes):
        return
    con.print()
    if view.note:
        notes.append(view.note)
    for note in notes:
        con.print(f"[dim]\\[{_escape(note)}][/]")
    _pretty_body(con, view, flow[f"{side}_sha256"])


def _pretty_body(con, view: BodyView, sha256: str | None) -> None:
    ctype = view.content_type.lower()
    if view.text is None:
        if view.note and "raw bytes" in view.note:
            con.print(_escape(repr(view.data[:2048])[2:-1]), soft_wrap=True)
            return
        con.print(
            f"[dim]\\[binary body: {len(view.data):,} bytes, {_escape(view.content_type or 'no content type')}"
            f"{', sha256 ' + sha256[:16] if sha256 else ''}][/]"
        )
        return
    text = view.text
    if "json" in ctype or text.lstrip()[:1] in ("{", "["):
        try:
            pretty = json.dumps(json.loads(text), indent=2, ensure_ascii=False)
        except ValueError:
            pass
        else:
            if con.is_terminal:
                # rich's regex highlighter, not Syntax: pygments would add ~25 ms to show.
                from rich.highlighter import JSONHighlighter

                con.print(JSONHighlighter()(pretty))
            else:
                con.print(pretty, markup=False, soft_wrap=True)
            return
    if "x-www-form-urlencoded" in ctype:
        from urllib.parse import parse_qsl

        for name, value in parse_qsl(text, keep_blank_values=True):
            con.print(f"[cyan]{_escape(name)}[/] = {_escape(value)}", soft_wrap=True)
        return
    con.print(text, markup=False, soft_wrap=True)


__all__ = ["flows_table", "show_flow", "header"]
