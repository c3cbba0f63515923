"""Start-up of `repost --help`, `list` and `show`: whole-command time and what imports cost.

    .venv/bin/python bench/startup.py                 # a small store is made in a temp dir
    .venv/bin/python bench/startup.py --db big.db --runs 15

Each command runs --runs times as a user runs it (a new process), plus `python -c pass`
as the floor; the median wall time is reported, and from `python -X importtime` the
cumulative import time of the heaviest top-level imports (microseconds, median).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def run(argv: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return (time.perf_counter() - t0) * 1000


def imports(argv: list[str], env: dict) -> dict[str, int]:
    """{top-level module: cumulative microseconds} from -X importtime."""
    out = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True, text=True, env=env).stderr
    found = {}
    for line in out.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = (part.strip() for part in line.split(":", 1)[1].split("|"))
        if not name.startswith(" ") and cumulative.isdigit():
            found[name.strip()] = int(cumulative)
    return found


def make_store(folder: str) -> str:
    sys.path.insert(0, str(REPO))
    from tests.helpers import post_flow, store_flows

    db = os.path.join(folder, "startup.db")
    store_flows(Path(db), [post_flow(body=b'{"item": "book", "qty": %d}' % i, response_body=b'{"ok": true}') for i in range(200)])
    return db


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", help="a store to read (default: 200 flows made in a temp dir)")
    parser.add_argument("--runs", type=int, default=11)
    args = parser.parse_args()
    # As an installed repost runs: from compiled modules (an environment that says not to
    # write bytecode would have every run compile every module: ~30 ms more here).
    subprocess.run([sys.executable, "-m", "compileall", "-q", *(str(REPO / d) for d in ("addons", "store", "cli"))], check=True)
    with tempfile.TemporaryDirectory() as folder:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["REPOST_KEY_FILE"] = os.path.join(folder, "key")
        db = args.db or make_store(folder)
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "repost --help": [sys.executable, "-m", "repost.cli", "--help"],
            "repost list": [sys.executable, "-m", "repost.cli", "list", "--db", db],
            "repost show 1": [sys.executable, "-m", "repost.cli", "show", "1", "--db", db],
            "repost show 1 --json": [sys.executable, "-m", "repost.cli", "show", "1", "--json", "--db", db],
        }
        print(f"{'command':24} {'median ms':>10} {'min ms':>8}   heaviest imports (cumulative ms, median of 5)")
        for name, argv in commands.items():
            times = [run(argv, env) for _ in range(args.runs)]
            heavy = ""
            if name != "python -c pass":
                samples = [imports(argv[1:], env) for _ in range(5)]
                keys = set().union(*samples)
                med = {k: statistics.median(s.get(k, 0) for s in samples) for k in keys}
                top = sorted(med.items(), key=lambda kv: -kv[1])[:4]
                heavy = ", ".join(f"{k} {v / 1000:.1f}" for k, v in top)
            print(f"{name:24} {statistics.median(times):10.1f} {min(times):8.1f}   {heavy}")


if __name__ == "__main__":
    main()
