"""Export and import of a large store: time and peak memory of whole commands (issue 6).

Builds (once, cached under /tmp) a database of --flows realistic flows through the
store's own write path (inspect_latency.py's generator: ``capture.snapshot`` +
``BatchWriter.write`` with redaction on), with a few binary bodies mixed in. Then,
for each format, it runs ``repost export --format F --db DB -o FILE`` as a whole
command, at --small flows (``--limit``) and at --flows, and for har and mitm
``repost import FILE --db NEW`` of both exported files. Each run is timed
(``time.perf_counter`` around the subprocess) and its peak RSS taken from the
kernel (``ru_maxrss`` of ``os.wait4``, the same number as VmHWM), with VmRSS also
sampled every 0.1 s. Run from the repository root:

    .venv/bin/python bench/export_import.py                          # 100,000 flows, all formats
    .venv/bin/python bench/export_import.py --flows 2000 --small 200 # quick check
    .venv/bin/python bench/export_import.py --formats har,mitm --json

PASS per command at --flows: seconds < --max-seconds (30); memory flat: peak RSS at
--flows within --max-growth-mb (50) of the peak at --small. Imports must store every
flow of the file they read.

Exit status: 0 done, 1 a criterion failed (with --check), 3 the bench failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_DIR = BENCH_DIR.parent
VENV_BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH_DIR))

import inspect_latency as il  # noqa: E402  (the generator of realistic flows)

EXPORT_GEN_VERSION = 1  # bump when the binary mix changes
BINARY_REQUEST_SHARE = 0.01  # request bodies replaced by application/octet-stream bytes
BINARY_RESPONSE_SHARE = 0.01  # responses replaced by image/png bytes
FORMATS = ("har", "vcr", "curl", "mitm")
IMPORTABLE = ("har", "mitm")
EXT = {"har": "har", "vcr": "yaml", "curl": "sh", "mitm": "mitm"}
_COUNT_RE = re.compile(rb"repost: (?:ex|im)ported (\d+) flows?")


# ---------------------------------------------------------------------------
# data


def _binary(snap: tuple, rng: random.Random) -> tuple:
    """Make a snapshot's request and/or response body binary (random bytes, a binary type)."""
    snap = list(snap)
    if snap[10] is None or rng.random() < BINARY_REQUEST_SHARE / (BINARY_REQUEST_SHARE + BINARY_RESPONSE_SHARE):
        body = b"\x89BIN\x00" + rng.randbytes(rng.randint(200, 1500))
        fields = [(k, v) for k, v in snap[8] if k.lower() not in (b"content-type", b"content-length")]
        fields += [(b"Content-Type", b"application/octet-stream"), (b"Content-Length", str(len(body)).encode())]
        snap[8], snap[9] = tuple(fields), body
    else:
        status, reason, version, fields, _, ended = snap[10]
        body = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(rng.randint(200, 2000))
        fields = [(k, v) for k, v in fields if k.lower() not in (b"content-type", b"content-length", b"content-encoding")]
        fields += [(b"Content-Type", b"image/png"), (b"Content-Length", str(len(body)).encode())]
        snap[10] = (200, b"OK", version, tuple(fields), body, ended)
    return tuple(snap)


def generate(path: Path, total: int, log) -> dict:
    from repost.store.redact import Redactor
    from repost.store.writer import BatchWriter

    partial = Path(f"{path}.partial")
    il._remove_db(partial)
    il._remove_db(path)
    t0 = time.perf_counter()
    gen = il.Generator(total, stream_share=0)  # the export figures are for the mix without streams
    rng = random.Random(il.SEED + 6)
    binary_share = BINARY_REQUEST_SHARE + BINARY_RESPONSE_SHARE
    writer = BatchWriter(str(partial), redactor=Redactor(b"bench-fingerprint-key"), max_body=10 * 1024 * 1024)
    n_binary = 0
    last = t0
    try:
        for start in range(0, total, il.BATCH):
            snaps = gen.snapshots(start, il.BATCH)
            for k, snap in enumerate(snaps):
                if rng.random() < binary_share:
                    snaps[k] = _binary(snap, rng)
                    n_binary += 1
            if not writer.write(snaps):
                raise RuntimeError(f"BatchWriter.write failed: {writer.last_error}")
            done = start + len(snaps)
            now = time.perf_counter()
            if now - last >= 5 or done == total:
                last = now
                log(f"  generated {done:,}/{total:,} flows  {done / (now - t0):,.0f}/s")
    finally:
        writer.close()
    if writer.written != total or writer.lost:
        raise RuntimeError(f"wrote {writer.written} flows, lost {writer.lost}; expected {total}")
    il.move_into_place(partial, path)
    info = {
        "version": [il.GEN_VERSION, EXPORT_GEN_VERSION], "flows": total, "seed": il.SEED, "stream_share": 0,
        "generated_at": gen.now, "generate_s": round(time.perf_counter() - t0, 1), "binary_flows": n_binary,
    }  # fmt: skip
    Path(f"{path}.json").write_text(json.dumps(info, indent=2))  # written last: marks completion
    log(f"  {total:,} flows in {info['generate_s']:.0f} s ({n_binary} with a binary body)")
    return info


