"""The manifest of a stream's landing files: which files must be there, and what each covers.

``<root>/raw/source=<s>/stream=<t>/manifest.jsonl`` holds one JSON line per landing file of the
stream (:class:`Entry`): the file (relative to the stream's folder), its row count, size and
SHA-256, and its :class:`Span` in the stream's cursor space: where a sync must start to fetch
the file's records again (``from``), the latest instant they reach (``to``) and the stream's
committed cursor when they were fetched (``committed``, ``null`` before its first commit).
Names, counts, digests and instants only: no record content, no secret.

Crash safety, the same as the landing files' and the state's:

* :func:`append_entry` appends one line and fsyncs it (and the folder, when it creates the file).
  :func:`connectors.landing.land_page` calls it once the page's file is durable and before it
  returns, so a page's entry is durable before the sync commits a cursor past the page.
* A line is complete when it ends with a newline. A last line without one is a torn append (the
  process died writing it): readers ignore it and the next append cuts it off. Its file's cursor
  was never committed past it, so that file is only *unlisted* (below), and re-read anyway.
* :func:`write_manifest` replaces the whole manifest atomically (compaction, repair).
* Every landing file carries its span in its Parquet footer too (key :data:`FOOTER_KEY`), so a
  file that is durable but not listed (a crash between a page's file and its line, or between a
  compaction's merged file and its manifest) is listed again with its exact span by
  :func:`describe`. Files landed before the manifest existed have no such footer: their span is
  taken from their ``updated_at`` column when the stream's cursor is that column, else unknown.

Example:
    >>> import tempfile
    >>> from datetime import UTC
    >>> root, at = Path(tempfile.mkdtemp()), datetime(2026, 10, 1, tzinfo=UTC)
    >>> entry = Entry("date=2026-10-01/part-1.parquet", 3, 900, "ab" * 32, Span(at, at, None))
    >>> append_entry(root, "ujet", "calls", entry)
    >>> read_manifest(root, "ujet", "calls").entries == {entry.file: entry}
    True
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from connectors.landing.partitions import landed_files, stream_dir
from connectors.state import format_utc, parse_utc
from engine.durable import atomic_write_bytes, durable_mkdir, fsync_dir
from engine.errors import naming

__all__ = [
    "FOOTER_KEY",
    "MANIFEST",
    "Entry",
    "Manifest",
    "Span",
    "append_entry",
    "batches",
    "describe",
    "entry_of",
    "footer",
    "landed_files",
    "landed_path",
    "landed_sizes",
    "manifest_path",
    "read_manifest",
    "record_ids",
    "rows_of",
    "stream_dir",
    "write_manifest",
]

#: The manifest's file name, in the stream's folder (next to its ``date=`` partitions).
MANIFEST = "manifest.jsonl"
#: The Parquet footer key under which a landing file carries its :class:`Span` (as JSON).
FOOTER_KEY = "wfm.landing.span"
_VERSION = 1


def manifest_path(root: Path, source: str, stream: str) -> Path:
    """Where the manifest of ``source/stream`` is."""
    return stream_dir(root, source, stream) / MANIFEST


def landed_sizes(root: Path, source: str, stream: str) -> dict[str, int]:
    """The stream's landing files present on disk, as ``"<source>/<stream>/<path in the
    stream's folder>"`` (a key :func:`landed_path` reads back) -> size in bytes."""
    folder = stream_dir(root, source, stream)
    return {
        f"{source}/{stream}/{path.relative_to(folder).as_posix()}": path.stat().st_size
        for path in landed_files(root, source, stream)
    }


def landed_path(root: Path, key: str) -> Path:
    """The landing file a key of :func:`landed_sizes` names."""
    source, stream, rel = key.split("/", 2)
    return stream_dir(root, source, stream) / rel


def record_ids(root: Path, keys: Iterable[str]) -> pl.DataFrame:
    """The record ids in the landing files ``keys`` (of :func:`landed_sizes`): ``source``,
    ``stream``, ``file`` (the key) and ``record_id``, one row per file and record. Only the
    ``record_id`` column of each file is read."""
    frames = [
        pl.scan_parquet(landed_path(root, key), hive_partitioning=False).select(
            pl.lit(key.split("/")[0]).alias("source"),
            pl.lit(key.split("/")[1]).alias("stream"),
            pl.lit(key).alias("file"),
            pl.col("record_id").cast(pl.String),
        )
        for key in keys
    ]
    if not frames:
        names = ("source", "stream", "file", "record_id")
        return pl.DataFrame(schema=dict.fromkeys(names, pl.String()))
    return pl.concat(pl.collect_all(frames))


def _instant(value: datetime | None) -> str | None:
    return None if value is None else format_utc(value, timespec="microseconds")


