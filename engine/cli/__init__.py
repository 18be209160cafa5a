"""engine.cli: the ``wfm-intervals`` command (:mod:`engine.cli.main`) and one module per command.

Run as the console script, this package stops the process on a signal that arrives before
:func:`engine.cli.main.main` sets its own handlers (while the command's modules are imported)
or after it put them back (the interpreter exiting): exit 130 and one line, as any interrupted
command, rather than a ``KeyboardInterrupt`` traceback from an import (Ctrl-C) or death by the
signal with no line (SIGTERM, SIGHUP: a scheduler sees 143). Nothing is written in either
window, so nothing is left to clean up.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def interrupted_line(signum: int) -> str:
    """The one line of a command interrupted by ``signum`` (Ctrl-C's names no signal)."""
    by = "" if signum == signal.SIGINT else f" by {signal.Signals(signum).name}"
    return f"wfm-intervals: interrupted{by}"


def stop_outside_a_command(signum: int, frame: FrameType | None) -> None:
    """The handler of a stop signal outside a command: its line, then exit 130 at once."""
    del frame
    try:
        os.write(2, f"{interrupted_line(signum)}\n".encode())
    finally:
        os._exit(130)


# the console script itself: not an importer, nor a child process it spawns (multiprocessing
# gives a spawned child the parent's argv, but starts its interpreter with -c)
if [os.path.basename(a) for a in sys.orig_argv[1:2]] == ["wfm-intervals"]:
    for _name in ("SIGINT", "SIGTERM", "SIGHUP"):
        _number = getattr(signal, _name, None)
        if _number is not None and signal.getsignal(_number) is not signal.SIG_IGN:
            signal.signal(_number, stop_outside_a_command)
