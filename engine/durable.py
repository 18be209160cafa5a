"""Durable files: what a crash of the machine after a write returns cannot undo.

Every write that a later commit (a stream's cursor, a store version, the run state) makes
visible goes through here: the data fsynced, an atomic rename, the folder whose entry
changed fsynced, new folders made durable in their parents. One module for the connectors
(landing pages, manifests, state) and the engine (snapshot parts, store files, exports), so
the rules are written once.

Example:
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "state" / "x.json"
    >>> atomic_write_bytes(target, b"{}")
    >>> target.read_bytes()
    b'{}'
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from engine.errors import naming

__all__ = ["atomic_write_bytes", "durable_mkdir", "durable_replace", "fsync", "fsync_dir"]


def fsync(path: Path) -> None:
    """Flush a file's contents to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (created, renamed, deleted files) durable."""
    if os.name == "nt":  # pragma: no cover - directories cannot be opened for fsync on Windows
        return
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def durable_mkdir(path: Path) -> None:
    """Create ``path`` and missing parents, fsyncing each new entry's parent directory.

    Example:
        >>> durable_mkdir(Path(tempfile.mkdtemp()) / "raw" / "source=ujet")
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, replace, fsync dir).

    Readers see the old content or the new, never a mix; after return it survives a crash.

    Example:
        >>> atomic_write_bytes(Path(tempfile.mkdtemp()) / "x.json", b"{}")
    """
    durable_mkdir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with naming(path):  # a full disk names the file, so its volume
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            durable_replace(Path(tmp), path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def durable_replace(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it over ``path`` (atomic), and fsync the directory.

    Example:
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "x.tmp").write_bytes(b"1")
        >>> durable_replace(d / "x.tmp", d / "x")
    """
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
