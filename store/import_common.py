"""What the importers of every format share: the error they raise, a flow read from
a file, and how a file's times, ids and repost's own fields are read."""

import math
import re
import uuid
from collections import Counter
from hashlib import sha256
from pathlib import Path
from typing import NamedTuple

from .capture import Snapshot, Streamed
from .errors import StoreError

# Text from a file shown in an error line: control and direction characters escaped,
# so that a crafted file cannot write escape sequences to the user's terminal.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


class ImportError_(StoreError):
    def __init__(self, message: str):
        super().__init__(_UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", message))


class Imported(NamedTuple):
    imported: int
    skipped: int  # already in the database (same flow id), or twice in the file


class Incoming(NamedTuple):
    """A flow read from a file: its snapshot, the flow id of the flow it replays (when
    the file says), and where it is in the file, for error messages."""

    snap: tuple
    replay_of: str | None
    where: str
    tags: tuple = ()  # repost's tags, when the file carries them


# -- what every format shares --------------------------------------------------------


def no_time(value) -> float | None:
    """A timestamp, or None for "no time": 0, negative, not a number, not finite."""
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        return None
    return float(value)


def content_id(item, seen: Counter) -> str:
    """A flow id for an entry whose file gives none: derived from its content (and how
    many identical ones came before it), so the same file imported twice adds nothing."""
    digest = sha256(repr(item).encode("utf-8", "surrogatepass")).hexdigest()
    seen[digest] += 1
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"repost-import:{digest}:{seen[digest]}"))


def extras_of(meta) -> dict:
    """What repost's own export wrote beside a flow (HAR ``_repost``, a flow file's
    ``metadata["repost"]``), the parts that are what they claim to be."""
    if not isinstance(meta, dict):
        return {}
    out = {}
    for key in ("flow_id", "replay_of_flow_id"):
        value = meta.get(key)
        if isinstance(value, str) and 0 < len(value) <= 200:
            out[key] = value
    if meta.get("incomplete") is True:
        out["incomplete"] = True
    chunks = meta.get("chunks")
    if isinstance(chunks, list) and all(
        isinstance(c, list) and len(c) == 2 and type(c[0]) in (int, float) and math.isfinite(c[0])
        and type(c[1]) is int and c[1] >= 0
        for c in chunks
    ):  # fmt: skip
        out["chunks"] = tuple((float(t), size) for t, size in chunks)
    if "duration_ms" in meta:
        d = meta["duration_ms"]
        out["duration_ms"] = d if type(d) in (int, float) and math.isfinite(d) and d >= 0 else None
    tags = _tags(meta.get("tags"))
    if tags:
        out["tags"] = tags
    return out


MAX_TAGS = 100  # per flow: a crafted file cannot make one flow carry millions


def _tags(names) -> tuple:
    """The valid tag names among ``names`` (from a file: anything at all)."""
    from .tags import check_name

    if not isinstance(names, (list, tuple)):
        return ()
    kept = []
    for name in names[:MAX_TAGS]:
        try:
            kept.append(check_name(name))
        except (ValueError, AttributeError, TypeError):
            continue  # not a tag this repost could have written: left out
    return tuple(dict.fromkeys(kept))


def with_extras(snap: tuple, extras: dict) -> tuple:
    """The snapshot with repost's own fields applied: a stream's chunk times and its
    being cut off; no end times where the duration was unknown."""
    flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of = snap
    unknown = "duration_ms" in extras and extras["duration_ms"] is None
    if resp is not None:
        status, reason, rversion, rfields, raw, ended = resp
        if extras.get("chunks") or extras.get("incomplete"):
            raw = raw or b""
            raw = Streamed(raw, len(raw), sha256(raw).hexdigest(), not extras.get("incomplete"), extras.get("chunks", ()))
        resp = (status, reason, rversion, rfields, raw, None if unknown else ended)
    if err is not None and unknown:
        err = (err[0], None)
    return Snapshot(flow_id, started, method, scheme, host, port, target, version, fields, body, resp, err, replay_of)


def failure_reason(e: BaseException) -> str:
    """Why an entry could not be read, in words (an exception's name means little)."""
    if isinstance(e, KeyError):
        return f"no {e.args[0]!r} field" if e.args else "a field is missing"
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, (TypeError, AttributeError, IndexError)):
        return f"a field of the wrong type or shape ({short(str(e))})"
    return short(str(e)) or type(e).__name__


def short(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


ENTRY_ERRORS = (KeyError, ValueError, TypeError, AttributeError, IndexError, RecursionError, OverflowError)


def read_text(path: Path, what: str) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportError_(f"{path}: not {what} (not UTF-8 text)") from None


def request_note(item, url_key: str) -> str:
    """" (METHOD URL)" of an entry or interaction, for an error message; "" when it has none."""
    try:
        method, url = item["request"]["method"], item["request"][url_key]
    except Exception:  # noqa: BLE001 - a note only: whatever the entry holds, say nothing
        return ""
    if not isinstance(method, str) or not isinstance(url, str):
        return ""
    return f" ({short(method, 20)} {short(url, 120)})"
