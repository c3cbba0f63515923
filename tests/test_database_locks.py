"""A process that opens a database twice keeps seeing what other processes commit.

store/database.py read the file's header with open()/close() on every open_database;
closing that descriptor dropped the POSIX locks of the process's connections already
open, so a writer elsewhere, on closing, took itself for the last user and deleted the
WAL under them: `repost ui` (a connection per thread, a replay stored with another)
then never saw a new flow again.
"""

import subprocess
import sys

from repost.store.database import open_database
from repost.store.follow import newest_id

from .helpers import post_flow, store_flows

WRITE_AND_CLOSE = """
import sys
sys.path.insert(0, {root!r})
from tests.helpers import post_flow, store_flows
store_flows({db!r}, [post_flow()])
"""


def test_a_second_open_does_not_blind_the_first_connection(tmp_path):
    from pathlib import Path

    db = tmp_path / "r.db"
    store_flows(db, [post_flow()])
    root = str(Path(__file__).resolve().parent.parent)

    def write_elsewhere():
        subprocess.run([sys.executable, "-c", WRITE_AND_CLOSE.format(root=root, db=str(db))], check=True)

    first = open_database(db)
    assert newest_id(first) == 1  # a connection that has read holds its shared lock from now on
    second = open_database(db)
    for expected in (2, 3):
        write_elsewhere()
        assert newest_id(first) == expected
        assert newest_id(second) == expected
    assert (tmp_path / "r.db-wal").exists()  # nobody took itself for the last user
    first.close()
    second.close()
