"""Synthetic callback chains: schema, determinism, chain invariants, variety, dirty copies."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from engine.demo.callbacks import (
    DEFAULT_TARGETS,
    generate_attempts,
    make_dirty_attempts,
)
from engine.schema import (
    CALLBACK_ATTEMPTS,
    CALLBACK_FIRST_PARTIES,
    CALLBACK_OUTCOMES,
    CALLBACK_SOURCE_TYPES,
    CALLBACK_TYPES,
)
from engine.validate.callback_attempts import (
    callback_gaps,
    not_callbacks,
    validate_callback_attempts,
)

START = datetime(2026, 10, 1, tzinfo=UTC)
KEY = ["source", "attempt_id"]


@pytest.fixture(scope="module")
def attempts() -> pl.DataFrame:
    return generate_attempts(seed=11, start=START, days=7)


def test_schema_order_and_sorting(attempts: pl.DataFrame) -> None:
    assert attempts.schema == pl.Schema(CALLBACK_ATTEMPTS)
    assert attempts["created_at"].is_sorted()
    assert attempts.select(KEY).is_unique().all()


def test_same_seed_same_frame_other_seed_other_frame() -> None:
    a = generate_attempts(seed=3, days=1, scale=0.3)
    assert a.equals(generate_attempts(seed=3, days=1, scale=0.3))
    assert not a.equals(generate_attempts(seed=4, days=1, scale=0.3))


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        generate_attempts(start=datetime(2026, 10, 1), days=1)  # noqa: DTZ001 - on purpose


def test_scale_multiplies_the_volume() -> None:
    small = generate_attempts(seed=1, days=3, scale=0.5)["original_id"].n_unique()
    large = generate_attempts(seed=1, days=3, scale=2.0)["original_id"].n_unique()
    assert 3.0 < large / small < 5.0


def test_chains_are_consistent(attempts: pl.DataFrame) -> None:
    chains = attempts.sort("retry_attempt").group_by("original_id", maintain_order=True)
    summary = chains.agg(
        pl.col("attempt_id").first().alias("first_id"),
        pl.col("retry_attempt").min().alias("lowest"),
        pl.col("retry_attempt").max().alias("highest"),
        pl.col("has_retry").last().alias("last_has_retry"),
        (pl.col("has_retry").head(pl.len() - 1)).all().alias("others_have_retry"),
        pl.col("created_at").is_sorted().alias("created_in_order"),
        pl.col("call_target_id").n_unique().alias("targets"),
        pl.col("customer_key").n_unique().alias("keys"),
    )
    assert (summary["first_id"] == summary["original_id"]).all()
    assert (summary["lowest"] == 0).all()
    assert summary["highest"].max() == 7
    assert not summary["last_has_retry"].any()
    assert summary["others_have_retry"].all()
    assert summary["created_in_order"].all()
    assert (summary["targets"] == 1).all()
    assert (summary["keys"] == 1).all()
    assert (attempts["ended_at"] >= attempts["created_at"]).all()


def test_a_retry_is_created_when_the_previous_attempt_ends(attempts: pl.DataFrame) -> None:
    ordered = attempts.sort("original_id", "retry_attempt")
    prev = ordered.select(
        pl.col("retry_attempt").shift(1).over("original_id").alias("prev_k"),
        pl.col("ended_at").shift(1).over("original_id").alias("prev_end"),
        "retry_attempt",
        "created_at",
    ).filter(pl.col("prev_k") == pl.col("retry_attempt") - 1)
    assert prev.height > 0
    assert (prev["created_at"] == prev["prev_end"]).all()


def test_every_value_and_shape_occurs(attempts: pl.DataFrame) -> None:
    for column, dtype in [
        ("outcome", CALLBACK_OUTCOMES),
        ("type", CALLBACK_TYPES),
        ("first_party_called", CALLBACK_FIRST_PARTIES),
        ("source_type", CALLBACK_SOURCE_TYPES),
    ]:
        assert set(attempts[column].cast(pl.String).unique()) == set(dtype.categories)
    assert attempts["call_target_id"].n_unique() == len(DEFAULT_TARGETS)
    punctuality = attempts["punctuality_ms"].drop_nulls()
    assert punctuality.min() < 0 < punctuality.max()
    canceled = attempts.filter(pl.col("outcome") == "canceled")
    assert canceled["callback_ms"].null_count() == canceled.height
    successful = attempts.filter(pl.col("outcome") == "successful")
    assert successful["talk_ms"].null_count() == 0
    waits = successful["customer_wait_ms"].drop_nulls()
    assert (waits <= 30_000).any()
    assert ((waits > 30_000) & (waits <= 60_000)).any()
    assert (waits > 60_000).any()
    assert 0 < successful["customer_wait_ms"].null_count() < successful.height


def test_customers_repeat_and_keys_look_like_hashes(attempts: pl.DataFrame) -> None:
    firsts = attempts.filter(pl.col("retry_attempt") == 0)
    keys = firsts["customer_key"].drop_nulls()
    assert keys.str.contains(r"^[0-9a-f]{64}$").all()
    counts = keys.value_counts()["count"]
    assert 0 < (counts >= 2).sum() < counts.len() / 2
    assert firsts["customer_key"].null_count() > 0


def test_some_chains_have_gaps(attempts: pl.DataFrame) -> None:
    gaps = callback_gaps(attempts.lazy()).collect()
    assert gaps.height > 0
    assert gaps["missing"].list.len().max() == 1


def test_dirty_copy_validates_back_to_the_clean_frame(attempts: pl.DataFrame) -> None:
    dirty, injected = make_dirty_attempts(attempts, seed=5, fraction=0.02)
    assert set(dirty.dtypes) == {pl.String()}
    assert (dirty["outcome"] == "Success").any()  # vendor spellings are there
    clean, bad = validate_callback_attempts(dirty.lazy())
    got = bad.collect().group_by("reason").len()
    assert dict(got.iter_rows()) == {r: n for r, n in injected.items() if r != "not_callbacks"}
    assert not_callbacks(dirty.lazy()).collect().height == injected["not_callbacks"]
    assert clean.collect().sort(KEY).equals(attempts.sort(KEY))


def test_dirty_copy_of_nothing_and_without_bad_rows() -> None:
    empty = pl.DataFrame(schema=CALLBACK_ATTEMPTS)
    dirty, injected = make_dirty_attempts(empty)
    assert dirty.height == 0
    assert sum(injected.values()) == 0
    some = generate_attempts(days=1, scale=0.2)
    dirty, injected = make_dirty_attempts(some, fraction=0.0)
    assert sum(injected.values()) == 0
    assert dirty.height == some.height
