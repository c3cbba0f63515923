"""``repost serve --mode MITMPROXY_MODE``: mitmproxy, embedded, sending every request to the answering server."""

import click


async def run_serving_proxy(mode: str, host: str, port: int, answering_port: int, stop, extra=(), quiet=False) -> None:
    import asyncio
    import logging

    from mitmproxy import exceptions, options
    from mitmproxy.tools.dump import DumpMaster

    from repost.addons.serve import ServeRecordings
    from repost.store.addresses import host_port

    opts = options.Options()
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    opts.update(termlog_verbosity="warn")
    master.addons.add(ServeRecordings(port=answering_port))
    try:
        opts.update(mode=[mode], listen_host=host, listen_port=port, connection_strategy="lazy", upstream_cert=False)
        opts.set(*extra)
    except (exceptions.OptionsError, KeyError) as e:
        raise click.BadParameter(str(e).strip("'\""), param_hint="--mode") from None
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    running = asyncio.ensure_future(master.run())
    if not quiet:  # else behind cli/serve_front.py, which said where it listens
        where = host_port(host, port)
        click.echo(f"repost: serving recordings inside the proxy ({mode}) on {where} (Ctrl-C to stop)", err=True)
    stopped = asyncio.ensure_future(stop.wait())
    await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
    if not running.done():
        master.shutdown()
        await running
    stopped.cancel()
