"""A body seen as it passes: its first bytes, size, SHA-256 and, for streams, when each chunk came.

The recorder sets one as a body's ``stream`` (addons/streaming.py), and replay reads a
streamed response through one (cli/replay.py): the same capture for both.
"""

import time
from hashlib import sha256

from .capture import Streamed


class BodyTee:
    __slots__ = ("cap", "prefix", "size", "hash", "complete", "chunks", "t0", "last")

    def __init__(self, cap: int, t0: float | None = None):
        self.cap = cap
        self.prefix = bytearray()
        self.size = 0
        self.hash = sha256()
        self.complete = False
        self.chunks: list | None = [] if t0 is not None else None
        self.t0 = t0
        self.last: float | None = None  # when the last chunk arrived: a cut-off body's end

    def __call__(self, data: bytes) -> bytes:
        if not data:  # mitmproxy's end-of-stream call
            self.complete = True
            return data
        self.last = now = time.time()
        if self.chunks is not None:
            self.chunks.append((round((now - self.t0) * 1000, 3), len(data)))
        self.size += len(data)
        self.hash.update(data)
        room = self.cap - len(self.prefix)
        if room > 0:
            self.prefix += data[:room]
        return data

    def result(self) -> Streamed:
        return Streamed(bytes(self.prefix), self.size, self.hash.hexdigest(), self.complete, tuple(self.chunks or ()))
