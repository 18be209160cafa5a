"""Loopback emulators of the vendor APIs, for the connector tests and the demo.

``server`` holds the vendor-neutral part (a ``ThreadingHTTPServer`` on 127.0.0.1 with a per-tenant
rate limiter, fault injection, counters and a request log), ``fault`` the fault switches and the
limiter, and one module per vendor its routes and record shapes (``ujet``, with its canonical
mapping in ``ujet_record`` and its JSON shapes in ``ujet_render``; ``mindful``, with its
records in ``mindful_render``, its data in ``mindful_store`` and the vendor's metrics in
``mindful_metrics``).

Example:
    >>> from connectors.emulator import Fault, Faults, UjetEmulator
    >>> with UjetEmulator(faults=Faults(schedule={1: Fault.UNAVAILABLE})) as emu:
    ...     emu.base_url.startswith("http://127.0.0.1:")
    True
"""

import importlib
from typing import TYPE_CHECKING, Any

from connectors.emulator.fault import Fault, Faults, RateLimiter
from connectors.emulator.server import EmulatorServer, LogEntry, Request, Response, Stats

if TYPE_CHECKING:
    from connectors.emulator.dixa.app import DixaEmulator
    from connectors.emulator.kore.app import KoreEmulator
    from connectors.emulator.mindful.app import MindfulEmulator
    from connectors.emulator.ujet.app import UjetEmulator

__all__ = [
    "DixaEmulator",
    "EmulatorServer",
    "Fault",
    "Faults",
    "KoreEmulator",
    "LogEntry",
    "MindfulEmulator",
    "RateLimiter",
    "Request",
    "Response",
    "Stats",
    "UjetEmulator",
]


def __getattr__(name: str) -> Any:
    """Import vendor emulators on first use (importing this package loads no vendor module)."""
    if name == "UjetEmulator":
        return importlib.import_module("connectors.emulator.ujet.app").UjetEmulator
    if name == "MindfulEmulator":
        return importlib.import_module("connectors.emulator.mindful.app").MindfulEmulator
    if name == "KoreEmulator":
        return importlib.import_module("connectors.emulator.kore.app").KoreEmulator
    if name == "DixaEmulator":
        return importlib.import_module("connectors.emulator.dixa.app").DixaEmulator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
