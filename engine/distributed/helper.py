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

A cluster whose every node with a CPU is gone (the workers stopped, the head has none) does not
end a Ray job: its tasks wait for a CPU for ever, and a nightly run would hold the store's lock
with them. While a job runs, the helper asks the cluster for its CPUs every few seconds; none
for :data:`STALL_VARIABLE` seconds (default :data:`STALL_S`; ``0``: wait for ever, e.g. for an
autoscaler slower than that) and the helper ends, which this process reports as
:class:`~engine.errors.ClusterError`: exit 2, one line, nothing of the job written. A helper
whose command was killed (no ``atexit`` ran) ends by itself within a second or so.

Example:
    ``if away(address): return call(address, volume_table, path, grid=grid, ...)``
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, TypeGuard, TypeVar

from engine import clock
from engine.errors import ClusterError, WfmError, printable
from engine.output import location

__all__ = ["STALL_S", "STALL_VARIABLE", "away", "call", "close"]

#: How long a job may wait with no CPU in its cluster before it is given up (seconds), and the
#: environment variable that sets it (``0``: never given up).
STALL_S, STALL_VARIABLE = 600.0, "WFM_RAY_STALL_SECONDS"
#: What the helper writes on its standard error before it ends for want of a CPU.
_STALLED = "wfm-ray-stalled:"
_running = threading.Event()  # set while a job runs in this helper process

T = TypeVar("T")

_inside = False  # True in a helper process: its jobs run there, never in a further helper
_helpers: dict[str, tuple[ProcessPoolExecutor, Path]] = {}
#: a native log line of Ray: ``[date time level pid tid] file.cc:123: message``
_NATIVE = re.compile(r"^\[[^\]]*\] [\w./]+:\d+: (?P<message>.+)$")


def away(address: str | None) -> TypeGuard[str]:
    """Whether a job on ``address`` runs in a helper process (an address, and this process is
    not one)."""
    return address is not None and not _inside


def _enter(log: str, stall_s: float, parent: int) -> None:
    """A helper process starts: its standard error to ``log``, and its watches (of the command
    ``parent``; of the cluster's CPUs, ``stall_s``)."""
    global _inside  # noqa: PLW0603 - the one flag of this process
    _inside = True
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    os.close(fd)
    threading.Thread(target=_orphaned, args=(parent,), name="wfm-orphan", daemon=True).start()
    if stall_s > 0:
        threading.Thread(target=_watch, args=(stall_s,), name="wfm-ray-watch", daemon=True).start()


def _cpus() -> float | None:
    """The CPUs of the cluster this process has joined (``None``: not joined, or no answer)."""
    import ray  # noqa: PLC0415 - an optional extra, in a helper process only

    try:
        found = ray.cluster_resources() if ray.is_initialized() else None  # type: ignore[no-untyped-call]
        return None if found is None else float(found.get("CPU", 0.0))
    except Exception:  # a cluster going away answers with anything: asked again
        return None


def _orphaned(parent: int) -> None:
    """End this helper process once the command that started it is gone (killed: no ``atexit``
    ran), instead of keeping its cluster's job and connection for ever."""
    while os.getppid() == parent:
        clock.sleep(1.0)
    os._exit(4)


def _watch(limit: float) -> None:
    """End this helper process when a running job's cluster has had no CPU for ``limit``
    seconds (its tasks would wait for ever), saying so on standard error for the caller."""
    since: float | None = None
    while True:
        clock.sleep(min(5.0, limit / 4))
        cpus = _cpus() if _running.is_set() else None
        if cpus is None or cpus > 0:
            since = None
            continue
        since = time.monotonic() if since is None else since
        if time.monotonic() - since >= limit:
            os.write(2, f"{_STALLED} {limit:g}\n".encode())
            os._exit(3)


def _stall_limit() -> float:
    """:data:`STALL_VARIABLE`'s seconds, or :data:`STALL_S`.

    Raises:
        ClusterError: it is not a number of seconds (at least 0).
    """
    given = os.environ.get(STALL_VARIABLE, "").strip()
    try:
        limit = float(given) if given else STALL_S
    except ValueError:
        limit = -1.0
    if not limit >= 0:  # also NaN
        raise ClusterError(f"{STALL_VARIABLE}={given!r}: give seconds (0: wait for ever)")
    return limit


def close() -> None:
    """Stop the helper processes (their drivers leave their clusters); at exit, or when a
    caller is done with its clusters."""
    for pool, log in _helpers.values():
        pool.shutdown(wait=True, cancel_futures=True)
        log.unlink(missing_ok=True)
    _helpers.clear()


def _helper(address: str) -> ProcessPoolExecutor:
    if address not in _helpers:
        stall_s = _stall_limit()
        fd, log = tempfile.mkstemp(prefix="wfm-ray-driver-", suffix=".log")
        os.close(fd)
        spawn = multiprocessing.get_context("spawn")  # no fork of a threaded process
        pool = ProcessPoolExecutor(
            1, mp_context=spawn, initializer=_enter, initargs=(log, stall_s, os.getpid())
        )
        if not _helpers:
            atexit.register(close)
        _helpers[address] = (pool, Path(log))
    return _helpers[address][0]


def _last_said(log: Path) -> str:
    """The last native line Ray logged in the helper (its message only), or ``""``; the
    helper's own word when it ended for want of a CPU."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    if stalled := [line for line in lines if line.startswith(_STALLED)]:
        return stalled[-1]
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
    _running.set()
    try:
        return job(*args, **kwargs)
    except WfmError:
        raise
    except Exception as exc:
        root = _root(exc)
        msg = f"Ray cluster {address}: the job failed ({type(root).__name__}: {printable(root)})"
        raise ClusterError(msg) from None
    finally:
        _running.clear()


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
        # Wait for the pool's own thread to finish closing its pipes: left running, it races
        # the interpreter's exit (which writes to a pipe that thread is closing) and a traceback
        # follows the command's one line.
        pool.shutdown(wait=True, cancel_futures=True)
        said = _last_said(log)
        log.unlink(missing_ok=True)
        if said.startswith(_STALLED):
            seconds = said.removeprefix(_STALLED).strip()
            msg = (
                f"Ray cluster {address}: no node with a CPU for {seconds} s (its workers are "
                f"gone?); the job was given up, nothing of it written ({STALL_VARIABLE})"
            )
            raise ClusterError(msg) from None
        why = f": {said}" if said else ""
        msg = f"Ray cluster {address}: lost mid-job (its driver process ended{why})"
        raise ClusterError(msg) from None
