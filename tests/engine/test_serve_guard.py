"""The rate limiter forgets a client once its window is empty.

``Guard._hits`` kept every client it had seen, for the life of the process: each new address
(with ``trusted_proxies``, any ``X-Forwarded-For`` value) added about 1 KB that was never
released (20,000 addresses: +20 MB). Once a window, the clients without a request in the last
one are now dropped; a client still inside its window keeps its count.
"""

from __future__ import annotations

from engine.serve.guard import Guard
from tests.engine.serve_support import serve_settings


def test_the_clients_of_a_past_window_are_forgotten_and_the_limit_still_holds() -> None:
    now = [0.0]
    guard = Guard(serve_settings(rate_limit_per_minute=2), monotonic=lambda: now[0])
    for n in range(5000):  # a flood of one-off addresses
        assert guard.admit(f"10.{n // 250}.{n % 250}.1") is None
    assert len(guard._hits) == 5000
    now[0] = 30.0
    assert guard.admit("busy") is None
    assert guard.admit("busy") is None
    assert guard.admit("busy") == 60
    now[0] = 61.0
    assert guard.admit("new") is None
    assert sorted(guard._hits) == ["busy", "new"]  # the flood is gone, the live ones kept
    assert guard.admit("busy") == 29  # its window still counts both requests
    now[0] = 200.0
    assert guard.admit("10.0.0.1") is None
    assert sorted(guard._hits) == ["10.0.0.1"]


def test_a_client_within_its_window_is_never_forgotten() -> None:
    now = [0.0]
    guard = Guard(serve_settings(rate_limit_per_minute=3), monotonic=lambda: now[0])
    for second in range(0, 600, 20):  # one request every 20 s: always 3 in the window
        now[0] = float(second)
        assert guard.admit("steady") is None
        guard.admit(f"once-{second}")
    now[0] = 599.0
    assert guard.admit("steady") == 1
    assert len(guard._hits) <= 1 + 2 * 60 // 20  # steady, and the one-offs of two windows at most
