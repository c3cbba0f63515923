"""Hosts and ports as URLs and logs write them: IPv6 in brackets, default ports left out."""


def host_port(host: str, port: int) -> str:
    """``127.0.0.1:8080``, ``[::1]:8080``: where something listens."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def authority(scheme: str, host: str, port: int) -> str:
    """A URL's authority: ``host`` alone on its scheme's default port, else ``host:port``."""
    if (scheme, port) in (("http", 80), ("https", 443)):
        return f"[{host}]" if ":" in host else host
    return host_port(host, port)
