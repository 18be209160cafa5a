"""Tests of the synthetic generator: determinism, the canonical contract, realism, dirty copies.

The checks of ``make_dirty`` are plain Python over the rows, written from the rules, not from the
generator's code.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.demo.contacts import (
    DEFAULT_QUEUES,
    QueueSpec,
    generate_contacts,
    generate_segments,
    make_dirty,
)
from engine.schema import CHANNELS, CONTACTS, DIRECTIONS, OUTCOMES

START = datetime(2026, 10, 1, tzinfo=UTC)  # a Thursday
TIMESTAMPS = ("offered_at", "answered_at", "ended_at", "updated_at")


def _ms(column: str) -> pl.Expr:
    return pl.duration(milliseconds=pl.col(column))


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return generate_contacts(seed=11, days=14, scale=0.25)


def test_same_seed_gives_the_same_frame() -> None:
    one = generate_contacts(seed=3, days=3, scale=0.2)
    assert_frame_equal(one, generate_contacts(seed=3, days=3, scale=0.2))
    assert not one.equals(generate_contacts(seed=4, days=3, scale=0.2))


def test_schema_and_order(frame: pl.DataFrame) -> None:
    assert frame.schema == pl.Schema(CONTACTS)
    assert frame.height > 10_000
    assert frame["offered_at"].is_sorted()
    assert frame.select(pl.struct("source", "contact_id", "segment_no").is_unique().all()).item()
    assert frame["source"].unique().to_list() == ["synthetic"]


def test_every_enum_value_and_edge_occurs(frame: pl.DataFrame) -> None:
    assert set(frame["channel"].unique()) == set(CHANNELS.categories)
    assert set(frame["direction"].unique()) == set(DIRECTIONS.categories)
    assert set(frame["outcome"].unique()) == set(OUTCOMES.categories)
    abandoned = frame.filter(outcome="abandoned")
    assert (abandoned["wait_ms"] < 5_000).sum() > 0, "short abandons must occur"
    assert (frame["hold_ms"] > 0).sum() > 0
    assert (frame["csat_responses"] > 0).sum() > 0


def test_times_and_durations_are_consistent(frame: pl.DataFrame) -> None:
    checks = frame.select(
        wait_non_negative=(pl.col("wait_ms") >= 0).all(),
        handling_non_negative=(pl.min_horizontal("talk_ms", "hold_ms", "acw_ms") >= 0).all(),
        answered_after_wait=(pl.col("answered_at") == pl.col("offered_at") + _ms("wait_ms")).all(),
        answered_at_only_if_answered=(
            pl.col("answered_at").is_null() == (pl.col("outcome") != "answered")
        ).all(),
        conversation=(pl.col("ended_at") == pl.col("answered_at") + _ms("talk_ms") + _ms("hold_ms"))
        .filter(pl.col("outcome") == "answered")
        .all(),
        unanswered_end=(pl.col("ended_at") == pl.col("offered_at") + _ms("wait_ms"))
        .filter(pl.col("outcome").is_in(["abandoned", "flow_out"]))
        .all(),
        unanswered_ended=pl.col("ended_at")
        .filter(pl.col("outcome").is_in(["abandoned", "flow_out"]))
        .is_not_null()
        .all(),
        no_handling_unless_completed=(
            pl.sum_horizontal("talk_ms", "hold_ms", "acw_ms", "csat_responses") == 0
        )
        .filter((pl.col("outcome") != "answered") | pl.col("ended_at").is_null())
        .all(),
        open_has_no_answer_or_end=pl.all_horizontal(
            pl.col("answered_at", "ended_at").is_null() | (pl.col("outcome") != "open")
        ).all(),
        updated=(
            pl.col("updated_at") == pl.coalesce("ended_at", "answered_at", "offered_at")
        ).all(),
        whole_ms=pl.all_horizontal(
            [(pl.col(c).dt.epoch("us") % 1_000 == 0).fill_null(True) for c in TIMESTAMPS]
        ).all(),
        chat_messages=(pl.col("messages") > 0)
        .filter(pl.col("channel").is_in(["chat", "messaging"]))
        .all(),
        csat=(
            pl.when(pl.col("csat_responses") == 1)
            .then(pl.col("csat_score").is_between(1, 5))
            .otherwise((pl.col("csat_responses") == 0) & (pl.col("csat_score") == 0))
        ).all(),
    )
    failed = [name for name, ok in checks.row(0, named=True).items() if not ok]
    assert failed == []
    assert frame["updated_at"].null_count() == 0


def test_threshold_comes_from_the_queue(frame: pl.DataFrame) -> None:
    expected = {q.queue_id: q.sl_threshold_s for q in DEFAULT_QUEUES}
    got = frame.group_by("queue_id").agg(pl.col("sl_threshold_ms").unique())
    for queue_id, values in got.iter_rows():
        seconds = expected[queue_id]
        assert values == [None if seconds is None else seconds * 1000]


def test_transfers_are_second_segments(frame: pl.DataFrame) -> None:
    segments = frame.sort("contact_id", "segment_no").group_by("contact_id", maintain_order=True)
    chains = segments.agg(
        pl.col("segment_no"),
        pl.col("outcome"),
        pl.col("queue_id"),
        pl.col("channel"),
        pl.col("offered_at"),
        pl.col("ended_at"),
    ).filter(pl.col("segment_no").list.len() > 1)
    assert chains.height > 0
    for row in chains.iter_rows(named=True):
        assert row["segment_no"] == [1, 2]
        assert row["outcome"][0] == "flow_out"
        assert row["channel"] == ["voice", "voice"]
        assert row["queue_id"][0] != row["queue_id"][1]
        assert row["offered_at"][1] == row["ended_at"][0] >= row["offered_at"][0]
    assert (frame.filter(segment_no=1)["outcome"] == "flow_out").sum() == chains.height


def test_as_of_cuts_the_window() -> None:
    as_of = START + timedelta(days=1, hours=11, minutes=7)
    frame = generate_contacts(seed=5, days=2, scale=0.3, as_of=as_of)
    assert frame["offered_at"].max() <= as_of
    assert frame.select(pl.max_horizontal(*TIMESTAMPS).max()).item() <= as_of
    still_open = frame.filter(outcome="open")
    assert still_open.height > 0
    waited = (pl.lit(as_of) - pl.col("offered_at")).dt.total_milliseconds()
    assert still_open.select((pl.col("wait_ms") == waited).all()).item()
    talking = frame.filter(pl.col("outcome") == "answered", pl.col("ended_at").is_null())
    assert talking.height > 0
    assert generate_contacts(days=1, as_of=START - timedelta(hours=1)).is_empty()


def test_weekday_and_intraday_shape(frame: pl.DataFrame) -> None:
    inbound = frame.filter(direction="inbound", segment_no=1)
    days = inbound.group_by(day=pl.col("offered_at").dt.date()).agg(pl.len())
    weekend = days["day"].dt.weekday() >= 6
    assert days.filter(~weekend)["len"].mean() > 2 * days.filter(weekend)["len"].mean()
    hours = Counter(inbound["offered_at"].dt.hour().to_list())
    assert hours[11] > 5 * hours[3]


def test_intraday_shape_follows_the_local_clock() -> None:
    zone = "America/New_York"
    frame = generate_contacts(seed=2, days=7, scale=0.2, time_zone=zone)
    hours = Counter(frame["offered_at"].dt.convert_time_zone(zone).dt.hour().to_list())
    assert hours[11] > 5 * hours[3]


def test_a_single_voice_queue_has_no_transfers() -> None:
    queue = QueueSpec("v", "Voice", "voice", 2000.0, 300.0, 30.0)
    frame = generate_contacts(seed=1, days=2, queues=[queue])
    assert frame.height > 0
    assert frame["segment_no"].max() == 1


def test_unknown_channel_and_naive_start_are_refused() -> None:
    with pytest.raises(ValueError, match="fax"):
        QueueSpec("f", "Fax", "fax", 1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="naive"):
        generate_contacts(start=datetime(2026, 10, 1))  # noqa: DTZ001 - the point of the test


def test_generate_segments_hits_n() -> None:
    for n in (50_000, 300_000):
        assert abs(generate_segments(n, seed=n, days=7).height - n) <= 0.05 * n


# --- make_dirty, checked row by row in plain Python -----------------------------------------


def _instant(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return f"{value:%Y-%m-%dT%H:%M:%S}.{value.microsecond // 1000:03d}Z"


def _violations(row: dict[str, Any]) -> list[str]:
    found = []
    if row["contact_id"] is None:
        found.append("missing_id")
    if row["offered_at"] is None:
        found.append("missing_timestamp")
    times: dict[str, datetime | None] = {}
    for name in TIMESTAMPS:
        try:
            times[name] = _instant(row[name])
        except ValueError:
            found.append("unparsable_timestamp")
            times[name] = None
    if row["channel"] not in CHANNELS.categories:
        found.append("unknown_channel")
    if row["direction"] not in DIRECTIONS.categories:
        found.append("unknown_direction")
    if row["outcome"] not in OUTCOMES.categories:
        found.append("unknown_outcome")
    if min(row["wait_ms"], row["talk_ms"], row["hold_ms"], row["acw_ms"]) < 0:
        found.append("negative_duration")
    offered, answered, ended = times["offered_at"], times["answered_at"], times["ended_at"]
    if offered is not None and ended is not None and ended < offered:
        found.append("end_before_offer")
    if offered is not None and answered is not None and answered < offered:
        found.append("answer_before_offer")
    return found


def test_make_dirty_counts_what_it_injects() -> None:
    clean = generate_contacts(seed=8, days=2, scale=0.3)
    dirty, counts = make_dirty(clean, seed=8, fraction=0.05)

    strings = {"channel", "direction", "outcome", *TIMESTAMPS}
    assert dirty.columns == clean.columns
    for name, dtype in clean.schema.items():
        assert dirty.schema[name] == (pl.String() if name in strings else dtype)

    clean_rows = [
        {k: _iso(v) if k in TIMESTAMPS else (str(v) if k in strings else v) for k, v in r.items()}
        for r in clean.iter_rows(named=True)
    ]
    clean_keys = {(r["source"], r["contact_id"], r["segment_no"]) for r in clean_rows}

    found: Counter[str] = Counter()
    valid: list[dict[str, Any]] = []
    for row in dirty.iter_rows(named=True):
        reasons = _violations(row)
        assert len(reasons) <= 1, f"a bad row must break one rule: {reasons}"
        if reasons:
            found[reasons[0]] += 1
            key = (row["source"], row["contact_id"], row["segment_no"])
            assert key not in clean_keys, "bad rows must have a fresh identity"
        else:
            valid.append(row)

    versions: defaultdict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for row in valid:
        versions[(row["source"], row["contact_id"], row["segment_no"])].append(row)
    survivors = []
    for key, rows in versions.items():
        by_update: defaultdict[str, set[tuple[Any, ...]]] = defaultdict(set)
        for row in rows:
            by_update[row["updated_at"]].add(tuple(row.values()))
        conflicts = [len(c) for c in by_update.values() if len(c) > 1]
        if conflicts:
            assert key not in clean_keys
            found["conflicting_duplicate"] += len(rows)
            continue
        latest = max(by_update, key=datetime.fromisoformat)
        survivors.append(next(iter(by_update[latest])))

    assert dict(found) == {reason: n for reason, n in counts.items() if n}
    assert set(counts) == {
        "missing_id", "missing_timestamp", "unparsable_timestamp", "end_before_offer",
        "answer_before_offer", "negative_duration", "unknown_channel", "unknown_direction",
        "unknown_outcome", "conflicting_duplicate",
    }  # fmt: skip
    assert all(n > 0 for n in counts.values())
    assert counts["conflicting_duplicate"] % 2 == 0
    assert 0.03 * clean.height <= sum(counts.values()) <= 0.07 * clean.height
    assert Counter(survivors) == Counter(tuple(r.values()) for r in clean_rows)
    assert dirty.height > clean.height + sum(counts.values()), "duplicates and old versions"


def test_make_dirty_is_seeded() -> None:
    clean = generate_contacts(seed=1, days=1, scale=0.1)
    first = make_dirty(clean, seed=2)
    assert_frame_equal(first[0], make_dirty(clean, seed=2)[0])
    assert first[1] == make_dirty(clean, seed=2)[1]
    assert make_dirty(clean, fraction=0.0)[0].height == clean.height
