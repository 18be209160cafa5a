"""Durable files: what a crash of the machine after a write returns cannot undo.

Every write that a later commit (a stream's cursor, a store version, the run state) makes
visible goes through here: the data fsynced, an atomic rename, the folder whose entry
changed fsynced, new folders made durable in their parents. One module for the connectors
(landing pages, manifests, state) and the engine (snapshot parts, store files, exports), so
the rules are written once.

A write's temporary file is named :func:`temporary_sibling` (``.<name>.tmp-<32 hex>`` beside
its target): a process killed before the rename leaves one of that name only, which the next
run's sweep under the store's lock (:func:`engine.pipeline.lock.clean_leftovers`) removes.

Example:
    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "state" / "x.json"
    >>> atomic_write_bytes(target, b"{}")
    >>> target.read_bytes()
    b'{}'
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Final

from engine.errors import naming, temporary_prefix

__all__ = [
    "atomic_write_bytes",
    "durable_mkdir",
    "durable_replace",
    "fsync",
    "fsync_dir",
    "temporary_sibling",
]

#: How a temporary file is opened: created, only if nothing of its name exists (never through
#: a symlink), closed on ``exec``; the flags of :func:`tempfile.mkstemp`, with its mode 0o600.
_CREATE: Final = (
    os.O_WRONLY
    | os.O_CREAT
    | os.O_EXCL
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


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
        >>> import tempfile
        >>> durable_mkdir(Path(tempfile.mkdtemp()) / "raw" / "source=ujet")
    """
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(exist_ok=True)
        fsync_dir(directory.parent)


def temporary_sibling(path: Path) -> Path:
    """The temporary file to write ``path`` through: ``.<name>.tmp-<32 hex>`` in its folder
    (a random UUID4, so never the name of another write's). Every name of this form under the
    stores is a leftover of a killed write, which the sweep removes.

    Example:
        >>> temporary_sibling(Path("state/ujet/calls.json")).name.startswith(".calls.json.tmp-")
        True
    """
    return path.with_name(temporary_prefix(path.name) + uuid.uuid4().hex)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically and durably (temp file, fsync, replace, fsync dir).

    Readers see the old content or the new, never a mix; after return it survives a crash.
    The temporary file (:func:`temporary_sibling`, created exclusively, mode 0o600) is removed
    on any error; killed before the rename, the process leaves it for the sweep.

    Example:
        >>> import tempfile
        >>> atomic_write_bytes(Path(tempfile.mkdtemp()) / "x.json", b"{}")
    """
    durable_mkdir(path.parent)
    tmp = temporary_sibling(path)
    fd = os.open(tmp, _CREATE, 0o600)
    try:
        with naming(path):  # a full disk names the file, so its volume
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            durable_replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def durable_replace(tmp: Path, path: Path) -> None:
    """fsync ``tmp``, rename it over ``path`` (atomic), and fsync the directory.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> _ = (d / "x.tmp").write_bytes(b"1")
        >>> durable_replace(d / "x.tmp", d / "x")
    """
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
