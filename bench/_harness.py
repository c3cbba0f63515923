"""Shared helpers for the repost benchmarks.

Free loopback ports, waiting for a port with a deadline, starting/stopping
services (output goes to log files, never to a pipe), running and parsing
wrk, reading RSS from /proc and counting rows in the recorder's database.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
POST_LUA = BENCH_DIR / "post.lua"
UPSTREAM_PY = BENCH_DIR / "upstream.py"

START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 30.0

DEFAULT_BASELINE_CMD = "mitmdump"
DEFAULT_CANDIDATE_CMD = "repost record --db {db}"


class BenchError(Exception):
    """The benchmark could not produce a valid measurement."""


class ProcessStartError(BenchError):
    """A service did not come up (exited early or never opened its port)."""


# --------------------------------------------------------------------------
# ports


def free_port(host: str = HOST) -> int:
    """Return a currently free TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.25):
            return True
    except OSError:
        return False


def wait_for_port(
    port: int,
    timeout: float = START_TIMEOUT_S,
    proc: subprocess.Popen | None = None,
    host: str = HOST,
) -> None:
    """Block until host:port accepts connections; fail at the deadline or if proc exits."""
    deadline = time.monotonic() + timeout
    while not port_is_open(port, host):
        if proc is not None and proc.poll() is not None:
            raise ProcessStartError(f"process exited with {proc.returncode} before opening port {port}")
        if time.monotonic() >= deadline:
            raise ProcessStartError(f"port {port} not open after {timeout:.0f}s")
        _pause(proc, 0.05)


def _pause(proc: subprocess.Popen | None, seconds: float) -> None:
    """Poll interval between condition checks; returns early if proc exits."""
    if proc is None:
        time.sleep(seconds)
        return
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        pass


# --------------------------------------------------------------------------
# commands


def resolve_executable(name: str) -> str:
    """Prefer the venv's bin/ (mitmdump, repost), then PATH."""
    if os.sep in name:
        return name
    in_venv = VENV_BIN / name
    if in_venv.exists():
        return str(in_venv)
    found = shutil.which(name)
    if found is None:
        raise ProcessStartError(f"executable not found: {name!r} (looked in {VENV_BIN} and PATH)")
    return found


def command_prefix(template: str, **subst: str) -> list[str]:
    """Split a command template and substitute {key} placeholders (e.g. {db})."""
    argv = shlex.split(template)
    if not argv:
        raise BenchError("empty command")
    for i, arg in enumerate(argv):
        for key, value in subst.items():
            arg = arg.replace("{" + key + "}", value)
        argv[i] = arg
    argv[0] = resolve_executable(argv[0])
    return argv


def uses_db(template: str) -> bool:
    return "{db}" in template


def reverse_proxy_argv(prefix: list[str], upstream_port: int, listen_port: int) -> list[str]:
    """The common mitmdump-style arguments for a reverse proxy on loopback."""
    return prefix + [
        "--mode", f"reverse:http://{HOST}:{upstream_port}",
        "--listen-host", HOST,
        "--listen-port", str(listen_port),
    ]


# --------------------------------------------------------------------------
# services


@dataclass
class Service:
    name: str
    proc: subprocess.Popen
    port: int
    log_path: Path
    stop_signal: str | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def start_service(name: str, argv: list[str], port: int, log_dir: Path,
                  timeout: float = START_TIMEOUT_S) -> Service:
    """Start argv in its own process group, stdout+stderr to log_dir/NAME.log, wait for its port."""
    log_path = log_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=REPO_DIR, start_new_session=True,
        )
    service = Service(name, proc, port, log_path)
    try:
        wait_for_port(port, timeout, proc)
    except ProcessStartError as exc:
        stop_service(service)
        raise ProcessStartError(
            f"{name} failed to start: {exc}\n  command: {shlex.join(argv)}\n"
            f"  log {log_path}:\n{service.log_tail()}"
        ) from None
    return service


