"""The recording proxy's writer, in a process of its own.

mitmproxy runs on one thread, and any Python work on another thread of its
process (converting, redacting, hashing, binding SQL parameters) competes for
the GIL: done on a thread, recording measured 0.90x of plain mitmdump's
throughput; handed to this process, about 1.0x. The proxy side only swaps its
deque of snapshots every ``interval`` and writes them, pickled, to a pipe.

The child outlives a killed parent: it sees the pipe close, commits what it
received and exits. So a ``kill -9`` of the proxy loses only what was still in
the parent's deque, under ``interval`` (50 ms) of traffic.

Frames on the pipe: 8 bytes little-endian length, then a pickled list of
snapshots and error updates (capture.Snapshot, writer.ErrorUpdate).
On exit the child prints one JSON line on stdout: ``{"written": N, "lost": M}``.
"""

import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
from collections import deque

from .capture import snapshot
from .writer import ErrorUpdate

log = logging.getLogger("repost")

FRAME_HEADER = 8


class WriterProcess:
    """The proxy's side: a deque, a sender thread and the child process."""

    def __init__(self, path: str, *, keep_secrets: bool, max_body: int, interval: float = 0.05, retain: float | None = None):
        self.path = path
        self.interval = interval
        self.written = 0
        self.lost = 0
        self._args = [
            sys.executable, "-m", "repost.store.writer_process", "--db", os.fspath(path), "--max-body", str(max_body),
        ] + (["--keep-secrets"] if keep_secrets else []) + (["--retain", repr(retain)] if retain else [])  # fmt: skip
        self._queue: deque = deque()
        self._pending: list = []  # a batch the child did not take
        self._child = self._start_child()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="repost-sender", daemon=True)
        self._thread.start()

    def _start_child(self) -> subprocess.Popen:
        return subprocess.Popen(
            self._args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Its own session: a Ctrl-C in the terminal reaches the proxy, which
            # then closes the pipe; the child finishes writing and exits.
            start_new_session=True,
        )

    # -- on the proxy's event loop: appends only ----------------------------------

    def submit(self, flow, replay_of: int | None = None) -> None:
        self._queue.append(snapshot(flow, replay_of))

    def submit_error(self, flow_id: str, message: str) -> None:
        self._queue.append(ErrorUpdate(message, flow_id))

    # -- the sender thread ----------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._send()
        self._send()

    def _send(self) -> None:
        batch = self._pending
        while self._queue:
            batch.append(self._queue.popleft())
        if not batch:
            return
        data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self._child.stdin.write(len(data).to_bytes(FRAME_HEADER, "little") + data)
            self._child.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            code = self._child.poll()
            log.error("repost: NOT RECORDING: the writer process exited (code %s); restarting it", code)
            self._pending = batch
            try:
                self._child = self._start_child()
            except OSError as e:
                log.error("repost: cannot restart the writer process: %s", e)
            return
        self._pending = []

    def close(self) -> None:
        """Send everything, let the child commit it, and collect its counts."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join()
        self.lost += len(self._pending)
        try:
            self._child.stdin.close()
        except OSError:
            pass
        out = self._child.stdout.read()
        self._child.wait()
        try:
            counts = json.loads(out.decode().strip().splitlines()[-1])
            self.written += counts["written"]
            self.lost += counts["lost"]
        except (ValueError, IndexError, KeyError):
            pass  # the child said nothing: its own stderr says why


class FrameReader:
    """Frames from a pipe, read unbuffered so that select() tells when the proxy is quiet."""

    def __init__(self, fd: int):
        self.fd = fd
        self.buffer = bytearray()
        self.eof = False

    def ready(self, timeout: float) -> bool:
        import select

        return bool(self.buffer) or bool(select.select([self.fd], [], [], timeout)[0])

    def _fill(self, size: int) -> bool:
        while len(self.buffer) < size:
            chunk = os.read(self.fd, max(65536, size - len(self.buffer)))
            if not chunk:
                self.eof = True
                return False
            self.buffer += chunk
        return True

    def read(self):
        """The next frame's items, or None at the end of the stream."""
        if not self._fill(FRAME_HEADER):
            return None
        size = int.from_bytes(self.buffer[:FRAME_HEADER], "little")
        if not self._fill(FRAME_HEADER + size):
            log.error("repost: the proxy stopped mid-batch; %d bytes of it are lost", size)
            return None
        data = bytes(self.buffer[FRAME_HEADER : FRAME_HEADER + size])
        del self.buffer[: FRAME_HEADER + size]
        return pickle.loads(data)


IDLE_SECONDS = 0.5


def _redactor():
    """Secrets are redacted whatever happens; without a key they get no fingerprint (never a known key)."""
    from .redact import FingerprintKeyError, Redactor, load_key

    try:
        return Redactor(load_key())
    except FingerprintKeyError as e:
        log.error("repost: WARNING: %s; secrets are recorded as an unkeyed REDACTED marker, with no fingerprint", e)
        return Redactor(None)


def main(argv: list[str] | None = None) -> int:
    import argparse

    from .writer import BatchWriter

    parser = argparse.ArgumentParser(prog="repost-writer", description="repost's writer process (started by the recorder)")
    parser.add_argument("--db", required=True)
    parser.add_argument("--max-body", type=int, required=True)
    parser.add_argument("--keep-secrets", action="store_true")
    parser.add_argument("--retain", type=float, help="seconds: delete older flows while idle")
    args = parser.parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # we stop when the proxy closes the pipe
    logging.basicConfig(stream=sys.stderr, format="%(message)s", level=logging.INFO)
    writer = BatchWriter(args.db, redactor=None if args.keep_secrets else _redactor(), max_body=args.max_body, retain=args.retain)
    frames = FrameReader(sys.stdin.fileno())
    while True:
        if not frames.ready(IDLE_SECONDS):
            writer.idle()  # nothing from the proxy for a while: prune (--retain), index bodies for search
            continue
        items = frames.read()
        if items is None:
            break
        writer.write(items)
    writer.close()
    print(json.dumps({"written": writer.written, "lost": writer.lost}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
