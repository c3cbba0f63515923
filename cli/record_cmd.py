"""``repost record``: mitmproxy, embedded, with the recorder."""

import os

import click

from .options import db_option, size_option
from repost.store.sizes import DEFAULT_MAX_BODY_TEXT


def _retention(ctx, param, value: str) -> str:
    from repost.store.care import duration_seconds

    if value:
        try:
            duration_seconds(value)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return value


@click.command()
@db_option
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless you say otherwise).")
@click.option("--listen-port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on.")
@click.option(
    "--mode",
    "modes",
    multiple=True,
    default=["regular"],
    show_default=True,
    help="mitmproxy mode: regular, reverse:URL, upstream:URL, socks5, ... (repeatable).",
)
@click.option("--methods", default="POST", show_default=True, help="Methods to record: a list such as POST,PUT,PATCH,DELETE, or ALL.")
@click.option("--filter", "filter_expr", default="", help="Record only flows matching this mitmproxy filter expression, e.g. '~d api.test & ~c 201'.")
@click.option("--keep-secrets", is_flag=True, help="Do not redact secrets (Authorization, cookies, tokens, passwords...).")
@click.option("--max-body", default=DEFAULT_MAX_BODY_TEXT, show_default=True, callback=size_option, help="Store bodies above this size as a prefix, with their full length and SHA-256.")
@click.option("--retain", default="", metavar="DURATION", callback=_retention, help="Delete flows older than this (7d, 12h) while the proxy is idle; default: keep every flow.")
@click.option("--set", "extra", multiple=True, metavar="OPTION=VALUE", help="Any other mitmproxy option (repeatable), e.g. --set confdir=~/.mitmproxy.")
@click.option("-q", "--quiet", is_flag=True, help="Print only errors.")
def record(db_path, listen_host, listen_port, modes, methods, filter_expr, keep_secrets, max_body, retain, extra, quiet):
    """Run the recording proxy until Ctrl-C.

    Point a client at it (HTTP_PROXY/HTTPS_PROXY=http://127.0.0.1:8080, or
    --mode reverse:URL and use the proxy's address as the server's), and every
    request it makes with a recorded method lands in the database, with its
    response, within half a second. Flows that got no response (upstream down,
    client gone) are recorded with their error.

    --retain 7d keeps the database to the last week: older flows are deleted
    (as `repost prune` does) whenever the proxy is idle, a batch at a time.

    Ctrl-C or SIGTERM flushes everything and exits 0.
    """
    from repost.addons.recorder import parse_methods

    try:
        parse_methods(methods)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--methods") from None
    _check_ports(modes, listen_host, listen_port)
    from repost.store.database import discard_created, exists

    created = not exists(db_path)
    try:
        _record(db_path, listen_host, listen_port, modes, methods, filter_expr, keep_secrets, max_body, retain, extra, quiet)
    except BaseException:
        if created:  # a proxy that could not start (a busy port, a bad option) leaves no empty database
            discard_created(db_path, only_if_empty=True)
        raise


def _record(db_path, listen_host, listen_port, modes, methods, filter_expr, keep_secrets, max_body, retain, extra, quiet):
    from repost.store.database import open_database

    # Check the database before listening: a foreign or corrupt file is refused at once.
    open_database(db_path, create=True).close()

    import asyncio

    from .proxy import ProxyStartError, run_recording_proxy

    settings = dict(
        listen_host=listen_host,
        listen_port=listen_port,
        mode=list(modes),
        repost_db=db_path,
        repost_methods=methods,
        repost_filter=filter_expr,
        repost_keep_secrets=keep_secrets,
        repost_max_body=str(max_body),
        repost_retain=retain,
        # Bodies above the cap stream through instead of filling memory, recorded or not
        # (the recorder's tee takes over for the ones it records).
        stream_large_bodies=str(max(max_body, 1)),
    )
    try:
        summary = asyncio.run(run_recording_proxy(settings, list(extra), quiet=quiet))
    except ProxyStartError as e:
        raise click.ClickException(str(e)) from None
    from repost.store.database import describe

    if summary.lost:
        raise click.ClickException(f"{summary.lost} flows could NOT be recorded to {describe(db_path)}")
    if not quiet:
        plural = "" if summary.written == 1 else "s"
        click.echo(f"repost: recorded {summary.written} flow{plural} to {describe(db_path)}", err=True)


def _check_ports(modes, listen_host: str, listen_port: int) -> None:
    """A port already taken is said in repost's words, before anything is created."""
    import errno
    import socket

    from mitmproxy.proxy.mode_specs import ProxyMode
    from repost.store.addresses import host_port

    for spec in modes:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError as e:
            raise click.BadParameter(f"{spec!r}: {e}", param_hint="--mode") from None
        if mode.transport_protocol != "tcp":
            continue  # UDP modes (dns, wireguard): mitmproxy says it itself
        host, port = mode.listen_host(listen_host), mode.listen_port(listen_port)
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as e:
                where = host_port(host, port)
                if e.errno == errno.EADDRINUSE:
                    hint = "choose another with --listen-port" if not mode.custom_listen_port else f"choose another in --mode {spec!r}"
                    raise click.ClickException(f"cannot listen on {where}: the port is in use; {hint}") from None
                raise click.ClickException(f"cannot listen on {where}: {e.strerror or e}") from None
