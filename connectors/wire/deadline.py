"""``timeouts.total``: the whole request held to one deadline, at the socket.

httpx bounds each socket operation (connect, one read, one write) by its own timeout, never the
request: a server that sends its status line and headers a byte at a time, each byte inside the
read timeout, holds a request for as long as it likes (httpcore gives up only after 100 KiB of
unfinished head). :func:`watch` wraps the network backend of a client's transports so that every
connect, TLS handshake, read and write waits at most what is left of the :class:`Deadline` set
around the request (:func:`held_to`), and fails at once when none is left: the request ends as a
timeout within ``timeouts.total`` of its start, whatever the server does. Outside
:func:`held_to` (no request of ours), the operations keep their own timeouts.

Example:
    >>> import time
    >>> with held_to(Deadline(time.monotonic() + 5.0, 5.0)):
    ...     0 < _left(60.0) <= 5.0
    True
    >>> _left(60.0)
    60.0
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import httpcore
import httpx

from connectors.errors import TransportError

__all__ = ["Deadline", "held_to", "watch"]


@dataclass(frozen=True)
class Deadline:
    """When a request must be over (``time.monotonic``), and the ``timeouts.total`` it came from."""

    at: float
    total: float

    def check(self, url: httpx.URL | str) -> None:
        """A :class:`~connectors.errors.TransportError` (retriable) once the deadline passed."""
        if time.monotonic() > self.at:
            raise self.passed(url)

    def passed(self, url: httpx.URL | str) -> TransportError:
        """The error of a request that ran past the deadline."""
        msg = f"timed out (the request took over timeouts.total={self.total:g} s)"
        return TransportError(msg, url=url)

    def timed_out(self, exc: httpx.TimeoutException, url: httpx.URL | str) -> TransportError:
        """The error of a timeout: the deadline's when it has passed, else the timeout's own."""
        if time.monotonic() >= self.at:
            return self.passed(url)
        return TransportError(f"timed out ({type(exc).__name__})", url=url)


_NOW: ContextVar[Deadline | None] = ContextVar("wfm_request_deadline", default=None)


@contextmanager
def held_to(deadline: Deadline) -> Iterator[None]:
    """Within it, the socket operations of a watched client end by ``deadline``, or by the
    deadline already set if that is earlier (a token exchange an auth flow makes within a
    request is held to the request's total too, not to a total of its own after it).

    Example:
        >>> import time
        >>> with held_to(Deadline(time.monotonic() + 5.0, 5.0)):
        ...     with held_to(Deadline(time.monotonic() + 60.0, 60.0)):
        ...         _left(None) <= 5.0
        True
    """
    outer = _NOW.get()
    token = _NOW.set(deadline if outer is None or deadline.at < outer.at else outer)
    try:
        yield
    finally:
        _NOW.reset(token)


def _left(timeout: float | None, error: type[Exception] = httpcore.ReadTimeout) -> float | None:
    """``timeout`` cut to what is left of the request's deadline (``error`` when none is)."""
    deadline = _NOW.get()
    if deadline is None:
        return timeout
    left = deadline.at - time.monotonic()
    if left <= 0:
        raise error(f"timeouts.total={deadline.total:g} s passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every wait is cut to the request's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self, ssl_context: Any, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._stream.start_tls(ssl_context, server_hostname, wait))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """Opens :class:`_Stream` connections through the backend it wraps."""

    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, wait, local_address, socket_options))

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        wait = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, wait, socket_options))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def watch(client: httpx.Client) -> None:
    """Put the deadline on every connection ``client`` opens through httpx's own transports (a
    custom transport, such as a unit test's ``MockTransport``, opens none). Their connection
    pool takes its network backend as an argument that httpx does not pass on: it is set on
    the pool httpx built (``tests/connectors/test_http_body.py`` fails if that changes)."""
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if isinstance(backend, httpcore.NetworkBackend) and not isinstance(backend, _Backend):
            pool._network_backend = _Backend(backend)  # type: ignore[union-attr]
