"""``repost serve --mode regular``: plain HTTP proxy requests answered without mitmproxy.

A proxy request for ``http://host/path`` (absolute form, no CONNECT) carries everything the
match needs, and aiohttp's server reads absolute-form targets (``request.url``), so such a
connection goes to the answering server straight away: mitmproxy's per-flow work is most of
a proxied request's cost (bench/serve_speed.py). Every other connection (CONNECT for HTTPS,
anything that is not an HTTP/1 request line) is relayed byte for byte to mitmproxy, which
runs on a loopback port behind this front and answers as before.

The choice is made once per connection, on its first request line: clients open tunnels on
connections of their own (a CONNECT arriving later on a plain connection gets aiohttp's 404).
"""

import asyncio

_MAX_LINE = 16 * 1024  # a request line longer than this is mitmproxy's to refuse
_CONNECT_FOR = 30.0  # seconds a relayed connection waits for mitmproxy to listen (its start-up)


def is_plain_proxy_request(line: bytes) -> bool:
    """``METHOD http://...`` (absolute form): answered here. CONNECT, origin form, TLS, SOCKS: not."""
    parts = line.split(b" ")
    if len(parts) != 3 or parts[0] == b"CONNECT" or not parts[2].startswith(b"HTTP/1."):
        return False
    target = parts[1][:8].lower()
    return target.startswith(b"http://") or target == b"https://"


class _Front(asyncio.Protocol):
    """One client connection until its first request line says where it goes."""

    def __init__(self, http_factory, mitm_port: int, relays: set):
        self.http_factory = http_factory
        self.mitm_port = mitm_port
        self.relays = relays
        self.transport = None
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\n")
        # Not a request line at all (a TLS ClientHello, SOCKS): to mitmproxy at once, since such a
        # client waits for an answer before sending a line end.
        if end < 0 and len(self.buffer) < _MAX_LINE and self.buffer[:1].isalpha():
            return
        line = self.buffer[:end].rstrip(b"\r") if end >= 0 else b""
        data, self.buffer = self.buffer, b""
        if is_plain_proxy_request(line):
            handler = self.http_factory()
            self.transport.set_protocol(handler)
            handler.connection_made(self.transport)
            handler.data_received(data)
            return
        self.transport.pause_reading()
        relay = _Relay(self.transport, data)
        self.transport.set_protocol(relay.client_side)
        self.relays.add(relay)
        relay.on_close = self.relays.discard
        relay.task = asyncio.ensure_future(relay.open(self.mitm_port))  # held: not collected while it runs

    def connection_lost(self, exc) -> None:
        self.buffer = b""


class _Pipe(asyncio.Protocol):
    """One direction's reader: what arrives is written to the other side, with back-pressure."""

    def __init__(self, relay: "_Relay", side: str):
        self.relay, self.side = relay, side

    def data_received(self, data: bytes) -> None:
        self.relay.forward(self.side, data)

    def eof_received(self):
        self.relay.eof(self.side)
        return True  # keep the other direction open until it ends too

    def connection_lost(self, exc) -> None:
        self.relay.close()

    def pause_writing(self) -> None:
        self.relay.pause(self.side)

    def resume_writing(self) -> None:
        self.relay.resume(self.side)


class _Relay:
    """A client connection spliced to mitmproxy's port."""

    def __init__(self, client, first: bytes):
        self.client = client
        self.server = None
        self.first = first
        self.client_side = _Pipe(self, "client")
        self.on_close = None
        self.task = None
        self.closed = False

    async def open(self, port: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _CONNECT_FOR
        while not self.closed:
            try:
                self.server, _ = await loop.create_connection(lambda: _Pipe(self, "server"), "127.0.0.1", port)
                break
            except OSError:
                if loop.time() >= deadline:
                    self.close()
                    return
                await asyncio.sleep(0.02)  # mitmproxy still starting: retried until the deadline
        if self.closed:
            if self.server is not None:
                self.server.close()
            return
        self.server.write(self.first)
        self.first = b""
        self.client.resume_reading()

    def _other(self, side: str):
        return self.server if side == "client" else self.client

    def forward(self, side: str, data: bytes) -> None:
        other = self._other(side)
        if other is not None and not other.is_closing():
            other.write(data)

    def eof(self, side: str) -> None:
        other = self._other(side)
        if other is not None and not other.is_closing() and other.can_write_eof():
            other.write_eof()

    def pause(self, side: str) -> None:
        # ``side``'s transport has too much to write: stop reading the other one.
        other = self._other(side)
        if other is not None and not other.is_closing():
            other.pause_reading()

    def resume(self, side: str) -> None:
        other = self._other(side)
        if other is not None and not other.is_closing():
            other.resume_reading()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for t in (self.client, self.server):
            if t is not None and not t.is_closing():
                t.close()
        if self.on_close is not None:
            self.on_close(self)


def free_port() -> int:
    """A loopback port free now, for mitmproxy behind the front."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_listening(port: int, task, timeout: float = 60.0) -> bool:
    """True once something accepts on the loopback ``port``; False if ``task`` ended first (or
    after ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not task.done() and loop.time() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)  # polled with a deadline
            continue
        writer.close()
        return True
    return False


async def start_front(runner, host: str, port: int, mitm_port: int):
    """Listen on (host, port): plain proxy requests to ``runner``'s app, the rest to mitmproxy.
    Returns (a coroutine function that stops it, the port bound)."""
    loop = asyncio.get_running_loop()
    relays: set = set()
    server = await loop.create_server(lambda: _Front(runner.server, mitm_port, relays), host, port, reuse_address=True)

    async def stop() -> None:
        server.close()
        for relay in list(relays):
            relay.close()
        # From Python 3.12 wait_closed also waits for every connection the server accepted: those
        # handed to aiohttp (kept alive) end in runner.cleanup(), which comes after this.
        try:
            await asyncio.wait_for(server.wait_closed(), 0.5)
        except asyncio.TimeoutError:
            pass

    return stop, server.sockets[0].getsockname()[1]
