"""Errors a user can cause with a database file; the CLI prints them as one line."""


class StoreError(Exception):
    """A problem with the database file that the user can act on."""


class MissingDatabase(StoreError):
    pass


class NotARepostDatabase(StoreError):
    pass


class NewerSchema(StoreError):
    pass


class CorruptDatabase(StoreError):
    pass


class FlowNotFound(StoreError):
    pass


class MissingDriver(StoreError):
    """A postgresql:// store, and the optional driver (psycopg) is not installed."""
