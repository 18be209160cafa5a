"""Crash points: named places in the write path where a test may kill the process outright.

Crash safety is proven at code points, not by timing: every write, rename and commit step of a
run calls :func:`reached` with its point's name (:data:`POINTS` lists them). When the
environment variable ``WFM_KILL_AT`` names that point (``<point>`` or ``<point>@<n>``: the n-th
time it is reached), the process sends itself ``SIGKILL`` there: no ``finally``, no flush, no
atexit, exactly as a power cut or an OOM kill would leave the files. With ``WFM_KILL_SIGNAL``
naming another signal (``SIGTERM``: a service manager's stop), it sends that one instead, and the
interruption's own clean-ups run from that point. Unset (always, outside the crash tests),
:func:`reached` is one dictionary lookup.

Example:
    >>> reached("delta.files_written")  # WFM_KILL_AT unset: nothing happens
"""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import Final

__all__ = ["POINTS", "SIGNAL_VARIABLE", "VARIABLE", "reached"]

#: The environment variable that arms a crash point.
VARIABLE: Final = "WFM_KILL_AT"

#: The signal sent at the armed point (its name, e.g. ``SIGTERM``); ``SIGKILL`` when unset.
SIGNAL_VARIABLE: Final = "WFM_KILL_SIGNAL"

#: Every crash point, in the order a run reaches them.
POINTS: Final = (
    "lock.taken",  # the store's lock is held, nothing written yet
    "sync.page_landed",  # a page is durable in the landing store, its cursor not committed
    "sync.cursor_committed",  # a stream's cursor is committed
    "landing.compact_written",  # a compacted landing file is durable, its inputs still there
    "landing.compact_removed",  # a compaction's inputs are deleted
    "snapshot.parts_written",  # a canonical snapshot's files are durable, not yet committed
    "run.rebuilt",  # canonical rows rebuilt from the landing store, nothing of the build written
    "delta.files_written",  # a store commit's data files are durable, the commit not made
    "delta.committed",  # a store commit is made, its log entry not yet fsynced
    "files.written",  # an atomic file write's temporary file is complete, not renamed
    "files.replaced",  # an atomic file write's rename is done
    "run.exported",  # every export written
    "run.state_saving",  # everything written but the run state
    "run.state_saved",  # the run state is saved (the run is committed)
)

_hits: Counter[str] = Counter()


def reached(point: str) -> None:
    """The process is at crash point ``point``: die here if ``WFM_KILL_AT`` says so."""
    armed = os.environ.get(VARIABLE)
    if not armed:
        return
    name, _, nth = armed.partition("@")
    if name != point:
        return
    _hits[point] += 1
    if _hits[point] == int(nth or 1):
        os.kill(os.getpid(), signal.Signals[os.environ.get(SIGNAL_VARIABLE) or "SIGKILL"])
