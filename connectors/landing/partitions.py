"""Where a stream's landing files are: its folder, its day partitions and their files.

A stream's folder is ``<root>/raw/source=<s>/stream=<t>``; the landing store writes its files
into day partitions ``date=YYYY-MM-DD`` there (the fetch date, UTC), and reads every Parquet
file of those. A folder named ``date=`` anything else (a partition copied aside as
``date=2026-10-01.bak``) is no partition: its files would be read, compacted and listed in the
manifest as landed records (each of its records counted twice, or a stale copy read back), so
:func:`partitions` refuses it, in one line naming the folder and the fix.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> (stream_dir(root, "ujet", "calls") / "date=2026-10-01").mkdir(parents=True)
    >>> [(str(day), p.name) for day, p in partitions(root, "ujet", "calls")]
    [('2026-10-01', 'date=2026-10-01')]
    >>> (stream_dir(root, "ujet", "calls") / "date=2026-10-01.bak").mkdir()
    >>> try:
    ...     partitions(root, "ujet", "calls")
    ... except LandingError as exc:
    ...     print(str(exc).rpartition(": ")[2].partition(" (")[0])
    move it out of [store] landing
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Final

from connectors.errors import LandingError
from connectors.state import check_name

__all__ = ["landed_files", "partitions", "stream_dir"]

_DAY: Final = re.compile(r"date=([0-9]{4}-[0-9]{2}-[0-9]{2})")


def stream_dir(root: Path, source: str, stream: str) -> Path:
    """The folder of one stream's landing files: ``<root>/raw/source=<s>/stream=<t>``."""
    source, stream = check_name(source, what="source"), check_name(stream, what="stream")
    return Path(root) / "raw" / f"source={source}" / f"stream={stream}"


def partitions(root: Path, source: str, stream: str) -> list[tuple[date, Path]]:
    """The stream's day partitions present on disk, sorted: (day, ``date=YYYY-MM-DD`` folder).

    Raises:
        LandingError: a folder named ``date=`` but not a day (see the module docstring).
    """
    found: list[tuple[date, Path]] = []
    for part in sorted(stream_dir(root, source, stream).glob("date=*")):
        if not part.is_dir():
            continue  # no file of it is read
        day = _day(part.name)
        if day is None:
            raise LandingError(
                f"landing folder {part} is not a day partition of the landing store "
                f"(date=YYYY-MM-DD): move it out of [store] landing ({Path(root)})"
            )
        found.append((day, part))
    return found


def _day(name: str) -> date | None:
    matched = _DAY.fullmatch(name)
    try:
        return None if matched is None else date.fromisoformat(matched[1])
    except ValueError:  # date=2026-13-45
        return None


def landed_files(root: Path, source: str, stream: str) -> list[Path]:
    """The landing files of a stream present on disk, sorted (what ``scan_landed`` reads).

    Raises:
        LandingError: a ``date=`` folder that is no day partition (:func:`partitions`).
    """
    return sorted(f for _, part in partitions(root, source, stream) for f in part.glob("*.parquet"))
