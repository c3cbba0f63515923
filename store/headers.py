"""Headers as a stored row holds them: ``[[name, value], ...]``, JSON text in the database.

Their own module, below everything that reads rows (queries, the flow model, streams,
exports, safety), so none of those need import another to read a header.
"""

import json


def headers_of(row: dict, side: str) -> list:
    """A row's request or response headers as ``[[name, value], ...]``, whether the
    row holds them as stored (JSON text) or already parsed (``get_flow``)."""
    value = row[f"{side}_headers"]
    return json.loads(value) if isinstance(value, str) else (value or [])


def header(headers, name: str) -> str | None:
    """The first value of a header in ``[[name, value], ...]``, any case of its name."""
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None
