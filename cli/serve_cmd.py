"""``repost serve``: recordings answer as the server (or inside the proxy)."""

import sys

import click

from .options import db_option, json_option, selection_options


@click.command()
@db_option
@click.option("--from", "sources", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Serve the flows of a HAR, mitmproxy flow file or VCR cassette instead of --db (repeatable).")  # fmt: skip
@selection_options
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless you say otherwise).")
@click.option("--listen-port", default=8081, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
@click.option("--mode", default="server", show_default=True,
              help="server: answer as the server itself (clients use it as their base URL); or a mitmproxy mode "
                   "(regular, socks5, reverse:URL, ...): answer inside the proxy, HTTPS through mitmproxy's CA "
                   "(reverse:http://HOST is answered by the server alone: the host is known).")  # fmt: skip
@click.option("--ignore", "ignores", multiple=True, metavar="PATTERN", help="Leave a part out of the match, in diff's syntax: request.body.timestamp, id, items[*].nonce, a query parameter (repeatable).")
@click.option("--match-header", "match_headers", multiple=True, metavar="NAME", help="Match this request header too (headers are not matched unless named; repeatable).")
@click.option("--match-secrets", is_flag=True, help="A value redacted at capture matches only a value with the same fingerprint (default: any value).")
@click.option("--repeat", type=click.Choice(["last", "cycle", "none"]), default="last", show_default=True,
              help="When several recordings match, they answer in recorded order; then: the last one again, the sequence again, or a miss.")  # fmt: skip
@click.option("--on-miss", type=click.Choice(["error", "forward"]), default="error", show_default=True,
              help="error: a miss answers 502 and nothing leaves. forward: send it on (--to URL in server mode; the request's own destination in the proxy modes) and record the exchange; unsafe writes only with --yes.")  # fmt: skip
@click.option("--to", "to_url", metavar="URL", help="Where --on-miss forward sends requests: scheme://host[:port].")
@click.option("-y", "--yes", is_flag=True, help="Consent to forwarding unsafe (non-idempotent) writes that miss.")
@click.option("--speed", default=1.0, show_default=True, type=click.FloatRange(min=0), help="Streams keep their recorded chunk times divided by this (0: no delays).")
@click.option("--latency", is_flag=True, help="Delay plain responses by their recorded duration too (divided by --speed).")
@click.option("--set", "extra", multiple=True, metavar="OPTION=VALUE", help="Any other mitmproxy option, in the proxy modes (repeatable), e.g. --set confdir=~/.mitmproxy.")
@click.option("--strict", is_flag=True, help="Exit 1 at the end if any request missed.")
@json_option
def serve(db_path, sources, selection, listen_host, listen_port, mode, ignores, match_headers, match_secrets, repeat,
          on_miss, to_url, yes, speed, latency, extra, strict, as_json):  # fmt: skip
    """Answer requests with recorded responses, matched by meaning.

    A request matches a recording with the same method, path, query parameters
    (in any order) and body: JSON by value (key order and spaces aside), forms
    and multipart by field, anything else byte for byte. Headers count only
    when named with --match-header; the host only in the proxy modes. A value
    redacted at capture (a password, a token) matches any value. Several
    matches answer in recorded order (create, then get).

    A request that matches nothing gets 502 with JSON naming the closest
    recording and how the request differs from it; nothing is ever forwarded.
    Every answer carries the header Repost-Flow: ID. Streams (SSE, NDJSON) are
    written chunk by chunk at their recorded times.

    \b
    Exit status: 0 stopped (Ctrl-C/SIGTERM), 1 a failure (or, with --strict,
    a miss), 2 usage error.
    """
    import asyncio
    import tempfile

    from repost.store.matching import MatchOptions

    to = None
    if to_url:
        from .replay import parse_target

        try:
            target = parse_target(to_url)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--to") from None
        to = (target.scheme, target.host, target.port)
    if on_miss == "forward" and sources:
        raise click.UsageError("--on-miss forward records into a database: serve it with --db, not --from")
    if on_miss == "forward" and mode == "server" and to is None:
        raise click.UsageError("--on-miss forward in server mode needs --to URL (where to send what misses)")
    forward = dict(to=to, consent=yes) if on_miss == "forward" else None
    options = MatchOptions(ignore=list(ignores), match_headers=list(match_headers), match_secrets=match_secrets,
                           match_host=mode != "server", repeat=repeat)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="repost-serve-") as scratch:
        db = _from_files(sources, scratch) if sources else db_path
        summary = asyncio.run(_run(db, selection, options, listen_host, listen_port, mode, speed, latency, as_json, extra, forward))
    plural = "s" if summary.served != 1 else ""
    click.echo(
        f"repost: served {summary.served} request{plural} from {len(summary.recordings)} recording"
        f"{'s' if len(summary.recordings) != 1 else ''}; {summary.misses} missed"
        + (f"; {summary.redacted} answer{'s' if summary.redacted != 1 else ''} held redacted values" if summary.redacted else ""),
        err=True,
    )
    if strict and summary.misses:
        sys.exit(1)


