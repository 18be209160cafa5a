"""The forecasting format, consumed by real forecasting tooling (Nixtla's utilsforecast and
coreforecast), and the export commands."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from coreforecast.grouped_array import GroupedArray
from coreforecast.lag_transforms import Lag
from utilsforecast.losses import mae
from utilsforecast.preprocessing import fill_gaps

from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.forecast import long_format
from engine.validate.contacts import validate_contacts

START = datetime(2026, 10, 5, tzinfo=UTC)  # a Monday
DAYS = 21
WEEK = 7 * 96


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    s = BuildSettings()
    window = (START, START + timedelta(days=DAYS))
    contacts = generate_contacts(seed=4, start=START, days=DAYS, scale=0.5).lazy()
    return callvolume.build(contacts, window=window, settings=s).collect()


def test_series_are_complete_and_regular_for_the_libraries(table: pl.DataFrame) -> None:
    long = long_format(table.lazy()).collect()
    assert long.columns == ["unique_id", "ds", "y"]
    assert long.schema["ds"] == pl.Datetime("us")  # naive: what the libraries expect
    filled = fill_gaps(long, freq="15m", start="per_serie", end="per_serie")
    assert filled.height == long.height  # no gaps: zero-filled intervals
    sizes = long.group_by("unique_id").len()["len"].unique().to_list()
    assert sizes == [DAYS * 96]
    offered = long.filter(pl.col("unique_id").str.ends_with("|offered"))["y"].sum()
    assert offered == table["offered"].sum()


def test_seasonal_naive_forecast_beats_a_flat_one(table: pl.DataFrame) -> None:
    long = long_format(table.lazy(), metrics=("offered",)).collect()
    sizes = long.group_by("unique_id", maintain_order=True).len()["len"].to_numpy()
    indptr = np.append(0, np.cumsum(sizes)).astype(np.int32)
    ga = GroupedArray(long["y"].to_numpy(), indptr)
    last_week = Lag(WEEK).transform(ga)  # seasonal naive: the same interval a week earlier
    scored = long.with_columns(
        seasonal=pl.Series(last_week), flat=pl.col("y").mean().over("unique_id")
    ).filter(pl.col("ds") >= (START + timedelta(days=14)).replace(tzinfo=None))
    errors = mae(scored, models=["seasonal", "flat"], id_col="unique_id", target_col="y")
    assert errors["seasonal"].sum() < errors["flat"].sum()


def test_ratio_metrics_are_refused() -> None:
    with pytest.raises(ValueError, match="not additive"):
        long_format(pl.LazyFrame(), metrics=("aht_ms",))


@pytest.mark.parametrize("time", ["UTC", "Utc", "bogus"])
def test_a_time_neither_utc_nor_local_is_refused(time: str) -> None:
    """``time="UTC"`` (beside ``tz="UTC"``) was taken for ``"local"``: the series came out at
    the local wall clock, shifted by the zone's offset, with no sign of it."""
    with pytest.raises(ValueError, match=f"^time '{time}': 'utc' or 'local'$"):
        long_format(pl.LazyFrame(), time=time)  # type: ignore[arg-type]


def test_export_commands(table: pl.DataFrame, tmp_path: Path) -> None:
    store = tmp_path / "out"
    from engine.output.files import write_store

    write_store(table, store / "store" / "callvolume", by="interval_start_utc")
    # the grid it was built on, as a build says it (without it the store is not read)
    (store / "summary.json").write_text(json.dumps({"tz": "UTC", "interval_minutes": 15}))
    run = CliRunner().invoke
    r = run(cli, ["export", "forecast", "--store", str(store), "--out", str(tmp_path / "f.csv")])
    assert r.exit_code == 0, r.stderr
    assert pl.read_csv(tmp_path / "f.csv").columns == ["unique_id", "ds", "y"]
    r = run(cli, ["export", "vendor", "calabrio", "--store", str(store), "--out", str(tmp_path)])
    assert r.exit_code == 0, r.stderr
    # unique per run: the clock's instant (the tests' clock starts at 2026-11-09 06:05 UTC)
    assert len(list(tmp_path.glob("calabrio_queue_statistics_20261109T06????Z.csv"))) == 1
    r = run(cli, ["export", "contact-volume", "--store", str(store), "--limit", "2"])
    assert r.exit_code == 0, r.stderr
    assert '"hasMore": true' in r.stdout
    r = run(cli, ["export", "vendor", "nope", "--store", str(store), "--out", str(tmp_path)])
    assert r.exit_code == 2
    assert "unknown profile" in r.stderr
    r = run(cli, ["export", "forecast", "--store", str(tmp_path / "none"), "--out", "x.csv"])
    assert r.exit_code == 2
    assert "no volume table" in r.stderr


