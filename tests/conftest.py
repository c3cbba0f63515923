import os
import ssl

import pytest

from .helpers import RecordingProxy
from .upstream import Upstream


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch, tmp_path_factory):
    """Every test gets its own database path and fingerprint key, never the user's."""
    monkeypatch.setenv("REPOST_DB", str(tmp_path / "repost.db"))
    monkeypatch.setenv("REPOST_KEY_FILE", str(tmp_path_factory.getbasetemp() / "fingerprint.key"))
    monkeypatch.delenv("REPOST_DEBUG", raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    for var in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="session")
def confdir(tmp_path_factory):
    """mitmproxy's confdir (its CA) for the whole run, not the user's ~/.mitmproxy."""
    return tmp_path_factory.mktemp("mitmproxy-conf")


@pytest.fixture(scope="session")
def upstream():
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture
def counting_upstream():
    """A fresh upstream per test, so its request counts start at zero."""
    server = Upstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_ca():
    import trustme

    return trustme.CA()


@pytest.fixture(scope="session")
def tls_upstream(tls_ca, tmp_path_factory):
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    server = Upstream(ssl_context=ctx).start()
    ca_file = tmp_path_factory.mktemp("upstream-ca") / "ca.pem"
    tls_ca.cert_pem.write_to_path(str(ca_file))
    server.ca_file = ca_file
    yield server
    server.stop()


@pytest.fixture
def start_proxy(tmp_path, confdir):
    """Start `repost record` with extra arguments; stopped (SIGINT) at the end of the test."""
    started = []

    def start(*args, db=None, **kw):
        proxy = RecordingProxy(db or tmp_path / "repost.db", confdir, *args, env={"REPOST_KEY_FILE": os.environ["REPOST_KEY_FILE"]}, **kw)
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.stop()


@pytest.fixture(scope="session")
def h2_upstream(tls_ca, tmp_path_factory):
    from .helpers import port_open, wait_for
    from .upstream import H2Upstream

    folder = tmp_path_factory.mktemp("h2-upstream")
    cert = tls_ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    server = H2Upstream(str(folder / "cert.pem"), str(folder / "key.pem")).start()
    wait_for(lambda: port_open(server.port), 10, what="h2 upstream")
    tls_ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    server.ca_file = folder / "ca.pem"
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL server for the whole run (tests/pgcluster.py); skips when none can be had."""
    from .pgcluster import Cluster, why_unavailable

    reason = why_unavailable()
    if reason:
        pytest.skip(f"PostgreSQL tests skipped: {reason}")
    cluster = Cluster()
    yield cluster
    cluster.close()


@pytest.fixture
def pg_url(pg_cluster):
    """The URL of a fresh, empty PostgreSQL database."""
    return pg_cluster.new_database()
