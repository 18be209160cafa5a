"""The Ray driver of a job on a cluster this process joins by address, run in a helper process.

A Ray driver ends its own process when its cluster goes away mid-job: Ray's core worker, on
losing its node's object store, logs a line and exits with status 1 from native code, so no
Python handler runs and the command would end with exit 1 and Ray's log lines. So when the
engine is given an address (a cluster that lives apart from this process), the job runs in one
helper process (spawned once per address, kept for the command's other jobs): if that process
ends, this one raises :class:`~engine.errors.ClusterError` (one line naming the address and the
last line Ray logged, exit 2), and nothing of the job's tables has been written, since the
driver writes them only from what the job returns. The helper's standard error (Ray's native
log lines) goes to a temporary file, read only for that last line. Without an address the
cluster is one this process starts, and the job runs here (the tests' spies see it).

Example:
    ``if away(address): return call(address, volume_table, path, grid=grid, ...)``
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import tempfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from engine.errors import ClusterError, WfmError, printable
from engine.output import location

__all__ = ["away", "call", "close"]

T = TypeVar("T")

_inside = False  # True in a helper process: its jobs run there, never in a further helper
_helpers: dict[str, tuple[ProcessPoolExecutor, Path]] = {}
#: a native log line of Ray: ``[date time level pid tid] file.cc:123: message``
_NATIVE = re.compile(r"^\[[^\]]*\] [\w./]+:\d+: (?P<message>.+)$")


def away(address: str | None) -> TypeGuard[str]:
    """Whether a job on ``address`` runs in a helper process (an address, and this process is
    not one)."""
    return address is not None and not _inside


def _enter(log: str) -> None:
    """A helper process starts: its standard error to ``log``."""
    global _inside  # noqa: PLW0603 - the one flag of this process
    _inside = True
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)


def close() -> None:
    """Stop the helper processes (their drivers leave their clusters); at exit, or when a
    caller is done with its clusters."""
    for pool, log in _helpers.values():
        pool.shutdown(wait=True, cancel_futures=True)
        log.unlink(missing_ok=True)
    _helpers.clear()


def _helper(address: str) -> ProcessPoolExecutor:
    if address not in _helpers:
        fd, log = tempfile.mkstemp(prefix="wfm-ray-driver-", suffix=".log")
        os.close(fd)
        spawn = multiprocessing.get_context("spawn")  # no fork of a threaded process
        pool = ProcessPoolExecutor(1, mp_context=spawn, initializer=_enter, initargs=(log,))
        if not _helpers:
            atexit.register(close)
        _helpers[address] = (pool, Path(log))
    return _helpers[address][0]


def _last_said(log: Path) -> str:
    """The last native line Ray logged in the helper (its message only), or ``""``."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    found = [m["message"].strip() for line in lines if (m := _NATIVE.match(line.strip()))]
    found = [f for f in found if not f.startswith(":info_message:")]  # Ray's progress notes
    return found[-1][:200] if found else ""


def _root(exc: BaseException) -> BaseException:
    """The error a task raised, inside the errors Ray wraps it in (``cause``, ``__cause__``)."""
    while (inner := getattr(exc, "cause", None) or exc.__cause__) is not None:
        if not isinstance(inner, BaseException) or inner is exc:
            break
        exc = inner
    return exc


def _job(address: str, job: Callable[..., T], args: Any, kwargs: Any, staged: dict[Path, str]) -> T:
    """``job`` in the helper: our errors as they are; any other (a task's error, which Ray
    wraps in classes made on the fly that do not pickle) as one line. ``staged``: the
    command's staging folders of stores on object storage (:mod:`engine.output.location`)."""
    location.bind_all(staged)
    try:
        return job(*args, **kwargs)
    except WfmError:
        raise
    except Exception as exc:
        root = _root(exc)
        msg = f"Ray cluster {address}: the job failed ({type(root).__name__}: {printable(root)})"
        raise ClusterError(msg) from None


def call(address: str, job: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
    """``job(*args, **kwargs)`` in the helper process of ``address`` (``job`` and its arguments
    picklable), and what it returns or raises.

    Raises:
        ClusterError: the helper process ended before the job did (the cluster went away), or
            the job failed with an error of Ray's or of a task (one line).
    """
    pool = _helper(address)
    try:
        return pool.submit(_job, address, job, args, kwargs, location.bound()).result()
    except BrokenProcessPool:
        _, log = _helpers.pop(address)
        pool.shutdown(wait=False, cancel_futures=True)
        said = _last_said(log)
        log.unlink(missing_ok=True)
        why = f": {said}" if said else ""
        msg = f"Ray cluster {address}: lost mid-job (its driver process ended{why})"
        raise ClusterError(msg) from None
