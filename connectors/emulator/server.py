"""Vendor-neutral core of the loopback API emulators: the HTTP server, counters and request log.

A vendor emulator subclasses :class:`EmulatorServer` and implements ``authenticate(request)``
(the tenant, or ``None`` for 401) and ``route(request) -> Response``. The base class does the rest,
in this order for every request::

    count + log -> authenticate --None--> 401
                     | tenant
                   per-tenant rate limiter --over N/s--> 429 (Retry-After if switched on)
                     | admitted: numbered 1, 2, ...
                   fault (schedule, else seeded draw) --> 429 / 500 / 503 / dropped connection
                     | none, SLOW (sleep first) or TRUNCATE
                   hooks(n) -> route -> rewrites? -> unknown keys? -> truncate? -> JSON response

It binds ``127.0.0.1`` only, serves from a daemon thread, handles each request in its own thread
(joined on stop) and speaks HTTP/1.0, so every response closes its connection and :meth:`stop`
returns promptly with no thread left behind.

Example:
    >>> class Hello(EmulatorServer):
    ...     def route(self, request: Request) -> Response:
    ...         return Response(200, {"hello": request.path})
    >>> import httpx
    >>> with Hello(rate_limit_per_s=None) as emu:
    ...     httpx.get(emu.origin + "/x").json()
    {'hello': '/x'}
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from connectors.emulator.fault import Fault, Faults, RateLimiter, draw_fault, with_unknown_keys
from engine import clock

__all__ = ["EmulatorServer", "LogEntry", "Request", "Response", "Stats", "basic_auth_tenant"]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    """An incoming request as the vendor routes see it (header names lower-cased)."""

    method: str
    path: str
    raw_query: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Response:
    """A JSON response: ``payload`` is encoded by the server (``None`` sends an empty body).

    ``body``, when given, is the compact encoding of ``payload`` (``json.dumps`` with
    ``separators=(",", ":")``), sent as is: a route that keeps its records encoded spares the
    server re-encoding a page per request (time the client would otherwise wait for). A fault
    that changes the payload (unknown keys) encodes the changed payload instead.
    """

    status: int
    payload: object = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True)
class LogEntry:
    """One request as received; ``status`` is ``None`` when the connection was dropped."""

    number: int
    at: datetime
    monotonic: float
    method: str
    path: str
    query: str
    tenant: str | None
    status: int | None
    fault: Fault | None


@dataclass(frozen=True)
class Stats:
    """A snapshot of the counters (``emu.stats``)."""

    requests: int
    admitted: int
    unauthorized_401: int
    rate_limited_429: int
    injected_429: int
    server_errors_5xx: int
    dropped: int
    truncated: int
    slowed: int
    by_path: Mapping[str, int]
    by_status: Mapping[int, int]


def basic_auth_tenant(request: Request, credentials: Mapping[str, str]) -> str | None:
    """The user name of a valid HTTP Basic ``Authorization`` header, else ``None``."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, password = base64.b64decode(token, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    expected = credentials.get(user)
    if not sep or expected is None:
        return None
    return user if hmac.compare_digest(password.encode(), expected.encode()) else None


_THROTTLED = {"error": "Too Many Requests"}
_CANNED: Mapping[Fault | None, Response] = {
    Fault.THROTTLE_BARE: Response(429, _THROTTLED),
    Fault.SERVER_ERROR: Response(500, {"error": "Internal Server Error"}),
    Fault.UNAVAILABLE: Response(503, {"error": "Service Unavailable"}),
}
_FAULT_COUNTER: Mapping[Fault | None, str] = {
    Fault.THROTTLE: "injected_429",
    Fault.THROTTLE_BARE: "injected_429",
    Fault.DROP: "dropped",
    Fault.SLOW: "slowed",
    Fault.TRUNCATE: "truncated",
}
_COUNTERS = (
    "requests",
    "admitted",
    "unauthorized_401",
    "rate_limited_429",
    "injected_429",
    "server_errors_5xx",
    "dropped",
    "truncated",
    "slowed",
)


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = False  # request threads are joined by server_close()
    block_on_close = True
    emulator: EmulatorServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Client-side disconnects are expected under fault injection: stay quiet."""


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    timeout = 10  # a client that connects and never sends cannot pin a thread forever

    def do_GET(self) -> None:
        self.server.emulator._dispatch(self)

    def do_POST(self) -> None:
        self.server.emulator._dispatch(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the default stderr access log: the emulator keeps its own."""


