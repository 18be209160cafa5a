"""``wfm-intervals run`` over the four emulators on loopback: the summary equals what was written,
a second run with nothing new changes nothing, a late change is aggregated again, and every
error path exits with its code and one line naming the setting, the URL or the store."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.landing import LANDING_SCHEMA, scan_landed
from engine import clock
from engine.app.sources import connector
from engine.clock import StartedClock, use_clock
from engine.interval import snap_window
from engine.output import delta
from engine.pipeline import build as pipeline
from engine.pipeline.tables import TABLES
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import busy
from tests.engine.run_support import (
    SECRETS,
    T0,
    Stack,
    closed_port_url,
    csv_rows,
    invoke,
    one_error_line,
    table,
    write_config,
)
from tests.engine.run_support import clean_environment as _clean


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


def _raw_rows(landing: Path, source: str, stream: str) -> int:
    files = list((landing / "raw" / f"source={source}" / f"stream={stream}").rglob("*.parquet"))
    frame = pl.scan_parquet(files, schema=LANDING_SCHEMA, extra_columns="ignore")
    return frame.select(pl.len()).collect().item()


def _texts(root: Path) -> str:
    kinds = {".json", ".csv", ".ndjson", ".html", ".toml"}
    return "\n".join(p.read_text() for p in root.rglob("*") if p.suffix in kinds)


def _volume_is_served(out: Path, stack: Stack, now: datetime) -> pl.DataFrame:
    """The stored volume table, checked against one built from what the emulators serve."""
    window, settings = snap_window(T0, now, minutes=15, tz="UTC"), BuildSettings()
    expected = callvolume.derive(
        callvolume.build(stack.served_contacts().lazy(), window=window, settings=settings),
        settings=settings,
    ).collect()
    stored = table(out, "callvolume").select(expected.columns).cast(expected.schema)  # type: ignore[arg-type]
    assert_frame_equal(stored, expected.filter(busy("callvolume")), check_row_order=False)
    return stored


def test_a_run_matches_its_tables_and_a_second_run_changes_nothing(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    config = write_config(tmp_path, stack)
    first = invoke(["run", "--json", "--quiet"], config)
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    summary = json.loads(first.stdout)
    out, landing = tmp_path / "out", tmp_path / "landing"
    assert (summary["ok"], summary["exit_code"], summary["problems"]) == (True, 0, [])
    assert summary["window"]["full_rebuild"] is True
    assert summary["segments"] == table(out, "contacts").height == stack.served_contacts().height
    assert summary["attempts"] == table(out, "callback_attempts").height > 0
    volume = table(out, "callvolume")
    assert summary["intervals_written"] == summary["tables"]["callvolume"]["rows"] == volume.height
    for name in (*TABLES, "callvolume_kore"):
        assert summary["tables"][name]["rows"] == table(out, name).height > 0
    need = table(out, "staffing")  # one staffing row per volume row, agents where load
    assert summary["tables"]["staffing"]["rows"] == need.height == volume.height
    assert (need["agents_required"] > 0).sum() == (volume["offered"] > 0).sum() > 0
    window = snap_window(T0, now, minutes=15, tz="UTC")
    assert (volume["offered"] > 0).all()  # the store keeps busy rows: the zeros are derived
    assert volume["interval_start_utc"].min() >= T0
    assert volume["interval_end_utc"].max() <= window[1]
    dumped = pl.read_csv(out / "exports" / "callvolume.csv", infer_schema_length=None)
    built = json.loads((out / "summary.json").read_text())
    assert built["sl_settings"] == BuildSettings().sl_record()  # as `build` records them
    filled = built["table_rows"]  # zero-filled
    assert dumped.height == filled > volume.height  # the CSV dump: every interval, not as stored
    forecast = pl.read_parquet(out / "exports" / "forecast.parquet")  # needs the full grid
    offered = forecast.filter(pl.col("unique_id").str.ends_with("offered"))
    step = timedelta(minutes=15)
    closed = T0 + (now - step - T0) // step * step  # closed: ended 15 min (settle) before now
    assert offered["ds"].min() == T0.replace(tzinfo=None)  # every closed interval of the window
    assert offered["ds"].max() == (closed - step).replace(tzinfo=None)
    assert offered.height == offered["unique_id"].n_unique() * ((closed - T0) // step)
    busy_closed = volume.filter(pl.col("interval_end_utc") <= closed)["offered"].sum()
    assert offered["y"].sum() == busy_closed
    quarantined = sum(csv_rows(p) for p in (out / "quarantine").glob("*.csv"))
    assert quarantined == sum(summary["quarantined"].values())
    assert quarantined == sum(q["quarantined"] for q in summary["quarantine"])
    assert [f"{p['source']}/{p['stream']}" for p in summary["pulled"]] == [
        "ujet/calls",
        "ujet/chats",
        "mindful/attempts",
        "dixa/conversations",
        "kore/callvolume",
    ]
    for p in summary["pulled"]:
        held = scan_landed(landing, p["source"], p["stream"]).collect().height
        assert p["new"] == held > 0
        assert p["landed"] == _raw_rows(landing, p["source"], p["stream"]) >= held
    assert [c["status"] for c in summary["reconcile"]["checks"]] == ["ok", "ok"]
    assert json.loads((out / "reconcile.json").read_text())["ok"] is True
    assert '<div id="reconcile">' in (out / "report.html").read_text()
    assert all(Path(f).exists() for f in summary["files"])
    assert str(out / "reconcile" / "callvolume_kore.csv") in summary["files"]  # all it wrote
    for export in ("callvolume_document.json", "forecast.parquet", "callvolume.csv"):
        assert (out / "exports" / export).is_file()
    assert any((out / "exports" / "vendor" / "genesys").iterdir())
    written = first.output + _texts(tmp_path / "out") + _texts(tmp_path / "state")
    assert not [s for s in SECRETS.values() if s in written]

    before = {name: table(out, name) for name in (*TABLES, "contacts", "callback_attempts")}
    versions = {name: delta.version(out / "store" / name) for name in before}
    second = invoke(["run"], config)  # plain summary on stdout, key=value log lines on stderr
    assert second.exit_code == 0, second.output
    assert "pulled" in second.stdout
    assert "late changes re-aggregated 0" in second.stdout
    assert "event=step step=report" in second.stderr
    again = json.loads((out / "run_summary.json").read_text())
    assert again["window"]["full_rebuild"] is False
    assert [p["new"] for p in again["pulled"]] == [0] * 5
    assert again["late_changes"] == 0
    for name, frame in before.items():
        assert_frame_equal(table(out, name), frame, check_row_order=False)
    # the same window rebuilt to the same rows: nothing committed, no new table version
    assert {name: delta.version(out / "store" / name) for name in before} == versions
    state = json.loads(invoke(["state", "show", "--json"], config).stdout)
    assert [r["exit_code"] for r in state["runs"]] == [0, 0]  # the short run history
    assert state["runs"][0]["new_records"]["ujet/calls"] > 0
    assert [r["new_records"]["ujet/calls"] for r in state["runs"]][1] == 0
    assert state["run"]["window_end"] == again["window"]["end"]


def test_a_late_change_is_aggregated_again(tmp_path: Path, stack: Stack, now: datetime) -> None:
    config = write_config(tmp_path, stack, run={"lookback_minutes": 60, "report": False})
    assert invoke(["run", "--quiet"], config).exit_code == 0
    truth = stack.ujet.expected_contacts()
    single = truth.filter(pl.len().over("contact_id") == 1)
    answered = single.filter((pl.col("outcome") == "answered") & (pl.col("channel") == "voice"))
    late = answered.sort("offered_at").row(0, named=True)
    assert late["offered_at"] < now - timedelta(hours=2)  # well before the next window
    stack.ujet.update_records([late["contact_id"]], talk_ms=late["talk_ms"] + 60_000)
    stack.sync_kore()  # Kore.ai's own aggregate sees the change too

    third = invoke(["run", "--json", "--quiet"], config)
    assert third.exit_code == 0, third.output
    summary = json.loads(third.stdout)
    pulled = {f"{p['source']}/{p['stream']}": p["new"] for p in summary["pulled"]}
    assert pulled == {
        "ujet/calls": 1,
        "ujet/chats": 0,
        "mindful/attempts": 0,
        "dixa/conversations": 0,
        "kore/callvolume": 1,  # Kore.ai's row of that interval changed too
    }
    assert summary["late_changes"] == 1
    assert summary["window"]["start"] <= late["offered_at"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert summary["reconcile"]["ok"] is True
    out = tmp_path / "out"
    stored = _volume_is_served(out, stack, now)
    row = stored.filter(
        (pl.col("queue_id") == late["queue_id"])
        & (pl.col("interval_start_utc") <= late["offered_at"])
        & (pl.col("interval_end_utc") > late["offered_at"])
        & (pl.col("channel") == "voice")
    )
    assert row["talk_ms"].item() >= late["talk_ms"] + 60_000


def test_a_change_after_an_explicit_end_is_built_by_that_run(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """``run --start/--end`` over the early morning, after a late change later that day: the
    run commits the changed day's contacts and keeps its digest as built, so it must build the
    day too. It built its given window only; the next runs saw nothing changed, their recent
    window began after the day, and the interval kept its old talk time for good, exit 0."""
    config = write_config(tmp_path, stack, run={"lookback_minutes": 60, "report": False})
    assert invoke(["run", "--quiet"], config).exit_code == 0
    truth = stack.ujet.expected_contacts()
    single = truth.filter(pl.len().over("contact_id") == 1)
    answered = single.filter((pl.col("outcome") == "answered") & (pl.col("channel") == "voice"))
    late = answered.filter(pl.col("offered_at") >= T0 + timedelta(hours=8)).row(0, named=True)
    stack.ujet.update_records([late["contact_id"]], talk_ms=late["talk_ms"] + 60_000)
    stack.sync_kore()
    early = ["--start", f"{T0:%Y-%m-%d}T00:00:00Z", "--end", f"{T0:%Y-%m-%d}T06:00:00Z"]
    assert invoke(["run", "--quiet", *early], config).exit_code == 0
    assert invoke(["run", "--quiet"], config).exit_code == 0
    _volume_is_served(tmp_path / "out", stack, now)


def test_a_call_years_before_the_start_is_counted_on_its_day_not_every_day_since(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """A UJET call offered ten years before the sources' start, changed today (so the tail sync
    pulls it): the first run counts it in its interval, and the zero-filled exports hold its
    day and the days from the start, not the 3,650 days between (that run took ~30 times as
    long, at 2.9 GiB instead of ~250 MiB, on one day of test traffic)."""
    first = stack.ujet.expected_contacts().filter(pl.col("segment_no") == 1).head(1)
    instants = [c for c, t in first.schema.items() if isinstance(t, pl.Datetime)]
    old = first.with_columns(pl.col(c) - timedelta(days=3650) for c in instants).with_columns(
        pl.concat_str(pl.lit("old-"), "contact_id").alias("contact_id")
    )
    stack.ujet.add_contacts(old)  # stamped updated now
    config = write_config(tmp_path, stack, run={"report": False})
    result = invoke(["run", "--json", "--quiet"], config)
    assert result.exit_code == 0, result.output
    offered, out = old["offered_at"].item(), tmp_path / "out"
    row = table(out, "callvolume").filter(
        (pl.col("interval_start_utc") <= offered) & (pl.col("interval_end_utc") > offered)
    )
    assert (row["queue_id"].item(), row["offered"].item()) == (old["queue_id"].item(), 1)
    days = {offered.date()} | {T0.date() + timedelta(days=i) for i in range(3)}
    assert now.date() < T0.date() + timedelta(days=3)
    forecast = pl.read_parquet(out / "exports" / "forecast.parquet")
    assert set(forecast["ds"].dt.date().unique()) <= days
    assert offered.date() in set(forecast["ds"].dt.date())


def test_contacts_after_the_window_are_said_and_counted_when_it_reaches_them(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """Two calls stamped ahead of the clock (local times sent as UTC; a date typed wrong): one
    5 hours ahead, one 40 days ahead (another month of the snapshot, counted from the day
    digests). The run stores them, counts neither (their intervals have not come), and says
    so: in the summary and on stderr, exit 0. Six hours on, the next run counts the first."""
    first = stack.ujet.expected_contacts().filter(pl.col("segment_no") == 1).head(2)
    instants = [c for c, t in first.schema.items() if isinstance(t, pl.Datetime)]
    instants.remove("updated_at")
    ahead = [now - first["offered_at"][0] + timedelta(hours=5), timedelta(days=40)]
    moved = pl.concat(
        first.slice(i, 1).with_columns(pl.col(c) + by for c in instants)
        for i, by in enumerate(ahead)
    ).with_columns(pl.concat_str(pl.lit("ahead-"), "contact_id").alias("contact_id"))
    stack.ujet.add_contacts(moved)
    config = write_config(tmp_path, stack, run={"report": False})
    result = invoke(["run", "--json", "--quiet"], config)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["after_window"] == {"contacts": 2, "callback_attempts": 0}
    end = json.loads(result.stdout)["window"]["end"]
    assert result.stderr.splitlines() == [
        f"wfm-intervals: note: rows at or after the window's end ({end}), stored for a later "
        "run to count: contacts 2; far ahead of the clock, a source's clock or time zone is off"
    ]
    soon = moved.row(0, named=True)

    def counted() -> int:
        rows = table(tmp_path / "out", "callvolume").filter(
            (pl.col("interval_start_utc") <= soon["offered_at"])
            & (pl.col("interval_end_utc") > soon["offered_at"])
            & (pl.col("queue_id") == soon["queue_id"])
            & (pl.col("channel") == soon["channel"])
        )
        return int(rows["offered"].sum())

    assert counted() == 0
    with use_clock(StartedClock(now + timedelta(hours=6))):
        stack.sync_kore()
        later = invoke(["run", "--json", "--quiet"], config)
        text = invoke(["run"], config)
    assert later.exit_code == 0, later.output
    assert json.loads(later.stdout)["after_window"] == {"contacts": 1, "callback_attempts": 0}
    assert counted() == 1
    assert "\nafter the window rows at or after the window's end (" in text.stdout
    # a window given, ending before now: not counted, so absent (an empty {} read as "none")
    given = ["--start", (now - timedelta(days=1)).date().isoformat(), "--end", end[:10]]
    with use_clock(StartedClock(now + timedelta(hours=6))):
        past = invoke(["run", "--json", "--quiet", *given], config)
    assert past.exit_code == 0, past.output
    assert "after_window" not in json.loads(past.stdout)


def test_too_much_quarantine_exits_1(tmp_path: Path, stack: Stack, now: datetime) -> None:
    hour = T0 + timedelta(hours=5)
    template = stack.mindful.records()[0] | {"createdAt": f"{hour:%Y-%m-%dT%H}:01:00.000Z"}
    bad = [
        template | {"id": "bad-ts", "originalId": "bad-ts", "createdAt": "yesterday"},
        template | {"id": "bad-out", "originalId": "bad-out", "outcome": "Boom"},
        template | {"id": "bad-type", "originalId": "bad-type", "retryAttempt": "two"},
    ]
    stack.mindful.add_raw_records(bad, hour=hour)
    config = write_config(tmp_path, stack, run={"max_quarantine_fraction": 0.01, "report": False})
    result = invoke(["run", "--json", "--quiet"], config)
    assert result.exit_code == 1, result.output
    summary = json.loads(result.stdout)
    assert summary["quarantined"] == {
        "unknown_outcome": 1,
        "unparsable_timestamp": 1,
        "wrong_type": 1,
    }
    assert csv_rows(tmp_path / "out" / "quarantine" / "callback_attempts.csv") == 3
    assert summary["problems"] == [
        next(p for p in summary["problems"] if p.startswith("callback_attempts: 3 of "))
    ]
    assert result.stderr.startswith("wfm-intervals: problem: callback_attempts: 3 of ")
    assert (tmp_path / "state" / "run.json").is_file()  # the tables were written


def test_bad_settings_name_the_setting(tmp_path: Path, stack: Stack) -> None:
    window = ["--start", T0.isoformat(), "--end", (T0 + timedelta(days=1)).isoformat()]
    cases = [
        ({"run": {"max_quarantine_fraction": "lots"}}, "run.max_quarantine_fraction"),
        ({"output": {"vendor_profiles": ["nope"]}}, "output.vendor_profiles: unknown profile"),
        ({"reconcile__tolerance": {"offered": -1}}, "reconcile.tolerance"),
        ({"sources__kore": {"rate_limit_per_s": 0}}, "sources.kore.rate_limit_per_s"),
    ]
    for sections, setting in cases:
        config = write_config(tmp_path, stack, **sections)
        for args in (["run"], ["reconcile", *window]):
            result = invoke(args, config)
            assert result.exit_code == 2, (args, result.output)
            assert f"invalid setting {setting}" in one_error_line(result)
    off = {f"sources__{n}": {"enabled": False} for n in ("ujet", "dixa", "mindful", "kore")}
    nothing = write_config(tmp_path, stack, **off)
    assert "no source is enabled" in one_error_line(invoke(["run"], nothing))


def test_an_unreachable_source_names_the_url_and_commits_no_run(
    tmp_path: Path, stack: Stack
) -> None:
    url = closed_port_url("/manager/api/v1")
    config = write_config(tmp_path, stack, sources__ujet={"base_url": url, "max_retries": 1})
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert "ujet/calls" in line
    assert url.removesuffix("/manager/api/v1") in line
    assert not [s for s in SECRETS.values() if s in result.output]
    assert not (tmp_path / "state" / "run.json").exists()
    assert not (tmp_path / "out" / "store").exists()


def test_missing_stores_and_usage_errors(tmp_path: Path, stack: Stack) -> None:
    config = write_config(tmp_path, stack)
    window = ["--start", T0.isoformat(), "--end", (T0 + timedelta(days=1)).isoformat()]
    nowhere = tmp_path / "nowhere"
    line = one_error_line(invoke(["reconcile", *window], config))
    assert f"store.landing {tmp_path / 'landing'}: no such directory" in line
    (tmp_path / "landing").mkdir()
    line = one_error_line(invoke(["reconcile", *window, "--store", str(nowhere)], config))
    assert f"--store {nowhere}: no such directory" in line
    (tmp_path / "built").mkdir()
    line = one_error_line(
        invoke(["reconcile", *window, "--store", str(tmp_path / "built")], config)
    )
    assert "no store/contacts" in line
    (tmp_path / "file").write_text("not a directory")
    broken = write_config(tmp_path, stack, store={"landing": str(tmp_path / "file")})
    assert "store.landing: " in one_error_line(invoke(["run"], broken))
    usage = [
        (["run", "--start", "2026-10-01"], "give both --start and --end"),
        (["run", "--start", "2026-10-02", "--end", "2026-10-01"], "is not after --start"),
        (["reconcile", "--start", "2026-10-02", "--end", "2026-10-01"], "is not after --start"),
        (["reconcile", *window, "--tolerance", "offered"], "--tolerance 'offered': expected"),
        (["reconcile", *window, "--tolerance", "offered=-2"], "expected FIELD=NUMBER"),
        (["run", "--start", "yesterday", "--end", "2026-10-01"], "--start 'yesterday'"),
    ]
    for args, message in usage:
        result = invoke(args, config)
        assert result.exit_code == 2, (args, result.output)
        assert message in one_error_line(result)


def test_earlier_landing_partitions_are_compacted_and_nothing_changes(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    config = write_config(tmp_path, stack)
    assert invoke(["run", "--quiet"], config).exit_code == 0
    out, landing = tmp_path / "out", tmp_path / "landing"
    before = {name: table(out, name) for name in (*TABLES, "contacts", "callback_attempts")}
    # Pretend the first run fetched everything three days ago: one file per page in old partitions.
    old = (clock.now() - timedelta(days=3)).date().isoformat()
    moved: dict[tuple[str, str], int] = {}
    plain: set[tuple[str, str]] = set()  # a lone page landed JSON only: rewritten decoded
    for stream_dir in sorted((landing / "raw").glob("source=*/stream=*")):
        (today,) = stream_dir.glob("date=*")
        files = list(today.glob("*.parquet"))
        key = stream_dir.parent.name[7:], stream_dir.name[7:]
        if connector(key[0]).stream(key[1]).land_decoded and ".record-" not in files[0].name:
            plain.add(key)
        today.rename(stream_dir / f"date={old}")
        moved[key] = len(files)
    held = {
        k: scan_landed(landing, *k).select("record_id", "payload").collect().sort("record_id")
        for k in moved
    }
    assert max(moved.values()) > 1

    second = invoke(["run", "--json", "--quiet"], config)
    assert second.exit_code == 0, second.output
    pulled = {(p["source"], p["stream"]): p for p in json.loads(second.stdout)["pulled"]}
    for key, files in moved.items():
        merged = list(
            (landing / "raw" / f"source={key[0]}" / f"stream={key[1]}").glob(f"date={old}/*")
        )
        assert [m.suffix for m in merged] == [".parquet"]
        assert pulled[key]["compacted"] == (files if files > 1 else int(key in plain))
        assert pulled[key]["new"] == 0
        landed = scan_landed(landing, *key).collect().sort("record_id")
        assert_frame_equal(landed.select("record_id", "payload"), held[key])
    for name, frame in before.items():
        assert_frame_equal(table(out, name), frame, check_row_order=False)


def test_a_first_run_builds_its_volume_from_the_contacts_it_committed(
    tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first run (every partition committed) lets go of the contacts it holds and builds its
    volume from the table it has just committed, read as it streams (a history is not held
    twice); a later night builds from the rows it read."""
    given: list[type] = []
    real = pipeline.volume_table

    def spy(contacts: pl.DataFrame | pl.LazyFrame, **kwargs: object) -> pl.DataFrame:
        given.append(type(contacts))
        return real(contacts, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(pipeline, "volume_table", spy)
    config = write_config(tmp_path, stack, run={"report": False})
    assert invoke(["run", "--quiet"], config).exit_code == 0
    assert given == [pl.LazyFrame]
    given.clear()
    stack.ujet.update_records([stack.ujet.expected_contacts()["contact_id"][0]], talk_ms=1)
    assert invoke(["run", "--quiet"], config).exit_code == 0
    assert given == [pl.DataFrame]
