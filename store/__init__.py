"""repost's store: the SQLite schema, the batched writer, redaction and the queries.

Reads use the plain ``sqlite3`` module so that read-only commands start fast;
sqlite-utils is imported only where the schema is created or migrated.
"""
