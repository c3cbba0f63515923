"""A real upstream HTTP(S) server for the tests: aiohttp on 127.0.0.1, in a thread.

Routes:
  /echo (any method)   answers JSON describing the request: method, path, query,
                       headers, body text; reflecting secrets the way echo
                       services and OAuth endpoints do.
  /gzip                answers a gzip-encoded JSON body with a marker word.
  /cookie              answers with a Set-Cookie header.
  /status/{code}       answers that status.
  /create (POST)       creates an "order": a new id and time each call.
  /pay (POST)          a payment honouring Idempotency-Key (a known key: the stored result).
  /v1/chat/completions an OpenAI-style SSE stream, paced by a StreamScript (set_stream).
  /download?size=N     N bytes with a Content-Length (&chunked=1: chunked); /upload reads a body, answers its size and SHA-256.
Every request is counted per path (Upstream.count), so tests can tell what was sent.
Everything else behaves like /echo.
"""

import asyncio
import gzip
import json
import ssl
import threading

from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    doc = {
        "method": request.method,
        "path": request.path,
        "query": dict(request.query),
        "headers": dict(request.headers),
        "body": body.decode("utf-8", "replace"),
        "http_version": f"{request.version.major}.{request.version.minor}",
    }
    return web.json_response(doc, status=201 if request.method == "POST" else 200)


async def gzipped(request: web.Request) -> web.Response:
    await request.read()
    payload = json.dumps({"word": "zanzibarquokka", "items": [1, 2, 3]}).encode()
    return web.Response(
        body=gzip.compress(payload),
        headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )


ISSUED_TOKEN = "CANARY-issued-9e0f"


async def cookie(request: web.Request) -> web.Response:
    await request.read()
    # Like an OAuth token endpoint: the secret comes from the server, not the request.
    resp = web.json_response({"access_token": ISSUED_TOKEN, "token_type": "bearer", "expires_in": 3600})
    resp.headers["Set-Cookie"] = f"session={request.query.get('cookie', 'x')}; HttpOnly"
    return resp


async def status(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"status": int(request.match_info["code"])}, status=int(request.match_info["code"]))


_order_ids = iter(range(1000, 10**9))


async def create_order(request: web.Request) -> web.Response:
    """Creates an order: the same request twice gives two orders (new id, new time)."""
    import datetime

    body = await request.json()
    order = {
        "id": next(_order_ids),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "item": body.get("item"),
        "items": body.get("items", []),
        "status": "created",
    }
    return web.json_response(order, status=201)


class StreamScript:
    """What /v1/chat/completions streams, one chunk at a time.

    After each chunk the server waits (up to `deadline` s) for the test to ack()
    that its client received it: a proxy that buffered the stream would make
    every wait run out, which `late` counts.
    """

    def __init__(self, words: list[str], deadline: float = 5.0, cut_after: int | None = None):
        self.words = words
        self.deadline = deadline
        self.cut_after = cut_after  # the server drops the connection after this many chunks
        self.sent: list[bytes] = []
        self.acked = 0
        self.late = 0

    def ack(self) -> None:
        self.acked += 1

    def chunk(self, i: int, word: str) -> bytes:
        doc = {
            "id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 1700000000, "model": "gpt-test",
            "choices": [{"index": 0, "delta": {"content": word} if i else {"role": "assistant", "content": word},
                         "finish_reason": None}],
        }  # fmt: skip
        return f"data: {json.dumps(doc)}\n\n".encode()


STREAM_SCRIPT = web.AppKey("stream_script", dict)  # {"script": StreamScript}: set while running


async def chat_stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    script = request.app[STREAM_SCRIPT]["script"]
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    loop = asyncio.get_running_loop()
    for i, word in enumerate(script.words):
        data = script.chunk(i, word)
        await resp.write(data)
        script.sent.append(data)
        if script.cut_after is not None and i + 1 >= script.cut_after:
            request.transport.abort()  # the server goes away mid-stream
            return resp
        deadline = loop.time() + script.deadline
        while script.acked <= i and loop.time() < deadline:
            await asyncio.sleep(0.002)  # polling for the client's ack, bounded by the deadline
        if script.acked <= i:
            script.late += 1
    await resp.write(b"data: [DONE]\n\n")
    script.sent.append(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


ANTHROPIC_WORDS = ["Hello", " from", " a", " recorded", " stream", "."]


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    """An Anthropic Messages stream, in the documented event shapes, ~20 ms between text deltas."""
    await request.read()
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await resp.prepare(request)
    message = {"id": "msg_test", "type": "message", "role": "assistant", "content": [], "model": "claude-test",
               "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}  # fmt: skip
    events = [("message_start", {"type": "message_start", "message": message}),
              ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})]  # fmt: skip
    events += [("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})
               for w in ANTHROPIC_WORDS]  # fmt: skip
    events += [("content_block_stop", {"type": "content_block_stop", "index": 0}),
               ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                                  "usage": {"output_tokens": len(ANTHROPIC_WORDS)}}),
               ("message_stop", {"type": "message_stop"})]  # fmt: skip
    for name, data in events:
        await resp.write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode())
        await asyncio.sleep(0.02)  # paced, so that a recording has times to keep
    await resp.write_eof()
    return resp


