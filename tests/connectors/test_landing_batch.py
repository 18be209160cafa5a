"""A long sync's pages are merged in bounded batches as they land, and compaction merges a day in
bounded groups: fewer files, the same landed records, the manifest true, killed half-way safe.

Every sync is against the UJET emulator on 127.0.0.1 (``tests.connectors.ujet_support``), 25
records a page, with batches far smaller than the defaults so that a few hundred records make
several of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import UjetEmulator
from connectors.landing import (
    PiiScrubber,
    RecordKey,
    compact,
    decoded_suffix,
    land_page,
    latest_records,
    merge_files,
    scan_files,
    scan_landed,
)
from connectors.landing.batch import Batching, PageBatch
from connectors.landing.check import check_landing
from connectors.landing.manifest import landed_files, read_manifest, rows_of
from connectors.sync import SyncReport, sync_source
from connectors.vendors.ujet.client import UJET
from engine import killpoint
from tests.connectors import ujet_support

DTYPE = UJET.streams[0].landed_dtype
SMALL = Batching(rows=100, files=3)


class Stop(Exception):  # noqa: N818 - a simulated crash, not an error of the code under test
    """Raised where a test stops a sync, as a kill would."""


def sync(emu: UjetEmulator, root: Path, batching: Batching) -> list[SyncReport]:
    return sync_source(
        UJET,
        ujet_support.settings_for(emu),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=lambda _: None,
        batching=batching,
    )


def landed(root: Path) -> dict[str, pl.DataFrame]:
    columns = ["record_id", "updated_at", "payload"]
    return {
        s: scan_landed(root / "landing", "ujet", s).select(columns).collect().sort(columns)
        for s in ("calls", "chats")
    }


def rows_per_file(root: Path, stream: str) -> list[int]:
    entries = read_manifest(root / "landing", "ujet", stream).entries.values()
    return sorted(e.rows for e in entries)


@pytest.fixture(scope="module")
def contacts() -> pl.DataFrame:
    return ujet_support.small_contacts(scale=0.02)


def test_a_long_sync_merges_its_pages_in_bounded_batches_and_the_rest_at_its_end(
    tmp_path: Path, contacts: pl.DataFrame
) -> None:
    with ujet_support.emulator(contacts) as emu:
        pages = sync(emu, tmp_path / "pages", Batching(rows=10**9, files=10**9))
        batched = sync(emu, tmp_path / "batched", SMALL)
    calls = next(r for r in batched if r.stream == "calls")
    assert calls.pages > SMALL.files  # several batches' worth
    assert [r.records for r in batched] == [r.records for r in pages]
    files = rows_per_file(tmp_path / "batched", "calls")
    assert len(files) == -(-calls.pages // SMALL.files)  # every 3 pages, the rest at the end
    assert max(files) <= SMALL.rows + 25  # a batch ends at the page that reaches the bound
    assert len(files) == len(landed_files(tmp_path / "batched" / "landing", "ujet", "calls"))
    root = tmp_path / "batched"
    for stream in ("calls", "chats"):
        assert check_landing(root / "landing", root / "state", "ujet", stream, deep=True) == []
    assert_frame_equal(landed(root)["calls"], landed(tmp_path / "pages")["calls"])
    assert_frame_equal(landed(root)["chats"], landed(tmp_path / "pages")["chats"])


def test_a_short_sync_leaves_its_pages_to_the_compaction(
    tmp_path: Path, contacts: pl.DataFrame
) -> None:
    with ujet_support.emulator(contacts) as emu:
        reports = sync(emu, tmp_path, Batching())
    calls = next(r for r in reports if r.stream == "calls")
    assert len(landed_files(tmp_path / "landing", "ujet", "calls")) == calls.pages


def test_a_sync_killed_in_a_merge_loses_nothing(
    tmp_path: Path, contacts: pl.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = [0]

    def reached(name: str) -> None:
        seen[0] += name == "landing.compact_written"
        if seen[0] == 2:
            raise Stop(name)

    with ujet_support.emulator(contacts) as emu:
        sync(emu, tmp_path / "whole", SMALL)
        monkeypatch.setattr(killpoint, "reached", reached)
        with pytest.raises(Stop):
            sync(emu, tmp_path, SMALL)
        monkeypatch.undo()
        found = check_landing(tmp_path / "landing", tmp_path / "state", "ujet", "calls")
        assert {f.problem for f in found} == {"unlisted"}  # the merged file, not yet listed
        reports = sync(emu, tmp_path, SMALL)
    assert all(r.ok for r in reports)
    assert check_landing(tmp_path / "landing", tmp_path / "state", "ujet", "calls") == []
    got, want = landed(tmp_path), landed(tmp_path / "whole")
    for stream, frame in want.items():
        assert_frame_equal(got[stream], frame)


def test_compaction_merges_a_large_day_in_bounded_groups(
    tmp_path: Path, contacts: pl.DataFrame
) -> None:
    with ujet_support.emulator(contacts) as emu:
        sync(emu, tmp_path, Batching(rows=10**9, files=10**9))
    landing = tmp_path / "landing"
    before, pages = landed(tmp_path), rows_per_file(tmp_path, "calls")
    removed = compact(landing, "ujet", "calls", record_dtype=DTYPE, max_rows=120)
    files = rows_per_file(tmp_path, "calls")
    assert removed > 0
    assert 1 < len(files) < len(pages)
    assert max(files) <= 120
    assert compact(landing, "ujet", "calls", record_dtype=DTYPE, max_rows=120) == 0  # settled
    assert check_landing(landing, tmp_path / "state", "ujet", "calls", deep=True) == []
    assert_frame_equal(landed(tmp_path)["calls"], before["calls"])


def test_a_batch_merges_only_its_own_partition(tmp_path: Path, contacts: pl.DataFrame) -> None:
    with ujet_support.emulator(contacts) as emu:
        sync(emu, tmp_path, Batching(rows=10**9, files=10**9))
    landing = tmp_path / "landing"
    files = landed_files(landing, "ujet", "calls")
    other = files[0].parent.with_name("date=2000-01-01")
    other.mkdir()
    moved = other / files[0].name
    files[0].rename(moved)
    batch = PageBatch(landing, "ujet", "calls", Batching(rows=10**9, files=2), DTYPE)
    assert batch.add(moved, 25) == 0
    assert batch.add(files[1], 25) == 0  # another day: the first is left to the compaction
    assert batch.add(files[2], 25) == 2
    assert moved.exists()
    assert not files[1].exists()
    assert not files[2].exists()
    with pytest.raises(ValueError, match="one date partition"):
        merge_files(landing, "ujet", "calls", [moved, files[3]], record_dtype=DTYPE)


def test_a_merge_keeps_row_for_row_what_the_scan_keeps(tmp_path: Path) -> None:
    """Pages that repeat ids (a newer version, an identical re-read, two contents under one
    stamp, no stamp at all), some landed decoded and some not: the merged file holds exactly
    the rows :func:`latest_records` keeps of them, every column."""
    shape = pl.Struct({"id": pl.Int64, "updated_at": pl.String, "v": pl.Int64})
    at = datetime(2026, 10, 1, tzinfo=UTC)
    stamps = ["2026-10-01T00:00:00Z", "2026-10-01T01:00:00Z", None]
    paths = []
    for page in range(8):
        records = [
            {"id": i, "updated_at": stamps[(i + page // 3) % 3], "v": (i * page) % 4}
            for i in range(page * 5, page * 5 + (60 if page % 3 else 12))  # 60: lands decoded
        ]
        done = land_page(
            tmp_path, "ujet", "calls", records, key=RecordKey("id", "updated_at"),
            scrubber=PiiScrubber(), fetched_at=at + timedelta(minutes=page % 5),
            batch_id=f"run-{page % 2}", page_no=page % 3,
            record_dtype=shape if page % 3 else None,
        )  # fmt: skip
        paths.append(done.path)
    assert 0 < sum(p.name.endswith(decoded_suffix(shape)) for p in paths) < len(paths)
    order = ["record_id", "payload", "fetched_at", "batch_id", "page_no"]
    want = latest_records(scan_files(paths, shape)).collect().sort(order)
    assert want.height < sum(rows_of(p) for p in paths)  # some rows are not kept
    assert merge_files(tmp_path, "ujet", "calls", paths, record_dtype=shape) == len(paths)
    (merged,) = landed_files(tmp_path, "ujet", "calls")
    assert_frame_equal(pl.read_parquet(merged).sort(order), want)
