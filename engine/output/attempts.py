"""The store's callback attempts written as the input streams: validated, de-duplicated, put in
chain order day by day and written to their request dates, without all of them ever being held.

:func:`sink_attempts` gives :func:`engine.validate.callback_attempts.validate_callback_attempts`'
rows, in the store's layout (:func:`engine.output.store.write_attempts`: each request date's
rows in chain order), with the input read twice:

1. the keys of every row (:func:`engine.validate.callback_attempts.attempt_keys`): the hashes of
   the identities that occur more than once, and the chains whose attempts span UTC dates
   (a chain's day is its earliest);
2. the input in batches: the rows of repeated identities are set aside whole (few: re-sent
   records); every other row is alone in its identity, so validating the batch gives exactly
   what validating the whole input gives for it. The clean rows are spilled to a scratch folder
   by their chain's day (a chain never spans two), in Arrow IPC; the set-aside rows are
   validated together once all batches are read (every row of their identities is there).
   Two batches are worked on side by side (:data:`BATCHES_AT_ONCE`), and the rows kept from
   each (set aside, quarantined) are copied out of its buffers (:func:`compact`);
3. day by day, the spilled rows of the day and the set-aside clean rows of its chains are sorted
   into chain order and written to the partitions of their request dates
   (:func:`engine.output.datafiles.write_partitions`: a chain is whole in one file), and the
   caller's ``each`` gets them with their requests (:func:`engine.output.store.chain_ordered`).

Nothing is committed: the files become the table's next version with
:func:`engine.output.delta.commit_files`; a failure before that deletes them (and the scratch
folder goes either way).

Example:
    >>> import tempfile
    >>> from engine.demo.callbacks import generate_attempts
    >>> path = Path(tempfile.mkdtemp()) / "callback_attempts"
    >>> sunk = sink_attempts(generate_attempts(days=2, scale=0.1).lazy(), path, tag="t1",
    ...                      each=lambda ordered, reqs: ordered.height)
    >>> import json
    >>> written = sum(json.loads(a.stats)["numRecords"] for a in sunk.files)
    >>> sunk.attempts == sum(sunk.units) == written
    True
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Generic, TypeVar

import polars as pl
from deltalake.transaction import AddAction

from engine.errors import naming
from engine.output import datafiles
from engine.output.store import chain_ordered, request_instant
from engine.validate.callback_attempts import (
    CHAIN_HASH,
    DAY,
    attempt_keys,
    chain_hash,
    identity_hash,
    not_callbacks,
    validate_callback_attempts,
)
from engine.validate.contacts import MAX_DURATION_MS

__all__ = ["BATCH_ROWS", "SunkAttempts", "abandon", "compact", "sink_attempts"]

T = TypeVar("T")

#: Input rows validated at a time (the batch's conformed copy is what is held).
BATCH_ROWS: Final = 250_000
#: Batches validated and spilled side by side (a Polars operation on one batch keeps the two
#: cores of a small machine only partly busy).
BATCHES_AT_ONCE: Final = 2
#: Days sorted, written and reduced side by side (each holds its rows twice: as read, sorted).
DAYS_AT_ONCE: Final = 2


@dataclass(frozen=True)
class SunkAttempts(Generic[T]):
    """What :func:`sink_attempts` read and wrote: ``rows_in`` input rows (``not_callbacks`` of
    them known non-callbacks), the ``quarantine`` rows, the data ``files`` written (not
    committed) holding ``attempts`` clean rows, and ``each``'s result for every day."""

    rows_in: int
    not_callbacks: int
    quarantine: pl.DataFrame
    files: list[AddAction]
    attempts: int
    units: list[T]


