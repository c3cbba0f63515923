"""``repost show ID --body request|response``: one body alone, for a file or a pipe."""

import sys

import click


def body_bytes(flow: dict, side: str, raw: bool) -> tuple[bytes, list[str]]:
    """The body decoded (or as on the wire, ``raw``), and notes for stderr."""
    from repost.store.bodies import decode_content

    if side == "response" and flow["status"] is None:
        raise click.ClickException(f"flow {flow['id']} has no response" + (f" ({flow['error']})" if flow["error"] else ""))
    stored = flow[f"{side}_body"]
    data = bytes(stored) if stored is not None else b""
    notes = []
    if flow[f"{side}_truncated"]:
        notes.append(f"truncated: only the first {len(data):,} of {flow[f'{side}_size']:,} bytes were stored")
    if flow[f"{side}_redacted"]:
        notes.append("secrets in this body were redacted before it was stored (it is stored decoded)")
    if raw:
        return data, notes
    decoded = decode_content(data, flow[f"{side}_content_encoding"], partial_ok=bool(flow[f"{side}_truncated"]))
    if decoded.note:
        notes.append(decoded.note)
    return decoded.data, notes


def write_body(flow: dict, side: str, output: str | None, raw: bool) -> None:
    from .terminal import visible

    data, notes = body_bytes(flow, side, raw)
    for note in notes:
        click.echo(visible(f"repost: {note}", lines=False), err=True)
    if output and output != "-":
        _write_file(output, data)
        click.echo(visible(f"repost: wrote {len(data):,} bytes to {output}", lines=False), err=True)
        return
    if sys.stdout.isatty():
        text = _text(data)
        if text is None:
            raise click.ClickException(f"the {side} body is binary ({len(data):,} bytes): give -o FILE, or pipe it")
        click.echo(visible(text), nl=not text.endswith("\n"))  # a terminal gets sanitised text
        return
    sys.stdout.buffer.write(data)  # a pipe gets the exact bytes
    sys.stdout.buffer.flush()


def _text(data: bytes) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def _write_file(output: str, data: bytes) -> None:
    """0600, as the database is (a body holds the same data); written beside and
    renamed into place, so a failure leaves no half-written file."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(output))
    fd, partial = tempfile.mkstemp(prefix=".repost-body-", dir=folder)
    try:
        with open(fd, "wb") as out:
            out.write(data)
        os.replace(partial, output)
    except BaseException:
        os.unlink(partial)
        raise
