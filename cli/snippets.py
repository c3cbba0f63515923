"""A stored request as a command or a snippet: ``show --as curl|httpie|python``.

curl and httpie come from mitmproxy's own export addon; the Python snippet uses httpx.
Headers that were redacted at capture are left out, with a note to supply them.
"""

import json

from repost.store.redact import REDACTED_PREFIX


def redacted_headers(flow: dict) -> list[str]:
    return [name for name, value in flow["request_headers"] if value.startswith(REDACTED_PREFIX)]


def _without_redacted(flow: dict) -> dict:
    copy = dict(flow)
    copy["request_headers"] = [[n, v] for n, v in flow["request_headers"] if not v.startswith(REDACTED_PREFIX)]
    return copy


def _mitmproxy_export(flow: dict, kind: str) -> str:
    from mitmproxy import ctx, options
    from mitmproxy.addons import export

    from repost.store.flowmodel import row_to_flow

    if not hasattr(ctx, "options") or not hasattr(ctx.options, "export_preserve_original_ip"):
        opts = options.Options()
        opts.add_option("export_preserve_original_ip", bool, False, "")
        ctx.options = opts  # curl_command reads this option
    f = row_to_flow(_without_redacted(flow))
    try:
        return export.curl_command(f) if kind == "curl" else export.httpie_command(f)
    except Exception as e:  # mitmproxy's CommandError for binary bodies, among others
        raise ValueError(f"cannot show this request as {kind}: {e}") from None


def as_python(flow: dict) -> str:
    from repost.store.flowview import body_view

    f = _without_redacted(flow)
    skip = {"host", "content-length", "content-encoding", "transfer-encoding", "connection"}
    headers = {n: v for n, v in f["request_headers"] if n.lower() not in skip}
    view = body_view(f, "request")
    lines = ["import httpx", ""]
    lines.append(f"headers = {json.dumps(headers, indent=4, ensure_ascii=False)}")
    body_arg = ""
    if view is not None and view.data:
        if view.text is not None:
            lines.append(f"content = {view.text!r}.encode()")
        else:
            lines.append(f"content = {view.data!r}")
        body_arg = ", content=content"
    lines.append(f"response = httpx.request({f['method']!r}, {f['url']!r}, headers=headers{body_arg})")
    lines.append("print(response.status_code, response.text)")
    return "\n".join(lines)


def render_request(flow: dict, kind: str) -> str:
    if kind == "python":
        return as_python(flow)
    return _mitmproxy_export(flow, kind)
