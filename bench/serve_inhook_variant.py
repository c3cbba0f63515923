"""A variant of `repost serve` for serve_speed.py (a measurement aid, not shipped): in the proxy
modes a plain (non-stream) recording is answered inside mitmproxy's request hook, instead of
the request going on to the answering server (a second HTTP exchange in the same process).
Streams, misses and truncated recordings still take the answering server's path.

    .venv/bin/python bench/serve_speed.py --measures throughput \
        --reverse-cmd "$PWD/.venv/bin/python bench/serve_inhook_variant.py"
"""
import runpy
import sys

from mitmproxy import http

from repost.addons import serve as serve_addon
from repost.store import answering
from repost.store.matching import IncomingRequest
from repost.store.queries import get_flow

_captured = {}
_orig_start = answering.start


async def start(answerer, host, port):
    _captured["a"] = answerer
    return await _orig_start(answerer, host, port)


answering.start = start
_orig_request = serve_addon.ServeRecordings.request


def request(self, flow):
    a = _captured.get("a")
    if a is not None and flow.response is None:
        r = flow.request
        req = IncomingRequest(method=r.method, scheme=r.scheme, host=r.host, port=r.port, target=r.path,
                              headers=list(r.headers.items(multi=True)), body=r.raw_content or b"",
                              http_version=r.http_version)
        m = a.matcher.match(req)
        if m.flow_id is not None:
            f = get_flow(a.matcher.conn, m.flow_id)
            if not f["response_chunks"] and not f["response_truncated"]:
                hdrs = http.Headers([(k.encode(), v.encode()) for k, v in answering._headers(f).items()])
                flow.response = http.Response.make(f["status"], bytes(f["response_body"] or b""), hdrs)
                a.summary.served += 1
                a._tell(answering.Served(req.method, req.target, f["id"], f["status"]))
                return
    return _orig_request(self, flow)


serve_addon.ServeRecordings.request = request
sys.argv = ["repost", *sys.argv[1:]]
runpy.run_module("repost.cli", run_name="__main__")
