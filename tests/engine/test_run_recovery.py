"""Nightly runs after trouble: a rebuild left unfinished, a damaged table file, leftovers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from engine.clock import StartedClock, use_clock
from engine.demo.stack import Stack
from engine.output.inputs import InputFileError, read_table
from engine.pipeline.state import run_history
from tests.calendar import TEST_NOW, run_process
from tests.engine.run_support import (
    SECRETS,
    T0,
    clean_environment,
    emulators,
    invoke,
    one_error_line,
    run_json,
    same_tables,
    table,
    write_config,
)

TABLES = ("contacts", "callback_attempts", "callvolume", "callback_intervals", "retry_outcomes")


@pytest.fixture
def stack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Stack]:
    """The emulators, on a clock restarted at TEST_NOW for this test."""
    clean_environment(monkeypatch, tmp_path)
    with use_clock(StartedClock(TEST_NOW)), emulators() as s:
        yield s


def _lean(root: Path, stack: Stack, **build: object) -> Path:
    off = {"enabled": False}
    run = {"lookback_minutes": 60, "report": False}
    return write_config(root, stack, sources__dixa=off, sources__kore=off, run=run, build=build)


def _tables(out: Path) -> dict[str, pl.DataFrame]:
    return {name: table(out, name) for name in (*TABLES, "staffing")}


def test_a_narrower_window_after_an_unfinished_rebuild_keeps_every_built_day(
    tmp_path: Path, stack: Stack
) -> None:
    """New build settings, a run killed after its first table commit (the run state marked
    unfinished), the settings put back, then ``run --start/--end`` over two hours: the volume
    and staffing tables kept those two hours only (66 rows -> 17), exit 0. The full rebuild
    the store owes is made whole whatever window is given."""
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
    narrow = ["--start", (T0 + timedelta(hours=10)).isoformat(),
              "--end", (T0 + timedelta(hours=12)).isoformat()]  # fmt: skip
    summary = run_json(config, *narrow)
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out), before)
    assert run_json(config)["window"]["full_rebuild"] is False  # type: ignore[index]
    same_tables(_tables(out), before)


@pytest.mark.parametrize("name", ["contacts", "callvolume"])
def test_a_table_file_damaged_in_place_is_named_and_rebuilt(
    tmp_path: Path, stack: Stack, name: str
) -> None:
    """Bytes overwritten inside a stored Parquet file (its size kept): the run checked sizes
    only and exited 0 with the file still current (read by every reader: an error naming
    nothing, or wrong rows), and ``verify`` named no file (contacts) or said ok (callvolume).
    Now ``verify`` and the readers name the file, and the run, which reads the files changed
    on disk since the last run committed, lists it in ``repaired`` and rebuilds the store."""
    config = _lean(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    victim = sorted((out / "store" / name).rglob("part-*.parquet"))[-1]
    shown = str(victim.relative_to(out))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = b"\xde\xad\xbe\xef" * 16
    victim.write_bytes(bytes(data))
    verified = invoke(["verify"], config)
    assert verified.exit_code == 2, verified.output
    line = one_error_line(verified)
    assert shown in line
    assert "unreadable" in line
    assert line.endswith("(fix: wfm-intervals run --full-refresh)")
    with pytest.raises(InputFileError, match=shown):
        read_table(out / "store" / name)
    summary = run_json(config)
    repaired = summary["repaired"]
    assert isinstance(repaired, list)
    assert len(repaired) == 1
    assert shown in repaired[0]
    assert summary["window"]["full_rebuild"] is True  # type: ignore[index]
    same_tables(_tables(out), before)
    assert invoke(["verify"], config).exit_code == 0
    assert run_json(config)["repaired"] == []


def _with_dixa(root: Path, stack: Stack, **dixa: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    off = {"enabled": False}
    run = {"lookback_minutes": 60, "report": False}
    dixa = {"lookback_minutes": 60, "window_hours": 1, **dixa}  # no record landed again
    return write_config(root, stack, sources__kore=off, sources__dixa=dixa, run=run)


def test_a_source_setting_that_changes_rows_redoes_the_days_it_changed(
    tmp_path: Path, stack: Stack
) -> None:
    """Dixa's ``duration_unit`` set to "ms" one night and put back the next: the snapshot's key
    covered the build settings only, so the records landed before kept their rows of the wrong
    unit (handle times 1000x too small, exit 0) for ever. The key now covers each source's
    mapping settings: the snapshot is redone whole and the days it changed rebuilt."""
    clean = _with_dixa(tmp_path / "clean", stack)
    run_json(clean)
    want = _tables(tmp_path / "clean" / "out")
    config = _with_dixa(tmp_path / "t", stack, duration_unit="ms")
    run_json(config)
    wrong = _tables(tmp_path / "t" / "out")
    assert not wrong["contacts"].equals(want["contacts"])
    config = _with_dixa(tmp_path / "t", stack)  # put back
    summary = run_json(config)
    assert summary["window"]["full_rebuild"] is False  # type: ignore[index]
    same_tables(_tables(tmp_path / "t" / "out"), want)
    config = _with_dixa(tmp_path / "t", stack, duration_unit="ms")  # and once more
    run_json(config)
    same_tables(_tables(tmp_path / "t" / "out"), wrong)


def _damage_snapshot(state: Path, column: str, how: str) -> Path:
    """One contacts shard of the snapshot damaged in place, mid-way into ``column``'s first
    chunk: 64 zero bytes (``zero``) or one bit (``flip``); its size kept."""
    victim = sorted((state / "snapshot" / "contacts").glob("rows-*.parquet"))[0]
    meta = pq.ParquetFile(victim).metadata.row_group(0)
    chunk = next(
        meta.column(i) for i in range(meta.num_columns) if meta.column(i).path_in_schema == column
    )
    data = bytearray(victim.read_bytes())
    at = chunk.data_page_offset + chunk.total_compressed_size // 2
    if how == "zero":
        data[at : at + 64] = bytes(64)
    else:
        data[at + 2] ^= 1
    victim.write_bytes(bytes(data))
    return victim


@pytest.mark.parametrize(
    ("column", "how"), [("offered_at", "flip"), ("offered_at", "zero"), ("wait_ms", "zero")]
)
def test_a_snapshot_file_damaged_in_place_is_named_and_redone(
    tmp_path: Path, stack: Stack, column: str, how: str
) -> None:
    """A shard of the snapshot damaged in place (its size kept) was read as it was: a flipped
    bit moved a contact (exit 0, wrong rows for ever), zeroed bytes gave a traceback or an
    error blaming the landing store, and ``verify`` said ok. Each snapshot file's digest is
    kept now: ``verify`` names the file, and the run, which checks the files changed on disk
    since the snapshot was committed, redoes the snapshot from the landing store and lists the
    file in ``repaired``; the tables are a clean run's."""
    config = _lean(tmp_path, stack)
    run_json(config)
    out = tmp_path / "out"
    before = _tables(out)
    victim = _damage_snapshot(tmp_path / "state", column, how)
    verified = invoke(["verify"], config)
    assert verified.exit_code == 2, verified.output
    assert str(victim) in verified.output
    day = ["--start", T0.isoformat(), "--end", (T0 + timedelta(days=1)).isoformat()]
    summary = run_json(config, *day)  # the damaged shard's day rebuilt
    repaired = summary["repaired"]
    assert isinstance(repaired, list)
    assert len(repaired) == 1
    assert str(victim) in repaired[0]
    same_tables(_tables(out), before)
    assert invoke(["verify"], config).exit_code == 0
    assert run_json(config)["repaired"] == []


