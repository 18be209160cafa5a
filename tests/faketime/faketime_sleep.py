"""Imported by every Python process of a date run (the README's ``faketime`` commands) only.

libfaketime 0.9.10, leaving the monotonic clock real, fails ``time.sleep`` with ``EINVAL``
(it rewrites the absolute monotonic deadline Python sleeps to). Our code and tests wait with
:func:`engine.clock.sleep`, a timed wait on an event; code we do not own calls ``time.sleep``
(Ray's node start and its workers, ``Popen.wait(timeout=...)``), in the test process and in the
processes it starts. ``tests/conftest.py`` puts this folder first on ``PYTHONPATH`` when the
library is preloaded, and its ``sitecustomize`` imports this module (as does a test's own
``sitecustomize``, which would shadow that one), so each of them gets the same wait as ours.
"""

import threading
import time
from typing import SupportsIndex


def _sleep(seconds: float | SupportsIndex) -> None:
    if (wait := float(seconds)) > 0:
        threading.Event().wait(wait)


time.sleep = _sleep
