"""The landing store's manifest: a lost or damaged landing file is found, its range fetched again.

Every source syncs from its loopback emulator (its ``kill_resume_case``) through the real
``wfm-intervals sync`` command, in this process. A landing file deleted or truncated after a sync
is fetched again by the next one, which must then hold exactly the records of a sync that lost
nothing. What cannot be fetched again (the state file, a file whose range is unknown) is one
line naming the path and the command that fixes it, exit 2; the command then works. Compaction
(also killed half-way) keeps the manifest true, and a store landed before the manifest existed
is adopted once.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import Result
from polars.testing import assert_frame_equal
from pydantic import SecretStr

import connectors.landing
from connectors.emulator import MindfulEmulator
from connectors.errors import LandingError, StateError
from connectors.landing import compact, land_page, scan_landed
from connectors.landing.check import check_landing, repair_landing
from connectors.landing.manifest import (
    MANIFEST,
    Entry,
    Span,
    landed_files,
    manifest_path,
    read_manifest,
    stream_dir,
)
from connectors.registry import SOURCES
from connectors.state import StateStore
from connectors.sync import SyncReport, sync_source
from connectors.vendors.mindful.client import MINDFUL
from connectors.vendors.ujet.client import UJET
from engine import killpoint
from engine.cli.main import cli
from engine.clock import CLOCK_AT_VARIABLE
from tests.connectors import mindful_support, ujet_support
from tests.connectors.kill_support import KillResumeCase
from tests.connectors.sync_support import sync_into
from tests.environment import invoke


class Stop(Exception):  # noqa: N818 - a simulated crash, not an error of the code under test
    """Raised where a test stops a sync or a compaction, as a kill would."""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in [n for n in os.environ if n.startswith("WFM_") and n != CLOCK_AT_VARIABLE]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def case(name: str) -> AbstractContextManager[KillResumeCase]:
    module = importlib.import_module(f"tests.connectors.{name}_support")
    factory: Callable[[int], AbstractContextManager[KillResumeCase]] = module.kill_resume_case
    return factory(1)


def environment(name: str, kase: KillResumeCase, root: Path) -> dict[str, str]:
    settings = {"ENABLED": "true", "RETRY_BASE_S": "0.01"} | dict(kase.settings)
    env = {f"WFM_SOURCES__{name.upper()}__{k}": v for k, v in settings.items()}
    return env | {
        "WFM_STORE__LANDING": str(root / "landing"),
        "WFM_STORE__STATE": str(root / "state"),
    }


def command(env: dict[str, str], *args: str) -> Result:
    return invoke(cli, args, env, catch_exceptions=False)  # the emulator's thread runs


def synced(env: dict[str, str], name: str) -> list[dict[str, Any]]:
    result = command(env, "sync", name, "--json")
    assert result.exit_code == 0, result.output
    reports: list[dict[str, Any]] = json.loads(result.stdout)["pulled"]
    return reports


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wfm-intervals: error: ")
    return lines[0]


def landed(landing: Path, source: str) -> dict[str, pl.DataFrame]:
    """Each stream's landed records (the latest version of each), without when they landed."""
    streams = sorted(p.name[7:] for p in (landing / "raw" / f"source={source}").glob("stream=*"))
    columns = ["record_id", "updated_at", "payload"]
    return {
        s: scan_landed(landing, source, s).select(columns).collect().sort(columns) for s in streams
    }