def test_local_time_keeps_the_daily_curve_across_a_dst_change() -> None:
    """New York falls back on 2026-11-01: 100 quarter-hours in UTC, 96 wall-clock stamps; the
    repeated hour's two intervals of each stamp are summed. Spring forward (2026-03-08): 92 of
    both."""
    s = BuildSettings(tz="America/New_York")
    zone = ZoneInfo(s.tz)
    cases = (
        (datetime(2026, 11, 1, tzinfo=zone), 100, 96),
        (datetime(2026, 3, 8, tzinfo=zone), 92, 92),
    )
    for day, in_utc, on_the_wall in cases:
        start, end = day.astimezone(UTC), (day + timedelta(days=1)).astimezone(UTC)
        rows = generate_contacts(seed=9, start=start, days=1, scale=0.5, time_zone=s.tz)
        table = callvolume.build(rows.lazy(), window=(start, end), settings=s)
        utc = long_format(table, metrics=("offered",)).collect()
        local = long_format(table, metrics=("offered",), time="local").collect()
        one = utc["unique_id"][0]
        assert utc.filter(pl.col("unique_id") == one).height == in_utc
        stamps = local.filter(pl.col("unique_id") == one)["ds"]
        assert stamps.n_unique() == stamps.len() == on_the_wall
        midnight = day.replace(tzinfo=None)
        assert stamps.min() == midnight  # local midnight, whatever the offset
        assert stamps.is_sorted()
        assert local["y"].sum() == utc["y"].sum()  # every contact kept
    fall_back = datetime(2026, 11, 1)  # noqa: DTZ001 - a naive wall-clock stamp, as ds is
    # 01:15 local happened twice: 05:15 UTC (EDT) and 06:15 UTC (EST); one local row sums both
    s_rows = generate_contacts(
        seed=9, start=datetime(2026, 11, 1, 4, tzinfo=UTC), days=1, scale=0.5, time_zone=s.tz
    )
    window = (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 2, 5, tzinfo=UTC))
    table = callvolume.build(s_rows.lazy(), window=window, settings=s)
    utc = long_format(table, metrics=("offered",)).collect()
    local = long_format(table, metrics=("offered",), time="local").collect()
    at = [fall_back.replace(hour=5, minute=15), fall_back.replace(hour=6, minute=15)]
    repeated = utc.filter(pl.col("ds").is_in(at))["y"].sum()
    local_sum = local.filter(pl.col("ds") == fall_back.replace(hour=1, minute=15))["y"].sum()
    assert local_sum == repeated > 0


