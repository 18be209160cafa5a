"""The one error tree of wfm-intervals, and the exit code each branch means.

::

    WfmError                      exit 2 unless a subclass says otherwise
    ├── InputError                an input cannot be read as the table it should be
    │   ├── InputFileError        missing, unreadable or of a kind we cannot read (also OSError)
    │   ├── InputSchemaError      readable, but a required column or type is wrong (also ValueError)
    │   └── NothingValidError     exit 1: every row quarantined, no window given to build
    ├── OutputClosedError         stdout closed before the output was written (a broken pipe)
    ├── StoreError                a store or output directory is missing or not what it should be
    │   └── StoreLockedError      another run or sync holds the store's lock (names the holder)
    ├── ExportError               a table cannot be rendered with an export profile
    ├── SyncFailedError           a source could not be synced (one line: source, stream, URL)
    ├── ClusterError              the Ray engine cannot run: Ray missing, the cluster unreachable
    └── ConnectorError            everything the connector layer raises on purpose
        ├── RetriableError ...    (429, 5xx, transport, invalid body: retried by the shared layer)
        ├── FatalError ...        (configuration, auth, shape, paging guards, state)
        └── SkippableError ...    (one bad record: quarantined, never fatal)

The connector branch is defined in :mod:`connectors.errors` (its own docstring draws it in full);
it hangs from :class:`WfmError` so that one ``except WfmError`` at the command line catches
every error we raise on purpose, and :attr:`WfmError.exit_code` says how the process ends.
Data problems found in good inputs (quarantine over a threshold, reconciliation out of
tolerance) are not errors: they are counted in the run summary and end with exit 1.

Messages are one line, name the file, setting or URL involved, and never carry a secret.

Example:
    >>> issubclass(InputSchemaError, ValueError) and issubclass(InputSchemaError, WfmError)
    True
    >>> InputFileError("contacts.csv: no such file").exit_code
    2
"""

from __future__ import annotations

import errno
import os
import re
import sys

try:
    import resource
except ImportError:  # pragma: no cover - Windows
    resource = None  # type: ignore[assignment]
from collections.abc import Collection, Iterator
from contextlib import contextmanager

__all__ = [
    "REFUSED_WRITE",
    "ClusterError",
    "ExportError",
    "InputError",
    "InputFileError",
    "InputSchemaError",
    "NothingValidError",
    "OutputClosedError",
    "StoreError",
    "StoreLockedError",
    "SyncFailedError",
    "WfmError",
    "a_bug",
    "naming",
    "printable",
]


class WfmError(Exception):
    """Base of every error wfm-intervals raises on purpose.

    ``exit_code`` is the process exit status a command ends with when this error stops it:
    2 for usage, configuration, source and I/O errors (every branch but
    :class:`NothingValidError`, a data problem: 1).
    """

    exit_code: int = 2


class InputError(WfmError):
    """An input cannot be read as the table it should be."""


class InputFileError(InputError, OSError):
    """An input file is missing or of a kind we cannot read."""


class InputSchemaError(InputError, ValueError):
    """The input cannot be read as its table at all (a required column is missing, naive times)."""


class NothingValidError(InputError, ValueError):
    """Every row read was quarantined and no window was given: there is nothing to take a
    window from. A data problem (exit 1); the quarantine is written, the message names it."""

    exit_code = 1


class OutputClosedError(WfmError):
    """Standard output was closed before the command's output was written (a broken pipe: the
    reader went away, ``… | head``); what the command wrote to files stands."""


class StoreError(WfmError, ValueError):
    """The store directory is missing, empty, or an option does not fit it."""


class StoreLockedError(StoreError):
    """Another ``run`` or ``sync`` holds the store's lock; the message names it (pid, host)."""


class ExportError(WfmError, ValueError):
    """The table cannot be rendered with this profile (wrong interval length or alignment)."""


class SyncFailedError(WfmError, RuntimeError):
    """A stream could not be synced; the message is one line naming the stream and the URL."""


class ClusterError(WfmError, ValueError):
    """The ray engine cannot run: Ray is not installed, or its cluster cannot be joined (the
    message names the address)."""


def a_bug(exc: BaseException) -> bool:
    """Whether ``exc`` stopping a command is an error to report (any :class:`Exception`, or a
    panic in Polars' Rust code, which reaches Python as a ``BaseException``), not an interrupt or
    an exit (``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``), which must go on up."""
    if isinstance(exc, Exception):
        return True
    polars = sys.modules.get("polars.exceptions")  # no panic without Polars imported
    return polars is not None and isinstance(exc, polars.PanicException)


