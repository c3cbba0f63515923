"""Reading the records of a mitmproxy flow file fast, as a stream.

A flow file is a sequence of tnetstrings (``LENGTH:PAYLOAD TAG``), one a flow.
mitmproxy's own reader (``mitmproxy.io.tnetstring``) reads the length prefix a
byte at a time and parses every value through memoryview slices; here a record
is parsed by offsets in a buffer read a megabyte at a time, and the parts of a
flow a snapshot does not need (the connections, metadata, websocket messages)
are skipped by their length, not parsed.

Values come out as mitmproxy's reader gives them: ``,`` bytes, ``;`` str,
``#`` int, ``^`` float, ``!`` bool, ``~`` None, ``]`` list, ``}`` dict. Anything
not well formed raises ``ValueError`` (or ``IndexError``): the caller then lets
mitmproxy's reader have the record, and it says what is wrong.
"""

from collections.abc import Iterator
from typing import BinaryIO

CHUNK = 1 << 20
MAX_PREFIX = 12  # digits of a length prefix, as mitmproxy's reader allows


class Unframed(ValueError):
    """The file stops being a sequence of whole tnetstrings at ``offset``."""

    def __init__(self, offset: int):
        super().__init__(f"not a tnetstring at offset {offset}")
        self.offset = offset


def records(f: BinaryIO) -> Iterator[tuple[int, bytes, int, int]]:
    """(file offset, buffer, start, end) of each record: ``buffer[start:end]`` is
    one whole tnetstring, tag included. The buffer is only valid until the next
    record is asked for; memory holds one chunk, or one record if larger.

    Raises Unframed where a record has no valid length prefix or is cut short."""
    buf = b""
    pos = 0  # offset in buf of the next record
    base = 0  # file offset of buf[0]
    while True:
        if len(buf) - pos <= MAX_PREFIX:
            buf, base, pos = buf[pos:] + f.read(CHUNK), base + pos, 0
            if not buf:
                return
        colon = buf.find(b":", pos, pos + MAX_PREFIX + 1)
        if colon <= pos or not buf[pos:colon].isdigit():
            raise Unframed(base + pos)
        end = colon + 2 + int(buf[pos:colon])
        if end > len(buf):  # a record longer than what is buffered: read the rest of it
            parts = [buf[pos:]]
            missing = end - len(buf)
            while missing > 0:
                more = f.read(max(CHUNK, missing))
                if not more:
                    raise Unframed(base + pos)
                parts.append(more)
                missing -= len(more)
            buf, base, end, pos = b"".join(parts), base + pos, end - pos, 0
        yield base + pos, buf, pos, end
        pos = end


def value(b: bytes, i: int, limit: int):
    """(the value of the tnetstring at b[i:], the offset after it); it must end before ``limit``."""
    c = b.index(b":", i, i + MAX_PREFIX + 1)
    a = c + 1
    e = a + int(b[i:c])
    if not a <= e < limit:
        raise ValueError("tnetstring longer than its container")
    t = b[e]
    if t == 44:  # ,
        return b[a:e], e + 1
    if t == 59:  # ;
        return b[a:e].decode(), e + 1
    if t == 35:  # #
        return int(b[a:e]), e + 1
    if t == 125:  # }
        return dict_at(b, a, e), e + 1
    if t == 93:  # ]
        items = []
        while a < e:
            v, a = value(b, a, e)
            items.append(v)
        return items, e + 1
    if t == 126:  # ~
        if a != e:
            raise ValueError("invalid null")
        return None, e + 1
    if t == 94:  # ^
        return float(b[a:e]), e + 1
    if t == 33:  # !
        v = b[a:e]
        if v == b"true":
            return True, e + 1
        if v == b"false":
            return False, e + 1
        raise ValueError("invalid boolean")
    raise ValueError(f"unknown tnetstring tag {t}")


def key_at(b: bytes, a: int, e: int) -> tuple[str, int]:
    """(the string key at b[a:], the offset after it); it must end before ``e``."""
    c = b.index(b":", a, a + MAX_PREFIX + 1)
    ka = c + 1
    a = ka + int(b[a:c])
    if not ka <= a < e or b[a] != 59:
        raise ValueError("a dict key that is not a string")
    return b[ka:a].decode(), a + 1


def dict_at(b: bytes, a: int, e: int) -> dict:
    """The dict whose payload is b[a:e], its keys strings (as a flow's are); a list of
    header fields (``[[bytes, bytes], ...]``) under "headers" or "trailers" is read by
    ``fields_at``, as a tuple of tuples. Plain values are read inline: a function
    call per value is most of the cost."""
    d = {}
    index = b.index
    while a < e:
        k, a = key_at(b, a, e)
        c = index(b":", a, a + MAX_PREFIX + 1)
        va = c + 1
        ve = va + int(b[a:c])
        if not va <= ve < e:
            raise ValueError("tnetstring longer than its container")
        t = b[ve]
        if t == 44:  # ,
            d[k] = b[va:ve]
        elif t == 93 and (k == "headers" or k == "trailers"):
            d[k] = fields_at(b, va, ve)
        elif t == 35:  # #
            d[k] = int(b[va:ve])
        elif t == 94:  # ^
            d[k] = float(b[va:ve])
        elif t == 126 and va == ve:  # ~
            d[k] = None
        else:
            d[k] = value(b, a, e)[0]
        a = ve + 1
    return d


def fields_at(b: bytes, a: int, e: int) -> tuple:
    """Header fields from the payload b[a:e] of a list of two-item lists of bytes."""
    out = []
    append = out.append
    while a < e:
        c = b.index(b":", a, a + MAX_PREFIX + 1)
        pa = c + 1  # the pair's payload
        pe = pa + int(b[a:c])
        c = b.index(b":", pa, pa + MAX_PREFIX + 1)
        na = c + 1
        ne = na + int(b[pa:c])
        c = b.index(b":", ne + 1, ne + MAX_PREFIX + 2)
        va = c + 1
        ve = va + int(b[ne + 1 : c])
        if not (pe < e and b[pe] == 93 and pa < na <= ne and b[ne] == 44 and ne < va <= ve and ve + 1 == pe and b[ve] == 44):
            raise ValueError("not a header field")
        append((b[na:ne], b[va:ve]))
        a = pe + 1
    if a != e:
        raise ValueError("header fields longer than their list")
    return tuple(out)


def top_dict(b: bytes, start: int, end: int, wanted: frozenset) -> tuple[dict, list]:
    """The record b[start:end] as a dict, only its ``wanted`` keys parsed; and the list of all its keys."""
    c = b.index(b":", start, start + MAX_PREFIX + 1)
    a = c + 1
    e = end - 1
    if b[e] != 125 or a + int(b[start:c]) != e:
        raise ValueError("not a dict")
    d = {}
    keys = []
    index = b.index
    while a < e:
        k, a = key_at(b, a, e)
        keys.append(k)
        if k in wanted:
            d[k], a = value(b, a, e)
        else:  # skipped by its length
            c = index(b":", a, a + MAX_PREFIX + 1)
            a = c + 2 + int(b[a:c])
            if not c < a <= e:
                raise ValueError("tnetstring longer than its container")
    return d, keys
