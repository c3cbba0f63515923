"""``repost ui``: browse, compare and replay recorded flows in a local web page."""

import click

from .options import db_option


def _loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _server_log(tracebacks: bool):
    """aiohttp's log of requests it could not handle. Any local process can send a malformed
    request without the token: one sanitised line each on stderr, not a traceback (--debug)."""
    import logging

    from .terminal import visible

    class OneLine(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            exc = record.exc_info[1] if record.exc_info else None
            what = " ".join(f"{type(exc).__name__}: {exc}".split()) if exc else ""
            return visible(f"repost: ui: {record.getMessage()}{': ' + what[:300] if what else ''}", lines=False)

    log = logging.getLogger("repost.ui.server")
    log.propagate = False
    handler = logging.StreamHandler()  # stderr
    handler.setFormatter(logging.Formatter("repost: ui: %(message)s") if tracebacks else OneLine())
    log.handlers = [handler]
    return log


@click.command()
@db_option
@click.option("--listen-host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless you say otherwise).")
@click.option("--listen-port", default=8090, show_default=True, type=click.IntRange(0, 65535), help="Port to listen on (0: any free port).")
@click.option("--allow-host", "allow_hosts", multiple=True, metavar="NAME", help="Also accept this name in the Host header (for a --listen-host that is not loopback; repeatable).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.pass_context
def ui(ctx, db_path, listen_host, listen_port, allow_hosts, open_browser):
    """Serve a local web page to browse, compare and replay recorded flows.

    The list grows as `repost record` (on the same --db) records; a flow shows
    its request, response and stream; two flows compare with diff's rules;
    replay follows replay's: an unsafe flow is sent only after a confirmation
    that names it.

    \b
    Security: loopback only unless --listen-host says otherwise; the printed
    URL carries a random token (the page then keeps it in an HttpOnly,
    SameSite=Strict cookie); a request without it, or whose Host header does
    not name this listener, gets 403. Ctrl-C stops it.
    """
    import asyncio
    import secrets
    import socket

    from aiohttp import web

    from repost.store.database import open_database

    from .ui_parse import allowed_hosts
    from .ui_server import make_app

    open_database(db_path, create=True).close()  # it can start before `repost record` does
    if not _loopback(listen_host):
        click.echo(f"repost: warning: listening on {listen_host}, not loopback: anyone with the URL can send writes", err=True)
    token = secrets.token_urlsafe(32)
    family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((listen_host.strip("[]"), listen_port))
    except OSError as e:
        sock.close()
        raise click.ClickException(f"cannot listen on {listen_host}:{listen_port}: {e.strerror or e}") from None
    port = sock.getsockname()[1]
    app = make_app(db_path, token, allowed_hosts(listen_host, port, allow_hosts), port)
    shown_host = f"[{listen_host}]" if ":" in listen_host and not listen_host.startswith("[") else listen_host
    url = f"http://{shown_host}:{port}/?token={token}"

    async def run() -> None:
        # Open pages hold an event stream each: Ctrl-C should not wait a minute for them.
        from .main import _debug

        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0, logger=_server_log(_debug(ctx)))
        await runner.setup()
        await web.SockSite(runner, sock).start()
        click.echo(f"repost: ui for {db_path} at {url}")
        click.echo("repost: Ctrl-C to stop", err=True)
        if open_browser:
            import webbrowser

            # The browser's command line is readable by every user of the machine (ps): it gets
            # a token good for one use, not the one printed above.
            once = secrets.token_urlsafe(32)
            app["once"].add(once)
            webbrowser.open(url.replace(token, once))
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
