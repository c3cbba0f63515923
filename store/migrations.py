"""The schema, grown by numbered migrations that are never edited once released.

Later migrations repair earlier ones. ``KNOWN_MIGRATIONS`` in ``schema.py`` must
list every name registered here (a test checks it), so that opening a database
for reading can tell "up to date" from "newer than this repost" without
importing sqlite-utils.
"""

from sqlite_utils import Database, Migrations

from .schema import MIGRATION_SET

migrations = Migrations(MIGRATION_SET)


@migrations()
def m001_initial(db: Database) -> None:
    # Plain names and types, so that `datasette repost.db` or
    # `sqlite-utils rows repost.db flows` read it with no help from repost.
    db.execute(
        """
        CREATE TABLE flows (
            id INTEGER PRIMARY KEY,
            flow_id TEXT,
            started_at TEXT NOT NULL,
            method TEXT NOT NULL,
            url TEXT NOT NULL,
            scheme TEXT,
            host TEXT,
            port INTEGER,
            path TEXT,
            query TEXT,
            http_version TEXT,
            request_headers TEXT,
            request_body BLOB,
            request_content_encoding TEXT,
            request_size INTEGER,
            request_sha256 TEXT,
            request_truncated INTEGER NOT NULL DEFAULT 0,
            request_redacted INTEGER NOT NULL DEFAULT 0,
            idempotency_key TEXT,
            status INTEGER,
            reason TEXT,
            response_http_version TEXT,
            response_headers TEXT,
            response_body BLOB,
            response_content_encoding TEXT,
            response_size INTEGER,
            response_sha256 TEXT,
            response_truncated INTEGER NOT NULL DEFAULT 0,
            response_redacted INTEGER NOT NULL DEFAULT 0,
            duration_ms REAL,
            error TEXT,
            replay_of INTEGER REFERENCES flows(id)
        )
        """
    )
    db.execute("CREATE INDEX idx_flows_flow_id ON flows(flow_id)")
    db.execute("CREATE INDEX idx_flows_replay_of ON flows(replay_of)")


@migrations()
def m002_list_indexes_and_search(db: Database) -> None:
    # Every index ends with the rowid, so "WHERE path = ? ORDER BY id DESC" reads
    # the index in order and stops after --limit rows, whatever the table's size.
    db.execute("CREATE INDEX idx_flows_started_at ON flows(started_at)")
    db.execute("CREATE INDEX idx_flows_host ON flows(host)")
    db.execute("CREATE INDEX idx_flows_path ON flows(path)")
    db.execute("CREATE INDEX idx_flows_status ON flows(status)")
    # Full text of the decoded bodies. Contentless: it holds only the index (the
    # text is in flows), and it is filled lazily, off the proxy's path, by the
    # writer when idle or before a search (store/search.py).
    db.execute(
        "CREATE VIRTUAL TABLE flows_fts USING fts5(request_body, response_body, content='', tokenize='unicode61')"
    )
    db.execute("CREATE TABLE repost_meta (key TEXT PRIMARY KEY, value TEXT)")


@migrations()
def m003_rules(db: Database) -> None:
    # Endpoints the user marks read-only (`repost rules add --read-only 'POST */_search'`):
    # replays of them are safe and need no consent.
    db.execute(
        """
        CREATE TABLE rules (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            method TEXT,
            url_glob TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m004_streams(db: Database) -> None:
    # Streamed responses (Server-Sent Events, NDJSON): when each chunk arrived,
    # whether the stream ended properly, and the events parsed from it.
    db.execute("ALTER TABLE flows ADD COLUMN response_incomplete INTEGER NOT NULL DEFAULT 0")
    db.execute("ALTER TABLE flows ADD COLUMN response_chunks TEXT")
    db.execute(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            flow INTEGER NOT NULL REFERENCES flows(id),
            seq INTEGER NOT NULL,
            t_ms REAL,
            event TEXT NOT NULL,
            event_id TEXT,
            data TEXT NOT NULL,
            retry INTEGER
        )
        """
    )
    db.execute("CREATE INDEX idx_events_flow ON events(flow, seq)")


@migrations()
def m005_smaller_search_index(db: Database) -> None:
    # detail=none keeps no positions: the index shrinks from ~0.64x of the bodies to
    # ~0.17x (measured on 1M flows). Searches match words, not phrases. The index
    # is rebuilt lazily, like the first one.
    db.execute("DROP TABLE flows_fts")
    db.execute(
        "CREATE VIRTUAL TABLE flows_fts USING fts5("
        "request_body, response_body, content='', detail=none, tokenize='unicode61')"
    )
    db.execute("DELETE FROM repost_meta WHERE key = 'fts_indexed_upto'")


@migrations()
def m006_events_parsed_on_read(db: Database) -> None:
    # Nothing to change: from here on a stream's events are parsed from its stored
    # bytes when read (store/sse.py), not stored again (that had a streamed chat
    # completion take 2.3x its size). The ``events`` table stays: it holds what an
    # earlier repost stored, still read, and a recorder of that version may still be
    # running and writing to it. This marker makes an earlier repost refuse the file
    # rather than show new streams without their events.
    pass


@migrations()
def m007_serve_match_keys(db: Database) -> None:
    # serve finds the recordings that answer a request through this key (a hash of the
    # request's meaning: method, path, query and body by shape, redacted values as
    # wildcards), filled by the writer while idle like the search index.
    db.execute("ALTER TABLE flows ADD COLUMN request_match TEXT")
    db.execute("CREATE INDEX idx_flows_request_match ON flows(request_match)")


@migrations()
def m008_tags(db: Database) -> None:
    # Names a user gives flows (`repost tag 12 checkout-bug`), many per flow. The
    # primary key makes tagging twice a no-op and finds a flow's tags; the index on
    # the name serves `list --tag NAME`.
    db.execute(
        """
        CREATE TABLE tags (
            flow INTEGER NOT NULL REFERENCES flows(id),
            name TEXT NOT NULL,
            PRIMARY KEY (flow, name)
        ) WITHOUT ROWID
        """
    )
    db.execute("CREATE INDEX idx_tags_name ON tags(name, flow)")


@migrations()
def m009_redact_rules(db: Database) -> None:
    # The user's own redaction rules (`repost redact add --header X-Internal-Token`), on top of
    # the table in store/redact.py: read by every Redactor (store/redact_rules.py), and by the
    # running recorder as soon as they change.
    db.execute(
        """
        CREATE TABLE redact_rules (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            value TEXT NOT NULL,
            created_at TEXT NOT NULL
        )
        """
    )


@migrations()
def m010_graphql_operation(db: Database) -> None:
    # The GraphQL operation a POST runs, decided at capture by graphql-core (its import costs
    # ~0.1-0.3 s, too much for `list`'s safety column to pay). NULL for flows stored before.
    db.execute("ALTER TABLE flows ADD COLUMN request_graphql TEXT")
