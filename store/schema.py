"""The schema's names, read without importing sqlite-utils (~80 ms): ``open_database`` tells
"up to date" from "newer than this repost" with these; migrations.py registers them."""

MIGRATION_SET = "repost"
# Every migration name in migrations.py, in order (tests/test_store.py checks it).
KNOWN_MIGRATIONS = (
    "m001_initial",
    "m002_list_indexes_and_search",
    "m003_rules",
    "m004_streams",
    "m005_smaller_search_index",
    "m006_events_parsed_on_read",
    "m007_serve_match_keys",
    "m008_tags",
    "m009_redact_rules",
    "m010_graphql_operation",
)