def assert_same(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    assert got.keys() == want.keys()
    for stream, frame in want.items():
        assert frame.height > 0
        assert_frame_equal(got[stream], frame)


def earliest(landing: Path, source: str) -> tuple[str, Entry]:
    """The stream and entry of the listed file whose range starts first (a stream's first page)."""
    found = []
    for folder in sorted((landing / "raw" / f"source={source}").glob("stream=*")):
        for entry in read_manifest(landing, source, folder.name[7:]).entries.values():
            assert entry.span.start is not None
            found.append((entry.span.start, folder.name[7:], entry))
    _, stream, entry = min(found, key=lambda f: f[0])
    return stream, entry


# -- a lost or damaged file, every source --------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "truncated"])
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_lost_landing_file_is_fetched_again_exactly(
    name: str, damage: str, tmp_path: Path
) -> None:
    with case(name) as kase:
        whole = tmp_path / "whole"
        synced(environment(name, kase, whole), name)
        reference = landed(whole / "landing", name)

        env, landing = environment(name, kase, tmp_path / "lost"), tmp_path / "lost" / "landing"
        synced(env, name)
        stream, victim = earliest(landing, name)
        path = stream_dir(landing, name, stream) / victim.file
        held = StateStore(tmp_path / "lost" / "state").get(name, stream)
        assert held is not None
        assert victim.span.start is not None
        assert victim.rows > 0
        assert victim.span.start < held.cursor - held.lookback  # a plain re-sync skips them
        if damage == "deleted":
            path.unlink()
        else:
            path.write_bytes(path.read_bytes()[: victim.size // 2])

        reports = synced(env, name)
        rebuilt, truth = kase.rebuilt(landing), kase.truth()
    repaired = [line for r in reports for line in r["repaired"]]
    assert len(repaired) == 1
    assert str(path) in repaired[0]
    assert ("missing" if damage == "deleted" else "damaged") in repaired[0]
    assert_same(landed(landing, name), reference)  # nothing missing, nothing added
    assert_frame_equal(rebuilt, truth)
    assert check_landing(landing, tmp_path / "lost" / "state", name, stream) == []
    assert (path.with_name(path.name + ".damaged").exists()) == (damage == "truncated")


# -- what the manifest holds, and files it does not list yet ---------------------------------------


def test_each_landed_file_has_one_entry_with_its_range(tmp_path: Path) -> None:
    with ujet_support.emulator(ujet_support.small_contacts(scale=0.02)) as emu:
        reports = sync(emu, tmp_path)
    landing = tmp_path / "landing"
    for report in reports:
        manifest = read_manifest(landing, "ujet", report.stream)
        folder = stream_dir(landing, "ujet", report.stream)
        files = {
            p.relative_to(folder).as_posix(): p
            for p in landed_files(landing, "ujet", report.stream)
        }
        assert manifest.damaged is None
        assert manifest.entries.keys() == files.keys()
        assert sum(e.rows for e in manifest.entries.values()) == report.landed
        spans = sorted((e.span for e in manifest.entries.values()), key=lambda s: s.end)  # type: ignore[arg-type, return-value]
        assert spans[0].committed is None  # the stream's first page: no cursor yet
        assert all(s.committed is not None for s in spans[1:])
        assert all(s.start <= s.end for s in spans)  # type: ignore[operator]
        for name, path in files.items():
            assert manifest.entries[name].size == path.stat().st_size
            assert pl.read_parquet(path).height == manifest.entries[name].rows
        line = manifest_path(landing, "ujet", report.stream).read_text().splitlines()[0]
        assert set(json.loads(line)) == {
            "v", "source", "stream", "file", "rows", "bytes", "sha256", "from", "to", "committed"
        }  # fmt: skip


def sync(emu: Any, root: Path, **overrides: Any) -> list[SyncReport]:
    return sync_source(
        UJET,
        ujet_support.settings_for(emu, **overrides),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=lambda _: None,
    )


def stop_at(monkeypatch: pytest.MonkeyPatch, point: str, nth: int = 1) -> None:
    """Raise :class:`Stop` the ``nth`` time the crash point ``point`` is reached."""
    seen = [0]

    def reached(name: str) -> None:
        seen[0] += name == point
        if name == point and seen[0] == nth:
            raise Stop(point)

    monkeypatch.setattr(killpoint, "reached", reached)


def test_a_page_landed_but_not_listed_is_listed_with_its_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = ujet_support.small_contacts(scale=0.02)
    with ujet_support.emulator(contacts) as emu:
        reference = tmp_path / "whole"
        sync(emu, reference)
        calls = [0]
        append = connectors.landing.append_entry  # type: ignore[attr-defined]

        def dies_at_the_third(*args: Any) -> None:  # the process dies between file and entry
            calls[0] += 1
            if calls[0] == 3:
                raise Stop("append")
            append(*args)

        monkeypatch.setattr(connectors.landing, "append_entry", dies_at_the_third)
        with pytest.raises(Stop):
            sync(emu, tmp_path)
        monkeypatch.undo()
        unlisted = check_landing(tmp_path / "landing", tmp_path / "state", "ujet", "calls")
        assert [f.problem for f in unlisted] == ["unlisted"]
        assert unlisted[0].span is not None
        assert unlisted[0].span.start is not None  # from the file's footer
        reports = sync(emu, tmp_path)
    assert [len(r.repaired) for r in reports] == [1, 0]
    assert "was not in the manifest: listed (records from" in reports[0].repaired[0]
    assert_same(landed(tmp_path / "landing", "ujet"), landed(reference / "landing", "ujet"))
    assert check_landing(tmp_path / "landing", tmp_path / "state", "ujet", "calls") == []


def test_a_sync_stopped_before_its_first_commit_is_not_a_lost_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ujet_support.emulator(ujet_support.small_contacts(scale=0.02)) as emu:
        stop_at(monkeypatch, "sync.page_landed")
        with pytest.raises(Stop):
            sync(emu, tmp_path)
        monkeypatch.undo()
        assert StateStore(tmp_path / "state").get("ujet", "calls") is None
        assert len(landed_files(tmp_path / "landing", "ujet", "calls")) == 1
        reports = sync(emu, tmp_path)
        truth = emu.expected_contacts()
    assert all(r.ok and r.repaired == [] for r in reports)
    assert_frame_equal(ujet_support.synced(tmp_path / "landing"), truth)


# -- the state file --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["deleted", "torn"])
def test_a_lost_state_file_is_one_line_naming_the_fix(damage: str, tmp_path: Path) -> None:
    with case("ujet") as kase:
        env = environment("ujet", kase, tmp_path)
        synced(env, "ujet")
        before = landed(tmp_path / "landing", "ujet")
        state = StateStore(tmp_path / "state").path("ujet", "calls")
        if damage == "deleted":
            state.unlink()
        else:
            state.write_text('{"version": 1, "cursor": "2026-')
        requests = kase.emulator.stats.requests
        line = one_error_line(command(env, "sync", "ujet"))
        assert kase.emulator.stats.requests == requests  # nothing fetched
        assert f"state file {state}" in line
        assert line.endswith(
            "`wfm-intervals state reset ujet calls --yes` fetches ujet/calls again from its start"
        )
        assert command(env, "state", "reset", "ujet", "calls", "--yes").exit_code == 0
        reports = synced(env, "ujet")
        rebuilt, truth = kase.rebuilt(tmp_path / "landing"), kase.truth()
    assert reports[0]["started_from"] == "2026-09-01T00:00:00.000Z"  # from the start
    assert_same(landed(tmp_path / "landing", "ujet"), before)
    assert_frame_equal(rebuilt, truth)
    assert not StateStore(tmp_path / "state").was_reset("ujet", "calls")  # committed since


@pytest.mark.parametrize("name", ["ujet", "mindful"])
def test_a_lost_landing_store_stops_the_sync_naming_it(name: str, tmp_path: Path) -> None:
    """The whole landing store gone while the state says records were landed (a volume not
    mounted): once, the sync went on from the cursor and a rebuild lost every earlier record.
    Now: one line naming the folder, nothing fetched; a reset fetches everything again."""
    with case(name) as kase:
        env = environment(name, kase, tmp_path)
        synced(env, name)
        before = landed(tmp_path / "landing", name)
        state = StateStore(tmp_path / "state")
        stream = sorted(before)[0]
        held = state.get(name, stream)
        assert held is not None
        assert held.landed  # the state says so
        (tmp_path / "landing").rename(tmp_path / "landing.away")
        requests = kase.emulator.stats.requests
        line = one_error_line(command(env, "sync", name))
        assert kase.emulator.stats.requests == requests  # nothing fetched
        assert f"{tmp_path / 'landing'}/raw/source={name}" in line
        assert f"`wfm-intervals state reset {name} " in line
        assert command(env, "state", "reset", name, "--yes").exit_code == 0
        synced(env, name)
        rebuilt, truth = kase.rebuilt(tmp_path / "landing"), kase.truth()
    assert_same(landed(tmp_path / "landing", name), before)
    assert_frame_equal(rebuilt, truth)


# -- compaction ------------------------------------------------------------------------------------


def test_compaction_keeps_the_manifest_true(tmp_path: Path) -> None:
    with ujet_support.emulator(ujet_support.small_contacts(scale=0.02)) as emu:
        sync(emu, tmp_path / "whole")
        sync(emu, tmp_path)
        landing, state = tmp_path / "landing", tmp_path / "state"
        pages = read_manifest(landing, "ujet", "calls").entries
        assert len(pages) > 2
        assert compact(landing, "ujet", "calls", record_dtype=UJET.streams[0].landed_dtype) == len(
            pages
        )
        merged = read_manifest(landing, "ujet", "calls").entries
        assert check_landing(landing, state, "ujet", "calls", deep=True) == []
        (only,) = merged.values()
        spans = [e.span for e in pages.values()]
        assert only.span.start == min(s.start for s in spans)  # type: ignore[type-var]
        assert only.span.end == max(s.end for s in spans)  # type: ignore[type-var]
        assert only.rows == scan_landed(landing, "ujet", "calls").collect().height
        (stream_dir(landing, "ujet", "calls") / only.file).unlink()  # the whole day is lost
        reports = sync(emu, tmp_path)
    assert "cursor rewound to 2026-09-01T00:00:00.000Z" in reports[0].repaired[0]
    assert_same(landed(landing, "ujet"), landed(tmp_path / "whole" / "landing", "ujet"))


@pytest.mark.parametrize("point", ["landing.compact_written", "inputs_half_deleted"])
def test_a_compaction_stopped_half_way_leaves_every_record_listed(
    point: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ujet_support.emulator(ujet_support.small_contacts(scale=0.02)) as emu:
        sync(emu, tmp_path)
        landing, state = tmp_path / "landing", tmp_path / "state"
        before = landed(landing, "ujet")
        if point == "inputs_half_deleted":
            unlink, count = Path.unlink, [0]

            def dies_at_the_third(self: Path, missing_ok: bool = False) -> None:
                count[0] += 1
                if count[0] == 3:
                    raise Stop(point)
                unlink(self, missing_ok=missing_ok)

            monkeypatch.setattr(Path, "unlink", dies_at_the_third)
        else:
            stop_at(monkeypatch, point)
        with pytest.raises(Stop):
            compact(landing, "ujet", "calls")
        monkeypatch.undo()
        found = check_landing(landing, state, "ujet", "calls")
        assert {f.problem for f in found} == {"unlisted"}  # nothing lost, some files unlisted
        assert all(f.span is not None and f.span.start is not None for f in found)
        reports = sync(emu, tmp_path)
        assert len(reports[0].repaired) == len(found)
        assert compact(landing, "ujet", "calls") > 0
        assert check_landing(landing, state, "ujet", "calls", deep=True) == []
    assert_same(landed(landing, "ujet"), before)


# -- a store landed before the manifest ------------------------------------------------------------


def strip_manifests(landing: Path) -> None:
    """Make ``landing`` a store of before the manifest: no manifest, no span in any footer."""
    for manifest in landing.rglob(MANIFEST):
        manifest.unlink()
    for path in landing.rglob("*.parquet"):
        pl.read_parquet(path).write_parquet(path)


def test_a_store_landed_before_the_manifest_is_adopted_once(tmp_path: Path) -> None:
    with ujet_support.emulator(ujet_support.small_contacts(scale=0.02)) as emu:
        sync(emu, tmp_path / "whole")
        sync(emu, tmp_path)
        landing = tmp_path / "landing"
        strip_manifests(landing)
        files = len(list(landing.rglob("*.parquet")))
        first = sync(emu, tmp_path)
        assert sum(len(r.repaired) for r in first) == files  # each old file listed, once
        assert [r.repaired for r in sync(emu, tmp_path)] == [[], []]
        stream, victim = earliest(landing, "ujet")  # its range: its updated_at values
        assert victim.span.committed is not None  # adopted under the stream's cursor
        (stream_dir(landing, "ujet", stream) / victim.file).unlink()
        reports = sync(emu, tmp_path)
    assert any("cursor rewound to" in line for r in reports for line in r.repaired)
    assert_same(landed(landing, "ujet"), landed(tmp_path / "whole" / "landing", "ujet"))


def test_a_lost_file_of_unknown_range_is_one_line_naming_the_fix(tmp_path: Path) -> None:
    """Mindful's hour files have no ``updated_at``: an old file's range is not known."""
    attempts = mindful_support.small_attempts()
    with MindfulEmulator(attempts, rate_limit_per_s=1000.0) as emu:
        settings = mindful_support.settings_for(emu)

        def mindful() -> list[SyncReport]:
            return sync_into(tmp_path, MINDFUL, settings)

        mindful()
        landing = tmp_path / "landing"
        strip_manifests(landing)
        assert len(mindful()[0].repaired) > 0  # adopted, range unknown
        lost = landed_files(landing, "mindful", "attempts")[0]
        lost.unlink()
        with pytest.raises(LandingError) as raised:
            mindful()
        message = str(raised.value)
        assert "\n" not in message
        assert f"landing file {lost} of mindful/attempts" in message
        assert "`wfm-intervals state reset mindful attempts --yes`" in message
        StateStore(tmp_path / "state").reset("mindful", "attempts")
        reports = mindful()
        truth = emu.expected_attempts(SecretStr(mindful_support.PII_SECRET))
    assert "the stream starts over" in reports[0].repaired[0]
    assert_frame_equal(mindful_support.rebuilt(landing), truth)


# -- the manifest file itself ----------------------------------------------------------------------


def page(root: Path, ids: range, span: Span | None = None) -> Path:
    records = [{"id": i, "updated_at": f"2026-10-01T10:{i:02d}:00Z"} for i in ids]
    batch = land_page(
        root,
        "ujet",
        "calls",
        records,
        key=connectors.landing.RecordKey("id", "updated_at"),
        scrubber=connectors.landing.PiiScrubber(),
        fetched_at=ujet_support.START,
        batch_id="b",
        span=span,
    )
    assert batch.path is not None
    return batch.path


def test_a_torn_last_line_is_ignored_and_cut_off_by_the_next_append(tmp_path: Path) -> None:
    first = page(tmp_path, range(3), Span(ujet_support.START, None, None))
    path = manifest_path(tmp_path, "ujet", "calls")
    with path.open("ab") as handle:
        handle.write(b'{"v":1,"source":"ujet","file":"date=')  # the process died here
    manifest = read_manifest(tmp_path, "ujet", "calls")
    assert manifest.damaged is None
    assert [e.rows for e in manifest.entries.values()] == [3]
    second = page(tmp_path, range(3, 5))
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 3  # two complete lines, the torn one gone
    assert lines[-1] == b""
    entries = read_manifest(tmp_path, "ujet", "calls").entries
    assert {first.name, second.name} == {Path(f).name for f in entries}
    assert entries[f"date=2026-10-01/{second.name}"].span.start is None  # no range given
    assert check_landing(tmp_path, tmp_path / "state", "ujet", "calls", deep=True) == []


def test_a_damaged_manifest_line_is_reported_and_rebuilt_from_the_files(tmp_path: Path) -> None:
    page(tmp_path, range(3), Span(ujet_support.START, None, None))
    page(tmp_path, range(3, 6), Span(ujet_support.START, None, None))
    path = manifest_path(tmp_path, "ujet", "calls")
    path.write_bytes(b"not json\n" + path.read_bytes())
    found = check_landing(tmp_path, tmp_path / "state", "ujet", "calls")
    assert [f.problem for f in found] == ["manifest_damaged", "unlisted", "unlisted"]
    assert "line 1" in found[0].detail


def test_a_deep_check_finds_a_file_changed_in_place(tmp_path: Path) -> None:
    path = page(tmp_path, range(8), Span(ujet_support.START, None, None))
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # the same size: only the digest can tell
    path.write_bytes(bytes(data))
    assert check_landing(tmp_path, tmp_path / "state", "ujet", "calls") == []
    (found,) = check_landing(tmp_path, tmp_path / "state", "ujet", "calls", deep=True)
    assert found.problem == "damaged"
    assert found.to_dict()["span"]["from"] == "2026-10-01T00:00:00.000000Z"


def test_a_reset_stream_is_not_a_lost_state(tmp_path: Path) -> None:
    page(tmp_path, range(2), Span(ujet_support.START, None, ujet_support.START))
    store = StateStore(tmp_path / "state")

    def repair() -> list[str]:
        at = ujet_support.START
        return repair_landing(tmp_path, store, "ujet", "calls", lookback=timedelta(0), initial=at)

    with pytest.raises(StateError, match=r"^state file .*calls\.json: missing, while landed"):
        repair()
    assert store.reset("ujet", "calls") == []  # no state to return, but marked reset
    assert repair() == []
