"""Running mitmproxy embedded with the recorder, the way mitmdump runs itself."""

import asyncio
import logging
import os
import signal
import sys
from dataclasses import dataclass

import click


class ProxyStartError(Exception):
    pass


@dataclass
class Summary:
    written: int
    lost: int


class Announcer:
    """Says where the proxy listens and where it records, once it really listens."""

    def __init__(self, quiet: bool):
        self.quiet = quiet

    def running(self) -> None:
        from mitmproxy import ctx

        from repost.store.addresses import host_port

        if self.quiet:
            return
        opts = ctx.options
        addrs = []
        proxyserver = ctx.master.addons.get("proxyserver")
        if proxyserver is not None and hasattr(proxyserver, "listen_addrs"):
            addrs = [host_port(h, p) for h, p, *_ in proxyserver.listen_addrs()]
        where = ", ".join(addrs) or f"{opts.listen_host}:{opts.listen_port}"
        ca = os.path.join(os.path.expanduser(opts.confdir), "mitmproxy-ca-cert.pem")
        methods = opts.repost_methods.upper()
        secrets = "kept as they are (--keep-secrets)" if opts.repost_keep_secrets else "redacted"
        from repost.store.database import describe

        click.echo(
            f"repost: proxy ({', '.join(opts.mode)}) listening on {where}\n"
            f"repost: recording {methods} flows{' matching ' + repr(opts.repost_filter) if opts.repost_filter else ''}"
            f" to {describe(opts.repost_db)} (secrets {secrets})\n"
            f"repost: for HTTPS, make the client trust mitmproxy's CA: {ca}\n"
            f"        e.g. curl --cacert {ca} ..., or REQUESTS_CA_BUNDLE / SSL_CERT_FILE for Python clients\n"
            f"repost: Ctrl-C to stop",
            err=True,
        )


async def run_recording_proxy(settings: dict, extra: list[str], quiet: bool = False) -> Summary:
    from mitmproxy import exceptions, options
    from mitmproxy.tools.dump import DumpMaster

    from repost.addons.recorder import Recorder

    opts = options.Options()
    # No dumper: repost prints no line per flow (the database is the record).
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    if quiet:
        opts.update(termlog_verbosity="error")
    recorder = Recorder(announce=False)  # the Announcer says it, with the listen address
    master.addons.add(recorder, Announcer(quiet))
    try:
        opts.update(**settings)
        opts.set(*extra)  # the user's --set wins
    except (exceptions.OptionsError, KeyError) as e:
        recorder.close()
        raise ProxyStartError(str(e).strip("'\"")) from None

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    try:
        await master.run()
    finally:
        recorder.close()  # done() does not run if start-up failed
    sys.stdout.flush()
    writer = recorder.writer
    return Summary(written=writer.written if writer else 0, lost=writer.lost if writer else 0)