def test_verify_after_an_incremental_run_killed_after_its_commits_says_run_completes_it(
    tmp_path: Path, stack: Stack
) -> None:
    """An incremental run killed after it committed its tables, before its state: ``verify``
    said a partition day differs from the last run and prescribed ``--full-refresh``, though a
    plain run completes it. The run marks its state before it commits: ``verify`` now says a run
    did not finish and that ``run`` completes it."""
    config = _lean(tmp_path, stack)
    run_json(config)
    stack.ujet.update_records([stack.ujet.expected_contacts()["contact_id"][0]], talk_ms=1)
    env = os.environ | SECRETS | {"WFM_KILL_AT": "run.exported",
                                  "WFM_CLOCK_AT": TEST_NOW.isoformat()}  # fmt: skip
    cli = [sys.executable, "-m", "engine.cli.main", "run", "--quiet", "--config", str(config)]
    child = run_process(cli, env=env, cwd=tmp_path, timeout=180)
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    verified = invoke(["verify"], config)
    assert verified.exit_code == 2, verified.output
    assert "did not finish: `wfm-intervals run` completes it" in verified.output
    assert "--full-refresh" not in verified.output
    run_json(config)
    assert invoke(["verify"], config).exit_code == 0


def test_a_landed_file_that_cannot_be_read_is_named_with_its_stream(
    tmp_path: Path, stack: Stack
) -> None:
    """64 zero bytes inside a landed file (its size kept): ``run --full-refresh`` said the
    landed records of the contacts cannot be read, naming no file and no stream. Each landed
    file of the table's streams is read alone then: the line names the file, its stream and
    the exact ``state reset`` command."""
    config = _lean(tmp_path, stack)
    run_json(config)
    home = tmp_path / "landing" / "raw" / "source=ujet" / "stream=calls"
    victim = max(home.rglob("*.parquet"), key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    victim.write_bytes(bytes(data))
    result = invoke(["run", "--quiet", "--full-refresh"], config)
    assert result.exit_code == 2, result.output
    line = one_error_line(result)
    assert f"{victim} (ujet/calls)" in line
    assert "`wfm-intervals state reset ujet calls --yes`" in line


@pytest.mark.parametrize(("raised", "code"), [(KeyboardInterrupt, 130), (RuntimeError, 2)])
def test_a_run_interrupted_or_failing_unexpectedly_is_in_the_history(
    tmp_path: Path, stack: Stack, monkeypatch: pytest.MonkeyPatch, raised: type, code: int
) -> None:
    """A run stopped by an interrupt, or by an error no code expects, was missing from the
    history (``state show`` listed runs that completed or failed as expected only). It is
    recorded with the exit code the command ends with, and the exception raised on."""
    config = _lean(tmp_path, stack)
    run_json(config)

    def stopped(*_args: object, **_kwargs: object) -> None:
        raise raised("stopped")

    monkeypatch.setattr("engine.cli.run.run", stopped)
    try:  # the test runner may turn an interrupt into click's abort
        result = invoke(["run", "--quiet"], config)
    except raised:
        pass
    else:
        assert result.exit_code != 0
    runs = run_history(tmp_path / "state")
    assert [r["exit_code"] for r in runs] == [0, code]
    assert runs[-1]["error"].startswith("interrupted" if code == 130 else "internal error")
