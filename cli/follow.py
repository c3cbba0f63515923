"""``repost list --follow``: flows printed as they are recorded, like ``tail -f``.

Polls the database by id every ``INTERVAL`` (a WAL reader sees each commit at
once), prints what is new in list's format (JSON lines with --json), and flushes
each time so a pipe sees it at once. Ctrl-C ends it quietly, with exit 0.
"""

import json
import time

INTERVAL = 0.2


def follow_flows(conn, selection, limit: int, as_json: bool) -> None:
    from repost.store.follow import flows_after, newest_id
    from repost.store.queries import list_flows
    from repost.store.rules import READ_ONLY, get_rules

    rules = get_rules(conn, READ_ONLY)
    printer = _JsonLines() if as_json else _Rows()
    try:
        upto = newest_id(conn)
        if limit:
            printer.print(conn, list(reversed(list_flows(conn, selection, limit))), rules)  # oldest first, as tail
        printer.start()
        while True:
            time.sleep(INTERVAL)
            newest = newest_id(conn)
            if newest < upto:  # the newest flows were deleted: their ids come again
                upto = newest
            if newest > upto:
                printer.print(conn, flows_after(conn, selection, upto, newest), rules)
                upto = newest
    except KeyboardInterrupt:
        return


def _summaries(conn, rows, rules) -> list[dict]:
    from repost.store.flowview import summary_json
    from repost.store.tags import attach_tags

    return [summary_json(r, rules) for r in attach_tags(conn, rows)]


class _JsonLines:
    def start(self) -> None:
        pass

    def print(self, conn, rows, rules) -> None:
        from .terminal import flush, write

        if rows:
            write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _summaries(conn, rows, rules)))
            flush()


class _Rows:
    """list's columns, the header once; on a terminal, sanitised and cut to its width."""

    def __init__(self) -> None:
        from .terminal import is_terminal, terminal_width

        self.terminal = is_terminal()
        self.width = terminal_width() if self.terminal else None
        self.started = False

    def start(self) -> None:
        if not self.started:
            self._header()

    def _header(self) -> None:
        from .render import follow_header

        self.started = True
        self._write([follow_header()])

    def print(self, conn, rows, rules) -> None:
        from .render import follow_cells

        if not rows:
            return
        if not self.started:
            self._header()
        self._write([follow_cells(r) for r in _summaries(conn, rows, rules)])

    def _write(self, lines: list[list[str]]) -> None:
        from .terminal import flush, visible, write

        out = []
        for cells in lines:
            line = "  ".join(cells).rstrip()
            if self.terminal:
                line = visible(line, lines=False)[: self.width]
            out.append(line + "\n")
        write("".join(out))
        flush()
