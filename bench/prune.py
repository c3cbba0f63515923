"""`repost prune` on a large store, with a writer recording into it at the same time;
and what `repost list --follow` costs that writer.

Builds (once, cached under /tmp) a database of --flows flows, half of them 60 days
old: 1,000 distinct flows written through the store's own write path
(``BatchWriter.write`` of snapshots, redaction off), copied by SQL to --flows, then
indexed for search as a store in use would be (the first ``list --search``). Each
run works on a fresh copy of it.

Prune: a writer thread commits a batch of 20 flows every 50 ms (as the recorder's
writer process does under load) and notes how long each commit took, while
``repost prune --older-than 30d --yes`` runs as a subprocess. Targets (issue 17):
the prune of half the flows under 60 s (1,000,000 flows), no commit of the writer
waiting more than 1 s, the file smaller afterwards.

Follow: the same writer, flat out for --seconds, alternately with and without a
``repost list --follow --json`` reading the database (its output to /dev/null),
--rounds rounds; the flows written per second are compared.

    .venv/bin/python bench/prune.py                         # 1,000,000 flows
    .venv/bin/python bench/prune.py --flows 100000
    .venv/bin/python bench/prune.py --flows 100000 --skip-prune --rounds 3   # follow's cost only
    .venv/bin/python bench/prune.py --json

Exit status: 0 targets met (or not checked), 1 a target missed (with --check), 3 the bench failed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
CACHE = Path("/tmp/repost-bench-prune")
GEN_VERSION = 1
SEED_FLOWS = 1000
PRUNE_LIMIT_S = 60.0  # for 1,000,000 flows; scaled for smaller stores
STALL_LIMIT_S = 1.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _snapshots(n: int, started: float, tag: str) -> list:
    from repost.store.capture import make_snapshot

    return [
        make_snapshot(
            flow_id=f"{tag}-{i}", started=started + i * 0.001, method="POST", scheme="https", host=f"api{i % 7}.example.test",
            port=443, target=f"/v1/orders/{i}?page={i % 5}",
            headers=[("content-type", "application/json"), ("user-agent", "bench/1"), ("idempotency-key", f"k-{tag}-{i}")],
            body=json.dumps({"order": i, "items": [{"sku": f"S-{i % 97}", "qty": i % 4}], "note": f"delivery {i} lorem ipsum dolor sit amet"}).encode(),
            response=(201, "Created", "HTTP/1.1", [(b"content-type", b"application/json")],
                      json.dumps({"id": i, "status": "created", "total": i * 1.5}).encode(), started + i * 0.001 + 0.02),
            error=None,
        )  # fmt: skip
        for i in range(n)
    ]


def build(flows: int) -> Path:
    """The cached database of ``flows`` flows, half 60 days old, indexed for search."""
    path = CACHE / f"v{GEN_VERSION}-{flows}.db"
    if path.exists():
        return path
    from repost.store.writer import BatchWriter

    CACHE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    for p in (partial, Path(f"{partial}-wal"), Path(f"{partial}-shm")):
        p.unlink(missing_ok=True)
    t0 = time.monotonic()
    writer = BatchWriter(str(partial), redactor=None, max_body=1 << 20)
    assert writer.write(_snapshots(SEED_FLOWS, time.time() - 3600, "seed"))
    writer.close()
    conn = sqlite3.connect(partial)
    cols = ", ".join(r[1] for r in conn.execute("PRAGMA table_info(flows)") if r[1] not in ("id", "flow_id", "started_at"))
    copies = flows // SEED_FLOWS
    for copy in range(1, copies):
        age = "-60 days" if copy < copies // 2 else "-0 days"
        with conn:
            conn.execute(
                f"INSERT INTO flows (flow_id, started_at, {cols}) SELECT flow_id || '-{copy}',"
                f" strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '{age}'), {cols} FROM flows WHERE id <= {SEED_FLOWS}"
            )
    with conn:
        conn.execute(f"UPDATE flows SET started_at = strftime('%Y-%m-%dT%H:%M:%fZ', started_at, '-60 days') WHERE id <= {SEED_FLOWS}")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    log(f"built {flows:,} flows in {time.monotonic() - t0:.1f} s; indexing for search ...")
    t0 = time.monotonic()
    subprocess.run([str(VENV_BIN / "repost"), "list", "--db", str(partial), "--search", "delivery", "--limit", "1"],
                   check=True, stdout=subprocess.DEVNULL)  # fmt: skip
    log(f"indexed in {time.monotonic() - t0:.1f} s")
    os.replace(partial, path)
    for side in ("-wal", "-shm"):
        Path(f"{partial}{side}").unlink(missing_ok=True)
    return path


def fresh_copy(source: Path, work: Path) -> Path:
    db = work / "prune.db"
    for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        p.unlink(missing_ok=True)
    shutil.copyfile(source, db)
    os.chmod(db, 0o600)
    return db


class Writer(threading.Thread):
    """Commits batches of flows through BatchWriter, noting each commit's duration."""

    def __init__(self, db: Path, batch: int = 20, pause: float = 0.05):
        super().__init__(daemon=True)
        from repost.store.writer import BatchWriter

        self.writer = BatchWriter(str(db), redactor=None, max_body=1 << 20)
        self.batch, self.pause = batch, pause
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.written = 0

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            snaps = _snapshots(self.batch, time.time(), f"live{n}")
            t0 = time.monotonic()
            self.writer.write(snaps)
            self.latencies.append(time.monotonic() - t0)
            self.written += self.batch
            n += 1
            if self.pause:
                self.stop.wait(self.pause)
        self.writer.close()


