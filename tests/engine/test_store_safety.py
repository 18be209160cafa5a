"""Nightly runs that cannot lose history: the transactional store under ``wfm-intervals run``.

Every case runs the real command against the loopback emulators and compares the stored tables
with those of a clean run (or of the same store before the trouble): late landings re-aggregated
whatever their vendor timestamps, missing or damaged tables and state rebuilt from the landing
store, one writer at a time, the old Parquet store migrated, and a dry run that writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.emulator.server import Request, Response
from connectors.state import StateStore
from engine import clock
from engine.clock import StartedClock, use_clock
from engine.demo.stack import Stack
from engine.output import delta
from engine.output.migrate import migrate
from engine.pipeline.lock import store_lock
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.callvolume import SCHEMA
from tests.calendar import TEST_NOW, run_process
from tests.engine.run_support import (
    SECRETS,
    T0,
    clean_environment,
    closed_port_url,
    emulators,
    invoke,
    lean_config,
    one_error_line,
    run_json,
    same_tables,
    table,
    write_config,
)

TABLES = ("contacts", "callback_attempts", "callvolume", "callback_intervals", "retry_outcomes")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    """The emulators, on a clock restarted at TEST_NOW for this test (so that every run of a
    test falls in the same interval: a test lasts seconds)."""
    clean_environment(monkeypatch, tmp_path)
    with use_clock(StartedClock(TEST_NOW)), emulators() as s:
        yield s


def _config(root: Path, stack: Stack) -> Path:
    return lean_config(root, stack)


def _tables(out: Path) -> dict[str, pl.DataFrame]:
    return {name: table(out, name) for name in TABLES}


def test_records_landing_late_with_old_vendor_stamps_are_aggregated(
    tmp_path: Path, stack: Stack
) -> None:
    """A sync that ended early lands the rest the next night, stamped before the last run
    started: the old rule (updated after the last run started) missed them; now the days they
    land in are rebuilt because what landed for them changed."""
    config = _config(tmp_path, stack)
    run_json(config)
    served = stack.ujet.expected_contacts()
    stamp = served["updated_at"].max()
    assert isinstance(stamp, type(T0))
    extra = served.filter(pl.col("segment_no") == 1).head(40)
    extra = extra.with_columns(
        pl.concat_str(pl.lit("late-"), "contact_id").alias("contact_id"),
        pl.lit(stamp + timedelta(minutes=1)).alias("updated_at"),  # before the last run started
    )
    stack.ujet.add_contacts(extra, touch=False)
    second = run_json(config)
    assert second["late_changes"] >= 1
    out = tmp_path / "out"
    incremental = _tables(out)
    assert incremental["contacts"].height == stack.ujet.expected_contacts().height
    clean = tmp_path / "clean"
    clean.mkdir()
    run_json(write_config(clean, stack, sources__dixa={"enabled": False},
                      sources__kore={"enabled": False}, run={"report": False}))  # fmt: skip
    same_tables(incremental, _tables(clean / "out"))
    window = (T0, T0 + timedelta(days=1))
    want = callvolume.build(
        stack.ujet.expected_contacts().lazy(), window=window, settings=BuildSettings()
    )
    got = incremental["callvolume"].select(list(SCHEMA)).cast(SCHEMA)  # type: ignore[arg-type]
    got = got.filter(pl.col("interval_start_utc") < window[1])
    assert got["offered"].sum() == want.collect()["offered"].sum()


def test_a_second_run_with_nothing_new_commits_nothing_outside_the_recent_window(
    tmp_path: Path, stack: Stack
) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    second = run_json(config)
    assert second["late_changes"] == 0
    plan = second["plan"]
    assert isinstance(plan, dict)
    assert plan["partitions"] == {"contacts": [], "callback_attempts": []}
    same_tables(_tables(out), before)


@pytest.mark.parametrize("damage", ["partition", "table", "file", "state", "whole store"])
def test_lost_history_is_rebuilt_from_the_landing_store(
    tmp_path: Path, stack: Stack, damage: str
) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    out, state = tmp_path / "out", tmp_path / "state"
    before = _tables(out)
    volume = out / "store" / "callvolume"
    if damage == "partition":
        shutil.rmtree(sorted(volume.glob("date=*"))[0])
    elif damage == "table":
        shutil.rmtree(volume)
    elif damage == "file":
        victim = sorted((out / "store" / "callback_attempts").rglob("*.parquet"))[0]
        victim.write_bytes(victim.read_bytes()[:64])
    elif damage == "state":
        (state / "run.json").unlink()
    else:
        shutil.rmtree(out / "store")
    summary = run_json(config)
    repaired = summary["repaired"]
    assert isinstance(repaired, list)
    if damage in ("partition", "table", "file"):
        assert repaired, "the damage was found"
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out), before)


@pytest.mark.parametrize("lost", ["landing", "one source", "landing and state", "one stream"])
def test_a_lost_landing_store_stops_the_run_and_keeps_the_store(
    tmp_path: Path, stack: Stack, lost: str
) -> None:
    """The landing store gone (a volume not mounted, a relative path read from another working
    directory; with the state, or one source's folder; one stream's folder with its state, its
    source's other stream intact): once, the run synced what was new, rebuilt the tables from
    it and exited 0 (contacts 249 -> 24; UJET's chats fetched again from the configured start
    without a word); now it stops before fetching anything, exit 2, one line naming the
    landing store, and nothing stored changes. Put back, the next run goes on as if nothing
    happened."""
    config = _config(tmp_path, stack)
    run_json(config)
    out, landing, state = tmp_path / "out", tmp_path / "landing", tmp_path / "state"
    before = _tables(out)
    gone = {
        "landing": [landing],
        "landing and state": [landing, state],
        "one source": [landing / "raw" / "source=mindful"],
        "one stream": [
            landing / "raw" / "source=ujet" / "stream=chats",
            state / "ujet" / "chats.json",
        ],
    }[lost]
    for path in gone:
        path.rename(path.with_name(path.name + ".away"))
    requests = stack.ujet.stats.requests + stack.mindful.stats.requests
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert str(landing) in line
    assert "holds no file of" in line or "hold nothing of it" in line
    assert stack.ujet.stats.requests + stack.mindful.stats.requests == requests  # nothing fetched
    same_tables(_tables(out), before)
    verified = invoke(["verify"], config)
    assert verified.exit_code == 2
    assert "landing" in verified.stdout
    for path in gone:
        shutil.rmtree(path, ignore_errors=True)  # the state folder the run's lock made anew
        path.with_name(path.name + ".away").rename(path)
    run_json(config)
    same_tables(_tables(out), before)


@pytest.mark.parametrize("vendor_down_first", [False, True])
def test_landing_files_lost_but_listed_are_fetched_again_not_refused(
    tmp_path: Path, stack: Stack, vendor_down_first: bool
) -> None:
    """Every landing file of UJET lost, its manifests kept: the sync fetches them again (the
    lost-landing check is not for this). With UJET down on the first night after the loss, the
    repair has emptied the manifests and rewound the cursors; once, the next night then took
    the empty stream for a lost landing store, every night. Both end as a clean run's tables."""
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    for file in (tmp_path / "landing" / "raw" / "source=ujet").rglob("*.parquet"):
        file.unlink()
    if vendor_down_first:
        down = write_config(tmp_path, stack, sources__dixa={"enabled": False},
                            sources__kore={"enabled": False},
                            sources__ujet={"base_url": closed_port_url("/manager/api/v1"),
                                           "max_retries": 1},
                            run={"lookback_minutes": 60, "report": False})  # fmt: skip
        assert invoke(["run", "--quiet"], down).exit_code == 2
        config = _config(tmp_path, stack)
    run_json(config)
    same_tables(_tables(out), before)


def test_a_store_built_from_a_file_is_not_replaced_by_a_first_sync(
    tmp_path: Path, stack: Stack
) -> None:
    """History loaded with ``build`` into the run's output folder, then a first ``run``: it
    rebuilt the store from what the sources serve and dropped the loaded rows, exit 0. Now it
    stops and says so."""
    config = _config(tmp_path, stack)
    loaded = tmp_path / "history.parquet"
    stack.served_contacts().write_parquet(loaded)
    assert (
        invoke(["build", "--contacts", str(loaded), "--out", str(tmp_path / "out")]).exit_code == 0
    )
    before = table(tmp_path / "out", "contacts")
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 2
    assert "rows `build` wrote" in one_error_line(result)
    assert_frame_equal(table(tmp_path / "out", "contacts"), before)


def test_tables_of_a_source_turned_off_are_kept_and_said(tmp_path: Path, stack: Stack) -> None:
    """Mindful turned off after a run: its tables are no source's any more and stay as built;
    once nothing said so (exit 0, stderr empty, ``verify`` silent) while every reader kept
    serving them as current. Now the run and ``verify`` say it, one line a table."""
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    write_config(tmp_path, stack, sources__dixa={"enabled": False},
                 sources__kore={"enabled": False}, sources__mindful={"enabled": False},
                 run={"lookback_minutes": 60, "report": False})  # fmt: skip
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "fed by no enabled source" in line]
    stale = ("callback_attempts", "callback_intervals", "retry_outcomes")
    assert [line.split(": ")[2] for line in notes] == [str(out / "store" / t) for t in stale]
    assert all("built from mindful" in line for line in notes)
    same_tables({t: table(out, t) for t in stale}, {t: before[t] for t in stale})  # kept
    verified = invoke(["verify"], config)
    assert verified.exit_code == 0
    assert verified.stdout.count("fed by no enabled source") == 3