def printable(exc: BaseException, limit: int = 300) -> str:
    """The first line of an error, safe to print: no raw bytes, no control characters.

    Example:
        >>> printable(ValueError("bad \\x00 byte\\nmore"))
        'bad \\\\x00 byte'
    """
    lines = str(exc).strip().splitlines()
    text = lines[0] if lines else type(exc).__name__
    safe = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    safe = safe.encode("ascii", "backslashreplace").decode("ascii")
    return safe if len(safe) <= limit else safe[: limit - 3] + "..."


#: How Rust's I/O errors end (Polars, deltalake): ``File too large (os error 27)``.
_OS_ERROR = re.compile(r"\(os error (\d+)\)")

#: The errors only a write gets: the disk full, a quota, a file too large, a read-only mount.
REFUSED_WRITE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


@contextmanager
def naming(path: str | os.PathLike[str], only: Collection[int] | None = None) -> Iterator[None]:
    """Within the block (a write of ``path``), an error of the operating system that names no
    file (a full disk, a quota, a file too large, a permission) is raised again as an
    :class:`OSError` of its ``errno`` naming ``path``. A write's own error names no file: the
    C library's (``os.write``) and those of Polars and deltalake, whose Rust errors reach
    Python as their own types (``ComputeError``, ``DeltaError``) around ``(os error N)``. So an
    operator paged for a full disk is told which file, and so which volume, not the output
    folder by default; one naming the write's temporary sibling names ``path``, the file the
    user asked for. Any other error passes unchanged; so does one whose ``errno`` is not in
    ``only``, when given: a block that also reads (a streamed plan that reads its input as it
    writes) names ``path`` for :data:`REFUSED_WRITE` only, errors no read can get.

    Example:
        >>> with naming("landing/part-1.parquet"):
        ...     raise OSError(28, "No space left on device")
        Traceback (most recent call last):
        OSError: [Errno 28] No space left on device: 'landing/part-1.parquet'
    """
    try:
        yield
    except Exception as exc:
        if isinstance(exc, OSError) and exc.filename is not None:
            if _temporary_of(exc.filename, path):  # ``.r.html.tmp-…``: the file asked for
                raise OSError(exc.errno, exc.strerror, os.fspath(path)) from exc
            raise
        code = exc.errno if isinstance(exc, OSError) else None
        if not code and (found := _OS_ERROR.search(str(exc))):
            code = int(found.group(1))
        code = code or _refusal(path)
        if not code or (only is not None and code not in only):
            raise
        raise OSError(code, os.strerror(code), os.fspath(path)) from exc


def temporary_prefix(name: str) -> str:
    """How the temporary sibling of a file ``name`` a durable write goes through begins
    (:func:`engine.durable.temporary_sibling` adds a random suffix)."""
    return f".{name}.tmp-"


def _temporary_of(name: str | bytes | int, path: str | os.PathLike[str]) -> bool:
    """Whether ``name`` is the temporary sibling a durable write of ``path`` goes through."""
    if not isinstance(name, str):
        return False
    folder, base = os.path.split(os.fspath(path))
    there, own = os.path.split(name)
    return there == folder and own.startswith(temporary_prefix(base))


#: Room on a volume below which a write that failed without its reason was refused for space.
_NEARLY_FULL = 1 << 20


def _refusal(path: str | os.PathLike[str]) -> int | None:
    """Why the system refused a write of ``path`` whose error lost its ``errno`` (Polars' Parquet
    writer, failing in the footer, says "Invalid thrift: transport error"): the file at the
    process's file size limit (``EFBIG``), or its volume (nearest existing folder) all but full
    (``ENOSPC``); ``None`` when neither shows."""
    at = os.fspath(path)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0] if resource else -1
    if limit >= 0 and os.path.isfile(at) and os.path.getsize(at) >= limit:
        return errno.EFBIG
    while at and not os.path.isdir(at) and os.path.dirname(at) != at:
        at = os.path.dirname(at)
    try:
        room = os.statvfs(at or ".")
    except (OSError, AttributeError):  # no statvfs (Windows)
        return None
    return errno.ENOSPC if room.f_bavail * room.f_frsize < _NEARLY_FULL else None