def file_size(db: Path) -> int:
    return sum(os.path.getsize(p) for p in (db, Path(f"{db}-wal")) if p.exists())


def run_prune(db: Path) -> dict:
    before = file_size(db)
    writer = Writer(db)
    writer.start()
    time.sleep(0.5)  # the writer under way first
    t0 = time.monotonic()
    proc = subprocess.run([str(VENV_BIN / "repost"), "prune", "--db", str(db), "--older-than", "30d", "--yes"],
                          capture_output=True, text=True)  # fmt: skip
    elapsed = time.monotonic() - t0
    time.sleep(0.5)
    writer.stop.set()
    writer.join()
    if proc.returncode != 0:
        raise RuntimeError(f"prune failed ({proc.returncode}): {proc.stderr}")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    left = conn.execute("SELECT count(*) FROM flows").fetchone()[0]
    conn.close()
    return {
        "prune_s": round(elapsed, 2), "stderr": proc.stderr.strip(), "size_before": before, "size_after": file_size(db),
        "writer_commits": len(writer.latencies), "writer_max_commit_s": round(max(writer.latencies), 3),
        "writer_p99_commit_s": round(statistics.quantiles(writer.latencies, n=100)[98], 3) if len(writer.latencies) > 100 else None,
        "flows_left": left,
    }  # fmt: skip


def writer_rate(db: Path, seconds: float) -> float:
    writer = Writer(db, batch=100, pause=0)
    writer.start()
    time.sleep(seconds)
    writer.stop.set()
    writer.join()
    return writer.written / seconds


def run_follow_cost(db: Path, rounds: int, seconds: float) -> dict:
    without, with_follow = [], []
    for r in range(rounds):
        without.append(writer_rate(db, seconds))
        follower = subprocess.Popen([str(VENV_BIN / "repost"), "list", "--follow", "--json", "--limit", "0", "--db", str(db)],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        time.sleep(1.0)  # started
        with_follow.append(writer_rate(db, seconds))
        follower.send_signal(signal.SIGINT)
        follower.wait(10)
        log(f"round {r + 1}: {without[-1]:,.0f} flows/s alone, {with_follow[-1]:,.0f} with list --follow")
    ratio = statistics.median(with_follow) / statistics.median(without)
    return {"writer_flows_per_s_alone": [round(x) for x in without], "writer_flows_per_s_following": [round(x) for x in with_follow],
            "ratio_median": round(ratio, 3)}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--flows", type=int, default=1_000_000, help="flows in the store (default 1,000,000); half are pruned")
    p.add_argument("--skip-prune", action="store_true", help="measure only what --follow costs")
    p.add_argument("--skip-follow", action="store_true", help="measure only the prune")
    p.add_argument("--rounds", type=int, default=3, help="rounds of the --follow comparison (default 3)")
    p.add_argument("--seconds", type=float, default=5.0, help="writer seconds per --follow measurement (default 5)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    p.add_argument("--check", action="store_true", help="exit 1 if a target is missed")
    args = p.parse_args(argv)
    try:
        source = build(args.flows)
        work = CACHE / "work"
        work.mkdir(exist_ok=True)
        summary: dict = {"flows": args.flows}
        if not args.skip_prune:
            summary["prune"] = run_prune(fresh_copy(source, work))
        if not args.skip_follow:
            summary["follow"] = run_follow_cost(fresh_copy(source, work), args.rounds, args.seconds)
    except Exception as e:  # noqa: BLE001 - a bench reports, it does not crash
        log(f"bench failed: {type(e).__name__}: {e}")
        return 3
    ok = True
    if "prune" in summary:
        pr = summary["prune"]
        limit = PRUNE_LIMIT_S * args.flows / 1_000_000
        pr["targets"] = {
            f"prune under {limit:.0f} s": pr["prune_s"] < limit,
            f"writer never waits {STALL_LIMIT_S:.0f} s": pr["writer_max_commit_s"] < STALL_LIMIT_S,
            "file smaller": pr["size_after"] < pr["size_before"],
        }
        ok = ok and all(pr["targets"].values())
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(json.dumps(summary, indent=2))  # small enough to read as is
    return 1 if args.check and not ok else 0


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH_DIR.parent))
    sys.exit(main())
