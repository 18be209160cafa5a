"""``wfm-intervals serve``: the Kore.ai Contact Volume and Mindful callback metrics APIs over the
committed store (:mod:`engine.serve.app`), on uvicorn.

Refuses (exit 2) to listen on a non-loopback address without a certificate (``[serve]
certfile``/``keyfile``) unless ``--insecure`` is given, and to start with no credential at all;
an address it cannot listen on (the port in use, an address of no interface, a name that does
not resolve) is exit 2 with one line naming it. ``X-Forwarded-For`` and its kin are trusted only
from ``[serve] trusted_proxies`` (the app's own middleware, :func:`engine.serve.guard.
behind_proxies`): from any other address a client is its connecting address.

Example:
    $ WFM_SERVE__TOKENS='["s3cret-token"]' wfm-intervals serve --port 8080 --store out
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import signal
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click
from jwt.warnings import InsecureKeyLengthWarning

from engine.app.config import AppSettings
from engine.app.logs import tenant_scope
from engine.cli.common import CONFIG_OPTION, TENANT_OPTION, GivenPath, fail, settings_or_fail
from engine.serve.app import create_app
from engine.serve.documents import StoreDocuments
from engine.serve.guard import Guard

if TYPE_CHECKING:
    import uvicorn

__all__ = ["serve"]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check(settings: AppSettings, host: str, *, insecure: bool) -> None:
    """Exit 2 with one line when ``settings`` cannot be served safely on ``host``."""
    s = settings.serve
    if not (s.kore_apps or s.tokens or s.oauth_clients):
        fail("serve: no credentials (set serve.kore_apps, serve.tokens or serve.oauth_clients)")
    if not s.tls and not _loopback(host) and not insecure:
        fail(f"--host {host}: not a loopback address and no serve.certfile (or give --insecure)")
    if any(len(v.get_secret_value().encode()) < 32 for v in s.kore_apps.values()):
        click.echo("wfm-intervals: note: a serve.kore_apps secret is under 32 bytes", err=True)
    for name in ("certfile", "keyfile"):
        path = getattr(s, name)
        if path is not None and not Path(path).is_file():
            fail(f"serve.{name} {path}: no such file")


def listen(host: str, port: int) -> list[socket.socket]:
    """Bound sockets for every address of ``host`` on ``port`` (as the event loop would bind
    them, so uvicorn serves on them); exit 2 with one line naming ``host:port`` when one cannot
    be bound (uvicorn's own failure is exit 3 with its log line)."""
    bound: list[socket.socket] = []
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(found):
            sock = socket.socket(family, kind, proto)
            bound.append(sock)
            if os.name == "posix":  # a restart is not refused by TIME_WAIT (as asyncio binds)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
    except OSError as exc:
        for sock in bound:
            sock.close()
        shown = f"[{host}]" if ":" in host else host
        fail(f"cannot listen on {shown}:{port}: {exc.strerror or exc}")
    return bound


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--store", type=GivenPath(path_type=Path, file_okay=False),
              help="Built output directory to serve [serve.store, else output.dir].")  # fmt: skip
@click.option("--insecure", is_flag=True, help="Allow a non-loopback address without TLS.")
@CONFIG_OPTION
@TENANT_OPTION
def serve(
    *,
    host: str,
    port: int,
    store: Path | None,
    insecure: bool,
    config_path: tuple[Path, ...],
    tenant: str | None,
) -> None:
    """Serve the Kore.ai and Mindful APIs over the committed store (Ctrl-C stops).

    Ctrl-C, SIGTERM (a service manager's stop) or SIGHUP (the terminal gone) ends it
    gracefully: the requests in flight are answered (for 10 seconds at most), then exit 0.
    A request's headers must arrive within 5 seconds, its body within 5 more; connections
    beyond what the descriptor limit (ulimit -n) allows are answered 503.
    """
    import uvicorn  # noqa: PLC0415 - only this command needs the server

    from engine.serve.server import config  # noqa: PLC0415 - likewise

    warnings.filterwarnings("ignore", category=InsecureKeyLengthWarning)  # noted once, below
    settings = settings_or_fail(config_path, tenant=tenant)
    check(settings, host, insecure=insecure)
    root = store or settings.serve.store or settings.output.dir
    docs = StoreDocuments(root, org_id=settings.output.org_id, unit=settings.output.duration_unit)
    app = create_app(docs, Guard(settings.serve))
    # one line per request through the one log handler (--log-format, engine.app.logs)
    logging.getLogger("wfm_intervals.serve").setLevel(logging.INFO)
    s = settings.serve
    # a stop signal: uvicorn answers the requests in flight (for 10 s at most), raises the signal
    # again (SIGTERM: engine.cli.main.Terminated, a KeyboardInterrupt) and returns on it: exit 0
    # (its deadlines, its connection limit and its log: engine.serve.server)
    server = uvicorn.Server(
        config(
            app,
            host=host,
            port=port,
            ssl_certfile=str(s.certfile) if s.certfile else None,
            ssl_keyfile=str(s.keyfile) if s.keyfile else None,
        )
    )
    sockets = listen(host, port)
    # every line of its requests names the tenant, as a run's do (the loop's tasks inherit it)
    with contextlib.suppress(KeyboardInterrupt), _hang_up_stops(server), tenant_scope(tenant):
        server.run(sockets=sockets)


@contextlib.contextmanager
def _hang_up_stops(server: uvicorn.Server) -> Iterator[None]:
    """Within the block, SIGHUP (the terminal the server was started from gone) stops
    ``server`` as uvicorn stops it on SIGTERM: the requests in flight are answered first.
    uvicorn handles SIGINT and SIGTERM only; a SIGHUP the parent ignored (``nohup``) stays
    ignored."""
    hang_up = getattr(signal, "SIGHUP", None)
    if (
        hang_up is None
        or threading.current_thread() is not threading.main_thread()
        or signal.getsignal(hang_up) is signal.SIG_IGN
    ):
        yield
        return
    kept = signal.signal(hang_up, server.handle_exit)
    try:
        yield
    finally:
        signal.signal(hang_up, signal.SIG_DFL if kept is None else kept)
