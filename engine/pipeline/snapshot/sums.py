"""Digests of a snapshot: of its rows' partition days (the run's change detection) and of its
files' bytes (damage on disk).

:func:`day_digests` hashes rows, a day at a time. :func:`file_sum` is the SHA-256 of a file's
bytes as written, which ``meta.json`` keeps for every file it names (``sums``); :func:`damaged`
reads back the files changed on disk since that commit (bytes overwritten in place keep a
file's size, not its change time), or every file (``deep``: ``wfm-intervals verify``), and
names those whose bytes are not the ones written. The snapshot is derived data: a run that finds
one redoes it whole from the landing store.

Example:
    >>> file_sum(b"")[:12]
    'e3b0c44298fc'
"""

from __future__ import annotations

import hashlib
import json
import os
from datetime import date
from pathlib import Path

import polars as pl

from engine.output.delta import PARTITION

__all__ = ["Digests", "damaged", "day_digests", "digest_rows", "file_sum"]

#: ISO date -> ``"<rows>:<sum of row hashes>"``.
Digests = dict[str, str]


def day_digests(rows: pl.DataFrame, days: pl.Series) -> Digests:
    """One digest per day of ``days`` (each row's store partition): its row count and the sum
    of its rows' 64-bit hashes, wrapping (Polars sums UInt64 modulo 2**64). Order-free; a change
    of any value of any row changes it, but for a 2**-64 chance. This is the run's change
    detection (:func:`engine.pipeline.window.fingerprints`)."""
    hashed = rows.select(days.alias(PARTITION), pl.struct(pl.all()).hash(seed=0).alias("h"))
    found = hashed.group_by(PARTITION).agg(pl.len(), pl.col("h").sum())
    return {d.isoformat(): f"{n}:{h}" for d, n, h in found.iter_rows() if isinstance(d, date)}


def digest_rows(digest: str) -> int:
    """The row count a day's digest (:func:`day_digests`) holds."""
    return int(digest.partition(":")[0])


def file_sum(data: bytes) -> str:
    """The digest of a snapshot file's bytes, as ``meta.json`` keeps it."""
    return hashlib.sha256(data).hexdigest()


def damaged(folder: Path, *, deep: bool = False) -> list[str]:
    """The files of the snapshot committed under ``folder`` whose bytes are not those written,
    a line each: those changed on disk after its ``meta.json`` was (``deep``: every file). No
    snapshot, or one that cannot be read or keeps no digests, has none (it is redone whole)."""
    try:
        meta = folder / "meta.json"
        committed = os.stat(meta).st_ctime_ns
        sums = json.loads(meta.read_bytes()).get("sums")
    except (OSError, ValueError, AttributeError):
        return []
    if not isinstance(sums, dict):
        return []
    found = []
    for name, want in sorted(sums.items()):
        file = folder / str(name)
        try:
            if not deep and os.stat(file).st_ctime_ns <= committed:
                continue
            if file_sum(file.read_bytes()) == want:
                continue
        except OSError as exc:
            found.append(f"{file}: the snapshot's file cannot be read ({exc.strerror})")
            continue
        found.append(f"{file}: damaged on disk (its bytes are not those the snapshot wrote)")
    return found
