"""The two documents ``serve`` answers, read from the committed store by the commands' own code.

:class:`StoreDocuments` renders the Contact Volume page (seed 003) with
:func:`engine.cli.export.volume_table` and :mod:`engine.output.files` (as ``export
contact-volume`` does) and the callback metrics document (seed 000) with
:func:`engine.cli.callbacks.stored_requests` and :func:`engine.tables.callback_metrics.document`
(as ``callback-metrics --store`` does). Only committed table versions are read (the store's
transaction log), so a run being written is never seen half-done; a new commit is picked up
within ``recheck_s`` seconds. A rendered window is kept (a few at a time) so a client paging it
costs a slice per page.

Example:
    ``docs = StoreDocuments(Path("out"), org_id="wfm-intervals")`` then
    ``docs.callvolume(since=None, until=end, skip=0, limit=100)``.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from engine.cli.callbacks import stored_requests
from engine.cli.export import volume_table
from engine.errors import StoreError
from engine.output import delta
from engine.output import files as outputs
from engine.output.read import table_identity
from engine.tables import callback_metrics

__all__ = ["StoreDocuments"]

_WINDOWS_KEPT = 8


class StoreDocuments:
    """The served documents of one store (thread-safe; see the module docstring)."""

    def __init__(
        self,
        store: Path,
        *,
        org_id: str,
        unit: outputs.DurationUnit = "ms",
        recheck_s: float = 1.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store, self.org_id, self.unit = store, org_id, unit
        self._recheck_s, self._monotonic = recheck_s, monotonic
        self._lock = threading.Lock()
        self._checked: dict[str, tuple[float, str]] = {}
        self._volume: tuple[str, pl.DataFrame] | None = None
        self._requests: tuple[str, pl.DataFrame] | None = None
        self._windows: OrderedDict[tuple[Any, ...], pl.DataFrame] = OrderedDict()

    def _version(self, table: str, candidates: tuple[Path, ...]) -> str:
        """The committed version of ``table``, with the table's identity (re-read at most every
        ``recheck_s``; "": none): a store deleted and built again ends at the version it had (a
        first build's), and was served from the cache as the old one (:func:`table_identity`).
        A table created empty, its first rows not yet committed (:func:`delta.unwritten`), is
        none: its rows are not "no rows"."""
        now = self._monotonic()
        seen = self._checked.get(table)
        if seen is not None and now - seen[0] < self._recheck_s:
            return seen[1]
        found = ""
        for path in candidates:
            if delta.is_table(path):
                found = "" if delta.unwritten(path) else table_identity(path)
                break
        self._checked[table] = (now, found)
        return found

    def _rows(self, since: datetime | None, until: datetime) -> pl.DataFrame:
        version = self._version("callvolume", (self.store / "store" / "callvolume",))
        if not version:  # never an empty page for a table not there (yet): 503
            raise StoreError(f"{self.store}: no committed volume table")
        if self._volume is None or self._volume[0] != version:
            self._volume = (version, volume_table(self.store))
            self._windows.clear()
        key = (version, since, until)
        if key not in self._windows:
            start = pl.col("interval_start_utc")
            keep = start < until if since is None else (start >= since) & (start < until)
            table = self._volume[1].filter(keep)
            self._windows[key] = outputs.document_rows(table, org_id=self.org_id, unit=self.unit)
            while len(self._windows) > _WINDOWS_KEPT:
                self._windows.popitem(last=False)
        self._windows.move_to_end(key)
        return self._windows[key]

    def callvolume(
        self, *, since: datetime | None, until: datetime, skip: int, limit: int
    ) -> dict[str, Any]:
        """The Contact Volume page of the rows with ``since <= interval start < until``; a
        ``skip`` past the last row (any size: ``2**63`` too) is an empty last page.

        Raises:
            StoreError: no volume table, or a damaged one.
        """
        with self._lock:
            rows = self._rows(since, until)
        return outputs.page_document(rows, skip=min(skip, rows.height), limit=limit)

    def _stored_requests(self) -> pl.DataFrame:
        root = self.store
        paths = (root / "store" / "callback_attempts", root / "callback_attempts")
        version = self._version("callback_attempts", paths)
        if not version:
            raise StoreError(f"{root}: no callback_attempts table")
        if self._requests is None or self._requests[0] != version:
            self._requests = (version, stored_requests(root).collect())
        return self._requests[1]

    def callback_metrics(self, *, begin: datetime, end: datetime, **filters: Any) -> dict[str, Any]:
        """The seed-000 metrics document of ``[begin, end)`` and the filters of
        :func:`engine.tables.callback_metrics.document`.

        Raises:
            StoreError: no callback_attempts table, or a damaged one.
            ValueError: a filter value the document does not know.
        """
        with self._lock:
            reqs = self._stored_requests()
        return callback_metrics.document(reqs.lazy(), begin=begin, end=end, **filters)
