"""The callback attempts store in chain order (engine.output.store): written by request date,
read back as runs only when the table's log vouches for every file and the order holds, the
same requests either way, and a damaged store an error, never read as it is."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from polars.testing import assert_frame_equal

from engine.demo.callbacks import generate_attempts
from engine.errors import StoreError
from engine.output import files as export
from engine.output import store as callback_store
from engine.output.store import (
    is_chain_ordered,
    requests_of,
    scan_attempts,
    scan_requests,
    write_attempts,
)
from engine.schema import CALLBACK_ATTEMPTS
from engine.tables import callback_metrics
from engine.tables.callback_requests import CHAIN_ORDER, in_chain_order, requests
from tests.engine.test_callback_requests import WINDOW, attempts, in_order

T0 = datetime(2026, 10, 1, 23, 50, tzinfo=UTC)


def chain_ordered(frame: pl.DataFrame) -> pl.DataFrame:
    return in_chain_order(frame.lazy()).collect()


def store_of(frame: pl.DataFrame, root: Path) -> Path:
    return write_attempts(chain_ordered(frame), root / "callback_attempts")


def month() -> pl.DataFrame:
    return generate_attempts(days=3, scale=0.3)


def test_a_chain_across_midnight_stays_in_its_requests_partition(tmp_path: Path) -> None:
    base = month().head(1)
    retry = base.with_columns(
        pl.lit("retry-1").alias("attempt_id"),
        pl.lit(1, base.schema["retry_attempt"]).alias("retry_attempt"),
        (pl.lit(T0) + timedelta(minutes=20)).alias("created_at"),
    )
    first = base.with_columns(pl.lit(T0).alias("created_at"))
    store = store_of(pl.concat([retry, first]), tmp_path)
    files = sorted(p.parent.name for p in store.rglob("*.parquet"))
    assert files == ["date=2026-10-01"]  # not split at midnight
    assert is_chain_ordered(store)
    assert scan_attempts(store).collect()["attempt_id"].to_list()[-1] == "retry-1"
    (request,) = scan_requests(store).collect().iter_rows(named=True)
    assert (request["attempts"], request["retries"], request["instant"]) == (2, 1, T0)


def test_a_store_reads_back_whole_and_in_chain_order(tmp_path: Path) -> None:
    attempts = month()
    store = store_of(attempts, tmp_path)
    assert len(list(store.rglob("*.parquet"))) >= 3
    assert pl.read_delta(str(store)).height == attempts.height
    assert is_chain_ordered(store)
    got = scan_attempts(store).collect()
    assert got.schema == pl.Schema(CALLBACK_ATTEMPTS)
    assert got.sort(CHAIN_ORDER).equals(attempts.select(got.columns).sort(CHAIN_ORDER))
    window = {"begin": WINDOW[0], "end": WINDOW[0] + timedelta(days=3)}
    want = callback_metrics.document(requests(attempts.lazy()), **window)
    assert callback_metrics.document(scan_requests(store), **window) == want
    hours = {**window, "step": "1h", "tz": "Asia/Kolkata", "type": "asap"}
    want_hours = callback_metrics.document_intervals(requests(attempts.lazy()), **hours)
    assert len(want_hours) == 73  # 72 hours; +05:30 cuts the first and the last
    assert callback_metrics.document_intervals(scan_requests(store), **hours) == want_hours


def _tamper(store: Path, how: str) -> None:
    files = sorted(store.rglob("*.parquet"))
    if how == "a file added":  # no version names it: invisible
        shutil.copy(files[0], files[0].with_name("extra.parquet"))
    elif how == "a file removed":
        files[-1].unlink()
    elif how == "a file truncated":
        files[0].write_bytes(files[0].read_bytes()[:100])
    elif how == "rows moved between files":  # the counts change
        a, b = pl.read_parquet(files[0]), pl.read_parquet(files[1])
        a.head(a.height - 1).write_parquet(files[0])
        pl.concat([a.tail(1), b]).write_parquet(files[1])


def test_a_file_the_log_does_not_name_is_not_read(tmp_path: Path) -> None:
    attempts = month()
    store = store_of(attempts, tmp_path)
    _tamper(store, "a file added")
    assert is_chain_ordered(store)
    assert_frame_equal(in_order(scan_requests(store)), in_order(requests(attempts.lazy())))


def test_a_damaged_store_is_an_error_naming_the_file(tmp_path: Path) -> None:
    attempts = month()
    for n, how in enumerate(["a file removed", "a file truncated", "rows moved between files"]):
        store = store_of(attempts, tmp_path / str(n))
        _tamper(store, how)
        with pytest.raises(StoreError, match=r"\.parquet: .*callback attempts store is damaged"):
            scan_requests(store)


def test_a_store_out_of_order_is_read_the_general_way(tmp_path: Path) -> None:
    attempts = month()
    store = store_of(attempts, tmp_path)
    files = sorted(store.rglob("*.parquet"))
    # Same rows, same size and count, each file still one frame: only the order check can tell.
    # (Rewritten through the table so that its log vouches for the new files.)
    reordered = scan_attempts(store).collect().reverse()
    export.write_store(reordered, store, by="created_at")
    assert len(files) > 1
    assert not is_chain_ordered(store)
    assert_frame_equal(in_order(scan_requests(store)), in_order(requests(attempts.lazy())))


def test_a_store_written_from_attempts_out_of_chain_order_is_read_the_general_way(
    tmp_path: Path,
) -> None:
    first = (
        month()
        .head(1)
        .with_columns(pl.lit("o1").alias("original_id"), pl.lit(T0).alias("created_at"))
    )
    other = first.with_columns(pl.lit("o2").alias("original_id"), pl.lit("b").alias("attempt_id"))
    retry = first.with_columns(
        pl.lit("retry-1").alias("attempt_id"),
        pl.lit(1, first.schema["retry_attempt"]).alias("retry_attempt"),
        (pl.lit(T0) + timedelta(days=1)).alias("created_at"),
    )
    unordered = pl.concat([first, other, retry])  # the retry apart from its first attempt
    store = write_attempts(unordered, tmp_path / "callback_attempts")
    assert len(list(store.rglob("*.parquet"))) == 2  # so the chain lies in two files
    assert not is_chain_ordered(store)
    request, _ = in_order(scan_requests(store)).iter_rows(named=True)
    assert (request["original_id"], request["attempts"], request["instant"]) == ("o1", 2, T0)


def test_a_store_written_by_attempt_date_is_read_the_general_way(tmp_path: Path) -> None:
    store = export.write_store(chain_ordered(month()), tmp_path / "old", by="created_at")
    assert not is_chain_ordered(store)


@given(attempts())
def test_runs_of_any_written_store_equal_the_general_reduction(rows: list[dict[str, Any]]) -> None:
    frame = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)
    with tempfile.TemporaryDirectory() as tmp:
        store = store_of(frame, Path(tmp))
        assert is_chain_ordered(store)
        runs = in_order(scan_requests(store))
    assert_frame_equal(runs, in_order(requests(frame.lazy())))


@given(attempts())
def test_requests_of_a_frame_in_memory_in_any_order(rows: list[dict[str, Any]]) -> None:
    frame = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)
    want = in_order(requests(frame.lazy()))
    assert_frame_equal(in_order(requests_of(frame)), want)
    assert_frame_equal(in_order(requests_of(chain_ordered(frame))), want)
    assert_frame_equal(in_order(requests_of(frame.reverse())), want)


@given(attempts())
def test_the_integer_sort_gives_the_full_chain_order_or_falls_back_to_it(
    rows: list[dict[str, Any]],
) -> None:
    frame = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)  # ties within chains are frequent
    ordered, reqs = callback_store.chain_ordered(frame.reverse().lazy())
    assert_frame_equal(ordered, chain_ordered(frame))
    assert_frame_equal(in_order(reqs), in_order(requests(frame.lazy())))