def warm(path: Path) -> None:
    """Read the database once so every export starts from the same (warm) page cache."""
    for suffix in ("", "-wal"):
        p = Path(f"{path}{suffix}")
        if p.exists():
            with open(p, "rb") as f:
                while f.read(1 << 22):
                    pass


# ---------------------------------------------------------------------------
# running


def status_kb(pid: int, key: str = "VmHWM") -> int:
    """A kB value from /proc/PID/status (VmHWM: the peak RSS of the process's current image)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


def run(argv: list[str], env: dict, log_path: Path) -> dict:
    """Run argv to completion: seconds, exit code, peak RSS and VmRSS samples.

    Peak RSS: Linux's ru_maxrss of a child (os.wait4) is at least this process's own
    peak at the fork (the kernel carries the old image's high-water mark across
    exec), so it is exact only when it is above that. Otherwise the peak is the
    last VmHWM read from /proc while the command ran (every 0.05 s)."""
    samples: list[tuple[float, int]] = []
    hwm = [0]
    parent_hwm = status_kb(os.getpid())
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=REPO_DIR)
        stop = threading.Event()

        def sample():
            k = 0
            while not stop.wait(0.05):
                h = status_kb(proc.pid)
                hwm[0] = max(hwm[0], h)
                k += 1
                if k % 2 == 0 and (kb := status_kb(proc.pid, "VmRSS")):
                    samples.append((time.perf_counter() - t0, kb))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        stop.set()
        sampler.join()
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    out = log_path.read_bytes()
    m = _COUNT_RE.search(out)
    exact = usage.ru_maxrss > parent_hwm + 1024
    peak = usage.ru_maxrss if exact else hwm[0]
    # VmRSS at a quarter and at three quarters of the run: growth shows up as a slope.
    q1 = samples[len(samples) // 4][1] if samples else 0
    q3 = samples[3 * len(samples) // 4][1] if samples else 0
    return {
        "seconds": round(seconds, 2), "cpu_s": round(usage.ru_utime + usage.ru_stime, 2), "rc": proc.returncode, "count": int(m.group(1)) if m else None,
        "peak_rss_mb": round(peak / 1024, 1), "peak_source": "ru_maxrss" if exact else "VmHWM",
        "sampled_hwm_mb": round(hwm[0] / 1024, 1),
        "rss_q1_mb": round(q1 / 1024, 1), "rss_q3_mb": round(q3 / 1024, 1), "samples": len(samples),
        "log_tail": out.decode(errors="replace").strip().splitlines()[-3:],
    }  # fmt: skip


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=100_000)
    ap.add_argument("--small", type=int, help="the smaller size for the flatness check (default flows/10)")
    ap.add_argument("--formats", default=",".join(FORMATS), help="comma-separated: har,vcr,curl,mitm")
    ap.add_argument("--db", help="database path (default /tmp/repost-bench-export-<flows>.db, cached)")
    ap.add_argument("--regenerate", action="store_true", help="rebuild the cached database")
    ap.add_argument("--max-seconds", type=float, default=30.0)
    ap.add_argument("--max-growth-mb", type=float, default=50.0)
    ap.add_argument("--keep", action="store_true", help="keep the exported files and imported databases")
    ap.add_argument("--json", action="store_true", help="print only a JSON summary on stdout")
    ap.add_argument("--check", action="store_true", help="exit 1 if a criterion fails")
    ap.add_argument("--repost", default=str(VENV_BIN / "repost"))
    args = ap.parse_args(argv)
    small = args.small or max(args.flows // 10, 1)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    if bad := [f for f in formats if f not in FORMATS]:
        ap.error(f"unknown format(s): {', '.join(bad)}")

    def log(msg: str) -> None:
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    repost = Path(args.repost)
    if not repost.exists():
        log(f"no repost executable at {repost} (pip install -e .)")
        return 3
    db = Path(args.db) if args.db else Path(f"/tmp/repost-bench-export-{il._short(args.flows)}.db")
    if REPO_DIR in db.resolve().parents:
        log("refusing to put the bench database inside the repository")
        return 3
    info = None if args.regenerate else il.cached_info(db, args.flows, version=[il.GEN_VERSION, EXPORT_GEN_VERSION], stream_share=0)
    if info is None:
        log(f"generating {args.flows:,} flows into {db} (cached for later runs) ...")
        info = generate(db, args.flows, log)
    else:
        log(f"reusing {db} ({args.flows:,} flows, {info.get('binary_flows')} binary; --regenerate to rebuild)")

    work = Path(tempfile.mkdtemp(prefix="repost-bench-export-"))
    env = {k: v for k, v in os.environ.items() if k not in ("REPOST_DB", "REPOST_DEBUG", "FORCE_COLOR")}
    env["NO_COLOR"] = "1"
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as installed: bytecode cached (outside the repo)
    env["PYTHONPYCACHEPREFIX"] = il.PYCACHE
    env["REPOST_KEY_FILE"] = str(work / "fingerprint.key")  # import redacts; keep the user's key untouched

    # Migrations the code gained since generation, and .pyc compilation: untimed.
    p = subprocess.run([str(repost), "list", "--db", str(db), "--limit", "1"], env=env, capture_output=True)
    if p.returncode != 0:
        log(f"repost list failed: {p.stderr.decode(errors='replace').strip()}")
        return 3
    # Each command once on one flow, untimed: bytecode for every module it imports.
    for fmt in formats:
        out = work / f"warmup.{EXT[fmt]}"
        subprocess.run([str(repost), "export", "--format", fmt, "--db", str(db), "--limit", "1", "-o", str(out)],
                       env=env, capture_output=True)  # fmt: skip
        if fmt in IMPORTABLE:
            subprocess.run([str(repost), "import", str(out), "--db", str(work / "warmup.db")], env=env, capture_output=True)
    warm(db)

    load_before = os.getloadavg()[0]
    if load_before > 0.5:
        log(f"  note: load average {load_before:.2f} before the runs: other work competes for the {os.cpu_count()} cores")
    results: list[dict] = []
    failed_runs: list[str] = []
    sizes = [small, args.flows] if small < args.flows else [args.flows]
    try:
        for fmt in formats:
            for n in sizes:
                out = work / f"export-{n}.{EXT[fmt]}"
                cmd = ["export", "--format", fmt, "--db", str(db), "-o", str(out)]
                if n < args.flows:
                    cmd += ["--limit", str(n)]
                r = run([str(repost), *cmd], env, work / f"export-{fmt}-{n}.log")
                r.update(kind="export", fmt=fmt, flows=n, output_bytes=out.stat().st_size if out.exists() else None,
                         command="repost " + " ".join(cmd).replace(str(db), "DB").replace(str(work) + "/", ""))  # fmt: skip
                results.append(r)
                log(_line(r))
                if r["rc"] != 0:
                    failed_runs.append(r["command"])
            if fmt not in IMPORTABLE:
                for n in sizes:
                    (work / f"export-{n}.{EXT[fmt]}").unlink(missing_ok=True)
                continue
            for n in sizes:
                src = work / f"export-{n}.{EXT[fmt]}"
                new = work / f"import-{fmt}-{n}.db"
                cmd = ["import", str(src), "--db", str(new)]
                r = run([str(repost), *cmd], env, work / f"import-{fmt}-{n}.log")
                stored = il.count_flows(new) if new.exists() else None
                new_size = sum(Path(f"{new}{s}").stat().st_size for s in ("", "-wal") if Path(f"{new}{s}").exists())
                r.update(kind="import", fmt=fmt, flows=n, stored=stored, output_bytes=new_size,
                         command="repost " + " ".join(cmd).replace(str(work) + "/", ""))  # fmt: skip
                r["all_stored"] = stored == n
                results.append(r)
                log(_line(r))
                if r["rc"] != 0 or not r["all_stored"]:
                    failed_runs.append(r["command"])
                if not args.keep:
                    for s in ("", "-wal", "-shm"):
                        Path(f"{new}{s}").unlink(missing_ok=True)
            if not args.keep:
                for n in sizes:
                    (work / f"export-{n}.{EXT[fmt]}").unlink(missing_ok=True)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # noqa: BLE001
        log(f"bench failed: {type(e).__name__}: {e} (files kept in {work})")
        return 3

    summary = evaluate(results, args, small, db, info)
    summary["load_before"] = load_before
    summary["failed"] = failed_runs + summary["failed"]
    summary["workdir"] = str(work) if (args.keep or failed_runs) else None
    if not (args.keep or failed_runs):
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 1 if summary["failed"] and args.check else 0


def _line(r: dict) -> str:
    return (f"  {r['kind']:<6} {r['fmt']:<4} {r['flows']:>7,} flows  {r['seconds']:6.1f} s (cpu {r['cpu_s']:5.1f} s)  "
            f"peak {r['peak_rss_mb']:6.1f} MB  rc {r['rc']}")  # fmt: skip


def evaluate(results: list[dict], args, small: int, db: Path, info: dict) -> dict:
    big = args.flows
    by = {(r["kind"], r["fmt"], r["flows"]): r for r in results}
    failed = []
    for r in results:
        r["fast"] = r["seconds"] < args.max_seconds
        r.pop("log_tail", None) if r["rc"] == 0 else None
        if not r["fast"]:
            failed.append(f"{r['kind']} {r['fmt']} {r['flows']:,}: {r['seconds']:.1f} s >= {args.max_seconds:.0f} s")
    for (kind, fmt, n), r in by.items():
        if n != big:
            continue
        s = by.get((kind, fmt, small))
        if s is None or s is r:
            r["growth_mb"] = None
            r["flat"] = None
            continue
        r["growth_mb"] = round(r["peak_rss_mb"] - s["peak_rss_mb"], 1)
        r["flat"] = r["growth_mb"] <= args.max_growth_mb
        if not r["flat"]:
            failed.append(f"{kind} {fmt}: peak RSS {s['peak_rss_mb']:.0f} MB at {small:,} -> {r['peak_rss_mb']:.0f} MB at {big:,}")
    return {
        "flows": big, "small": small, "db": str(db), "db_bytes": db.stat().st_size, "binary_flows": info.get("binary_flows"),
        "max_seconds": args.max_seconds, "max_growth_mb": args.max_growth_mb, "results": results, "failed": failed,
    }  # fmt: skip


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:,.1f} MB" if n >= 1e5 else f"{n / 1e3:,.1f} kB"


def print_table(s: dict) -> None:
    print()
    print(f"repost export/import: {s['flows']:,} flows ({s['binary_flows']} binary) in {s['db']} "
          f"({_size(s['db_bytes'])}); pass: < {s['max_seconds']:.0f} s, peak RSS growth {s['small']:,} -> "
          f"{s['flows']:,} <= {s['max_growth_mb']:.0f} MB")  # fmt: skip
    head = f"{'command':<38} {'flows':>8} {'seconds':>8} {'cpu s':>6} {'peak RSS':>9} {'output':>10} {'<30s':>5} {'growth':>8} {'flat':>5}"
    print(head)
    print("-" * len(head))
    for r in s["results"]:
        name = f"{r['kind']} --format {r['fmt']}" if r["kind"] == "export" else f"import {r['fmt']} file"
        if r["kind"] == "import":
            name += "" if r.get("all_stored") else f" (stored {r.get('stored')})"
        growth = f"{r['growth_mb']:+.1f}" if r.get("growth_mb") is not None else ""
        flat = "" if r.get("flat") is None else ("ok" if r["flat"] else "FAIL")
        out = _size(r["output_bytes"]) + (" db" if r["kind"] == "import" else "")
        print(f"{name:<38} {r['flows']:>8,} {r['seconds']:>8.1f} {r['cpu_s']:>6.1f} {r['peak_rss_mb']:>6.1f} MB {out:>10} "
              f"{'ok' if r['fast'] else 'FAIL':>5} {growth:>8} {flat:>5}")  # fmt: skip
    print("seconds: wall clock of the whole command; cpu s: its user+sys time (less sensitive to other load on the machine)")
    print("peak RSS: the command's own peak (ru_maxrss / VmHWM); output: the exported file, or the new database")
    if s.get("load_before") is not None:
        print(f"load average before the runs: {s['load_before']:.2f} on {os.cpu_count()} cores")
    print("FAILED: " + "; ".join(s["failed"]) if s["failed"] else "all criteria met")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