def test_local_time_merges_the_repeated_hour_as_a_roll_up_does() -> None:
    """The fall-back hour's two intervals of one stamp, merged into one local row: a maximum
    column was summed (wait_answered_max_ms 77 and 38,709 written as 38,786). Each column is
    now merged as a roll-up merges it (sums summed, maxima their maximum)."""
    s = BuildSettings(tz="America/New_York")
    at = [datetime(2026, 11, 1, 5, 16, tzinfo=UTC), datetime(2026, 11, 1, 6, 16, tzinfo=UTC)]
    rows = [
        {"source": "t", "contact_id": f"c{i}", "segment_no": 1, "channel": "voice",
         "direction": "inbound", "queue_id": "q1", "offered_at": t,
         "answered_at": t + timedelta(milliseconds=wait), "outcome": "answered",
         "wait_ms": wait, "talk_ms": 1000, "updated_at": t}
        for i, (t, wait) in enumerate(zip(at, (77, 38_709), strict=True))
    ]  # fmt: skip
    contacts = pl.DataFrame(rows)
    clean, _ = validate_contacts(contacts.lazy())
    window = (at[0] - timedelta(minutes=16), at[1] + timedelta(minutes=14))
    table = callvolume.build(clean, window=window, settings=s)
    metrics = ("offered", "wait_answered_ms", "wait_answered_max_ms")
    local = long_format(table, metrics=metrics, time="local").collect()
    stamp = datetime(2026, 11, 1, 1, 15)  # noqa: DTZ001 - a naive wall-clock stamp, as ds is
    got = dict(local.filter(pl.col("ds") == stamp).select("unique_id", "y").iter_rows())
    assert got == {"q1|voice|offered": 2.0, "q1|voice|wait_answered_ms": 38_786.0,
                   "q1|voice|wait_answered_max_ms": 38_709.0}  # fmt: skip


def _fall_back_store(tmp_path: Path) -> tuple[Path, pl.DataFrame]:
    """New York's fall-back day built (contacts in every interval), written as a store."""
    from engine.output.files import write_store

    s = BuildSettings(tz="America/New_York")
    window = (datetime(2026, 11, 1, 4, tzinfo=UTC), datetime(2026, 11, 1, 8, tzinfo=UTC))
    rows = generate_contacts(seed=9, start=window[0], days=1, scale=2.0, time_zone=s.tz)
    table = callvolume.build(rows.lazy(), window=window, settings=s).collect()
    store = tmp_path / "out"
    write_store(table, store / "store" / "callvolume", by="interval_start_utc")
    (store / "summary.json").write_text(json.dumps({"tz": s.tz, "interval_minutes": 15}))
    return store, table


def test_a_fall_back_stamp_is_published_only_when_both_its_intervals_closed(
    tmp_path: Path,
) -> None:
    """At 06:20 UTC (settle 0) New York's 01:15 local has happened once (05:15 UTC, EDT) and is
    running again (06:15 UTC, EST): it was written with the first interval alone (y halved) and
    rewritten the next day. A merged stamp waits until both its intervals closed; so does one
    whose second interval is not in the table (01:45 EDT of a table ending at 06:45 UTC)."""
    from engine.app.config import OutputSettings
    from engine.clock import FixedClock, use_clock
    from engine.pipeline.export import export_tables

    store, table = _fall_back_store(tmp_path)

    def both(stamp: datetime) -> float:  # the offered of the 01:xx stamp's EDT and EST intervals
        first = stamp.replace(hour=5, tzinfo=UTC)
        starts = [first, first + timedelta(hours=1)]
        return float(table.filter(pl.col("interval_start_utc").is_in(starts))["offered"].sum())

    at = datetime(2026, 11, 1, 6, 20, tzinfo=UTC)
    args = ["export", "forecast", "--store", str(store), "--time", "local", "--settle-minutes",
            "0", "--metric", "offered"]  # fmt: skip
    with use_clock(FixedClock(at)):
        r = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "f.csv")])
    assert r.exit_code == 0, r.stderr
    cli_frame = pl.read_csv(tmp_path / "f.csv", try_parse_dates=True)
    output = OutputSettings(formats=(), forecast=True, forecast_time="local",
                            forecast_metrics=("offered",), settle_minutes=0)  # fmt: skip
    build = BuildSettings(tz="America/New_York")
    export_tables(tmp_path / "run", output, {"callvolume": table}, build=build, now=at)
    run_frame = pl.read_parquet(tmp_path / "run" / "exports" / "forecast.parquet")
    one = datetime(2026, 11, 1, 1)  # noqa: DTZ001 - a naive wall-clock stamp, as ds is
    for frame in (cli_frame, run_frame):
        stamps = frame["ds"].unique().sort().to_list()
        assert stamps[-1] == one  # 05:00Z and 06:00Z closed; 01:15 waits for 06:15-06:30Z
        assert frame.filter(pl.col("ds") == one)["y"].sum() == both(one)
    full = long_format(table.lazy(), metrics=("offered",), time="local").collect()
    for minute in (0, 15, 30, 45):  # later, every stamp of the hour sums both its intervals
        stamp = one.replace(minute=minute)
        assert full.filter(pl.col("ds") == stamp)["y"].sum() == both(stamp) > 0
    later = long_format(
        table.lazy().filter(pl.col("interval_end_utc") <= datetime(2026, 11, 1, 6, 45, tzinfo=UTC)),
        metrics=("offered",), time="local", tz=build.tz,
    ).collect()  # fmt: skip
    assert one.replace(minute=45) not in later["ds"].to_list()  # its 06:45Z interval is not in
    assert one.replace(minute=30) in later["ds"].to_list()


