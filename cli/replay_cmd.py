"""``repost replay``: re-send captured requests, safely."""

import sys

import click

from .options import db_option, json_option, selection_options
from repost.store.sizes import DEFAULT_MAX_BODY

EXIT_REFUSED = 3


@click.command()
@click.argument("ids", nargs=-1, type=int, metavar="[ID]...")
@db_option
@selection_options
@click.option("--limit", type=click.IntRange(min=1), help="Replay at most this many of the selected flows.")
@click.option("--to", "to_url", metavar="URL", help="Send to another server: scheme://host[:port] (Host header too).")
@click.option("-H", "--header", "headers", multiple=True, metavar="'Name: value'", help="Add or override a header (repeatable); how to supply secrets redacted at capture.")
@click.option("--set", "sets", multiple=True, metavar="PATH=VALUE", help="Edit the request first, in diff's paths: request.body.qty=3, request.query.page=2, request.headers.X-Env=staging (a value is JSON if it parses; repeatable).")
@click.option("--body", "body_arg", metavar="@FILE|TEXT", help="Send this body instead of the recorded one (@FILE reads a file).")
@click.option("-y", "--yes", is_flag=True, help="Consent to replaying unsafe (non-idempotent) writes.")
@click.option("--dry-run", is_flag=True, help="Print each request as it would go out, with its safety class; send nothing.")
@click.option("--diff", "show_diff", is_flag=True, help="Print the diff between each original and its replay.")
@click.option("--concurrency", default=4, show_default=True, type=click.IntRange(1, 256), help="Requests in flight at once.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1), help="Seconds to wait for each response.")
@click.option("--new-idempotency-key", is_flag=True, help="Send a fresh Idempotency-Key instead of the recorded one (makes keyed flows unsafe).")
@click.option("--insecure", is_flag=True, help="Do not verify the target's TLS certificate (a test server's self-signed one).")
@click.option("--cacert", type=click.Path(exists=True, dir_okay=False), metavar="PATH", help="Also trust the CA certificates in this PEM file (a private CA, mitmproxy's).")
@json_option
def replay(ids, db_path, selection, limit, to_url, headers, sets, body_arg, yes, dry_run, show_diff, concurrency, timeout,
           new_idempotency_key, insecure, cacert, as_json):  # fmt: skip
    """Re-send recorded requests, to the same server or another (--to).

    Give flow ids, or list's filters (repost replay --path /orders --since 1h).
    Each flow is classified first: safe (GET, HEAD, OPTIONS, TRACE, GraphQL
    queries, endpoints marked read-only with `repost rules`), idempotent (PUT,
    DELETE), keyed (POST/PATCH with its recorded Idempotency-Key: a compliant
    server answers with the stored result) or unsafe (the rest). Unsafe flows
    need --yes, or a y/N answer on a terminal; without consent nothing at all is
    sent. Each replay is stored as a new flow (see `repost show ID`, `repost diff
    ORIGINAL REPLAY`). No automatic retries, ever.

    \b
    Exit status: 0 every request answered, 1 some failed (listed),
    2 usage error, 3 refused for safety (nothing sent).
    """
    from repost.store.database import open_database
    from repost.store.queries import get_flow, replay_history, select_full_flows
    from repost.store.rules import READ_ONLY, get_rules

    from .replay import parse_header, parse_target, plan, tls_context

    try:
        to = parse_target(to_url) if to_url else None
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--to") from None
    try:
        extra = [parse_header(h) for h in headers]
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="-H") from None
    from repost.store.edits import EditError, parse_set

    try:
        edits = [parse_set(text) for text in sets]
    except EditError as e:
        raise click.BadParameter(str(e), param_hint="--set") from None
    new_body = _body_argument(body_arg) if body_arg is not None else None
    try:
        tls = tls_context(insecure=insecure, cacert=cacert)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--cacert") from None
    if not ids and not selection.narrows():
        raise click.UsageError("say which flows: give ids, or filters such as --path /orders --since 1h")

    conn = open_database(db_path)  # a read: nothing to replay in a database that is not there
    if ids:
        flows = [get_flow(conn, i) for i in ids]
        if selection.narrows():
            chosen = {row["id"] for row in select_full_flows(conn, _with_ids(selection, ids))}
            flows = [f for f in flows if f["id"] in chosen]
    else:
        flows = list(select_full_flows(conn, selection, newest_first=False))
    if limit:
        flows = flows[:limit]
    if not flows:
        click.echo("repost: no flows match; nothing to replay", err=True)
        return

    rules = get_rules(conn, READ_ONLY)
    plans = [plan(f, to=to, extra=extra, new_key=new_idempotency_key, rules=rules, edits=edits, new_body=new_body) for f in flows]
    history = replay_history(conn, [f["id"] for f in flows])
    _tell_history(plans, history)
    _tell_left_out(plans)

    if dry_run:
        _print_dry_run(plans, history)
        return
    unsafe = [p for p in plans if p.safety == "unsafe" and not p.problem]
    if unsafe and not yes and not _consent(unsafe, history):
        sys.exit(EXIT_REFUSED)

    from repost.store.redact import Redactor, load_key

    redactor = Redactor(load_key())  # before anything goes out: a replay that cannot be stored redacted is not sent
    sendable = [p for p in plans if not p.problem]
    outcomes = _send(sendable, concurrency, timeout, tls)
    replay_ids = _store(db_path, outcomes, redactor)
    failed = _report(plans, outcomes, replay_ids, as_json)
    if show_diff and not as_json:
        _print_diffs(conn, outcomes, replay_ids)
    if failed:
        sys.exit(1)