async def download(request: web.Request) -> web.StreamResponse:
    """`size` bytes of a repeating pattern, with a Content-Length (chunked with
    `&chunked=1`), written 1 MB at a time."""
    size = int(request.query["size"])
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    if request.query.get("chunked"):
        resp.enable_chunked_encoding()
    else:
        resp.content_length = size
    await resp.prepare(request)
    block = bytes(range(256)) * 4096
    sent = 0
    while sent < size:
        piece = block[: min(len(block), size - sent)]
        await resp.write(piece)
        sent += len(piece)
    await resp.write_eof()
    return resp


async def upload(request: web.Request) -> web.Response:
    import hashlib

    digest, size = hashlib.sha256(), 0
    async for data in request.content.iter_any():
        digest.update(data)
        size += len(data)
    return web.json_response({"size": size, "sha256": digest.hexdigest()})


COUNTS = web.AppKey("counts", dict)
PAYMENTS = web.AppKey("payments", dict)


async def pay(request: web.Request) -> web.Response:
    """A payment endpoint that honours Idempotency-Key: a known key gets the stored result."""
    key = request.headers.get("Idempotency-Key")
    stored = request.app[PAYMENTS]
    if key and key in stored:
        return web.json_response(stored[key], status=201, headers={"Idempotent-Replayed": "true"})
    body = await request.json()
    payment = {"payment_id": f"pay_{len(stored) + 1:04d}", "amount": body.get("amount")}
    if key:
        stored[key] = payment
    return web.json_response(payment, status=201)


@web.middleware
async def count_requests(request: web.Request, handler):
    counts = request.app[COUNTS]
    counts[request.path] = counts.get(request.path, 0) + 1
    counts["*"] = counts.get("*", 0) + 1
    return await handler(request)


def make_app() -> web.Application:
    app = web.Application(client_max_size=1024**3, middlewares=[count_requests])
    app[COUNTS] = {}
    app[PAYMENTS] = {}
    app[STREAM_SCRIPT] = {"script": StreamScript(["Hello", " world"])}
    app.router.add_route("POST", "/pay", pay)
    app.router.add_route("POST", "/v1/chat/completions", chat_stream)
    app.router.add_route("POST", "/v1/messages", anthropic_messages)
    app.router.add_route("GET", "/download", download)
    app.router.add_route("POST", "/upload", upload)
    app.router.add_route("*", "/gzip", gzipped)
    app.router.add_route("*", "/cookie", cookie)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_route("POST", "/create", create_order)
    app.router.add_route("*", "/{tail:.*}", echo)
    return app


class Upstream:
    """Runs an aiohttp app on its own event loop in a daemon thread."""

    def __init__(self, app: web.Application | None = None, ssl_context: ssl.SSLContext | None = None):
        self.app = app or make_app()
        self.ssl_context = ssl_context
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def count(self, path: str = "*") -> int:
        """How many requests reached `path` ("*": all of them)."""
        return self.app[COUNTS].get(path, 0)

    def set_stream(self, script: "StreamScript") -> "StreamScript":
        self.app[STREAM_SCRIPT]["script"] = script
        return script

    @property
    def payments(self) -> dict:
        return self.app[PAYMENTS]

    def start(self) -> "Upstream":
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("upstream did not start")
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        runner = web.AppRunner(self.app, access_log=None)
        self._loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._runner = runner
        self._started.set()
        self._loop.run_forever()

    def stop(self) -> None:
        async def shutdown():
            await self._runner.cleanup()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        fut.result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


async def asgi_echo(scope, receive, send):
    """The /echo route as an ASGI app, for hypercorn (an upstream that speaks HTTP/2)."""
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    doc = {
        "method": scope["method"],
        "path": scope["path"],
        "body": body.decode("utf-8", "replace"),
        "http_version": scope["http_version"],
    }
    payload = json.dumps(doc).encode()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": payload})


class H2Upstream:
    """hypercorn over TLS on 127.0.0.1, offering h2 and http/1.1, in a daemon thread."""

    def __init__(self, cert_file: str, key_file: str):
        from hypercorn.config import Config

        self.config = Config()
        self.config.bind = ["127.0.0.1:0"]
        self.config.certfile = cert_file
        self.config.keyfile = key_file
        self.config.accesslog = None
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._stop = asyncio.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> "H2Upstream":
        import socket

        with socket.socket() as s:  # hypercorn does not report an ephemeral port back
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.config.bind = [f"127.0.0.1:{self.port}"]
        self._thread.start()
        return self

    def _run(self) -> None:
        from hypercorn.asyncio import serve

        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(serve(asgi_echo, self.config, shutdown_trigger=self._stop.wait))

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
