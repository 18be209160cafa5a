"""What a slow, idle or overwhelming client can hold of ``serve`` (:mod:`engine.serve.server`):
a request's head and its body each have a deadline; connections beyond the descriptor limit's
share are answered 503 at once (no ``socket.accept() out of system resource`` flood); a stop
waits for no client; uvicorn's own lines are in the project's log format.

The app's behaviour is checked on uvicorn in a thread (configured as the command configures
it); the command's (its signals, its descriptors, its log) on a real ``wfm-intervals serve``
process on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from engine import clock
from engine.clock import CLOCK_AT_VARIABLE
from engine.serve import app as serve_app
from engine.serve.server import BODY_TIMEOUT_S, GuardedH11, connection_limit
from tests.calendar import wait_for_exit
from tests.engine.serve_support import TOKEN, running, write_store

PARTIAL_HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
PARTIAL_BODY = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("limits") / "out")


def _connect(origin: str, data: bytes) -> socket.socket:
    host, port = origin.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(data)
    return sock


def _answer(sock: socket.socket) -> bytes:
    """All the server sends until it closes the connection."""
    found = b""
    while chunk := sock.recv(65536):
        found += chunk
    return found


def test_a_head_not_sent_in_time_is_closed(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A client sending its headers a byte at a time (slowloris) held its connection for as
    long as it liked; now it has ``HEAD_TIMEOUT_S`` (here 0.5 s) from the connection."""
    monkeypatch.setattr(GuardedH11, "head_timeout_s", 0.5)
    with running(store) as url:
        sock = _connect(url, PARTIAL_HEAD)
        started = time.monotonic()
        with sock:
            assert _answer(sock) == b""  # closed, nothing answered
        assert time.monotonic() - started < 5
        assert httpx.get(url + "/healthz").status_code == 200


def test_a_body_over_the_limit_is_413_and_closed(store: Path) -> None:
    """Its body unread: the connection was kept, no deadline left on it, and a client trickling
    the rest held it (and one of the connections the limit allows) for as long as it sent."""
    head = b"POST /oauth2/token HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\nabc"
    with running(store) as url, _connect(url, head) as sock:
        answer = _answer(sock)  # answered, then closed
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in answer.lower()


def test_a_body_not_sent_in_time_is_408(store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve_app, "BODY_TIMEOUT_S", 0.5)
    with running(store) as url:
        with _connect(url, PARTIAL_BODY) as sock:
            answer = _answer(sock)  # answered, then closed: the rest is never read
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert answer.endswith(b'{"error":"Request Timeout"}')


def test_connections_over_the_limit_are_503_at_once(store: Path) -> None:
    """At the limit every connection held is served (uvicorn's own check, one lower, answered
    every request of every connection 503 once the limit was reached); one more is 503."""
    with running(store, limit=2) as url:
        held = [_connect(url, PARTIAL_HEAD) for _ in range(2)]
        clock.sleep(0.2)  # both are the server's connections
        for sock in held:
            sock.sendall(b"\r\n")  # the head ends: a request on each connection held
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
        with _connect(url, b"") as third:
            answer = _answer(third)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert answer.endswith(b'{"error": "Service Unavailable"}\n')
        for sock in held:
            sock.close()
        for _ in range(100):  # the server sees them gone
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(url + "/healthz").status_code == 200:
                    break
            clock.sleep(0.05)
        else:
            raise AssertionError("never answered again")


def test_the_connection_limit_leaves_descriptors_for_the_rest() -> None:
    assert connection_limit(256) == 128
    assert connection_limit(1024) == 704
    assert connection_limit(65) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def _serve(
    store: Path, log: Path, fmt: str = "text", descriptors: int | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``wfm-intervals --log-format fmt serve`` process of ``store`` (``descriptors``: its
    ``RLIMIT_NOFILE``), its standard error in ``log``; killed if still running at the end."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    env |= {CLOCK_AT_VARIABLE: "2026-10-03T06:00:00Z", "WFM_SERVE__TOKENS": json.dumps([TOKEN])}
    port = _free_port()
    args = ["--log-format", fmt, "serve", "--port", str(port), "--store", str(store)]

    def limited() -> None:
        if descriptors is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (descriptors, descriptors))

    with log.open("w") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", *args], env=env, cwd=log.parent,
            stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limited,  # noqa: PLW1509
        )  # fmt: skip
    origin = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            assert process.poll() is None, log.read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{origin}/healthz", timeout=1).status_code == 200:
                    break
            clock.sleep(0.1)
        yield origin, process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_a_stop_waits_for_no_client_holding_a_request_open(store: Path, tmp_path: Path) -> None:
    """SIGTERM waited as long as a client held a request's body open (40 s, or for ever for a
    client trickling it): the body's deadline answers it 408 and the stop ends, exit 0."""
    log = tmp_path / "serve.err"
    with _serve(store, log) as (origin, process):
        head = _connect(origin, PARTIAL_HEAD)
        body = _connect(origin, PARTIAL_BODY)
        clock.sleep(0.5)
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, BODY_TIMEOUT_S + 10) == 0, log.read_text()
        assert time.monotonic() - started < BODY_TIMEOUT_S + 3
        head.close()
        body.close()
    lines = log.read_text()
    assert "POST /oauth2/token 408" in lines
    assert "ERROR" not in lines, lines


def test_uvicorns_own_lines_are_in_the_log_format(store: Path, tmp_path: Path) -> None:
    """``--log-format json``: a malformed request's ``Invalid HTTP request received.`` was
    uvicorn's own plain line; every line is now one JSON object."""
    log = tmp_path / "serve.err"
    with _serve(store, log, "json") as (origin, process):
        with _connect(
            origin, b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"
        ) as s:
            assert _answer(s).startswith(b"HTTP/1.1 400 ")
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, 30) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert any(line.get("message") == "Invalid HTTP request received." for line in lines), lines


def test_partial_requests_beyond_the_descriptors_flood_no_log(store: Path, tmp_path: Path) -> None:
    """300 partial requests to a server allowed 256 descriptors: asyncio logged ``socket.accept()
    out of system resource`` some 15,000 times a second, and held every one. Now those over
    the connection limit are 503 at once, the rest closed at the head's deadline."""
    log = tmp_path / "serve.err"
    with _serve(store, log, descriptors=256) as (origin, process):
        held = []
        for _ in range(300):
            with contextlib.suppress(OSError):
                held.append(_connect(origin, PARTIAL_HEAD))
        clock.sleep(1)
        for sock in held:
            sock.close()
        clock.sleep(0.5)
        assert httpx.get(origin + "/healthz", timeout=5).status_code == 200
        process.send_signal(signal.SIGTERM)
        assert wait_for_exit(process, 30) == 0
    text = log.read_text()
    assert "out of system resource" not in text
    assert len(text.splitlines()) < 10, text[:2000]