@dataclass(frozen=True)
class Span:
    """What a landing file covers in its stream's cursor space (``None``: unknown).

    Attributes:
        start: a sync that starts at or before it (``cursor - lookback``) reads the file's
            records again: the lower bound of the page's request (its time window's start, the
            cursor parameter it was sent with), or of the sync that fetched it.
        end: the latest instant of the file's records (a window's end, the latest
            ``updated_at``).
        committed: the stream's committed cursor when the records were fetched (``None``:
            the stream had none yet).
    """

    start: datetime | None = None
    end: datetime | None = None
    committed: datetime | None = None

    def union(self, other: Span) -> Span:
        """The span of a file merged from files of these spans (an unknown start stays unknown).

        Example:
            >>> from datetime import UTC
            >>> a, b = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC)
            >>> Span(a, a, None).union(Span(b, b, a)) == Span(a, b, a)
            True
        """
        starts, ends = (self.start, other.start), (self.end, other.end)
        known = [c for c in (self.committed, other.committed) if c is not None]
        return Span(
            None if None in starts else min(s for s in starts if s is not None),
            max((e for e in ends if e is not None), default=None),
            max(known, default=None),
        )

    def to_json(self) -> dict[str, str | None]:
        """``{"from", "to", "committed"}``: ISO 8601 UTC instants or ``null``."""
        return {
            "from": _instant(self.start),
            "to": _instant(self.end),
            "committed": _instant(self.committed),
        }

    @classmethod
    def from_json(cls, data: Any) -> Span:
        """The span of a :meth:`to_json` document; :class:`ValueError` if it is not one."""
        if not isinstance(data, dict):
            raise ValueError("span: not an object")
        values = [data.get(k) for k in ("from", "to", "committed")]
        parsed = [parse_utc(v) for v in values]
        if any(v is not None and p is None for v, p in zip(values, parsed, strict=True)):
            raise ValueError("span: an instant does not parse")
        return cls(*parsed)

    def describe(self) -> str:
        """``records from … to …`` for a message (``?`` where unknown)."""
        start, end = _instant(self.start) or "?", _instant(self.end) or "?"
        return f"records from {start} to {end}"


@dataclass(frozen=True)
class Entry:
    """One landing file as the manifest lists it (``file`` relative to the stream's folder)."""

    file: str
    rows: int
    size: int
    sha256: str
    span: Span

    def to_json(self, source: str, stream: str) -> dict[str, Any]:
        """The manifest line (without its newline) as a JSON-able dict."""
        head = {"v": _VERSION, "source": source, "stream": stream, "file": self.file}
        return (
            head
            | {"rows": self.rows, "bytes": self.size, "sha256": self.sha256}
            | (self.span.to_json())
        )

    @classmethod
    def from_json(cls, data: Any, *, source: str, stream: str) -> Entry:
        """Validate a manifest line; :class:`ValueError` if it is not one of this stream's."""
        if not isinstance(data, dict) or data.get("v") != _VERSION:
            raise ValueError("unknown format or version")
        if (data.get("source"), data.get("stream")) != (source, stream):
            raise ValueError(f"an entry of {data.get('source')}/{data.get('stream')}")
        file, digest = data.get("file"), data.get("sha256")
        if not isinstance(file, str) or not file.startswith("date=") or ".." in file:
            raise ValueError("file: not a landing file name")
        if not isinstance(digest, str) or len(digest) != 64:
            raise ValueError("sha256: not a digest")
        return cls(file, _count(data, "rows"), _count(data, "bytes"), digest, Span.from_json(data))


