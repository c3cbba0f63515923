"""The file formats repost writes (export) and reads (import), by name and in words.

The commands' --format choices and help come from here, and the writers
(store/export.py FORMATS) and readers (store/importer.py IMPORT_FORMATS) are keyed
by these names. A module of its own so that ``repost --help`` need not import them.
"""

EXPORT = {"har": "HAR 1.2", "vcr": "a VCR.py cassette", "curl": "shell commands", "mitm": "a mitmproxy flow file"}
IMPORT = {"har": "a HAR file", "vcr": "a VCR.py cassette", "mitm": "a mitmproxy flow file"}
BINARY = frozenset({"mitm"})  # bytes out, not text
