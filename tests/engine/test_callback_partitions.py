"""Requests in parts and from one frame: the same rows and tables as in one pass.

Adversarial attempts (as in benchmarks/callbacks_check.py): chains sharing an ``original_id``
across sources, equal retry numbers and creation times in one chain (ties broken by
``attempt_id``), null attributes, names and keys, first attempts on interval and window edges.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.pipeline.callbacks import callback_tables
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import (
    REQUEST_COLUMNS,
    customer_counts,
    customers,
    partitioned_requests,
    partitions_for,
    requests,
)
from tests import oracle_callbacks

START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = (START, START + timedelta(hours=2))
EVERYTHING = [pl.lit(value=True)]


def maybe(values: list[Any]) -> st.SearchStrategy[Any]:
    return st.sampled_from([None, *values])


@st.composite
def attempts(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Attempts with unique (``source``, ``attempt_id``), not in chain order."""
    rows = []
    for i in range(draw(st.integers(0, 30))):
        offset_ms = draw(st.sampled_from([-1, 0, 1, 899_999, 900_000, 7_199_999, 7_200_000]))
        rows.append(
            {
                "source": draw(st.sampled_from(["m", "n"])),
                "attempt_id": f"a{draw(st.integers(0, 99)):02d}-{i}",
                "original_id": draw(maybe(["o1", "o2", "o3", "o4"])),
                "retry_attempt": draw(st.sampled_from([0, 0, 1, 2, 6])),
                "call_target_id": draw(maybe(["t1", "t2"])),
                "call_target_name": draw(maybe(["A", "B", ""])),
                "type": draw(maybe(["asap", "scheduled"])),
                "first_party_called": draw(maybe(["agent", "customer"])),
                "source_type": draw(maybe(["voice", "digital"])),
                "created_at": START + timedelta(milliseconds=offset_ms),
                "outcome": draw(st.sampled_from(["successful", "failure", "other"])),
                "callback_ms": draw(maybe([0, 5_000])),
                "estimated_callback_ms": draw(maybe([0, 240_000])),
                "customer_wait_ms": draw(maybe([0, 30_000, 30_001, 60_001])),
                "talk_ms": draw(maybe([0, 300_000])),
                "punctuality_ms": draw(maybe([-60_000, 45_000])),
                "customer_key": draw(maybe(["k1", "k2"])),
            }
        )
    return rows


def frame(rows: list[dict[str, Any]]) -> pl.LazyFrame:
    return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).lazy()


def in_order(reqs: pl.LazyFrame) -> pl.DataFrame:
    return reqs.collect().sort("source", "original_id", nulls_last=True)


@given(attempts())
def test_requests_pick_the_oracles_first_and_final_attempts(rows: list[dict[str, Any]]) -> None:
    got = in_order(requests(frame(rows)))
    columns = ["instant", "call_target_name", "customer_key", "outcome", "retries", "attempts"]
    key = ("source", "original_id")
    want = {
        tuple(r["first"][k] for k in key): tuple(r[c] for c in columns)
        for r in oracle_callbacks.requests(rows)
    }
    assert dict(zip(got.select(key).rows(), got.select(columns).rows(), strict=True)) == want


@given(attempts(), st.integers(2, 5))
def test_partitioned_requests_equal_one_pass(rows: list[dict[str, Any]], parts: int) -> None:
    where = [pl.col("instant") < WINDOW[1]]
    one = partitioned_requests(frame(rows), where=where, columns=REQUEST_COLUMNS)
    split = partitioned_requests(
        frame(rows), where=where, columns=REQUEST_COLUMNS, partitions=parts
    )
    assert_frame_equal(in_order(split), in_order(one))


@given(attempts(), st.integers(1, 4))
def test_callback_tables_equal_each_tables_build(rows: list[dict[str, Any]], parts: int) -> None:
    settings = BuildSettings()
    both = callback_tables(frame(rows), window=WINDOW, settings=settings, partitions=parts)
    got = pl.collect_all(list(both))
    for module, table in zip((callback_intervals, retry_outcomes), got, strict=True):
        assert_frame_equal(
            table, module.build(frame(rows), window=WINDOW, settings=settings).collect()
        )


@given(attempts(), st.integers(1, 4))
def test_a_row_id_join_gives_the_same_requests(rows: list[dict[str, Any]], parts: int) -> None:
    where = [pl.col("instant") < WINDOW[1]]
    indexed = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).with_row_index("_row").lazy()
    by_row = partitioned_requests(
        indexed, where=where, columns=REQUEST_COLUMNS, partitions=parts, row_id="_row"
    )
    by_id = partitioned_requests(frame(rows), where=where, columns=REQUEST_COLUMNS)
    assert_frame_equal(in_order(by_row), in_order(by_id))


@hypothesis_settings(max_examples=25)
@given(attempts(), st.integers(1, 3))
def test_tables_joined_on_a_parquet_scans_row_index_equal_each_build(
    rows: list[dict[str, Any]], parts: int
) -> None:
    settings = BuildSettings()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.parquet"
        pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).write_parquet(path, row_group_size=7)
        scan = pl.scan_parquet(path, row_index_name="_row")
        both = callback_tables(
            scan, window=WINDOW, settings=settings, partitions=parts, row_id="_row"
        )
        got = pl.collect_all(list(both), engine="streaming")
    for module, table in zip((callback_intervals, retry_outcomes), got, strict=True):
        assert_frame_equal(
            table, module.build(frame(rows), window=WINDOW, settings=settings).collect()
        )


@given(attempts(), st.sampled_from([None, "t1", "t1,t2"]))
def test_the_document_joined_on_a_row_id_is_the_same(
    rows: list[dict[str, Any]], target: str | None
) -> None:
    indexed = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).with_row_index("_row").lazy()
    window = {"begin": WINDOW[0], "end": WINDOW[1], "call_target_id": target}
    got = callback_metrics.document(indexed, row_id="_row", **window)
    assert got == callback_metrics.document(frame(rows), **window)


@given(attempts())
def test_customer_counts_equal_customers(rows: list[dict[str, Any]]) -> None:
    reqs = requests(frame(rows))
    assert_frame_equal(customer_counts(reqs).collect(), reqs.select(customers()).collect())


def test_partitions_for_sizes() -> None:
    assert [partitions_for(n) for n in (0, 1, 2_500_000, 2_500_001, 10_000_000)] == [1, 1, 1, 2, 4]
    with pytest.raises(ValueError, match="at least 1"):
        partitioned_requests(frame([]), where=EVERYTHING, columns=REQUEST_COLUMNS, partitions=0)