def _count(data: dict[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key}: not a count")
    return value


@dataclass(frozen=True)
class Manifest:
    """A stream's manifest as read: its entries by file, and what was wrong with it, if anything.

    ``damaged`` names the first complete line that is not an entry of this stream (the entries
    read before it are kept; the rest of the file is not trusted). A torn last line is not
    damage (see the module docstring).
    """

    path: Path
    entries: dict[str, Entry] = field(default_factory=dict)
    damaged: str | None = None


def read_manifest(root: Path, source: str, stream: str) -> Manifest:
    """The manifest of ``source/stream`` (no file: no entries).

    Raises:
        OSError: the manifest exists but cannot be read.
    """
    path = manifest_path(root, source, stream)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return Manifest(path)
    entries: dict[str, Entry] = {}
    lines = data.split(b"\n")[:-1]  # the part after the last newline is a torn append
    for number, line in enumerate(lines, start=1):
        try:
            entry = Entry.from_json(json.loads(line), source=source, stream=stream)
        except ValueError as exc:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            return Manifest(path, entries, f"{path}: line {number}: {exc}")
        entries[entry.file] = entry
    return Manifest(path, entries)


def _line(entry: Entry, source: str, stream: str) -> bytes:
    text = json.dumps(entry.to_json(source, stream), sort_keys=True, separators=(",", ":"))
    return text.encode() + b"\n"


def append_entry(root: Path, source: str, stream: str, entry: Entry) -> None:
    """Append ``entry`` durably (see the module docstring); a torn last line is cut off first."""
    path = manifest_path(root, source, stream)
    durable_mkdir(path.parent)
    created = not path.exists()
    with naming(path), path.open("a+b") as handle:
        size = handle.seek(0, io.SEEK_END)
        if size:
            handle.seek(size - 1)
            if handle.read(1) != b"\n":  # a torn append: keep the complete lines only
                handle.seek(0)
                handle.truncate(handle.read().rfind(b"\n") + 1)
        handle.write(_line(entry, source, stream))
        handle.flush()
        os.fsync(handle.fileno())
    if created:
        fsync_dir(path.parent)


def write_manifest(root: Path, source: str, stream: str, entries: Iterable[Entry]) -> None:
    """Replace the manifest with ``entries`` (sorted by file), atomically and durably."""
    lines = [_line(e, source, stream) for e in sorted(entries, key=lambda e: e.file)]
    atomic_write_bytes(manifest_path(root, source, stream), b"".join(lines))


def footer(span: Span) -> dict[str, str]:
    """The Parquet footer metadata that carries ``span`` in a landing file."""
    return {FOOTER_KEY: json.dumps(span.to_json(), sort_keys=True, separators=(",", ":"))}


def entry_of(file: str, content: bytes | Path, rows: int, span: Span) -> Entry:
    """The entry of a landing file: its bytes, or the path of a file durable on disk."""
    if isinstance(content, bytes):
        return Entry(file, rows, len(content), hashlib.sha256(content).hexdigest(), span)
    with content.open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
    return Entry(file, rows, content.stat().st_size, digest, span)


def describe(
    path: Path,
    *,
    stream_folder: Path,
    by_updated_at: bool = False,
    committed: datetime | None = None,
) -> Entry:
    """The entry of a landing file present on disk, read from the file itself.

    The span comes from the file's footer (:data:`FOOTER_KEY`). A file without one (landed before
    the manifest existed) spans its ``updated_at`` values when ``by_updated_at`` (the stream's
    cursor is that column, so a sync from the earliest of them reads every record again; any null
    leaves the start unknown), else only its latest ``updated_at`` is known; its ``committed`` is
    ``committed`` (the stream's cursor when it is adopted).

    Raises:
        ValueError: the file is not readable Parquet, or its footer span does not parse.
    """
    try:
        data = path.read_bytes()
        meta = pl.read_parquet_metadata(io.BytesIO(data))
        stamps = pl.read_parquet(io.BytesIO(data), columns=["updated_at"])["updated_at"]
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValueError(f"not readable Parquet ({_first_line(exc)})") from None
    file = path.relative_to(stream_folder).as_posix()
    if FOOTER_KEY in meta:
        try:
            span = Span.from_json(json.loads(meta[FOOTER_KEY]))
        except ValueError as exc:
            raise ValueError(f"footer {FOOTER_KEY}: {exc}") from None
        return entry_of(file, data, stamps.len(), span)
    latest, earliest = stamps.max(), stamps.min()
    end = latest if isinstance(latest, datetime) else None
    start = earliest if isinstance(earliest, datetime) and not stamps.null_count() else None
    span = Span(start if by_updated_at else None, end, committed)
    return entry_of(file, data, stamps.len(), span)


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return "".join(c if c.isprintable() else "?" for c in text)[:200]


def rows_of(path: Path) -> int:
    """The row count a landing file's footer declares.

    Raises:
        ValueError: not readable Parquet.
    """
    try:
        return int(pl.scan_parquet(path).select(pl.len()).collect().item())
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise ValueError(f"not readable Parquet ({_first_line(exc)})") from None


def batches(
    files: list[Path], listed: Mapping[str, Entry], folder: Path, max_rows: int
) -> list[list[Path]]:
    """``files`` (of one partition of the stream at ``folder``), in their order, cut into runs
    of at most ``max_rows`` rows (counts from the ``listed`` entries, else the files' own). A
    file holding half of ``max_rows`` or more (a batch merged already) is a run of its own.

    Example:
        >>> folder = Path("stream=calls")
        >>> names = [f"date=2026-10-01/{n}.parquet" for n in "abcd"]
        >>> listed = {n: Entry(n, r, 1, "0" * 64, Span()) for n, r in zip(names, (3, 9, 2, 4))}
        >>> runs = batches([folder / n for n in names], listed, folder, 10)
        >>> [[p.stem for p in run] for run in runs]
        [['b'], ['a', 'c', 'd']]
    """
    runs: list[list[Path]] = [[]]
    held = 0
    for file in files:
        entry = listed.get(file.relative_to(folder).as_posix())
        rows = entry.rows if entry is not None else rows_of(file)
        if 2 * rows >= max_rows:
            runs.insert(-1, [file])
            continue
        if runs[-1] and held + rows > max_rows:
            runs.append([])
            held = 0
        runs[-1].append(file)
        held += rows
    return [run for run in runs if run]