def _from_files(sources, scratch: str) -> str:
    """The files imported into a scratch store (through import's own path: redacted, checked)."""
    import os

    from repost.store.importer import import_file

    db = os.path.join(scratch, "served.db")
    from repost.store.database import open_database
    from repost.store.matching import index_match_keys

    for source in sources:
        import_file(source, db)
    conn = open_database(db)
    index_match_keys(conn)  # lookups through the index from the first request on
    conn.close()
    return db


async def _run(db, selection, options, host, port, mode, speed, latency, as_json, extra=(), forward=None):
    import asyncio
    import signal

    from repost.store.answering import Answerer, start
    from repost.store.addresses import host_port
    from repost.store.database import open_database
    from repost.store.matching import Matcher
    from repost.store.redact_rules import redactor_for

    if selection.filter_expr:
        selection.allowed_ids = _filtered_ids(db, selection)
    conn = open_database(db)
    redactor = redactor_for(conn)
    matcher = Matcher(conn, redactor, options, selection)
    forwarder = None
    if forward is not None:
        from repost.store.forwarding import Forwarder
        from repost.store.rules import READ_ONLY, get_rules

        forwarder = Forwarder(db, redactor, to=forward["to"], consent=forward["consent"], rules=get_rules(conn, READ_ONLY))
    origin = None
    if mode != "server" and not extra:
        origin, host, port = _plain_reverse(mode, host, port)
    answerer = Answerer(matcher, speed=speed, latency=latency, on_served=_logger(as_json), forwarder=forwarder, origin=origin)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    direct = mode == "server" or answerer.origin is not None
    # Plain HTTP answered in front of mitmproxy (cli/serve_front.py), unless an option could change
    # how mitmproxy treats plain requests (proxyauth, ...): then every request goes through it.
    front = mode == "regular" and all(_tls_only(setting) for setting in extra)
    try:
        runner, bound = await start(answerer, host if direct else "127.0.0.1", port if direct else 0)
    except OSError as e:
        raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    try:
        if direct:
            where = host_port(host, bound)
            as_what = "" if mode == "server" else f" as a reverse proxy to {answerer.origin}"
            click.echo(f"repost: serving recordings from {db}{as_what} on http://{where} (Ctrl-C to stop)", err=True)
            await stop.wait()
        elif front:
            from .serve_front import free_port, start_front, wait_listening
            from .serve_proxy import run_serving_proxy

            mitm_port = free_port()
            proxy = asyncio.ensure_future(run_serving_proxy(mode, "127.0.0.1", mitm_port, bound, stop, list(extra), quiet=True))
            # mitmproxy's start-up holds this event loop for a second or so: the front opens after
            # it, or the first answers (a stream's times) would wait on it.
            if not await wait_listening(mitm_port, proxy):
                if not proxy.done():
                    stop.set()
                    await proxy
                    raise click.ClickException("mitmproxy did not start listening within 60 s")
                await proxy  # its failure, or a stop before it was up
                return answerer.summary
            try:
                stop_front, port = await start_front(runner, host, port, mitm_port)
            except OSError as e:
                stop.set()
                await proxy
                raise click.ClickException(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
            try:
                click.echo(f"repost: serving recordings as an HTTP proxy on {host_port(host, port)}; CONNECT (HTTPS) "
                           "through mitmproxy (Ctrl-C to stop)", err=True)  # fmt: skip
                await proxy
            finally:
                await stop_front()
        else:
            from .serve_proxy import run_serving_proxy

            await run_serving_proxy(mode, host, port, bound, stop, list(extra))
    finally:
        await runner.cleanup()
        if forwarder is not None:
            await forwarder.close()
        conn.close()
    return answerer.summary


# mitmproxy options that concern only what goes through CONNECT (certificates, TLS), or that the
# serve addon overrides anyway: with these the plain-HTTP front still answers plain requests.
_TLS_OPTION_PREFIXES = ("ssl_", "tls_", "cert", "client_cert", "key_size", "confdir", "connection_strategy", "upstream_cert")


def _tls_only(setting: str) -> bool:
    return setting.partition("=")[0].strip().startswith(_TLS_OPTION_PREFIXES)


def _plain_reverse(mode: str, host: str, port: int) -> tuple[str | None, str, int]:
    """``reverse:http://HOST[:PORT]``: (that origin, where to listen). A reverse proxy to plain HTTP
    that answers from recordings is a server whose host is known, so the answering server takes
    the requests itself, without mitmproxy's per-flow work in between (a third of the
    throughput, bench/serve_speed.py). Anything else (regular, socks5, upstream, a reverse
    proxy to HTTPS, ``--set`` options for mitmproxy): (None, host, port), mitmproxy's."""
    if not mode.startswith("reverse:"):
        return None, host, port
    from mitmproxy.proxy.mode_specs import ProxyMode, ReverseMode

    try:
        spec = ProxyMode.parse(mode)
    except ValueError:
        return None, host, port  # mitmproxy says what is wrong with it
    if not isinstance(spec, ReverseMode) or spec.scheme != "http":
        return None, host, port
    target_host, target_port = spec.address
    authority = f"[{target_host}]" if ":" in target_host else target_host
    origin = f"http://{authority}" + ("" if target_port == 80 else f":{target_port}")
    return origin, spec.custom_listen_host or host, spec.custom_listen_port or port


def _filtered_ids(db, selection) -> set[int]:
    """A --filter (mitmproxy's language) is evaluated once, over the selection, at start."""
    from repost.store.database import open_database
    from repost.store.queries import select_full_flows

    conn = open_database(db)
    try:
        return {row["id"] for row in select_full_flows(conn, selection)}
    finally:
        conn.close()


def _logger(as_json: bool):
    from .terminal import visible

    def log(outcome) -> None:
        if as_json:
            import json

            sys.stdout.write(json.dumps(outcome.as_json(), ensure_ascii=False) + "\n")
            sys.stdout.flush()
            return
        line = f"{outcome.method} {outcome.target} -> "
        if outcome.flow_id is None:
            line += f"miss: {outcome.miss}"
            if outcome.closest:
                diffs = ", ".join(f"{d['path']}: {d['a']!r} -> {d['b']!r}" for d in outcome.closest["differences"][:3])
                line += f" (closest flow {outcome.closest['id']}{': ' + diffs if diffs else ''})"
        else:
            line += f"flow {outcome.flow_id}, {outcome.status}"
            if outcome.events is not None:
                line += f", stream {outcome.events} events"
        click.echo(visible(line, lines=False), err=True)

    return log
