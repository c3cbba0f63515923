"""Output for people: a table of flows, one flow in full. Colour only on a terminal."""

import json

from repost.store.flowview import BodyView, body_view, safety_of

from .terminal import Console, write
from .terminal import escape as _escape

SAFETY_STYLE = {"safe": "green", "idempotent": "cyan", "keyed": "yellow", "unsafe": "red"}


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
    ("path", "left"), ("size", "right"), ("duration", "right"), ("safety", "left"), ("replay", "left"),
    ("tags", "left"),
]  # fmt: skip
REPLAY, TAGS = len(COLUMNS) - 2, len(COLUMNS) - 1  # shown only when a row on the page has one
OPTIONAL = (REPLAY, TAGS)


def flows_table(rows: list[dict], empty: str = "no flows recorded yet") -> None:
    if not rows:
        Console().print(empty)
        return
    cells = [_cells(r) + [_replay_mark(r), ",".join(r.get("tags") or [])] for r in rows]
    present = {i for i in OPTIONAL if any(row[i] for row in cells)}
    con = Console()
    if not con.is_terminal:
        _plain_table(cells, present)
        return
    if con.width < 100:  # the year is the first thing a narrow terminal can spare
        for row in cells:
            row[1] = row[1][5:]
    natural = [max(len(name), *(len(row[i]) for row in cells)) for i, (name, _) in enumerate(COLUMNS)]
    for i in OPTIONAL:
        if i not in present:
            natural[i] = 0  # no such column at all
    widths = _fit(natural, con.width)
    shown = [i for i, w in enumerate(widths) if w]
    gap = " " * GAP

    def line(row: list[str], styles: list[str]) -> str:
        parts = []
        for i in shown:
            text = _align(_cut(row[i], widths[i]), i, widths[i])
            parts.append(f"[{styles[i]}]{_escape(text)}[/]" if styles[i] else _escape(text))
        return gap.join(parts)

    con.print(line([name for name, _ in COLUMNS], ["bold"] * len(COLUMNS)), soft_wrap=True)
    con.print("─" * (sum(widths) + GAP * (len(shown) - 1)), soft_wrap=True)
    for r, row in zip(rows, cells):
        styles = [""] * len(COLUMNS)
        styles[3], styles[8] = _status_style(r["status"]), SAFETY_STYLE[r["safety"]]
        con.print(line(row, styles), soft_wrap=True)


def _replay_mark(r: dict) -> str:
    return f"↺ {r['replay_of']}" if r.get("replay_of") is not None else ""


# list --follow cannot size its columns to rows still to come: fixed widths for the
# short ones, host and path as long as they are.
FOLLOW_WIDTHS = (7, 19, 7, 6, 0, 0, 9, 9, 10, 7)


def follow_header() -> list[str]:
    return [_align(name, i, w) for i, ((name, _), w) in enumerate(zip(COLUMNS, FOLLOW_WIDTHS))] + ["tags"]


def follow_cells(r: dict) -> list[str]:
    cells = _cells(r) + [_replay_mark(r)]
    return [_align(c, i, w) for i, (c, w) in enumerate(zip(cells, FOLLOW_WIDTHS))] + [",".join(r.get("tags") or [])]


