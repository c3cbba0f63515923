"""multipart bodies (form-data, mixed, ...) split into their parts, by the email
package's parser: quoted or bare, any-case and RFC 2231 parameters, as mail
and browsers write them; a pattern over the body misses those."""

from collections import namedtuple

# name: the Content-Disposition name (None without one); filename: None for a plain field;
# data: the part's bytes (its transfer encoding undone); charset: its own, else UTF-8 (as browsers send).
Part = namedtuple("Part", "name filename content_type data charset")


def parse_multipart(body: bytes, content_type: str | None) -> list[Part] | None:
    """The parts of a multipart body; None when the Content-Type is no multipart
    type with a boundary, or the body holds no part. Never raises on bad input."""
    ctype = (content_type or "").replace("\r", " ").replace("\n", " ")  # one header line, whatever was recorded
    if "multipart/" not in ctype.lower() or "boundary" not in ctype.lower():
        return None
    from email import policy
    from email.parser import BytesParser

    head = b"MIME-Version: 1.0\r\nContent-Type: " + ctype.encode("utf-8", "replace") + b"\r\n\r\n"
    try:
        message = BytesParser(policy=policy.HTTP).parsebytes(head + body)
        if not message.is_multipart():
            return None
        parts = [_part(p) for p in message.iter_parts()]
    except Exception:  # the email package's own errors on hostile headers: no parts, not a traceback
        return None
    return parts or None


def _part(part) -> Part:
    name = part.get_param("name", header="content-disposition")
    if isinstance(name, tuple):  # RFC 2231 (charset, language, value)
        from email.utils import collapse_rfc2231_value

        name = collapse_rfc2231_value(name)
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):  # a nested multipart: its raw text
        data = part.as_bytes()
    return Part(name, part.get_filename(), part.get_content_type(), data, part.get_content_charset() or "utf-8")


def part_text(part: Part) -> str | None:
    """A field's value as text, or None when the part is a file or binary."""
    if part.filename is not None:
        return None
    from .bodies import to_text

    text, _ = to_text(part.data, f"{part.content_type}; charset={part.charset}")
    return text
