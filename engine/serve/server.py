"""The uvicorn configuration of ``serve``: what a slow, idle or overwhelming client can hold.

* A request's head (its request line and headers) must arrive within :data:`HEAD_TIMEOUT_S`
  of the connection's start, or of the previous answer on a kept-alive connection: a client
  sending its headers a byte at a time (slowloris) is closed then (:class:`GuardedH11`).
* A request's body must arrive whole within :data:`BODY_TIMEOUT_S` (:class:`engine.serve.app.
  BodyLimit`: 408); an idle kept-alive connection is closed after :data:`KEEP_ALIVE_S`.
* At most :func:`connection_limit` connections are open at once, derived from the process's
  file descriptor limit (``RLIMIT_NOFILE``) and :data:`BACKLOG` (the most asyncio accepts at
  once): one over it is answered 503 and closed at once (uvicorn's ``limit_concurrency``),
  so connections alone never use up the descriptors. When something does, asyncio's
  ``socket.accept() out of system resource`` is logged once a minute (it was logged for every
  waiting connection every second: hundreds of thousands of lines a minute).
* A stop (SIGTERM, SIGHUP, Ctrl-C) waits at most :data:`SHUTDOWN_TIMEOUT_S` for the requests in
  flight, then cancels them.
* uvicorn's own lines (``Invalid HTTP request received.``) go through the project's one log
  handler (``log_config=None``), in ``--log-format``'s format.

What is not bounded here: many clients each within these limits (a reverse proxy's job, as is
slowloris beyond one process's descriptors), and a request's total time once its body has
arrived (the page is rendered in the thread pool).

Example:
    >>> config(app=None, host="127.0.0.1", port=0, limit=100).limit_concurrency  # 100 held
    101
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import resource
import time
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.serve.app import BODY_TIMEOUT_S  # the app's own deadline, stated here too

__all__ = ["BACKLOG", "BODY_TIMEOUT_S", "HEAD_TIMEOUT_S", "KEEP_ALIVE_S", "SHUTDOWN_TIMEOUT_S",
           "GuardedH11", "config", "connection_limit"]  # fmt: skip

HEAD_TIMEOUT_S = 5.0  #: a request's line and headers, from its connection or last answer
KEEP_ALIVE_S = 5  #: an idle kept-alive connection (uvicorn's default)
SHUTDOWN_TIMEOUT_S = 10  #: a stop's wait for the requests in flight
#: connections waiting to be accepted, and so the most asyncio accepts in one turn of its loop
#: (uvicorn's default: 2048); a refused connection is closed some four turns later
BACKLOG = 16
#: descriptors kept for the rest of the process (the store's files, the log, the thread pool)
_RESERVED = 64
_REFUSED = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
    b"content-length: 33\r\nretry-after: 1\r\nconnection: close\r\n\r\n"
    b'{"error": "Service Unavailable"}\n'
)


def connection_limit(descriptors: int | None = None) -> int:
    """The most connections ``serve`` holds open: the descriptor limit (``descriptors``, else
    the process's soft ``RLIMIT_NOFILE``) less a reserve (64, or a quarter of a larger limit)
    and less four :data:`BACKLOG` (accepted before the connections over the limit are closed).

    Example:
        >>> connection_limit(256), connection_limit(1024)
        (128, 704)
    """
    if descriptors is None:
        descriptors = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        if descriptors == resource.RLIM_INFINITY:
            descriptors = 1 << 20
    return max(1, descriptors - max(_RESERVED, descriptors // 4) - 4 * BACKLOG)


class _Seldom(logging.Filter):
    """asyncio's ``socket.accept() out of system resource`` at most once a minute (it is
    logged for every connection waiting, every second, while descriptors are short)."""

    def __init__(self) -> None:
        super().__init__("asyncio")
        self._next = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("socket.accept() out of system resource"):
            return True
        if (now := time.monotonic()) < self._next:
            return False
        self._next = now + 60
        return True


class GuardedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request's head (``head_timeout_s``)
    and a connection over ``limit_concurrency`` answered 503 and closed as it is accepted."""

    head_timeout_s = HEAD_TIMEOUT_S
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # uvicorn's limit_concurrency is one over the connections held: at it, uvicorn answers
        # every request of every connection 503 (and logs each); it is reached only here
        if self.limit_concurrency is not None and len(self.connections) >= self.limit_concurrency:
            transport.write(_REFUSED)
            transport.close()
            return
        self._await_head()

    def _await_head(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_late)

    def _head_late(self) -> None:
        """The head has not arrived in time: the connection is closed (no answer: the client
        is sending none, or too slowly to be one)."""
        self._head_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            with contextlib.suppress(h11.LocalProtocolError):
                self.conn.send(h11.ConnectionClosed())
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:
            self._head_timer.cancel()  # the head arrived: the body has its own deadline
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._await_head()  # the next request's head, on a kept-alive connection

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


def config(
    app: Any, *, host: str, port: int, limit: int | None = None, **more: Any
) -> uvicorn.Config:
    """The uvicorn configuration of ``serve`` for ``app`` on ``host:port`` (``limit``: the most
    connections, else :func:`connection_limit`; ``more``: further options, TLS's)."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, _Seldom) for f in asyncio_log.filters):
        asyncio_log.addFilter(_Seldom())
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=GuardedH11,
        limit_concurrency=(limit or connection_limit()) + 1,  # see GuardedH11.connection_made
        backlog=BACKLOG,
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=SHUTDOWN_TIMEOUT_S,
        access_log=False,  # its line carries the query; ours has method, path, status only
        proxy_headers=False,  # uvicorn's default trusts 127.0.0.1; [serve] trusted_proxies
        server_header=False,
        log_config=None,  # its lines through the project's handler (engine.app.logs)
        log_level="warning",
        **more,
    )
