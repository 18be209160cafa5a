"""The callback attempts store in chain order, and the readers that prove it before using it.

``store/callback_attempts`` is written by :func:`write_attempts` from attempts in
:data:`engine.tables.callback_requests.CHAIN_ORDER`, partitioned by the UTC date of each
*request* (its first attempt's ``created_at``), not of each attempt: a chain whose retries cross
midnight stays in one file, and every file keeps the order. A layout file (:data:`LAYOUT`) names
the files and their row counts.

Requests (:func:`engine.tables.callback_requests.requests`) are one plan: sort into chain order,
reduce each chain's run. The readers here skip the sort only when the rows they read prove, in
one streaming pass, that every chain is one run of adjacent rows from its first to its final
attempt (:func:`engine.tables.callback_requests.chain_order_breaks` is zero: the chains may lie
in any order among themselves, as they do across the files, but none is split or out of order):

- :func:`scan_requests` (a stored directory): when the layout file also names exactly the
  Parquet files present, with their row counts (a store not written by :func:`write_attempts`,
  or changed since, is not worth the pass);
- :func:`requests_of` (attempts held in memory).

Otherwise they take the general plan: exactness never depends on the order, the writer or the
layout file, only speed does.

Example:
    >>> import tempfile
    >>> from engine.tables.callback_requests import in_chain_order, requests
    >>> from engine.demo.callbacks import generate_attempts
    >>> attempts = generate_attempts(days=2, scale=0.1)
    >>> store = write_attempts(in_chain_order(attempts.lazy()).collect(),
    ...                        Path(tempfile.mkdtemp()) / "callback_attempts")
    >>> key = ["source", "original_id"]
    >>> stored = scan_requests(store).collect().sort(key)
    >>> stored.equals(requests(attempts.lazy()).collect().sort(key)), is_chain_ordered(store)
    (True, True)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Final

import polars as pl

from engine.output import files as export
from engine.schema import CALLBACK_ATTEMPTS
from engine.tables.callback_requests import (
    CHAIN_ORDER,
    chain_order_breaks,
    chain_start,
    requests,
    requests_from_runs,
)

__all__ = [
    "LAYOUT",
    "is_chain_ordered",
    "requests_of",
    "scan_attempts",
    "scan_requests",
    "write_attempts",
]

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


def scan_attempts(directory: Path) -> pl.LazyFrame:
    """The stored attempts (:data:`engine.schema.CALLBACK_ATTEMPTS` columns), in the files'
    order on every evaluation (a Parquet scan)."""
    files = _files(directory)
    return pl.scan_parquet(files, hive_partitioning=False).select(list(CALLBACK_ATTEMPTS))


def _in_runs(attempts: pl.LazyFrame) -> bool:
    breaks = chain_order_breaks(attempts).collect(engine="streaming")
    return int(breaks.item()) == 0


def is_chain_ordered(directory: Path) -> bool:
    """The layout file vouches for the store's files, and every chain in them is provably one
    run of rows in chain order (see the module docstring): its requests may come from runs."""
    try:
        layout = json.loads((directory / LAYOUT).read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(layout, dict) or layout.get("order") != list(CHAIN_ORDER):
        return False
    named = layout.get("files")
    files = _files(directory)
    relative = [f.relative_to(directory).as_posix() for f in files]
    if not isinstance(named, dict) or sorted(named) != relative:
        return False
    if _row_counts(files) != [named[r] for r in relative]:
        return False
    return _in_runs(scan_attempts(directory))


def scan_requests(directory: Path) -> pl.LazyFrame:
    """The requests of the stored attempts: from their runs when the store is provably in chain
    order (:func:`is_chain_ordered`), else by the general plan. The same rows either way."""
    attempts = scan_attempts(directory)
    return requests_from_runs(attempts) if is_chain_ordered(directory) else requests(attempts)


def requests_of(attempts: pl.DataFrame) -> pl.LazyFrame:
    """The requests of attempts held in memory: from their runs when one streaming pass finds
    every chain one run in order (as in :func:`write_attempts`' input), else by the general
    plan. The same rows either way."""
    lazy = attempts.lazy()
    return requests_from_runs(lazy) if _in_runs(lazy) else requests(lazy)