def _body_argument(text: str) -> bytes:
    """``--body @FILE`` (the file's bytes) or ``--body TEXT``."""
    if not text.startswith("@"):
        return text.encode("utf-8", "surrogateescape")
    try:
        with open(text[1:], "rb") as f:
            return f.read()
    except OSError as e:
        raise click.BadParameter(f"cannot read {text[1:]}: {e.strerror or e}", param_hint="--body") from None


def _with_ids(selection, ids):
    from dataclasses import replace

    return replace(selection, ids=list(ids))


def _tell_history(plans, history) -> None:
    for p in plans:
        if p.flow["id"] in history:
            times, last = history[p.flow["id"]]
            click.echo(
                f"repost: flow {p.flow['id']} was already replayed {times} time{'s' if times != 1 else ''} (last at {last})",
                err=True,
            )


def _tell_left_out(plans) -> None:
    missing = sorted({name for p in plans for name in p.left_out})
    if missing:
        example = " ".join(f"-H '{name}: ...'" for name in missing)
        _say(
            f"repost: not sent, redacted at capture: {', '.join(missing)}; supply {'it' if len(missing) == 1 else 'them'} with {example}",
            err=True,
        )
    missing_params = sorted({name for p in plans for name in p.left_out_query})
    if missing_params:
        _say(
            f"repost: not sent, redacted at capture: query parameter{'s' if len(missing_params) != 1 else ''} "
            f"{', '.join(missing_params)} (the request goes without {'it' if len(missing_params) == 1 else 'them'})",
            err=True,
        )
    for p in plans:
        if p.flow["request_redacted"]:
            click.echo(f"repost: flow {p.flow['id']}: secrets in its body were redacted at capture and are sent redacted", err=True)


def _say(line: str, err: bool = False) -> None:
    """Every line that holds recorded text goes through the one sanitiser: a URL, header
    or body cannot send the terminal an escape sequence or fake a line of its own."""
    from .terminal import visible

    click.echo(visible(line, lines=False), err=err)


def _line(p) -> str:
    return f"flow {p.flow['id']} [{p.safety}] {p.method} {p.url}"


