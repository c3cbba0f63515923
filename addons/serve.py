"""Serving recordings inside mitmproxy: each request is answered by repost's answering server.

``repost serve --mode regular`` (or socks5, reverse:URL, ...) runs mitmproxy with this addon;
clients use it through HTTPS_PROXY and mitmproxy's CA, and nothing reaches the real server:
the request hook sends every request to the answering server on loopback, with its own
scheme and authority in a header so that the host can take part in the match. A response
set inside the request hook would be sent at once; going through the answering server
keeps a stream's recorded timing.

Loadable as a script too: ``mitmdump -s addons/serve.py --set repost_serve_db=PATH``.
"""

import logging

from mitmproxy import ctx

from repost.store.answering import ORIGIN_HEADER

log = logging.getLogger("repost")


class ServeRecordings:
    def __init__(self, port: int | None = None) -> None:
        self.port = port  # the answering server's; None: start one from the options
        self.runner = None
        self.answerer = None

    def load(self, loader) -> None:
        loader.add_option("repost_serve_db", str, "", "repost database whose recordings answer every request.")
        loader.add_option("repost_serve_speed", float, 1.0, "Streams keep their recorded times divided by this (0: none).")
        loader.add_option("repost_serve_port", int, 0, "Send requests to an answering server already on this loopback port.")

    def configure(self, updated) -> None:
        if "repost_serve_port" in updated and ctx.options.repost_serve_port:
            self.port = ctx.options.repost_serve_port
        # Never connect to the real server before a request is answered (nothing may reach it).
        if ctx.options.connection_strategy != "lazy":
            ctx.options.update(connection_strategy="lazy")
        if ctx.options.upstream_cert:
            ctx.options.update(upstream_cert=False)

    async def running(self) -> None:
        if self.port is not None or not ctx.options.repost_serve_db:
            return
        from repost.store.answering import Answerer, start
        from repost.store.database import open_database
        from repost.store.matching import MatchOptions, Matcher
        from repost.store.redact_rules import redactor_for

        conn = open_database(ctx.options.repost_serve_db)
        matcher = Matcher(conn, redactor_for(conn), MatchOptions(match_host=True))
        self.answerer = Answerer(matcher, speed=ctx.options.repost_serve_speed)
        self.runner, self.port = await start(self.answerer, "127.0.0.1", 0)
        log.info("repost: answering from %s", ctx.options.repost_serve_db)

    def request(self, flow) -> None:
        if self.port is None or flow.response is not None:
            return
        r = flow.request
        default = (r.scheme, r.port) in (("http", 80), ("https", 443))
        host = f"[{r.host}]" if ":" in r.host else r.host
        r.headers[ORIGIN_HEADER] = f"{r.scheme}://{host}{'' if default else f':{r.port}'}"
        r.scheme, r.host, r.port = "http", "127.0.0.1", self.port

    def responseheaders(self, flow) -> None:
        # The answer goes on to the client as the answering server writes it: a stream at its
        # recorded times (mitmproxy would otherwise hold the whole body first).
        if self.port is not None and flow.request.host == "127.0.0.1" and flow.request.port == self.port:
            flow.response.stream = True

    async def done(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


addons = [ServeRecordings()]