def _cells(r: dict) -> list[str]:
    return [
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


def _align(text: str, column: int, width: int) -> str:
    return text.rjust(width) if COLUMNS[column][1] == "right" else text.ljust(width)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


FLEXIBLE = ("host", "path")  # cut short with an ellipsis when the terminal is narrow
DROPPABLE = ("duration", "size", "method", "time", "tags")  # left out, in this order, when that is not enough
FLEX_MIN = 12
GAP = 3  # spaces between columns on a terminal


def _fit(widths: list[int], room: int) -> list[int]:
    """Column widths (0: left out) for a terminal ``room`` columns wide.

    The short columns stay whole (shrinking every column alike, as rich's Table
    does, cut ids and statuses short and squeezed the path out), host and path
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
        natural_host = widths[host]
        widths[host] = max(1, min(natural_host, max(spare * 2 // 5, min(FLEX_MIN, spare // 2))))
        widths[path] = max(1, min(widths[path], spare - widths[host]))
        widths[host] = max(1, min(natural_host, spare - widths[path]))  # what a short path leaves
    return widths


def _plain_table(cells: list[list[str]], present: set) -> None:
    """Aligned columns, two spaces apart: easy on the eye and for cut/awk."""
    keep = [i for i in range(len(COLUMNS)) if i not in OPTIONAL or i in present]
    header = [COLUMNS[i][0] for i in keep]
    write(aligned([header, *([row[i] for i in keep] for row in cells)], [COLUMNS[i][1] for i in keep]))


def aligned(lines: list[list[str]], alignments: list[str]) -> str:
    """Rows of cells (the first a header) as aligned columns, two spaces apart."""
    widths = [max(len(row[i]) for row in lines) for i in range(len(alignments))]
    out = []
    for row in lines:
        parts = [c.rjust(w) if a == "right" else c.ljust(w) for c, w, a in zip(row, widths, alignments)]
        out.append("  ".join(parts).rstrip())
    return "\n".join(out) + "\n"


def show_flow(flow: dict, replays: list[dict], rules=()) -> None:
    con = Console()
    safety = safety_of(flow, rules)
    duration = f"{flow['duration_ms']:.1f} ms" if flow["duration_ms"] is not None else "-"
    con.print(
        f"[bold]flow {flow['id']}[/]  {flow['started_at']}  {duration}  [{SAFETY_STYLE[safety]}]{safety}[/]",
        markup=True,
    )
    if flow["replay_of"]:
        con.print(f"replay of flow {flow['replay_of']}", style="dim")
    if flow.get("tags"):
        con.print(f"tags: {_escape(', '.join(flow['tags']))}")
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
    from repost.store.assemble import assembles, event_names

    events = flow["events"]
    con.print()
    if assembles(events):
        hint = f"`repost show {flow['id']} --stream` assembles the text"
    else:
        hint = "event names: " + ", ".join(event_names(events))
    con.print(f"[dim]\\[{len(events)} events, streamed; {_escape(hint)}][/]")
    lines = []
    for e in events:
        t = f"{e['t_ms']:>9.1f} ms" if e["t_ms"] is not None else "        -   "
        label = e["event"] + (f" id={e['id']}" if e["id"] else "")
        lines.append(f"[cyan]{t}[/]  [bold]{_escape(label)}[/]  {_escape(e['data'])}")
    con.print("\n".join(lines), soft_wrap=True)  # one print: a stream may have thousands of events


def _headers(con, headers: list) -> None:
    for name, value in headers:
        con.print(f"[cyan]{_escape(name)}[/]: {_escape(value)}", soft_wrap=True)


def _body(con, flow: dict, side: str) -> None:
    view = body_view(flow, side)
    notes = []
    if flow[f"{side}_truncated"] and flow[f"{side}_redacted"] == 1:
        from repost.store.flowview import decoded_cut_note

        notes.append(decoded_cut_note(flow, side))
    elif flow[f"{side}_truncated"]:
        notes.append(f"truncated: the first {len(flow[f'{side}_body']):,} of {flow[f'{side}_size']:,} bytes were stored")
    if flow[f"{side}_redacted"] == 2:
        from repost.store.flowview import WITHHELD_NOTE

        notes.append(f"body {WITHHELD_NOTE}")
    elif flow[f"{side}_redacted"]:
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
    if "multipart/" in ctype and _multipart(con, view):
        return
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
            con.print_json(pretty)
            return
    if "x-www-form-urlencoded" in ctype:
        from urllib.parse import parse_qsl

        for name, value in parse_qsl(text, keep_blank_values=True):
            con.print(f"[cyan]{_escape(name)}[/] = {_escape(value)}", soft_wrap=True)
        return
    con.print(text, markup=False, soft_wrap=True)


FIELD_SHOWN = 4096  # characters of a multipart field's value shown; the rest is counted


def _multipart(con, view: BodyView) -> bool:
    """Part by part: fields as ``name = value``, files (and binary fields) as
    ``name: filename, type, size``. False when the body does not parse as multipart."""
    from repost.store.multipart import parse_multipart, part_text

    parts = parse_multipart(view.data, view.content_type)
    if parts is None:
        return False
    lines = []
    for part in parts:
        name = _escape(part.name if part.name is not None else "(no name)")
        text = part_text(part)
        if text is not None:
            more = f" … ({len(text) - FIELD_SHOWN:,} more characters)" if len(text) > FIELD_SHOWN else ""
            lines.append(f"[cyan]{name}[/] = {_escape(text[:FIELD_SHOWN])}{more}")
        else:
            filename = _escape(part.filename) if part.filename is not None else "(no filename)"
            lines.append(f"[cyan]{name}[/]: {filename}, {_escape(part.content_type)}, {len(part.data):,} bytes")
    con.print("\n".join(lines), soft_wrap=True)
    return True

