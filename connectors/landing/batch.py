"""A long sync's pages merged as they land: files of bounded size, not one file per page.

A first sync pulls months of history in one run, all of it landing in the partition of the day
it runs: ~9,000 files for 300K records (Mindful lands one per hour of history). Left so, the
run's rebuild scans every one of them, and the next day's :func:`~connectors.landing.compact`
would merge them all at once, holding the whole day in memory. :class:`PageBatch` instead
merges the pages a sync has landed (:func:`~connectors.landing.merge_files`) each time they
reach :attr:`Batching.rows` records or :attr:`Batching.files` files, so no file and no merge
holds more than a batch; once it has merged one, it merges what is left at its end too
(:meth:`PageBatch.finish`). A sync of a normal night (a few pages) merges nothing: its pages are
left to the next day's compaction, as before.

Only the sync's own pages are merged (never a file that was there before it: what the run
counts as new is the difference), in their own partition (a sync that runs past midnight UTC
leaves the day before to the compaction), each merge crash-safe as :func:`merge_files` is.

Example:
    ``batch = PageBatch(root, "ujet", "calls", Batching(rows=10_000))`` then
    ``batch.add(landed.path, landed.rows)`` after each :func:`~connectors.landing.land_page`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from connectors.landing import MERGE_ROWS, merge_files

__all__ = ["MERGE_FILES", "Batching", "PageBatch"]

#: The most page files a sync leaves unmerged in a row (Mindful: an hour of history each).
MERGE_FILES = 256


@dataclass(frozen=True)
class Batching:
    """When a sync merges the pages it has landed: at ``rows`` records or ``files`` files."""

    rows: int = MERGE_ROWS
    files: int = MERGE_FILES

    def __post_init__(self) -> None:
        if self.rows < 1 or self.files < 2:
            raise ValueError("batching: rows must be at least 1 and files at least 2")


@dataclass
class PageBatch:
    """The pages one sync of ``source/stream`` has landed and not merged yet."""

    root: Path
    source: str
    stream: str
    batching: Batching = field(default_factory=Batching)
    record_dtype: pl.DataType | None = None
    pending: list[Path] = field(default_factory=list)
    rows: int = 0
    merged: int = 0  #: page files merged away so far

    def add(self, path: Path | None, rows: int) -> int:
        """Note a page landed at ``path`` with ``rows`` records (``None``: nothing landed);
        merge the pending pages once they reach a batch. Returns the files merged away now."""
        if path is None:
            return 0
        if self.pending and path.parent != self.pending[0].parent:
            self.pending, self.rows = [], 0  # a new fetch date: the day before is compact's
        self.pending.append(path)
        self.rows += rows
        if self.rows < self.batching.rows and len(self.pending) < self.batching.files:
            return 0
        return self._merge()

    def finish(self) -> int:
        """At the end of the sync: the pages left over merged too when it merged a batch
        already (a long sync leaves its day merged; a short one, its pages to the compaction)."""
        return self._merge() if self.merged else 0

    def _merge(self) -> int:
        pages, self.pending, self.rows = self.pending, [], 0
        if len(pages) < 2:  # one page as large as a batch: already a file of its own
            return 0
        done = merge_files(
            self.root, self.source, self.stream, pages, record_dtype=self.record_dtype
        )
        self.merged += done
        return done
