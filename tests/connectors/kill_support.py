"""What the kill-and-resume test needs from each vendor's support module.

``tests/connectors/<source>_support.py`` provides ``kill_resume_case(seed)``: a context manager
that starts the vendor's emulator and yields a :class:`KillResumeCase` for it (adding a vendor =
one such function, as for ``contract_harness``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from connectors.emulator.server import EmulatorServer

__all__ = ["KillResumeCase"]


@dataclass(frozen=True)
class KillResumeCase:
    """One vendor's emulator and how to judge a killed-and-resumed ``sync`` against it.

    Attributes:
        emulator: the running emulator (its request counter times the kill).
        settings: the source's settings as ``WFM_SOURCES__<SOURCE>__<NAME>`` values (names only;
            the test adds ``ENABLED`` and short retry delays).
        rebuilt: the canonical rows rebuilt from a landing directory, shaped and sorted as truth.
        truth: what a complete sync must leave (called after the second sync).
        key: the columns that identify a row (no duplicates allowed).
        cursors: each stream's state after the completed sync: its cursor, or ``None`` where any
            cursor will do (e.g. one that depends on the clock); no other stream may have state.
        kill_between: the kill comes after this many requests, drawn uniformly in the range (a
            complete sync of the case makes more).
    """

    emulator: EmulatorServer
    settings: Mapping[str, str]
    rebuilt: Callable[[Path], pl.DataFrame]
    truth: Callable[[], pl.DataFrame]
    key: tuple[str, ...]
    cursors: Mapping[str, datetime | None]
    kill_between: tuple[int, int] = (2, 15)
