"""The repost recorder: a mitmproxy addon that writes POSTs and their responses to SQLite.

Use it from repost (``repost record``) or load it into mitmproxy's own tools::

    mitmdump -s addons/recorder.py --set repost_db=traffic.db

Options: ``repost_db``, ``repost_methods`` (``POST``; a list such as
``POST,PUT,PATCH,DELETE``, or ``ALL``), ``repost_filter`` (a mitmproxy filter
expression), ``repost_keep_secrets``, ``repost_max_body`` (``10m``), ``repost_retain``
(``7d``: flows older than that are deleted while the recorder is idle; empty keeps all).

The hooks only take a snapshot of the finished flow; redaction, hashing and the
SQLite commit happen in a writer process (store/writer_process.py), so
recording never slows or fails a request.
"""

import asyncio
import logging
import os
import sys

from mitmproxy import ctx, exceptions, flowfilter, http

from repost.addons.streaming import settle, tee_request, tee_response
from repost.store.database import describe, open_database
from repost.store.errors import StoreError
from repost.store.sizes import DEFAULT_MAX_BODY, parse_size
from repost.store.writer_process import WriterProcess

log = logging.getLogger("repost")

SHUTDOWN_GRACE_SECONDS = 3.0


def parse_methods(spec: str) -> frozenset[bytes] | None:
    """``"POST,put"`` -> ``{b"POST", b"PUT"}``; ``"ALL"`` -> None (every method)."""
    names = [m.strip().upper() for m in spec.split(",") if m.strip()]
    if not names:
        raise ValueError("no methods given")
    if "ALL" in names or "*" in names:
        return None
    bad = [m for m in names if not m.isalpha()]
    if bad:
        raise ValueError(f"not an HTTP method: {bad[0]}")
    return frozenset(m.encode() for m in names)


def _check_key() -> None:
    """Said here, in the proxy's own log, as well as by the writer process that redacts: loudly."""
    from repost.store.redact import FingerprintKeyError, load_key

    try:
        load_key()
    except FingerprintKeyError as e:
        log.warning(
            "repost: WARNING: %s. Secrets are still redacted, but as an unkeyed REDACTED marker with no"
            " fingerprint (diff cannot tell two secrets apart)", e
        )


