"""The callback attempts store in chain order, and the readers that prove it before using it.

``store/callback_attempts`` is a table of the Delta Lake store (:mod:`engine.output.delta`)
written by :func:`write_attempts` from attempts in
:data:`engine.tables.callback_requests.CHAIN_ORDER`, partitioned by the UTC date of each
*request* (its first attempt's ``created_at``), not of each attempt: a chain whose retries cross
midnight stays in one file, and every file keeps the order.

Requests (:func:`engine.tables.callback_requests.requests`) are one plan: sort into chain order,
reduce each chain's run. The readers here skip the sort only when the rows they read prove, in
one streaming pass, that every chain is one run of adjacent rows from its first to its final
attempt (:func:`engine.tables.callback_requests.chain_order_breaks` is zero: the chains may lie
in any order among themselves, as they do across the files, but none is split or out of order):

- :func:`scan_requests` (a stored table): after the table's log vouches for every file it names
  (:func:`engine.output.delta.problems`: present, with the size and row count it recorded; a
  damaged table is a :class:`~engine.errors.StoreError`, never read as it is);
- :func:`requests_of` (attempts held in memory).

Otherwise they take the general plan: exactness never depends on the order or the writer,
only speed does.

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

from collections.abc import Iterable
from datetime import date
from pathlib import Path

import polars as pl

from engine.errors import StoreError
from engine.output import delta
from engine.schema import CALLBACK_ATTEMPTS
from engine.tables.callback_requests import (
    CHAIN_ORDER,
    ORDER,
    chain_order_breaks,
    chain_start,
    in_chain_order,
    requests,
    requests_from_runs,
)

__all__ = [
    "chain_ordered",
    "is_chain_ordered",
    "request_dates",
    "request_instant",
    "requests_of",
    "scan_attempts",
    "scan_requests",
    "write_attempts",
]


def request_instant() -> pl.Expr:
    """Each row's request instant: the ``created_at`` of its run's first row (rows in chain
    order: that is the chain's first attempt)."""
    start = chain_start(pl.int_range(pl.len()))
    return pl.when(start).then(pl.col("created_at")).forward_fill()


def request_dates(attempts: pl.DataFrame) -> pl.Series:
    """The partition (UTC date of the request) of each row of ``attempts`` in chain order."""
    return attempts.select(delta.days_of(request_instant()))[delta.PARTITION]


def write_attempts(
    attempts: pl.DataFrame,
    directory: Path,
    *,
    days: Iterable[date] | None = None,
    tag: str | None = None,
    if_changed: bool = False,
) -> Path:
    """Write ``attempts`` (in chain order) to the store by request date, in one transaction:
    the partitions ``days`` (every partition when ``None``) are replaced
    (:func:`engine.output.delta.commit`; every row's request must fall in ``days``; with
    ``if_changed``, only those whose stored rows differ)."""
    delta.commit(
        directory, attempts, by=request_instant(), days=days, tag=tag, if_changed=if_changed
    )
    return directory


def _checked(directory: Path) -> None:
    found = delta.problems(directory)
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise StoreError(f"{found[0]}{more}: the callback attempts store is damaged")


def scan_attempts(directory: Path) -> pl.LazyFrame:
    """The stored attempts (:data:`engine.schema.CALLBACK_ATTEMPTS` columns), in the files'
    order on every evaluation.

    Raises:
        StoreError: no table, or a damaged one.
    """
    return delta.scan(directory, CALLBACK_ATTEMPTS)


def _in_runs(attempts: pl.LazyFrame) -> bool:
    breaks = chain_order_breaks(attempts).collect(engine="streaming")
    return int(breaks.item()) == 0


def is_chain_ordered(directory: Path) -> bool:
    """Every chain of the stored attempts is provably one run of rows in chain order (see the
    module docstring): its requests may come from runs.

    Raises:
        StoreError: no table, or a damaged one.
    """
    _checked(directory)
    return _in_runs(scan_attempts(directory))


def scan_requests(directory: Path) -> pl.LazyFrame:
    """The requests of the stored attempts: from their runs when the store is provably in chain
    order (:func:`is_chain_ordered`), else by the general plan. The same rows either way.

    Raises:
        StoreError: no table, or a damaged one.
    """
    attempts = scan_attempts(directory)
    return requests_from_runs(attempts) if is_chain_ordered(directory) else requests(attempts)


def requests_of(attempts: pl.DataFrame) -> pl.LazyFrame:
    """The requests of attempts held in memory: from their runs when one streaming pass finds
    every chain one run in order (as in :func:`write_attempts`' input), else by the general
    plan. The same rows either way."""
    lazy = attempts.lazy()
    return requests_from_runs(lazy) if _in_runs(lazy) else requests(lazy)


def chain_ordered(attempts: pl.LazyFrame) -> tuple[pl.DataFrame, pl.LazyFrame]:
    """``attempts`` sorted into chain order (:func:`engine.tables.callback_requests.in_chain_order`,
    collected: what :func:`write_attempts` takes) and their requests, reduced from the runs of
    those very rows: the sort is the proof of the order, so no streaming check is needed.

    The rows are first sorted on integers alone, the chain's hash then ``retry_attempt`` and
    ``created_at`` (a third of the full sort's cost, which compares the text keys too); where
    :func:`engine.tables.callback_requests.chain_order_breaks` then finds every chain one run,
    strictly in order (no two chains share a hash, no two attempts of a chain tie), that is the
    full sort's order exactly, and otherwise the full sort is made.
    """
    held = attempts.collect()
    ordered = held.sort([pl.struct(CHAIN_ORDER[:2]).hash(), *ORDER[:2]])
    if chain_order_breaks(ordered.lazy()).collect().item() != 0:
        ordered = in_chain_order(held.lazy()).collect()
    return ordered, requests_from_runs(ordered.lazy())
