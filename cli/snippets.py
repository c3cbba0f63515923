"""A stored request as a command or a snippet: ``show --as curl|httpie|python``.

All three send what store/outgoing.py says goes out: no hop-by-hop header, none the
client sets itself, none redacted at capture (the notes say which, on stderr). curl is
the very command ``export --format curl`` writes; httpie's is built the same way.
"""

from repost.store.outgoing import Outgoing, notes, outgoing


def as_python(o: Outgoing) -> str:
    """An httpx snippet. repr() writes every value, so no control character is printed raw."""
    lines = ["import httpx", "", "headers = ["]
    lines += [f"    ({name!r}, {value!r})," for name, value in o.headers]
    lines.append("]")
    body_arg = ""
    if o.body:
        try:
            lines.append(f"content = {o.body.decode()!r}.encode()")
        except UnicodeDecodeError:
            lines.append(f"content = {o.body!r}")
        body_arg = ", content=content"
    lines.append("with httpx.Client() as client:")
    lines.append("    client.headers.clear()  # none of httpx's own headers, only the recorded ones")
    lines.append(f"    response = client.request({o.method!r}, {o.url!r}, headers=headers{body_arg})")
    lines.append("print(response.status_code, response.text)")
    return "\n".join(lines)


def render_request(flow: dict, kind: str) -> tuple[str, list[str]]:
    """(the snippet, notes for stderr). ValueError: it cannot be written as ``kind``."""
    from repost.store.commands import curl_command, httpie_command

    o = outgoing(flow)
    if kind == "python":
        text = as_python(o)
    elif kind == "curl":
        text = curl_command(flow, o)
    else:
        try:
            text = httpie_command(flow, o)
        except ValueError as e:
            raise ValueError(f"cannot show this request as httpie: {e}") from None
    return text, notes(o, flow["id"])
