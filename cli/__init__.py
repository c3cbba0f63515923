"""The ``repost`` command line."""
