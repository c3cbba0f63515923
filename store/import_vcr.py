"""VCR.py cassettes in: each interaction a snapshot for ``importer``'s write path.

Loaded with vcrpy's own serializers (YAML only through a safe loader) and read as
vcrpy reads them (``vcr.serialize``: ``Request._from_dict``, ``convert_to_bytes``).
"""

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from .capture import make_snapshot
from .import_common import ENTRY_ERRORS, ImportError_, Incoming, content_id, failure_reason, read_text, request_note, short


def vcr_incoming(path: Path) -> Iterator[Incoming]:
    """The interactions of a cassette (format version 1, YAML or JSON), loaded with
    vcrpy's own serializers and read as vcrpy reads them (``vcr.serialize``).

    A cassette has no times: each flow starts when it is imported, its duration unknown."""
    data = _load_cassette(path, read_text(path, "a VCR.py cassette"))
    if isinstance(data, list) and data and isinstance(data[0], dict) and "request" in data[0]:
        raise ImportError_(f"{path}: a cassette of a VCR.py older than 1.0 (no format version); migrate it with vcrpy first")
    if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
        raise ImportError_(f"{path}: not a VCR.py cassette (no interactions)")
    version = data.get("version")
    if version != 1:
        raise ImportError_(f"{path}: a cassette of format version {short(repr(version), 40)}; repost reads version 1")
    seen: Counter = Counter()
    for i, interaction in enumerate(data["interactions"]):
        where = f"interactions[{i}]"
        try:
            snap = _interaction_snapshot(interaction, content_id(interaction, seen))
        except ENTRY_ERRORS as e:
            raise ImportError_(f"{path}: {where}{request_note(interaction, 'uri')} could not be read: {failure_reason(e)}") from None
        yield Incoming(snap, None, where)


def _load_cassette(path: Path, text: str):
    """The cassette's data, as vcrpy's serializer for its format loads it. YAML only
    through a safe loader: a cassette is a file from anywhere, and an older vcrpy's
    YAML serializer uses PyYAML's full loader, which builds any Python object a file
    names (running code)."""
    import yaml
    from vcr.serializers import jsonserializer, yamlserializer

    try:
        if text.lstrip().startswith("{"):
            return jsonserializer.deserialize(text)
        loader = getattr(yamlserializer, "_CassetteLoader", None)
        safe = (yaml.SafeLoader, getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        if isinstance(loader, type) and issubclass(loader, safe):
            return yamlserializer.deserialize(text)
        return yaml.load(text, Loader=safe[-1])  # noqa: S506 - a safe loader
    except RecursionError:
        raise ImportError_(f"{path}: not a VCR.py cassette (nested too deeply)") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ImportError_(f"{path}: not a VCR.py cassette (YAML: {short(str(e.problem or e.context))}{at})") from None
    except (yaml.YAMLError, ValueError) as e:
        raise ImportError_(f"{path}: not a VCR.py cassette ({short(str(e))})") from None


def _interaction_snapshot(interaction: dict, flow_id: str) -> tuple:
    """One interaction as a snapshot: the request as ``vcr.request.Request`` reads it
    (its body as vcrpy sends it), every header value of it kept (vcrpy's Request keeps
    the first); the response as vcrpy plays it back (``convert_to_bytes``), in the
    layout of vcrpy's current stubs or of its older httpx one."""
    from mitmproxy.net.http import status_codes, url
    from vcr.request import Request
    from vcr.serializers import compat
    from vcr.util import read_body

    request = Request._from_dict(dict(interaction["request"]))
    body = read_body(request)
    if body is None:
        body = b""
    elif not isinstance(body, bytes):
        raise TypeError(f"request body of type {type(body).__name__}")
    scheme, host, port, target = url.parse(request.uri)
    headers = _cassette_headers(interaction["request"].get("headers") or {})

    response = compat.convert_to_bytes(dict(interaction["response"]))
    if "status_code" in response:  # the layout of vcrpy's old httpx stub
        status, reason = response["status_code"], ""
        raw = response.get("content") or b""
        raw = raw.encode("utf-8") if isinstance(raw, str) else raw
    else:
        status, reason = response["status"]["code"], response["status"].get("message") or ""
        raw = response["body"]["string"] or b""
    if type(status) is not int or not isinstance(raw, bytes) or not isinstance(reason, str):
        raise TypeError("status code, reason or body of the wrong type")
    reason = reason or status_codes.RESPONSES.get(status, "")
    fields = tuple((k.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape")) for k, v in _cassette_headers(response.get("headers") or {}))
    return make_snapshot(
        flow_id=flow_id, started=None, method=request.method, scheme=scheme.decode(), host=host.decode("idna"),
        port=port, target=target.decode("utf-8", "surrogateescape"), headers=headers, body=body,
        response=(status, reason, "HTTP/1.1", fields, raw, None), error=None,
    )  # fmt: skip


def _cassette_headers(headers: dict) -> list[tuple[str, str]]:
    """A cassette's ``{name: [value, ...]}`` (or ``{name: value}``) as (name, value) pairs."""
    pairs = []
    for name, values in headers.items():
        for value in values if isinstance(values, list) else [values]:
            if not isinstance(name, str) or not isinstance(value, str):
                raise TypeError(f"header {name!r}: name and value must be text")
            pairs.append((name, value))
    return pairs