class EmulatorServer:
    """A loopback HTTP server with a per-tenant rate limiter, fault injection and counters.

    Args:
        port: TCP port on 127.0.0.1 (0 picks a free one).
        rate_limit_per_s: requests per second per tenant; ``None`` disables the limiter.
        rate_limit_retry_after: send ``Retry-After`` on rate-limit 429s.
        faults: the initial fault switches.
        seed: seed of the fault draws and the unknown keys.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        rate_limit_per_s: float | None = 1.0,
        rate_limit_retry_after: bool = True,
        faults: Faults | None = None,
        seed: int = 0,
    ) -> None:
        self._requested_port = port
        self.rate_limit_retry_after = rate_limit_retry_after
        self.seed = seed
        self._limiter = RateLimiter(rate_limit_per_s) if rate_limit_per_s else None
        self._lock = threading.Lock()
        self._faults = faults or Faults()
        self._faults_since = 0
        self._hooks: list[Callable[[int], None]] = []
        self._rewrites: list[Callable[[int, Request, Response], Response]] = []
        self._counts: Counter[str] = Counter()
        self._by_path: Counter[str] = Counter()
        self._by_status: Counter[int] = Counter()
        self._log: list[LogEntry] = []
        self.errors: list[str] = []
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- to override ------------------------------------------------------------------------
    def authenticate(self, request: Request) -> str | None:
        """The tenant a request belongs to, or ``None`` to answer 401 (default: no auth)."""
        return "default"

    def route(self, request: Request) -> Response:
        """Answer an authenticated, admitted request."""
        raise NotImplementedError

    def unauthorized(self) -> Response:
        """The 401 answer (never echoes the credentials it was given)."""
        return Response(401, {"error": "Unauthorized"})

    # -- lifecycle --------------------------------------------------------------------------
    def start(self) -> Self:
        """Bind 127.0.0.1 and serve from a daemon thread."""
        if self._httpd is not None:
            raise RuntimeError("emulator already started")
        self._stopping.clear()
        httpd = _HTTPServer((HOST, self._requested_port), _Handler)
        httpd.emulator = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake sleeping requests, close the socket and join every thread."""
        httpd, thread = self._httpd, self._thread
        if httpd is None or thread is None:
            return
        self._stopping.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
        self._httpd = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`)."""
        if self._httpd is None:
            raise RuntimeError("emulator not started")
        return int(self._httpd.server_address[1])

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{HOST}:{self.port}"

    # -- switches, hooks and counters -----------------------------------------------------------
    @property
    def faults(self) -> Faults:
        """The current fault switches."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults) -> None:
        with self._lock:
            self._faults, self._faults_since = faults, self._counts["admitted"]

    def set_rate_limit(self, per_s: float | None) -> None:
        """Replace the rate limiter (``None`` disables it); its window starts empty."""
        self._limiter = RateLimiter(per_s) if per_s else None

    def add_hook(self, hook: Callable[[int], None]) -> None:
        """Call ``hook(n)`` before routing the n-th admitted request (e.g. to mutate data)."""
        with self._lock:
            self._hooks.append(hook)

    def add_rewrite(self, rewrite: Callable[[int, Request, Response], Response]) -> None:
        """Pass the route's answer to the n-th admitted request through ``rewrite(n, request,
        response)``: a server that misbehaves (pages out of order, repeated or short, headers
        that lie, bodies too large). A rewrite that changes ``payload`` sets ``body=None``."""
        with self._lock:
            self._rewrites.append(rewrite)

    @property
    def stats(self) -> Stats:
        """A consistent snapshot of the counters."""
        with self._lock:
            counts = {name: self._counts[name] for name in _COUNTERS}
            return Stats(**counts, by_path=dict(self._by_path), by_status=dict(self._by_status))

    @property
    def request_log(self) -> tuple[LogEntry, ...]:
        """Every answered (or dropped) request so far, in arrival order.

        A request is logged when its answer is ready, so one still in flight (a ``SLOW`` fault
        asleep) is missing until it ends; :meth:`stop` wakes and joins those, so the log read
        after ``stop()`` is complete.
        """
        with self._lock:
            return tuple(self._log)

    # -- request handling -------------------------------------------------------------------
    def _dispatch(self, handler: _Handler) -> None:
        at, mono = clock.now(), time.monotonic()
        url = urlsplit(handler.path)
        size = int(handler.headers.get("Content-Length") or 0)
        request = Request(
            method=handler.command,
            path=url.path,
            raw_query=url.query,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=handler.rfile.read(size) if size else b"",
        )
        with self._lock:
            self._counts["requests"] += 1
            self._by_path[url.path] += 1
            number = self._counts["requests"]
        tenant = self.authenticate(request)
        response, fault = self._respond(request, tenant)
        status = None if response is None else response.status
        with self._lock:
            if status is not None:
                self._by_status[status] += 1
                self._counts["unauthorized_401"] += status == 401
                self._counts["server_errors_5xx"] += status >= 500
            self._log.append(
                LogEntry(
                    number, at, mono, request.method, url.path, url.query, tenant, status, fault
                )
            )
        if response is None:
            handler.close_connection = True
            return
        self._send(handler, response, truncate=fault is Fault.TRUNCATE)

    def _respond(
        self, request: Request, tenant: str | None
    ) -> tuple[Response | None, Fault | None]:
        if tenant is None:
            return self.unauthorized(), None
        limiter = self._limiter
        wait = limiter.admit(tenant) if limiter else None
        if wait is not None:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))}
            with self._lock:
                self._counts["rate_limited_429"] += 1
            return Response(429, _THROTTLED, retry if self.rate_limit_retry_after else {}), None
        with self._lock:
            self._counts["admitted"] += 1
            admitted, faults, hooks = self._counts["admitted"], self._faults, list(self._hooks)
            rewrites = list(self._rewrites)
            fault = draw_fault(faults, seed=self.seed, number=admitted - self._faults_since)
            if fault in _FAULT_COUNTER:
                self._counts[_FAULT_COUNTER[fault]] += 1
        if fault is Fault.THROTTLE:
            return Response(429, _THROTTLED, {"Retry-After": str(faults.retry_after_s)}), fault
        if fault in _CANNED or fault is Fault.DROP:
            return _CANNED.get(fault), fault
        if fault is Fault.SLOW:
            self._stopping.wait(faults.slow_s)
        try:
            for hook in hooks:
                hook(admitted)
            response = self.route(request)
            for rewrite in rewrites:
                response = rewrite(admitted, request, response)
        except Exception as exc:  # a bug in a hook or a route: answer 500 and keep it visible
            self.errors.append(f"{type(exc).__name__}: {exc}")
            return _CANNED[Fault.SERVER_ERROR], fault
        if faults.unknown_keys and 200 <= response.status < 300:
            rng = random.Random(f"{self.seed}:keys:{admitted}")
            payload = with_unknown_keys(response.payload, rng)
            response = Response(response.status, payload, response.headers)
        return response, fault

    @staticmethod
    def _send(handler: _Handler, response: Response, *, truncate: bool) -> None:
        payload, body = response.payload, response.body
        if body is None:
            body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        if truncate:
            body = body[: len(body) // 2]
        try:
            handler.send_response(response.status)
            handler.send_header("Content-Type", "application/json; charset=utf-8")
            for name, value in response.headers.items():
                handler.send_header(name, value)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)
        except OSError:  # the client gave up (e.g. timed out on a SLOW request)
            handler.close_connection = True