def _print_dry_run(plans, history) -> None:
    for p in plans:
        _say(_line(p))
        if p.problem:
            _say(f"  not sendable: {p.problem}")
            continue
        for name, value in p.headers:
            _say(f"  {name}: {value}")
        if p.body:
            preview = p.body[:200].decode("utf-8", "replace")
            _say(f"  ({len(p.body):,} byte body) {preview}{'…' if len(p.body) > 200 else ''}")
        if p.left_out or p.left_out_query:
            names = p.left_out + [f"query parameter {name}" for name in p.left_out_query]
            _say(f"  left out (redacted at capture): {', '.join(names)}")
    click.echo(f"dry run: {len(plans)} request{'s' if len(plans) != 1 else ''} shown, nothing sent", err=True)


def _consent(unsafe, history) -> bool:
    from repost.store.safety import UNSAFE_REASON

    for p in unsafe:
        times = history.get(p.flow["id"], (0, None))[0]
        before = f"; already replayed {times} time{'s' if times != 1 else ''}" if times else ""
        _say(f"repost: {_line(p)}: {UNSAFE_REASON}{before}", err=True)
    from .consent import ask

    flows = f"{len(unsafe)} unsafe flow{'s' if len(unsafe) != 1 else ''}"
    return ask(
        f"Replay {flows}?", "repost: not replayed; nothing sent.",
        f"repost: refused: {flows}; nothing sent. Check them with --dry-run, then pass --yes to replay anyway.",
    )  # fmt: skip


def _send(plans, concurrency, timeout, tls):
    import asyncio

    from .replay import send_all

    if len(plans) > 1 and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True, console=_stderr_console()) as progress:
            task = progress.add_task("replaying", total=len(plans))
            return asyncio.run(
                send_all(plans, concurrency=concurrency, timeout=timeout, tls=tls,
                         on_done=lambda _: progress.advance(task))  # fmt: skip
            )
    return asyncio.run(send_all(plans, concurrency=concurrency, timeout=timeout, tls=tls))


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def _store(db_path, outcomes, redactor) -> dict[str, int]:
    from repost.store.database import open_database
    from repost.store.queries import ids_by_flow_id
    from repost.store.writer import BatchWriter

    if not outcomes:
        return {}
    writer = BatchWriter(db_path, redactor=redactor, max_body=DEFAULT_MAX_BODY)
    ok = writer.write([o.snapshot for o in outcomes])
    writer.close()
    if not ok or writer.lost:
        click.echo(f"repost: {writer.lost or len(outcomes)} replays could NOT be recorded: {writer.last_error}", err=True)
    conn = open_database(db_path)
    return ids_by_flow_id(conn, [o.snapshot[0] for o in outcomes])


def _report(plans, outcomes, replay_ids, as_json) -> bool:
    results, failed = [], False
    for p in plans:
        if p.problem:
            failed = True
            results.append({"id": p.flow["id"], "replay_id": None, "safety": p.safety, "status": None, "error": p.problem})
    for o in outcomes:
        rid = replay_ids.get(o.snapshot[0])
        results.append({
            "id": o.plan.flow["id"], "replay_id": rid, "safety": o.plan.safety, "url": o.plan.url,
            "status": o.status, "error": o.error, "elapsed_ms": round(o.elapsed_ms, 1),
        })  # fmt: skip
        failed = failed or o.error is not None
    results.sort(key=lambda r: r["id"])
    if as_json:
        from .terminal import write_json

        write_json(results)
        return failed
    for r in results:
        if r["error"]:
            _say(f"flow {r['id']}: FAILED: {r['error']}" + (f" (stored as flow {r['replay_id']})" if r["replay_id"] else ""))
        else:
            click.echo(f"flow {r['id']} -> replay {r['replay_id']}: {r['status']} ({r['elapsed_ms']:.0f} ms)")
    return failed


def _print_diffs(conn, outcomes, replay_ids) -> None:
    from repost.store.queries import get_flow

    from repost.store.diff import Ignores, diff_flows
    from .diff_cmd import print_differences

    for o in outcomes:
        rid = replay_ids.get(o.snapshot[0])
        if rid is None:
            continue
        original, copy = get_flow(conn, o.plan.flow["id"]), get_flow(conn, rid)
        print_differences(original["id"], rid, diff_flows(original, copy, Ignores([])))
