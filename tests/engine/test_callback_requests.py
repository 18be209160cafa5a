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


def attempt_order(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["retry_attempt"], row["created_at"], row["attempt_id"])  # never null here


def one_run_per_chain(rows: list[dict[str, Any]]) -> bool:
    """Plainly: each chain's rows are adjacent, each strictly after the one before it."""
    keys = [tuple(r[k] for k in KEY) for r in rows]
    runs = [k for i, k in enumerate(keys) if i == 0 or k != keys[i - 1]]
    later = [attempt_order(rows[i - 1]) < attempt_order(rows[i]) for i in range(1, len(rows))]
    ordered_runs = all(later[i - 1] for i in range(1, len(rows)) if keys[i] == keys[i - 1])
    return len(runs) == len(set(runs)) and ordered_runs


def chains_in_random_order(rows: list[dict[str, Any]], rnd: random.Random) -> list[dict[str, Any]]:
    """Each chain's rows together, first to final; the chains in a random order (as the chains
    of a store lie across its files)."""
    chains: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in rows:
        chains.setdefault(tuple(r[k] for k in KEY), []).append(r)
    blocks = [sorted(chain, key=attempt_order) for chain in chains.values()]
    rnd.shuffle(blocks)
    return [r for block in blocks for r in block]


@given(attempts(), st.randoms(use_true_random=False))
def test_no_breaks_exactly_when_every_chain_is_one_run_in_order(
    rows: list[dict[str, Any]], rnd: random.Random
) -> None:
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    runs = chains_in_random_order(rows, rnd)
    for candidate in (rows, shuffled, runs, runs[::-1]):
        proven = breaks(frame(candidate).collect()) == 0
        assert proven == one_run_per_chain(candidate)
        if proven:  # then, and only then, the runs are the oracle's requests
            assert as_map(requests_from_runs(frame(candidate))) == oracle(rows)
    assert breaks(frame(runs).collect()) == 0
    assert breaks(ordered(rows)) == 0


def test_a_tie_or_a_split_chain_is_a_break() -> None:
    row = generate_attempts(days=1, scale=0.05).head(1)
    twin = row.with_columns(pl.lit("zz").alias("attempt_id"))
    assert breaks(pl.concat([row, twin])) == 0
    assert breaks(pl.concat([twin, row])) == 1  # the final attempt before the first
    assert breaks(pl.concat([row, row])) == 1  # the same attempt twice: no order between them
    other = twin.with_columns(pl.lit(None, pl.String).alias("original_id"))
    assert breaks(pl.concat([other, row, twin])) == 0  # chains in any order among themselves
    assert breaks(pl.concat([row, other, twin])) == 1  # one chain in two runs
    assert breaks(pl.concat([row, other, twin, other])) == 2


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
        assert part.equals(in_chain_order(part.lazy()).collect())
    assert pl.concat(stored).sort(CHAIN_ORDER).equals(attempts.sort(CHAIN_ORDER))