def compact(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its text in buffers of its own. A Polars text column cut from a larger one
    (a filter, a slice, a group-by's keys) keeps viewing the larger one's buffers, which then
    stay allocated as long as it lives: rows held for long are copied out of them first."""
    return frame.with_columns(pl.col(pl.String) + "")


@dataclass(frozen=True)
class _Batch:
    """What one batch gave: its rows, known non-callbacks, rows set aside and bad rows."""

    rows: int
    not_callbacks: int
    aside: pl.DataFrame
    bad: pl.DataFrame


def _in_turn(
    work: Callable[[int, pl.DataFrame], _Batch], batches: Iterable[tuple[int, pl.DataFrame]]
) -> Iterator[_Batch]:
    """``work`` of every batch, :data:`BATCHES_AT_ONCE` side by side, the results in the
    batches' order (the next batch is read while those in hand are worked on)."""
    with ThreadPoolExecutor(max_workers=BATCHES_AT_ONCE) as pool:
        pending: deque[Future[_Batch]] = deque()
        for n, batch in batches:
            pending.append(pool.submit(work, n, batch))
            if len(pending) >= BATCHES_AT_ONCE:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _with_days(clean: pl.DataFrame, straddling: pl.DataFrame) -> pl.DataFrame:
    """``clean`` with each row's chain day (:data:`DAY`): its own UTC date, or the earliest of
    its chain's when they span several (``straddling``, by hash)."""
    own = pl.col("created_at").dt.date().alias(DAY)
    if straddling.height == 0:
        return clean.with_columns(own)
    return (
        clean.with_columns(chain_hash())
        .join(straddling, on=CHAIN_HASH, how="left")
        .with_columns(pl.coalesce(DAY, own).alias(DAY))
        .drop(CHAIN_HASH)
    )


def _spill(clean: pl.DataFrame, scratch: Path, n: int) -> None:
    for (day,), rows in clean.partition_by(DAY, as_dict=True).items():
        folder = scratch / str(day)
        folder.mkdir(exist_ok=True)
        with naming(folder / f"{n}.arrow"):
            rows.drop(DAY).write_ipc(folder / f"{n}.arrow")


def _validate(
    rows: pl.DataFrame, record: str | None, max_duration_ms: int, *, alone: bool = False
) -> tuple[pl.DataFrame, pl.DataFrame]:
    clean, bad = validate_callback_attempts(
        rows.lazy(), record=record, max_duration_ms=max_duration_ms, alone=alone
    )
    done = pl.collect_all([clean, bad])
    return done[0], done[1]


def abandon(path: Path, tag: str | None, made: list[Path]) -> None:
    """Delete the files the writer ``tag`` left under ``path`` (none: keep them), then the
    folders of ``made`` (created by the writer) that are left empty."""
    if tag is not None:
        datafiles.discard(path, tag)
    for folder in reversed(made):
        for sub in sorted(folder.glob("**/"), reverse=True):  # the deepest first
            with contextlib.suppress(OSError):
                sub.rmdir()


def sink_attempts(
    attempts: pl.LazyFrame,
    path: Path,
    *,
    tag: str,
    each: Callable[[pl.DataFrame, pl.LazyFrame], T],
    record: str | None = None,
    max_duration_ms: int = MAX_DURATION_MS,
) -> SunkAttempts[T]:
    """Validate ``attempts`` into new data files of the store table at ``path`` (the writer
    ``tag``), day by day; ``each(ordered, requests)`` for every day's rows in chain order and
    their requests. See the module docstring.

    Raises:
        InputSchemaError: a required column is missing or a timestamp column is naive.
    """
    repeated, straddling = pl.collect_all(attempt_keys(attempts), engine="streaming")
    shared = repeated.to_series().implode()
    rows_in = skipped = 0
    quarantine: list[pl.DataFrame] = []
    aside: list[pl.DataFrame] = []
    made = [p for p in (path.parent, path) if not p.exists()]  # removed again if left empty
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with datafiles.scratch(path.parent, ".spill-") as scratch:

            def alone(n: int, batch: pl.DataFrame) -> _Batch:
                mark = batch.select(identity_hash().is_in(shared)).to_series()
                clean, bad = _validate(batch.filter(~mark), record, max_duration_ms, alone=True)
                _spill(_with_days(clean, straddling), scratch, n)
                skip = not_callbacks(batch.lazy()).select(pl.len()).collect().item()
                return _Batch(batch.height, skip, compact(batch.filter(mark)), compact(bad))

            batches = attempts.collect_batches(chunk_size=BATCH_ROWS, maintain_order=False)
            for got in _in_turn(alone, enumerate(batches)):
                rows_in, skipped = rows_in + got.rows, skipped + got.not_callbacks
                aside.append(got.aside)
                quarantine.append(got.bad)
            rest = pl.concat(aside) if aside else attempts.head(0).collect()
            clean, bad = _validate(rest, record, max_duration_ms)
            quarantine.append(bad)
            held = _with_days(clean, straddling)
            days = {p.name for p in scratch.iterdir()} | {
                str(d) for d in held[DAY].unique().to_list()
            }

            def one(day: str) -> tuple[list[AddAction], int, T]:
                parts = [pl.read_ipc(f) for f in sorted((scratch / day).glob("*.arrow"))]
                mine = held.filter(pl.col(DAY).cast(pl.String).fill_null("None") == day)
                rows = pl.concat([*parts, mine.drop(DAY)]) if parts else mine.drop(DAY)
                ordered, reqs = chain_ordered(rows.lazy())
                dated = ordered.with_columns(datafiles.days_of(request_instant()))
                return (
                    datafiles.write_partitions(path, dated, tag),
                    ordered.height,
                    each(ordered, reqs),
                )

            with ThreadPoolExecutor(max_workers=DAYS_AT_ONCE) as pool:
                done = list(pool.map(one, sorted(days)))
    except BaseException:
        abandon(path, tag, made)
        raise
    abandon(path, None, made)
    files = [f for d in done for f in d[0]]
    kept, units = sum(d[1] for d in done), [d[2] for d in done]
    return SunkAttempts(rows_in, skipped, pl.concat(quarantine), files, kept, units)
