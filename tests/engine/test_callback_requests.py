"""Callback requests: one plan, exact whatever the row order, checked against the oracle.

Adversarial attempts (as in benchmarks/callbacks_check.py): chains sharing an ``original_id``
across sources, null ``original_id``s, equal retry numbers and creation times in one chain
(ties broken by ``attempt_id``), null attributes, names and keys, first attempts on interval
and window edges. The plan sorts into :data:`engine.tables.callback_requests.CHAIN_ORDER` and
reduces each chain's run; :func:`engine.tables.callback_requests.requests_from_runs` alone (the
store's fast path) is checked on rows already in that order.
"""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.demo.callbacks import generate_attempts
from engine.pipeline.callbacks import build_callbacks, callback_tables
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals, callback_metrics, retry_outcomes
from engine.tables.callback_requests import (
    CHAIN_ORDER,
    chain_order_breaks,
    in_chain_order,
    requests,
    requests_from_runs,
)
from tests import oracle_callbacks

START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = (START, START + timedelta(hours=2))
KEY = ("source", "original_id")


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


def ordered(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return in_chain_order(frame(rows)).collect()


def breaks(attempts: pl.DataFrame) -> int:
    return int(chain_order_breaks(attempts.lazy()).collect(engine="streaming").item())


def oracle(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    columns = ["instant", "call_target_name", "customer_key", "outcome", "retries", "attempts"]
    return {
        tuple(r["first"][k] for k in KEY): tuple(r[c] for c in columns)
        for r in oracle_callbacks.requests(rows)
    }


def as_map(reqs: pl.LazyFrame) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    columns = ["instant", "call_target_name", "customer_key", "outcome", "retries", "attempts"]
    got = in_order(reqs)
    return dict(zip(got.select(KEY).rows(), got.select(columns).rows(), strict=True))


@given(attempts(), st.randoms(use_true_random=False))
def test_requests_pick_the_oracles_first_and_final_attempts_in_any_order(
    rows: list[dict[str, Any]], rnd: random.Random
) -> None:
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    assert as_map(requests(frame(shuffled))) == oracle(rows)
    assert as_map(requests(frame(shuffled[::-1]))) == oracle(rows)


@given(attempts())
def test_runs_of_rows_in_chain_order_are_the_oracles_requests(rows: list[dict[str, Any]]) -> None:
    assert as_map(requests_from_runs(ordered(rows).lazy())) == oracle(rows)


@hypothesis_settings(max_examples=25)
@given(attempts())
def test_requests_from_a_parquet_scan_in_small_row_groups_are_the_same(
    rows: list[dict[str, Any]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attempts.parquet"
        pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS).write_parquet(path, row_group_size=7)
        got = in_order(requests(pl.scan_parquet(path)))
    assert_frame_equal(got, in_order(requests(frame(rows))))


@given(attempts())
def test_no_breaks_exactly_when_the_rows_are_in_chain_order(rows: list[dict[str, Any]]) -> None:
    unordered = pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)
    assert breaks(ordered(rows)) == 0
    # (source, attempt_id) is unique, so chain order is a strict total order of the rows.
    assert (breaks(unordered) == 0) == unordered.equals(ordered(rows))


def test_a_tie_in_a_chain_is_a_break() -> None:
    row = generate_attempts(days=1, scale=0.05).head(1)
    twin = row.with_columns(pl.lit("zz").alias("attempt_id"))
    assert breaks(pl.concat([row, twin])) == 0
    assert breaks(pl.concat([row, row])) == 1  # the same attempt twice: no order between them
    nulls_first = pl.concat([twin.with_columns(pl.lit(None, pl.String).alias("original_id")), row])
    assert breaks(nulls_first) == 0
    assert breaks(nulls_first.reverse()) == 1


@given(attempts(), st.sampled_from([None, "t1", "t1,t2"]))
def test_the_document_does_not_depend_on_the_row_order(
    rows: list[dict[str, Any]], target: str | None
) -> None:
    window = {"begin": WINDOW[0], "end": WINDOW[1], "call_target_id": target}
    want = callback_metrics.document(requests(frame(rows)), **window)
    assert callback_metrics.document(requests(frame(rows[::-1])), **window) == want
    assert callback_metrics.document(requests_from_runs(ordered(rows).lazy()), **window) == want
    assert want == oracle_callbacks.document(rows, WINDOW[0], WINDOW[1], call_target_id=target)


@given(attempts())
def test_callback_tables_equal_each_tables_build(rows: list[dict[str, Any]]) -> None:
    settings = BuildSettings()
    both = callback_tables(requests(frame(rows[::-1])), window=WINDOW, settings=settings)
    got = pl.collect_all(list(both))
    for module, table in zip((callback_intervals, retry_outcomes), got, strict=True):
        want = module.build(requests(frame(rows)), window=WINDOW, settings=settings).collect()
        assert_frame_equal(table, want)


def test_the_store_is_written_in_chain_order() -> None:
    attempts = generate_attempts(days=2, scale=0.3)
    assert breaks(attempts) > 0  # generated by creation time
    with tempfile.TemporaryDirectory() as tmp:
        build_callbacks(
            attempts.lazy(), settings=BuildSettings(), out_dir=Path(tmp), formats=("parquet",)
        )
        files = sorted((Path(tmp) / "store" / "callback_attempts").glob("**/*.parquet"))
        assert len(files) >= 2
        stored = [
            pl.read_parquet(f, hive_partitioning=False).select(attempts.columns) for f in files
        ]
    for part in stored:
        assert breaks(part) == 0
    assert pl.concat(stored).sort(CHAIN_ORDER).equals(attempts.sort(CHAIN_ORDER))