def test_the_export_commands_default_to_the_configured_output_settings(tmp_path: Path) -> None:
    """`export vendor` / `export forecast --config` took 15 settle minutes, UTC stamps and four
    metrics whatever `[output]` said; now the configured ones, unless given on the command line."""
    from engine.clock import FixedClock, use_clock

    store, _ = _fall_back_store(tmp_path)  # 04:00-08:00 UTC
    config = tmp_path / "wfm.toml"
    config.write_text(f'[output]\ndir = "{store.as_posix()}"\nsettle_minutes = 120\n'
                      'forecast_time = "local"\nforecast_metrics = ["offered"]\n')  # fmt: skip
    run, f, v = CliRunner().invoke, str(tmp_path / "f.csv"), str(tmp_path / "v")
    with use_clock(FixedClock(datetime(2026, 11, 1, 9, tzinfo=UTC))):  # closed by 07:00 UTC
        r = run(cli, ["export", "vendor", "genesys", "--config", str(config), "--out", v])
        assert r.exit_code == 0, r.stderr
        genesys = pl.concat(
            pl.read_csv(path, infer_schema=False) for path in (tmp_path / "v").glob("genesys_*")
        )
        assert genesys["Interval Start UTC Date"].max() == "2026-11-01T06:45:00.000Z"
        assert run(cli, ["export", "forecast", "--config", str(config), "--out", f]).exit_code == 0
        frame = pl.read_csv(f, try_parse_dates=True)
        assert frame["unique_id"].str.ends_with("|offered").all()
        assert frame["ds"].max() == datetime(2026, 11, 1, 1, 45)  # noqa: DTZ001 - local 06:45Z
        given = ["--settle-minutes", "0", "--time", "utc", "--metric", "answered"]
        r = run(cli, ["export", "forecast", "--config", str(config), "--out", f, *given])
        assert r.exit_code == 0, r.stderr
        frame = pl.read_csv(f, try_parse_dates=True)
        assert frame["unique_id"].str.ends_with("|answered").all()
        assert frame["ds"].max() == datetime(2026, 11, 1, 7, 45)  # noqa: DTZ001 - naive UTC


def test_export_vendor_takes_a_profile_or_a_profile_file_exactly_one(tmp_path: Path) -> None:
    """`--profile-file` needed a PROFILE beside it, which it then ignored (`genesys
    --profile-file p1.toml` wrote p1's files). The file alone is enough; both, or neither, are
    one line, exit 2."""
    store, _ = _fall_back_store(tmp_path)
    own = Path(__file__).parents[2] / "engine" / "data" / "exports" / "genesys.toml"
    args = ["export", "vendor", "--store", str(store), "--out", str(tmp_path / "v")]
    run = CliRunner().invoke
    r = run(cli, [*args, "--profile-file", str(own)])
    assert r.exit_code == 0, r.stderr
    assert list((tmp_path / "v").glob("genesys_*.csv"))
    for wrong in (["eleveo", "--profile-file", str(own)], []):
        r = run(cli, [*args, *wrong])
        assert r.exit_code == 2
        assert len(r.stderr.splitlines()) == 1
        assert "--profile-file" in r.stderr
    assert "one or the other" in run(cli, [*args, "eleveo", "--profile-file", str(own)]).stderr
