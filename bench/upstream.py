"""Minimal upstream HTTP server for the benches.

Answers POST on any path with 200 and a small JSON body. Loopback only.
``GET /__count`` answers ``{"posts": N}``, the POSTs answered since start
(for benches that check every request arrived).

    python bench/upstream.py --port 8081
"""

from __future__ import annotations

import argparse

from aiohttp import web

RESPONSE_BODY = b'{"ok": true, "id": 123}'
_posts = 0


async def handle_post(request: web.Request) -> web.Response:
    global _posts
    await request.read()  # consume the request body like a real service would
    _posts += 1
    return web.Response(body=RESPONSE_BODY, content_type="application/json")


async def handle_count(request: web.Request) -> web.Response:
    return web.json_response({"posts": _posts})


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/__count", handle_count)
    app.router.add_post("/{tail:.*}", handle_post)
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    web.run_app(make_app(), host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
