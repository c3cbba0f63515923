"""serve's ``--on-miss forward``: a request no recording answers goes to the real server,
and the exchange is recorded (VCR.py's "new episodes"). Writes follow replay's consent:
an unsafe one is forwarded only with consent given up front (``--yes``)."""

import time
import uuid
from dataclasses import dataclass

from .addresses import authority
from .capture import make_snapshot
from .headers import header
from .outgoing import NOT_COPIED
from .safety import UNSAFE_REASON, classify
from .sizes import DEFAULT_MAX_BODY

@dataclass
class Forwarded:
    flow_id: int | None
    reason: str | None = None


class Forwarder:
    def __init__(self, db_path: str, redactor, *, to=None, consent: bool = False, rules=(), max_body: int = DEFAULT_MAX_BODY,
                 timeout: float = 30.0):  # fmt: skip
        self.db_path = db_path
        self.redactor = redactor
        self.to = to  # (scheme, host, port), or None: the request's own destination (proxy modes)
        self.consent = consent
        self.rules = rules
        self.max_body = max_body
        self.timeout = timeout
        self._session = None

    async def forward(self, req) -> Forwarded:
        # Hop-by-hop, set by the client for its own connection, or the proxy's credentials: never sent on.
        headers = [(k, v) for k, v in req.headers if k.lower() not in NOT_COPIED]
        key, ctype = header(headers, "idempotency-key"), header(headers, "content-type")
        path = req.target.split("?", 1)[0]
        safety = classify(req.method, key, body=req.body, content_type=ctype, url=req.target, path=path,
                          rules=self.rules, headers=headers)  # fmt: skip
        if safety == "unsafe" and not self.consent:
            return Forwarded(None, f"{UNSAFE_REASON} (forwarding unsafe requests needs --yes)")
        scheme, host, port = self.to if self.to else (req.scheme, req.host, req.port)
        if self.to is None and (host, port) == ("", 0):
            return Forwarded(None, "no destination to forward to: give --to URL")
        response, error, started = await self._send(req, scheme, host, port, headers)
        snap = make_snapshot(
            flow_id=str(uuid.uuid4()), started=started, method=req.method, scheme=scheme, host=host, port=port,
            target=req.target, headers=[("Host", authority(scheme, host, port))] + headers, body=req.body,
            response=response, error=error,
        )  # fmt: skip
        flow_id = self._record(snap)
        if response is None:
            return Forwarded(None, f"forwarding failed: {error[0]}")
        return Forwarded(flow_id)

    async def _send(self, req, scheme, host, port, headers):
        import asyncio

        import aiohttp
        from multidict import CIMultiDict

        if self._session is None:
            self._session = aiohttp.ClientSession(
                auto_decompress=False, cookie_jar=aiohttp.DummyCookieJar(), timeout=aiohttp.ClientTimeout(total=self.timeout)
            )
        started = time.time()
        url = f"{scheme}://{authority(scheme, host, port)}{req.target}"
        try:
            async with self._session.request(
                req.method, url, headers=CIMultiDict(headers), data=req.body or None, allow_redirects=False,
                skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding", "Content-Type"),
            ) as resp:  # fmt: skip
                raw = await resp.read()
                version = f"HTTP/{resp.version.major}.{resp.version.minor}"
                return (resp.status, resp.reason or "", version, list(resp.raw_headers), raw, time.time()), None, started
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as e:
            return None, (f"{type(e).__name__}: {e}" if str(e) else type(e).__name__, time.time()), started

    def _record(self, snap) -> int | None:
        from .database import open_database
        from .queries import ids_by_flow_id
        from .writer import BatchWriter

        writer = BatchWriter(self.db_path, redactor=self.redactor, max_body=self.max_body)
        writer.write([snap])
        writer.close()
        conn = open_database(self.db_path)
        try:
            return ids_by_flow_id(conn, [snap[0]]).get(snap[0])
        finally:
            conn.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