class Recorder:
    def __init__(self, announce: bool = True) -> None:
        # Under mitmdump/mitmweb the recorder says where it records; `repost record` says it itself.
        self.announce = announce
        self.writer: WriterProcess | None = None
        self.methods: frozenset[bytes] | None = frozenset({b"POST"})
        self.filter: flowfilter.TFilter | None = None
        # Flows with a recorded method between request and response: shutdown waits for them.
        self.in_flight = 0
        self.max_body = DEFAULT_MAX_BODY
        self._idle = asyncio.Event()
        self._closed = False

    def load(self, loader) -> None:
        loader.add_option("repost_db", str, os.environ.get("REPOST_DB") or "repost.db", "SQLite file, or postgresql:// URL, to record into.")
        loader.add_option(
            "repost_methods", str, "POST", "Methods to record: a comma-separated list such as POST,PUT,PATCH, or ALL."
        )
        loader.add_option("repost_filter", str, "", "Record only flows matching this mitmproxy filter expression.")
        loader.add_option("repost_keep_secrets", bool, False, "Record secrets as they are (no redaction).")
        loader.add_option(
            "repost_max_body", str, f"{DEFAULT_MAX_BODY // 1024**2}m", "Bodies above this size are stored as a prefix (e.g. 10m, 512k)."
        )
        loader.add_option(
            "repost_retain", str, "", "Delete flows older than this (e.g. 7d, 12h) while idle; empty keeps every flow."
        )

    def configure(self, updated: set[str]) -> None:
        if "repost_methods" in updated:
            try:
                self.methods = parse_methods(ctx.options.repost_methods)
            except ValueError as e:
                raise exceptions.OptionsError(f"repost_methods: {e}") from e
        if "repost_filter" in updated:
            expr = ctx.options.repost_filter
            try:
                self.filter = flowfilter.parse(expr) if expr else None
            except ValueError as e:
                raise exceptions.OptionsError(f"repost_filter: invalid filter expression {expr!r}: {e}") from e
        if updated & {"repost_db", "repost_keep_secrets", "repost_max_body", "repost_retain"}:
            self._open_writer()

    def _open_writer(self) -> None:
        try:
            max_body = parse_size(ctx.options.repost_max_body)
        except ValueError as e:
            raise exceptions.OptionsError(f"repost_max_body: {e}") from e
        self.max_body = max_body
        retain = None
        if ctx.options.repost_retain:
            from repost.store.care import duration_seconds

            try:
                retain = duration_seconds(ctx.options.repost_retain)
            except ValueError as e:
                raise exceptions.OptionsError(f"repost_retain: {e}") from e
        old = self.writer
        if not ctx.options.repost_keep_secrets:
            _check_key()
        try:
            # Checked here, so that a bad file is refused before the proxy listens.
            open_database(ctx.options.repost_db, create=True).close()
            self.writer = WriterProcess(
                ctx.options.repost_db, keep_secrets=ctx.options.repost_keep_secrets, max_body=max_body, retain=retain
            )
        except (StoreError, OSError) as e:
            raise exceptions.OptionsError(f"repost_db: {e}") from e
        if old is not None:
            old.close()

    def running(self) -> None:
        if self.announce and self.writer is not None:
            opts = ctx.options
            secrets = "kept as they are" if opts.repost_keep_secrets else "redacted"
            log.info(
                "repost: recording %s flows%s to %s (secrets %s)", opts.repost_methods.upper(),
                f" matching {opts.repost_filter!r}" if opts.repost_filter else "", describe(opts.repost_db), secrets,
            )  # fmt: skip

    def _wanted(self, flow: http.HTTPFlow) -> bool:
        if self.methods is not None and flow.request.data.method not in self.methods:
            return False
        return self.filter is None or self.filter(flow)

    # Hooks stay thin: decide, then hand the flow over.

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if self.writer is not None and self._method_wanted(flow):
            tee_request(flow, self.max_body)

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        # The last moment to choose streaming: event streams and huge bodies go through live.
        if self.writer is not None and self._method_wanted(flow):
            tee_response(flow, self.max_body)

    def _method_wanted(self, flow: http.HTTPFlow) -> bool:
        return self.methods is None or flow.request.data.method in self.methods

    def request(self, flow: http.HTTPFlow) -> None:
        if self.methods is None or flow.request.data.method in self.methods:
            if "repost_tees" in flow.metadata:  # only streamed bodies: no call for the rest
                settle(flow, "request")
            flow.metadata["repost_in_flight"] = True
            self.in_flight += 1
            self._idle.clear()

    def _landed(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.pop("repost_in_flight", False):
            self.in_flight -= 1
            if self.in_flight <= 0:
                self._idle.set()

    def response(self, flow: http.HTTPFlow) -> None:
        self._landed(flow)
        if "repost_tees" in flow.metadata:
            settle(flow, "response")
        if self.writer is not None and self._wanted(flow):
            if self._closed:
                # Shutting down and the writer is gone: an answer the client got
                # must be on record, so this one is not given.
                flow.kill()
                return
            flow.metadata["repost_recorded"] = True
            self.writer.submit(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._landed(flow)
        if self.writer is None or flow.error is None or self._closed:
            return
        if flow.metadata.get("repost_recorded"):
            self.writer.submit_error(flow.id, flow.error.msg)
        elif self._wanted(flow):
            flow.metadata["repost_recorded"] = True
            self.writer.submit(flow)

    async def done(self) -> None:
        if self.writer is None:
            return
        # Let flows already under way finish and be recorded (at most a few seconds).
        if self.in_flight > 0:
            try:
                await asyncio.wait_for(self._idle.wait(), SHUTDOWN_GRACE_SECONDS)
            except asyncio.TimeoutError:
                pass
        self._closed = True
        self.close()

    def close(self) -> None:
        if self.writer is None:
            return
        self._closed = True
        self.writer.close()
        if self.writer.lost:
            # Logging is shut down by now: report straight to stderr.
            print(f"repost: {self.writer.lost} flows could NOT be recorded to {self.writer.path}", file=sys.stderr)


addons = [Recorder()]
