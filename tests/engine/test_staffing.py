"""The ``staffing`` table (Erlang C) against pyworkforce, a published Erlang C table and a
plain-Python oracle; the seasonal naive forecast against a plain-Python mean of past weeks."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.pipeline.tables import staffing_rows
from engine.settings import BuildSettings, ThresholdOverride
from engine.tables import seasonal, staffing

T0 = datetime(2026, 10, 1, tzinfo=UTC)
NAIVE0 = datetime(2026, 9, 1, tzinfo=UTC).replace(tzinfo=None)  #: forecasting stamps are naive


def _volume(rows: list[tuple[str, str, int, int, int]]) -> pl.LazyFrame:
    """(queue, channel, offered, answered, handle_ms) rows at T0 + i intervals."""
    return pl.LazyFrame(
        {
            "interval_start_utc": [T0 + timedelta(minutes=15 * i) for i in range(len(rows))],
            "queue_id": [r[0] for r in rows],
            "channel": [r[1] for r in rows],
            "offered": [r[2] for r in rows],
            "answered": [r[3] for r in rows],
            "handle_ms": [r[4] for r in rows],
        }
    )


def _oracle_sl(n: int, a: float, t_s: float, aht_s: float) -> float:
    """Erlang C service level by the Erlang B recursion (an independent algorithm)."""
    b = 1.0
    for k in range(1, n + 1):
        b = a * b / (k + a * b)
    c = n * b / (n - a * (1 - b))
    return 1 - c * math.exp(-(n - a) * t_s / aht_s)


# (calls per 30 min, AHT s, answer-time target s, SL target) -> agents, from pyworkforce 0.5.1
# ErlangC(...).required_positions(service_level, max_occupancy=1.0)["raw_positions"], and the
# classic textbook example (100 calls / 30 min, AHT 180 s, 80/20 -> 14 agents).
_PUBLISHED: list[tuple[int, int, int, float, int]] = [
    (100, 180, 20, 0.8, 14),
]


@pytest.mark.parametrize(("calls", "aht", "t", "target", "agents"), _PUBLISHED)
def test_the_textbook_erlang_c_example(
    calls: int, aht: int, t: int, target: float, agents: int
) -> None:
    settings = BuildSettings(interval_minutes=30, sl_default_ms={"voice": t * 1000},
                             sl_target={"voice": target})  # fmt: skip
    got = staffing.build(_volume([("q", "voice", calls, calls, calls * aht * 1000)]),
                         settings=settings).collect()  # fmt: skip
    assert got["agents_required"].to_list() == [agents]
    assert got["load_erlangs"][0] == pytest.approx(10.0)
    assert got["service_level"][0] == pytest.approx(0.8883500191794669)
    assert got["wait_probability"][0] == pytest.approx(0.1741319335950498)


_CASES = [
    (calls, aht, t, target)
    for calls in (1, 7, 40, 100, 350, 1200)
    for aht in (45, 180, 600)
    for t in (5, 20, 60)
    for target in (0.5, 0.8, 0.95)
]


def test_agents_match_pyworkforce() -> None:
    """pyworkforce searches upwards from ``round(A + 1)``, so where a smaller count above A
    already reaches the target it answers that start: we agree with it above that start and
    on the service level of every count (the oracle test below proves ours the fewest)."""
    erlang = pytest.importorskip("pyworkforce.queuing").ErlangC
    plans, refs = [], []
    for calls, aht, t, target in _CASES:
        settings = BuildSettings(interval_minutes=30, sl_default_ms={"voice": t * 1000},
                                 sl_target={"voice": target})  # fmt: skip
        row = ("q", "voice", calls, calls, calls * aht * 1000)
        plans.append(staffing.build(_volume([row]), settings=settings))
        refs.append(erlang(transactions=calls, aht=aht / 60, asa=t / 60, interval=30))
    got = pl.concat(pl.collect_all(plans))
    for row, ref, (_, _, _, target) in zip(got.iter_rows(named=True), refs, _CASES, strict=True):
        n = row["agents_required"]
        want = ref.required_positions(service_level=target, max_occupancy=1.0)
        assert want["raw_positions"] == max(n, round(ref.intensity + 1))
        assert row["load_erlangs"] == pytest.approx(ref.intensity, rel=1e-12)
        assert row["service_level"] == pytest.approx(ref.service_level(n), rel=1e-9)
        assert row["wait_probability"] == pytest.approx(ref.waiting_probability(n), rel=1e-9)
    agree = sum(r == round(f.intensity + 1) or r > round(f.intensity + 1)
                for r, f in zip(got["agents_required"], refs, strict=True))  # fmt: skip
    assert agree >= len(_CASES) * 3 // 4  # the comparison is not vacuous


@given(
    offered=st.integers(1, 3000),
    aht_s=st.integers(5, 3600),
    t_s=st.integers(0, 3600),
    target=st.floats(0.05, 0.999),
)
def test_the_fewest_agents_that_reach_the_target(
    offered: int, aht_s: int, t_s: int, target: float
) -> None:
    settings = BuildSettings(sl_default_ms={"voice": t_s * 1000}, sl_target={"voice": target})
    row = ("q", "voice", offered, offered, offered * aht_s * 1000)
    got = staffing.build(_volume([row]), settings=settings).collect().row(0, named=True)
    a = offered * aht_s / 900
    n = got["agents_required"]
    assert got["load_erlangs"] == pytest.approx(a)
    assert n > a
    assert _oracle_sl(n, a, t_s, aht_s) >= target - 1e-9
    assert got["service_level"] == pytest.approx(_oracle_sl(n, a, t_s, aht_s), abs=1e-9)
    if n - 1 > a:
        assert _oracle_sl(n - 1, a, t_s, aht_s) < target + 1e-9


def test_idle_rows_default_aht_and_thresholds_per_queue() -> None:
    settings = BuildSettings(
        staffing_default_aht_ms=600_000,
        sl_overrides=(ThresholdOverride(queue_id="vip", channel="voice", threshold_ms=10_000),),
    )
    rows = [("q", "voice", 0, 0, 0), ("q", "email", 9, 0, 0), ("vip", "voice", 5, 5, 900_000),
            ("q", "chat", 5, 5, 900_000), ("q", "chat", 2, 2, 0)]  # fmt: skip
    got = staffing.build(_volume(rows), settings=settings).collect()
    assert got.columns == list(staffing.SCHEMA)
    assert got["agents_required"].to_list()[0] == 0
    assert got["service_level"][0] is None
    assert got["occupancy"][0] is None
    assert got["aht_ms"].to_list() == [600_000.0, 600_000.0, 180_000.0, 180_000.0, 600_000.0]
    assert got["load_erlangs"][1] == pytest.approx(9 * 600 / 900)
    assert got["threshold_ms"].to_list() == [20_000, 3_600_000, 10_000, 60_000, 60_000]
    assert got["sl_target"].to_list() == [0.8, 0.9, 0.8, 0.8, 0.8]
    assert got["queue_id"].to_list() == ["q", "q", "vip", "q", "q"]


@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from(["q", "vip"]),
            st.sampled_from(["voice", "chat"]),
            st.integers(0, 400),
            st.integers(0, 400),
            st.integers(0, 90_000_000),
        ),
        max_size=12,
    ),
    chunk=st.integers(1, 5),
)
def test_the_staffing_of_a_frame_chunk_by_chunk_is_the_whole_one(
    rows: list[tuple[str, str, int, int, int]], chunk: int
) -> None:
    settings = BuildSettings(staffing_default_aht_ms=240_000)
    frame = _volume(rows).collect()
    whole = staffing.build(frame.lazy(), settings=settings).collect()
    got = staffing_rows(frame, settings=settings, chunk_rows=chunk)
    # the same rows in the same order, integers and nulls exact; floats to the last bits
    # (Polars' float kernels can round an element differently by the length of its array)
    assert_frame_equal(got, whole, rel_tol=1e-12, abs_tol=0.0)
    assert got["agents_required"].to_list() == whole["agents_required"].to_list()
    assert got.schema == pl.Schema(staffing.SCHEMA)


def test_a_target_out_of_range_is_refused() -> None:
    with pytest.raises(ValueError, match=r"targets must be above 0 and at most 0\.999"):
        BuildSettings(sl_target={"voice": 1.0})


def _history(weeks: int) -> pl.LazyFrame:
    t0 = NAIVE0
    n = weeks * 7 * 96
    return pl.LazyFrame(
        {
            "unique_id": ["a|voice|offered"] * n + ["b|chat|offered"] * n,
            "ds": [t0 + timedelta(minutes=15 * i) for i in range(n)] * 2,
            "y": [float((i * 7919) % 31) for i in range(2 * n)],
        }
    )


def test_the_seasonal_naive_is_the_mean_of_past_weeks() -> None:
    history = _history(5).collect()
    start = NAIVE0 + timedelta(days=30)  # inside the history: a backtest
    got = seasonal.forecast(history.lazy(), start=start, days=2, interval_minutes=15,
                            seasons=3).collect()  # fmt: skip
    assert got.height == 2 * 2 * 96
    known = {(r["unique_id"], r["ds"]): r["y"] for r in history.iter_rows(named=True)}
    for r in got.iter_rows(named=True):
        past = [(r["unique_id"], r["ds"] - timedelta(days=7 * k)) for k in (1, 2, 3)]
        values = [known[p] for p in past if p in known and p[1] < start]
        assert r["y_hat"] == pytest.approx(sum(values) / len(values))


def test_the_forecast_reads_no_history_after_its_start() -> None:
    history = _history(2)
    start = NAIVE0 + timedelta(days=7)
    later = history.filter(pl.col("ds") >= start).with_columns(y=pl.lit(1e9))
    spoiled = pl.concat([history.filter(pl.col("ds") < start), later])
    a = seasonal.forecast(history, start=start, days=7, interval_minutes=15).collect()
    b = seasonal.forecast(spoiled, start=start, days=7, interval_minutes=15).collect()
    assert a.equals(b)
    assert a["y_hat"].null_count() == 0
    with pytest.raises(ValueError, match="forecast days must be 1 to 7"):
        seasonal.forecast(history, start=start, days=8, interval_minutes=15)


def test_the_load_of_an_interval_across_a_dst_jump_is_over_its_own_length() -> None:
    """Lord Howe's fall-back night at 60 minutes: the interval spanning the jump lasts 90
    minutes, so 20 contacts of 180 s load it 2/3 of an Erlang, not 1 (once: the nominal 60)."""
    from engine.interval import interval_grid

    settings = BuildSettings(interval_minutes=60, tz="Australia/Lord_Howe")
    night = datetime(2026, 4, 4, 12, tzinfo=UTC)
    grid = interval_grid(night, night + timedelta(hours=6), minutes=60, tz=settings.tz)
    lengths = grid["interval_end_utc"] - grid["interval_start_utc"]
    assert sorted(set(lengths.dt.total_minutes())) == [60, 90]  # the jump is in the window
    table = grid.with_columns(queue_id=pl.lit("q"), channel=pl.lit("voice"), offered=pl.lit(20),
                              answered=pl.lit(20), handle_ms=pl.lit(20 * 180_000))  # fmt: skip
    got = staffing.build(table.lazy(), settings=settings).collect()
    minutes = lengths.dt.total_minutes().to_list()
    assert got["load_erlangs"].to_list() == [20 * 180 / (60 * m) for m in minutes]
    assert got["load_erlangs"].min() == pytest.approx(2 / 3)
    # without interval ends (a table of starts only), the configured length
    starts = table.drop("interval_end_utc").lazy()
    assert staffing.build(starts, settings=settings).collect()[
        "load_erlangs"
    ].unique().to_list() == [1.0]
