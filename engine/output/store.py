"""The callback attempts store in chain order, so that its readers reduce requests from runs.

``store/callback_attempts`` is written by :func:`write_attempts` from attempts in
:data:`engine.tables.callback_requests.CHAIN_ORDER`
(:func:`engine.tables.callback_requests.in_chain_order`),
partitioned by the UTC date of each *request* (its first attempt's ``created_at``), not of each
attempt: a chain whose retries cross midnight stays in one file, and every file keeps the order.
A layout file (:data:`LAYOUT`) names the files and their row counts.

:func:`scan_attempts` reads the store back and says whether it may be reduced from runs
(:func:`engine.tables.callback_requests.requests` with ``chain_ordered``): only if the layout file
names exactly the Parquet files present, with their row counts (so nothing was added, removed
or rewritten since), and one streaming pass finds no row out of chain order inside a file
(:func:`engine.tables.callback_requests.chain_order_breaks`; the file starts may break). A store
written before this layout, or changed by hand, is read the general way: exactness never
depends on the order. A chain can only be split between files by a writer that does not
partition by request; :func:`write_attempts` is the one that writes the layout file.

Example:
    >>> import tempfile
    >>> from engine.tables.callback_requests import in_chain_order
    >>> from engine.demo.callbacks import generate_attempts
    >>> attempts = in_chain_order(generate_attempts(days=2, scale=0.1).lazy()).collect()
    >>> store = write_attempts(attempts, Path(tempfile.mkdtemp()) / "callback_attempts")
    >>> frame, chain_ordered = scan_attempts(store)
    >>> frame.select(pl.len()).collect().item() == attempts.height, chain_ordered
    (True, True)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import polars as pl

from engine.output import files as export
from engine.schema import CALLBACK_ATTEMPTS
from engine.tables.callback_requests import CHAIN_ORDER, chain_order_breaks, chain_start

__all__ = ["LAYOUT", "scan_attempts", "write_attempts"]

#: The layout file of a store written in chain order: ``{"order": [...], "files": {path: rows}}``.
LAYOUT: Final = "_chain_order.json"


def _request_instant() -> pl.Expr:
    """Each row's request instant: the ``created_at`` of its run's first row (rows in chain
    order: that is the chain's first attempt)."""
    start = chain_start(pl.int_range(pl.len()))
    return pl.when(start).then(pl.col("created_at")).forward_fill()


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*.parquet"))


def _row_counts(files: list[Path]) -> list[int]:
    """Each file's row count, from the Parquet footers (read in parallel)."""
    counts = pl.collect_all([pl.scan_parquet(f).select(pl.len()) for f in files])
    return [int(c.item()) for c in counts]


def write_attempts(attempts: pl.DataFrame, directory: Path) -> Path:
    """Write ``attempts`` (in chain order) as the store, by request date, with its layout file.

    The layout file is written after the table: a store without one (a crash in between) is
    simply read the general way.
    """
    export.write_store(attempts, directory, by=_request_instant())
    paths = _files(directory)
    counts = _row_counts(paths)
    files = {f.relative_to(directory).as_posix(): n for f, n in zip(paths, counts, strict=True)}
    layout = {"order": list(CHAIN_ORDER), "partition": "request_date", "files": files}
    export.write_json(layout, directory / LAYOUT)
    return directory


def scan_attempts(directory: Path) -> tuple[pl.LazyFrame, bool]:
    """The stored attempts (:data:`engine.schema.CALLBACK_ATTEMPTS` columns), and whether they
    may be reduced from runs (see the module docstring). The frame's row order is the files'
    order on every evaluation (a Parquet scan), as ``chain_ordered`` needs.
    """
    files = _files(directory)
    frame = pl.scan_parquet(files, hive_partitioning=False).select(list(CALLBACK_ATTEMPTS))
    try:
        layout = json.loads((directory / LAYOUT).read_text())
    except (OSError, ValueError):
        return frame, False
    named = layout.get("files") if isinstance(layout, dict) else None
    relative = [f.relative_to(directory).as_posix() for f in files]
    if layout.get("order") != list(CHAIN_ORDER) or not isinstance(named, dict):
        return frame, False
    if sorted(named) != relative:
        return frame, False
    counts = _row_counts(files)
    if counts != [named[r] for r in relative]:
        return frame, False
    starts = [sum(counts[:i]) for i in range(1, len(counts))]
    breaks = chain_order_breaks(frame, starts=starts).collect(engine="streaming").item()
    return frame, breaks == 0