def stop_service(service: Service, timeout: float = STOP_TIMEOUT_S) -> int:
    """SIGINT the process group (like Ctrl-C) and wait; escalate to SIGTERM/SIGKILL at the deadline.

    Records the signal that finally stopped it in service.stop_signal. Idempotent.
    """
    proc = service.proc
    for sig, grace in ((signal.SIGINT, timeout), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        service.stop_signal = sig.name
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def start_upstream(log_dir: Path) -> Service:
    port = free_port()
    argv = [sys.executable, str(UPSTREAM_PY), "--port", str(port)]
    return start_service("upstream", argv, port, log_dir)


# --------------------------------------------------------------------------
# wrk

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
_TIME = r"([\d.]+)(us|ms|s|m|h)"
_REQUESTS_RE = re.compile(r"^\s*(\d+) requests in " + _TIME, re.M)
_RPS_RE = re.compile(r"^Requests/sec:\s+([\d.]+)", re.M)
_NON2XX_RE = re.compile(r"Non-2xx or 3xx responses:\s+(\d+)")
_SOCKET_RE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_PERCENTILE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+" + _TIME + r"\s*$", re.M)


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    non2xx: int = 0
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeouts: int = 0
    p50_ms: float | None = None
    p99_ms: float | None = None

    @property
    def socket_errors(self) -> int:
        return self.connect_errors + self.read_errors + self.write_errors + self.timeouts

    @property
    def errors(self) -> int:
        return self.non2xx + self.socket_errors


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNIT_MS[unit]


def parse_wrk(text: str) -> WrkResult:
    """Parse wrk's human-readable summary (with --latency for the percentiles)."""
    requests = _REQUESTS_RE.search(text)
    rps = _RPS_RE.search(text)
    if requests is None or rps is None:
        raise BenchError(f"could not parse wrk output:\n{text}")
    result = WrkResult(
        requests=int(requests.group(1)),
        duration_s=_to_ms(requests.group(2), requests.group(3)) / 1e3,
        rps=float(rps.group(1)),
    )
    if (m := _NON2XX_RE.search(text)) is not None:
        result.non2xx = int(m.group(1))
    if (m := _SOCKET_RE.search(text)) is not None:
        (result.connect_errors, result.read_errors,
         result.write_errors, result.timeouts) = map(int, m.groups())
    percentiles = {float(p): _to_ms(v, u) for p, v, u in _PERCENTILE_RE.findall(text)}
    result.p50_ms = percentiles.get(50.0)
    result.p99_ms = percentiles.get(99.0)
    return result


def run_wrk(port: int, duration_s: int, connections: int = 8, threads: int = 2,
            script: Path = POST_LUA, log_path: Path | None = None) -> WrkResult:
    """Run wrk against http://127.0.0.1:PORT/ and parse its summary."""
    argv = [
        "wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration_s}s",
        "--latency", "-s", str(script), f"http://{HOST}:{port}/",
    ]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=duration_s + 60)
    except subprocess.TimeoutExpired:
        raise BenchError(f"wrk did not finish: {shlex.join(argv)}") from None
    if log_path is not None:
        with open(log_path, "a") as log:
            log.write(f"$ {shlex.join(argv)}\n{done.stdout}{done.stderr}\n")
    if done.returncode != 0:
        raise BenchError(f"wrk exited {done.returncode}: {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


# --------------------------------------------------------------------------
# memory and database


def rss_kb(pid: int) -> int:
    """VmRSS of one process in kB (0 if it is gone or has no RSS line)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def _parent_map() -> dict[int, int]:
    parents = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
    return parents


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants (so a CLI that spawns mitmdump is measured fully)."""
    parents = _parent_map()
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [child for child, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def tree_rss_mb(pid: int) -> float:
    return sum(rss_kb(p) for p in process_tree(pid)) / 1024


def count_rows(db_path: Path, table: str = "flows") -> int:
    if not db_path.exists():
        raise BenchError(f"database {db_path} does not exist")
    with sqlite3.connect(db_path) as conn:
        return conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
