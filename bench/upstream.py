"""Minimal upstream HTTP server for the benches.

Answers POST on any path with 200 and a small JSON body. Loopback only.
``GET /__count`` answers ``{"posts": N}``, the POSTs answered since start
(for benches that check every request arrived).

``POST /v1/chat/completions`` with ``"stream": true`` in its JSON body answers an
OpenAI-style Server-Sent Events stream (``text/event-stream``): after
``--sse-think-ms`` (50) it sends ``--sse-events`` (20) ``data: {chat.completion.chunk}``
events, one every ``--sse-interval-ms`` (50), then ``data: [DONE]``. Any other
POST (that path without ``"stream": true`` included) gets the JSON answer above.

    python bench/upstream.py --port 8081
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiohttp import web

RESPONSE_BODY = b'{"ok": true, "id": 123}'
_posts = 0


async def handle_post(request: web.Request) -> web.Response:
    global _posts
    await request.read()  # consume the request body like a real service would
    _posts += 1
    return web.Response(body=RESPONSE_BODY, content_type="application/json")


SSE = {"events": 20, "interval_ms": 50.0, "think_ms": 50.0}


def _chunk(completion_id: str, created: int, index: int, last: bool) -> bytes:
    delta = {"role": "assistant", "content": ""} if index == 0 else {"content": f"tok{index} "}
    doc = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": "bench-model",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": "stop" if last else None}],
    }
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


async def handle_chat(request: web.Request) -> web.StreamResponse:
    global _posts
    raw = await request.read()
    try:
        wants_stream = json.loads(raw).get("stream") is True
    except (ValueError, AttributeError):
        wants_stream = False
    if not wants_stream:
        return await handle_post_body(raw)
    _posts += 1
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    completion_id, created = f"chatcmpl-bench{_posts}", int(time.time())
    await asyncio.sleep(SSE["think_ms"] / 1000)  # "thinking" before the first token
    n = SSE["events"]
    for i in range(n):
        if i:
            await asyncio.sleep(SSE["interval_ms"] / 1000)
        await response.write(_chunk(completion_id, created, i, i == n - 1))
    await asyncio.sleep(SSE["interval_ms"] / 1000)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def handle_post_body(raw: bytes) -> web.Response:
    global _posts
    _posts += 1
    return web.Response(body=RESPONSE_BODY, content_type="application/json")


async def handle_count(request: web.Request) -> web.Response:
    return web.json_response({"posts": _posts})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/__count", handle_count)
    app.router.add_post("/v1/chat/completions", handle_chat)
    app.router.add_post("/{tail:.*}", handle_post)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sse-events", type=int, default=20, help="chunk events per stream (then [DONE])")
    parser.add_argument("--sse-interval-ms", type=float, default=50.0, help="pause between events")
    parser.add_argument("--sse-think-ms", type=float, default=50.0, help="pause before the first event")
    args = parser.parse_args(argv)
    SSE.update(events=args.sse_events, interval_ms=args.sse_interval_ms, think_ms=args.sse_think_ms)
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