@pytest.mark.parametrize(
    ("name", "args"),
    [("callvolume", ()), ("staffing", ()), ("contacts", ("--full-refresh",))],
)
def test_a_table_whose_log_is_torn_is_set_aside_and_built_again(
    tmp_path: Path, stack: Stack, name: str, args: tuple[str, ...]
) -> None:
    """A store table whose last log entry is torn (a crash of the machine, a bad disk) cannot
    be opened: every run stopped on it with exit 2, ``--full-refresh`` included, though
    ``verify`` named that as the fix. The run sets it aside (kept until a later sweep) and
    builds it again from the landing store, as a lost table is."""
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out) | {"staffing": table(out, "staffing")}
    entry = sorted((out / "store" / name / "_delta_log").glob("*.json"))[-1]
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    summary = run_json(config, *args)
    cleaned = summary["cleaned"]
    assert isinstance(cleaned, list)
    assert [line for line in cleaned if "set aside as" in line] == [
        line for line in cleaned if line.startswith(f"{out / 'store' / name}: not a readable")
    ]
    assert len([line for line in cleaned if "set aside as" in line]) == 1
    assert len(list((out / "store").glob(f".{name}.old-*"))) == 1  # the damaged copy, kept
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out) | {"staffing": table(out, "staffing")}, before)
    assert invoke(["verify"], config).exit_code == 0


