"""Recording into PostgreSQL vs plain mitmdump: bench/record_throughput.py with the candidate
recording into a throw-away PostgreSQL cluster on loopback (tests/pgcluster.py; or the server
$REPOST_TEST_PG_URL names), then a check that every completed request is a row there.

    .venv/bin/python bench/pg_record.py [--rounds 3] [--duration 10] [any record_throughput.py option]

Needs PostgreSQL's binaries (initdb, pg_ctl) or $REPOST_TEST_PG_URL, psycopg, and wrk.
Exit status: record_throughput.py's; 1 also when rows are missing.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

import record_throughput  # noqa: E402

from tests.pgcluster import Cluster, why_unavailable  # noqa: E402


def main(argv: list[str]) -> int:
    reason = why_unavailable()
    if reason:
        print(f"pg_record: {reason}", file=sys.stderr)
        return 3
    cluster = Cluster()
    try:
        url = cluster.new_database()
        # No {db} in the command: every round records into the one database, counted below.
        code = record_throughput.main([*argv, "--candidate-cmd", f"repost record --db {url}"])
        import psycopg

        with psycopg.connect(url) as conn:
            rows, twice = conn.execute("SELECT count(*), count(*) - count(DISTINCT flow_id) FROM flows").fetchone()
        print(f"pg_record: {rows} flows in PostgreSQL, {twice} stored twice", file=sys.stderr)
        return code or (1 if twice else 0)
    finally:
        cluster.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