def test_verify_tells_a_lost_run_state_from_no_run_yet(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    (tmp_path / "state" / "run.json").unlink()
    verified = invoke(["verify"], config)
    assert verified.exit_code == 0  # the next run rebuilds from the landing store: repaired
    assert "no run yet" not in verified.stdout  # once: as if nothing had ever run
    assert "missing, while 1 run(s) finished before" in verified.stdout


def test_a_damaged_run_state_is_one_line_naming_the_fix(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    (tmp_path / "state" / "run.json").write_text("{torn")
    result = invoke(["run", "--quiet"], config)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert "run.json" in line
    assert "--full-refresh" in line
    assert invoke(["run", "--quiet", "--full-refresh"], config).exit_code == 0


def test_one_writer_at_a_time(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    state = tmp_path / "state"
    with store_lock(state):
        held = invoke(["run", "--quiet"], config)
        waited = invoke(["run", "--quiet", "--wait", "0.3"], config)
    for result in (held, waited):
        assert result.exit_code == 2
        line = one_error_line(result)
        assert f"pid {os.getpid()}" in line
        assert "--wait" in line
    assert not (tmp_path / "out" / "store").exists()  # nothing was written
    assert invoke(["run", "--quiet"], config).exit_code == 0  # released: the next run goes


def test_two_runs_at_once_take_turns(tmp_path: Path, stack: Stack) -> None:
    """Two real processes started together: the lock makes one wait for the other (``--wait``),
    and the store they leave is exactly a clean run's."""
    config = _config(tmp_path, stack)
    env = os.environ | SECRETS
    cli = [sys.executable, "-m", "engine.cli.main", "run", "--json", "--quiet", "--wait", "120"]
    procs = [
        subprocess.Popen(
            [*cli, "--config", str(config)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err.decode()[-500:] for _, err in outputs]
    kinds = sorted(json.loads(out)["window"]["full_rebuild"] for out, _ in outputs)
    assert kinds == [False, True]  # one built the store, the other came after it
    clean = tmp_path / "clean"
    clean.mkdir()
    run_json(_config(clean, stack))
    same_tables(_tables(tmp_path / "out"), _tables(clean / "out"))


def test_a_killed_lock_holder_is_taken_over(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    _kill_a_lock_holder(tmp_path / "state")
    assert invoke(["run", "--quiet"], config).exit_code == 0


def test_the_old_parquet_store_is_migrated_once(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    for name in TABLES:  # rewrite each table in the layout of the Parquet-directory store
        path = out / "store" / name
        frame = pl.read_delta(str(path))
        shutil.rmtree(path)
        frame.write_parquet(path, partition_by="date", mkdir=True)
    state = tmp_path / "state" / "run.json"
    old = json.loads(state.read_text())
    old["version"] = 1
    del old["digests"]
    state.write_text(json.dumps(old))
    summary = run_json(config)
    cleaned = summary["cleaned"]
    assert isinstance(cleaned, list)
    assert sum("migrated" in c for c in cleaned) == len(TABLES)
    same_tables(_tables(out), before)
    assert not [p for p in (out / "store").rglob("*.parquet") if not p.name.startswith("part-")]
    again = run_json(config)
    assert not [c for c in again["cleaned"] if "migrated" in c]  # type: ignore[union-attr]


def _old_store(path: Path) -> pl.DataFrame:
    """A table of the Parquet-directory store at ``path``; its rows."""
    at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    rows = pl.DataFrame({"at": [at, at + timedelta(days=1)], "n": [1, 2]})
    rows.with_columns(date=pl.col("at").dt.date()).write_parquet(path, partition_by="date")
    return rows


@pytest.mark.parametrize("left", ["killed first commit", "earlier release's empty creation"])
def test_a_migration_that_never_committed_is_migrated_again(tmp_path: Path, left: str) -> None:
    """Killed before its commit, a migration left the table's log folder (or, in an earlier
    release, an empty version 0 made before the rows): the next run took the table for migrated,
    ignored the old rows and then deleted them as stale files, exit 0."""
    path = tmp_path / "t"
    rows = _old_store(path)
    if left == "killed first commit":
        code = f"from engine.output.migrate import migrate; migrate({str(path)!r}, by='at')"
        env = {**os.environ, "WFM_KILL_AT": "delta.files_written"}
        killed = run_process([sys.executable, "-c", code], timeout=120, env=env)
        assert killed.returncode == -9, killed.stderr
    else:
        from deltalake import DeltaTable, Schema

        schema = Schema.from_arrow(delta.arrow_schema(rows.with_columns(delta.days_of("at"))))
        DeltaTable.create(str(path), schema=schema, partition_by=[delta.PARTITION])
    assert migrate(path, by="at")
    assert_frame_equal(delta.scan(path).collect().sort("at").select(rows.columns), rows)
    assert not migrate(path, by="at")  # done: once
    assert_frame_equal(delta.scan(path).collect().sort("at").select(rows.columns), rows)


def test_a_dry_run_writes_nothing_and_says_what_a_run_would_touch(
    tmp_path: Path, stack: Stack
) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    before = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    result = invoke(["run", "--dry-run", "--json"], config)
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["sources"] == ["ujet", "mindful"]
    assert plan["full_rebuild"] is False
    assert plan["callvolume"]
    assert plan["partitions"]["contacts"] == []
    after = sorted((p.relative_to(tmp_path), p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    assert after == before
    text = invoke(["run", "--dry-run", "--full-refresh"], config)
    assert text.exit_code == 0, text.output
    assert "full rebuild" in text.stdout
    assert "contacts partitions: all" in text.stdout


def _leftovers(out: Path) -> tuple[Path, Path]:
    """What a writer killed mid-way leaves: a data file of a commit that never happened and a
    half-written temporary file."""
    volume = out / "store" / "callvolume"
    orphan = sorted(volume.glob("date=*"))[0] / "part-0123456789ab-000000000000.parquet"
    shutil.copy(next(volume.rglob("part-*.parquet")), orphan)
    tmp = out / "exports" / f".callvolume.csv.tmp-{'a' * 32}"
    tmp.write_text("half")
    return orphan, tmp


def _kill_a_lock_holder(state: Path) -> None:
    code = (
        "import os, sys\n"
        "from engine.pipeline.lock import store_lock\n"
        "with store_lock(sys.argv[1]):\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    assert run_process([sys.executable, "-c", code, str(state)], timeout=60).returncode == -9


def test_leftovers_of_a_killed_run_are_cleaned(tmp_path: Path, stack: Stack) -> None:
    config = _config(tmp_path, stack)
    run_json(config)
    orphan, tmp = _leftovers(tmp_path / "out")
    _kill_a_lock_holder(tmp_path / "state")  # the writer that left them died holding the lock
    summary = run_json(config)
    cleaned = summary["cleaned"]
    assert isinstance(cleaned, list)
    assert str(tmp) in cleaned
    assert any("uncommitted" in c for c in cleaned)
    assert not orphan.exists()
    assert not tmp.exists()


def test_after_a_clean_end_the_sweep_waits_a_week(tmp_path: Path, stack: Stack) -> None:
    """A run after one that ended cleanly skips the sweep (nothing of a killed writer can be
    there); stray files a writer outside the lock left are swept once a week."""
    config = _config(tmp_path, stack)
    run_json(config)
    lock = json.loads((tmp_path / "state" / "wfm-intervals.lock").read_text())
    assert "ended" in lock
    orphan, tmp = _leftovers(tmp_path / "out")
    assert run_json(config)["cleaned"] == []
    assert orphan.exists()
    assert tmp.exists()
    record = tmp_path / "state" / "housekeeping.json"
    swept = datetime.fromisoformat(json.loads(record.read_text())["swept"])
    days_before = swept - timedelta(days=6, hours=23)
    record.write_text(json.dumps({"swept": days_before.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    assert run_json(config)["cleaned"] == []  # under a week since: still waiting
    assert orphan.exists()
    week_before = swept - timedelta(days=7, minutes=1)
    record.write_text(json.dumps({"swept": week_before.strftime("%Y-%m-%dT%H:%M:%SZ")}))
    cleaned = run_json(config)["cleaned"]
    assert isinstance(cleaned, list)
    assert str(tmp) in cleaned
    assert not orphan.exists()
    assert not tmp.exists()


def test_verify_checks_landing_state_and_store_against_each_other(
    tmp_path: Path, stack: Stack
) -> None:
    config = _config(tmp_path, stack)
    fresh = invoke(["verify"], config)
    assert fresh.exit_code == 0, fresh.output  # no run yet: nothing is wrong
    assert "behind   state" in fresh.stdout
    run_json(config)
    good = invoke(["verify", "--json"], config)
    assert good.exit_code == 0, good.output
    findings = json.loads(good.stdout)["findings"]
    assert {f["status"] for f in findings} == {"ok"}
    assert {f["check"] for f in findings} >= {
        "state",
        "state ujet/calls",
        "landing ujet/calls",
        "store callvolume",
        "store vs state",
        "landing vs state",
    }
    # Something lands after the run: the store is behind, not broken.
    stack.ujet.update_records([stack.ujet.expected_contacts()["contact_id"][0]], talk_ms=1)
    synced = invoke(["sync", "ujet"], config)
    assert synced.exit_code == 0, synced.output
    behind = invoke(["verify"], config)
    assert behind.exit_code == 0, behind.output
    assert (
        "behind   landing vs state: contacts: 1 day(s) landed since the last run" in behind.stdout
    )
    # A partition of the contacts table replaced outside a run: every file is sound, the
    # digests say the store is not what the last run built.
    contacts = tmp_path / "out" / "store" / "contacts"
    rows = pl.read_delta(str(contacts)).drop("date")
    day = rows["offered_at"].min().date()  # type: ignore[union-attr]
    fewer = rows.filter(pl.col("offered_at").dt.date() == day).slice(1)

    delta.commit(contacts, fewer, by="offered_at", days=[day])
    changed = invoke(["verify"], config)
    assert changed.exit_code == 2
    assert f"contacts: 1 partition day(s) differ from the last run: {day}" in changed.stdout
    assert "--full-refresh" in one_error_line(changed)
    # A lost file of the volume table: named, with the fix.
    victim = next((tmp_path / "out" / "store" / "callvolume").rglob("part-*.parquet"))
    victim.unlink()
    lost = invoke(["verify"], config)
    assert lost.exit_code == 2
    assert f"{victim}: missing" in one_error_line(lost)
    # A lost landing file: named, with the run that fetches its records again.
    landed = next((tmp_path / "landing" / "raw" / "source=ujet").rglob("part-*.parquet"))
    landed.unlink()
    gone = invoke(["verify", "--json"], config)
    assert gone.exit_code == 2
    found = [
        f for f in json.loads(gone.stdout)["findings"] if f["check"].startswith("landing ujet")
    ]
    assert [f["status"] for f in found if str(landed) in f["detail"]] == ["problem"]
    assert all(f["fix"].startswith("wfm-intervals run") for f in found if f["status"] != "ok")
    # A cursor ahead of the clock (the clock ran back since it was committed): a problem, as
    # the next sync refuses it; the error line is the state's, with its way out, once.
    states = StateStore(tmp_path / "state")
    held = states.get("ujet", "calls")
    assert held is not None
    states.commit("ujet", "calls", clock.now() + timedelta(days=300), lookback=held.lookback)
    ahead = invoke(["verify"], config)
    assert ahead.exit_code == 2
    line = one_error_line(ahead)
    assert line.startswith("wfm-intervals: error: state of ujet/calls: its cursor ")
    assert line.endswith("or without --since to read everything again")
    assert "problem  state ujet/calls: state of ujet/calls: its cursor" in ahead.stdout


def test_a_callback_chain_published_hours_late_reaches_the_callback_tables(
    tmp_path: Path, stack: Stack
) -> None:
    """Mindful publishes a chain registered 10 h before the run in the hour file of its end, after
    that file was first read: the next run lands it (the lookback re-reads the hour), and the
    callback tables of its request's day are rebuilt (the old window followed ``created_at``
    and missed it)."""
    config = _config(tmp_path, stack)
    run_json(config)
    single = next(
        r for r in stack.mindful.records() if not r["hasRetry"] and r["retryAttempt"] == 0
    )
    late = TEST_NOW - timedelta(hours=10)
    shift = late - datetime.fromisoformat(single["createdAt"])
    record = dict(single) | {"id": "late0000000000001", "originalId": "late0000000000001"}
    for key in ("createdAt", "processedAt", "estimatedFor", "endedAt"):
        if record.get(key):
            moved = datetime.fromisoformat(record[key]) + shift
            record[key] = moved.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    hour = TEST_NOW.replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    stack.mindful.add_raw_records([record], hour=hour)
    second = run_json(config)
    assert second["late_changes"] >= 1
    plan = second["plan"]
    assert isinstance(plan, dict)
    assert plan["partitions"]["callback_attempts"] == [late.date().isoformat()]
    out = tmp_path / "out"
    got = _tables(out)
    assert "late0000000000001" in got["callback_attempts"]["attempt_id"].to_list()
    clean = tmp_path / "clean"
    clean.mkdir()
    full = invoke(["run", "--json", "--quiet"], _config(clean, stack))
    # The emulator's metrics endpoint does not count records served raw: Mindful's own numbers
    # lack this chain, so the clean run's reconciliation (over the whole day) says so.
    assert json.loads(full.stdout)["problems"] == ["reconciliation: 6 differences out of tolerance"]
    same_tables(got, _tables(clean / "out"))


def test_a_torn_landing_file_is_fetched_again_and_the_run_says_so(
    tmp_path: Path, stack: Stack
) -> None:
    """A landed file torn on disk: the sync's repair sets it aside and fetches its range again
    before anything reads it; the run exits 0 with the tables of a clean run and names the
    repair in its summary."""
    config = _config(tmp_path, stack)
    run_json(config)
    landed = sorted((tmp_path / "landing" / "raw" / "source=ujet").rglob("*.parquet"))[0]
    landed.write_bytes(landed.read_bytes()[:100] + b"\x00\xff")
    shown = invoke(["run", "--quiet"], config)
    assert shown.exit_code == 0, shown.output
    assert "repaired ujet/" in shown.stdout
    summary = json.loads((tmp_path / "out" / "run_summary.json").read_text())
    repaired = summary["repaired"]
    assert isinstance(repaired, list)
    assert any(str(line).startswith("ujet/") for line in repaired), repaired
    assert not any("\x00" in str(line) or "\xff" in str(line) for line in repaired)
    clean = tmp_path / "clean"
    invoke(["run", "--quiet"], _config(clean, stack))
    same_tables(_tables(tmp_path / "out"), _tables(clean / "out"))


def test_an_unreadable_landing_file_found_by_the_rebuild_is_one_line_with_the_way_back(
    tmp_path: Path, stack: Stack
) -> None:
    """A landed file torn where no sync repairs it first (here a dry run, which syncs nothing)
    stops the rebuild with one line naming the store and the way back."""
    config = _config(tmp_path, stack)
    run_json(config)
    landed = sorted((tmp_path / "landing" / "raw" / "source=ujet").rglob("*.parquet"))[0]
    landed.write_bytes(landed.read_bytes()[:100] + b"\x00\xff")
    result = invoke(["run", "--quiet", "--dry-run"], config)
    assert result.exit_code == 2
    line = one_error_line(result)
    assert f"store.landing {tmp_path / 'landing'}: the landed records of " in line
    assert "state reset" in line
    assert "\x00" not in line
    assert "\xff" not in line


def test_a_conflicting_duplicate_is_quarantined_not_won_by_the_later_fetch(
    tmp_path: Path, stack: Stack
) -> None:
    """The vendor sends a record again under the same ``updated_at`` with other content: both
    versions go to the quarantine as ``conflicting_duplicate`` (the later fetch used to win)."""
    config = _config(tmp_path, stack)
    run_json(config)
    calls = stack.ujet.expected_contacts().filter(pl.col("channel") == "voice")
    last = calls.sort("updated_at").row(-1, named=True)  # at the cursor: the sync reads it again
    assert last["outcome"] == "answered"
    stack.ujet.update_records(  # the vendor shows talk time in whole seconds
        [last["contact_id"]], talk_ms=last["talk_ms"] + 1000, updated_at=last["updated_at"]
    )
    result = invoke(["run", "--json", "--quiet"], config)
    summary = json.loads(result.stdout)
    assert summary["quarantined"].get("conflicting_duplicate", 0) >= 2, summary["quarantined"]
    quarantine = pl.read_csv(tmp_path / "out" / "quarantine" / "contacts.csv")
    conflict = quarantine.filter(pl.col("reason") == "conflicting_duplicate")
    assert conflict["record_id"].n_unique() == 1
    assert conflict["raw"].n_unique() == 2  # both payloads
    stored = table(tmp_path / "out", "contacts")
    assert last["contact_id"] not in stored["contact_id"].to_list()


def test_a_tenant_without_chats_leaves_the_stream_out(tmp_path: Path, stack: Stack) -> None:
    stack.ujet._records.pop("chats")
    failed = invoke(["run", "--quiet"], _config(tmp_path, stack))
    assert failed.exit_code == 2
    assert "leave the stream out: sources.ujet.streams" in one_error_line(failed)
    only_calls = write_config(
        tmp_path,
        stack,
        sources__ujet={"streams": ["calls"]},
        sources__dixa={"enabled": False},
        sources__kore={"enabled": False},
        run={"report": False},
    )
    summary = run_json(only_calls)
    pulled = summary["pulled"]
    assert isinstance(pulled, list)
    assert [f"{p['source']}/{p['stream']}" for p in pulled] == ["ujet/calls", "mindful/attempts"]
    wrong = write_config(tmp_path, stack, sources__ujet={"streams": ["calls", "emails"]})
    refused = invoke(["run", "--quiet"], wrong)
    assert refused.exit_code == 2
    assert "sources.ujet.streams: no stream 'emails' (streams of ujet: calls, chats)" in (
        one_error_line(refused)
    )


def test_a_commit_of_the_same_rows_changes_nothing_and_a_change_only_its_partition(
    tmp_path: Path,
) -> None:
    """``if_changed``: the same rows in another order commit nothing; one changed day rewrites
    that day's partition only (the other day's file stays as it was)."""
    at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    rows = pl.DataFrame(
        {"at": [at, at + timedelta(hours=1), at + timedelta(days=1)], "n": [1, 2, 3]}
    )
    days = [at.date(), (at + timedelta(days=1)).date()]
    path = tmp_path / "t"
    first = delta.commit(path, rows, by="at", days=days)
    assert delta.commit(path, rows.reverse(), by="at", days=days, if_changed=True) == first
    second_day = path / f"date={days[1].isoformat()}"
    kept = sorted(p.name for p in second_day.iterdir())
    changed = rows.with_columns(pl.when(pl.col("n") == 1).then(10).otherwise("n").alias("n"))
    assert delta.commit(path, changed, by="at", days=days, if_changed=True) == first + 1
    assert sorted(p.name for p in second_day.iterdir()) == kept
    assert sorted(delta.scan(path).collect()["n"].to_list()) == [2, 3, 10]
    assert delta.commit(path, changed, by="at", days=days) == first + 2  # without: always


def test_a_newer_version_that_does_not_fit_is_quarantined_not_dropped(
    tmp_path: Path, stack: Stack
) -> None:
    """A call stored by one run, changed by UJET, its new version served with a rating that is
    not a number: the second run set the new version aside at landing and then dropped it
    from the quarantine because an (older) version of the call had landed: exit 0, nothing
    quarantined, nothing said. Now it is quarantined; the version before it stays counted."""
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    target = stack.ujet.records("calls")[0]
    cid = f"call-{target['id']}"
    before = table(out, "contacts").filter(pl.col("contact_id") == cid)
    assert before.height
    stack.ujet.update_records([cid], talk_ms=1, updated_at=clock.now() - timedelta(minutes=2))

    def misfit(n: int, request: Request, response: Response) -> Response:
        if not isinstance(response.payload, list):
            return response
        rows = [r | {"rating": "five"} if r.get("id") == target["id"] else r
                for r in response.payload]  # fmt: skip
        return replace(response, payload=rows, body=None)

    stack.ujet.add_rewrite(misfit)
    summary = run_json(config)
    assert summary["quarantined"] == {"wrong_type": 1}
    quarantine = pl.read_csv(out / "quarantine" / "contacts.csv", infer_schema=False)
    assert quarantine.select("record_id", "reason").rows() == [(cid, "wrong_type")]
    assert_frame_equal(table(out, "contacts").filter(pl.col("contact_id") == cid), before)


def _lean(root: Path, stack: Stack, **build: object) -> Path:
    off = {"enabled": False}
    run = {"lookback_minutes": 60, "report": False}
    return write_config(root, stack, sources__dixa=off, sources__kore=off, run=run, build=build)


@pytest.mark.parametrize(
    ("table_name", "how"),
    [("callvolume", "restored"), ("contacts", "restored"), ("callvolume", "log cut")],
)
def test_a_table_put_back_from_an_older_copy_is_rebuilt_not_kept(
    tmp_path: Path, stack: Stack, table_name: str, how: str
) -> None:
    """A store table restored from last night's copy (or its newest log entry lost) is sound
    by every file check, one version behind what the run state records: every run exited 0
    with its rows missing for good (callvolume 280 where 382), and ``verify`` said ok. Now the
    run finds it not as the last run left it, rebuilds, and lists it in ``repaired``."""
    config = _config(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    path = out / "store" / table_name
    shutil.copytree(path, tmp_path / "older")
    late = stack.ujet.expected_contacts().filter(pl.col("outcome") == "answered").row(0, named=True)
    stack.ujet.update_records([late["contact_id"]], talk_ms=late["talk_ms"] + 60_000)
    run_json(config)
    before = _tables(out)
    if how == "restored":
        shutil.rmtree(path)
        shutil.copytree(tmp_path / "older", path)
    else:
        max((path / "_delta_log").glob("*.json")).unlink()
    verified = invoke(["verify"], config)
    assert verified.exit_code == 2, verified.output
    assert "where the last run left version" in verified.stdout
    summary = run_json(config)
    assert any("where the last run left version" in line for line in summary["repaired"])  # type: ignore[union-attr]
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out), before)
    state = tmp_path / "state" / "run.json"  # an entry cut (or edited by hand): not compared
    recorded = json.loads(state.read_text())
    recorded["tables"][table_name] = recorded["tables"][table_name].rpartition("@")[0] + "@"
    state.write_text(json.dumps(recorded))
    assert invoke(["verify"], config).exit_code == 0
    assert run_json(config)["repaired"] == []


def test_a_full_rebuild_killed_halfway_is_a_full_rebuild_again(
    tmp_path: Path, stack: Stack
) -> None:
    """New build settings, a run killed after its first table commit, the settings put back:
    the next run took the old settings for the tables' own and went on incrementally, the days
    it did not rebuild keeping the other settings' numbers, exit 0. The run state is marked
    unfinished before a full rebuild commits anything: the next run is a full one too."""
    config = _lean(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    changed = _lean(tmp_path, stack, short_abandon_ms=600_000, sl_formula="answered_only")
    env = os.environ | SECRETS | {"WFM_KILL_AT": "delta.committed@2",
                                  "WFM_CLOCK_AT": TEST_NOW.isoformat()}  # fmt: skip
    cli = [sys.executable, "-m", "engine.cli.main", "run", "--quiet", "--config", str(changed)]
    child = run_process(cli, env=env, cwd=tmp_path, timeout=180)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    config = _lean(tmp_path, stack)  # the settings put back
    said = invoke(["verify"], config).stdout + invoke(["state", "show"], config).stdout
    assert said.count("a full rebuild began") == 2, said  # not a run that built the tables
    assert "partition day(s) differ" not in said
    summary = run_json(config)
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out), before)
