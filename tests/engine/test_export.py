"""Outputs: the Contact Volume document (seed 003), paging, the store, the text files."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.contacts import generate_contacts
from engine.output import delta
from engine.output.files import (
    callvolume_document,
    write_csv,
    write_document,
    write_json,
    write_ndjson,
    write_store,
)
from engine.settings import BuildSettings
from engine.tables.callvolume import build, derive

#: The sample CallVolumeUpdate row of Kore.ai's Contact Volume API (seed 003), as a fixture.
SEED_003 = Path(__file__).resolve().parents[1] / "fixtures" / "seed_003_callvolume_row.json"
START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = (START, START + timedelta(days=1))
OURS = [
    "shortAbandonedContacts",
    "flowOutContacts",
    "answeredWithinServiceLevel",
    "serviceLevel",
    "averageHandleTime",
    "averageSpeedOfAnswer",
]


def seed_row_fields() -> list[str]:
    """The field names of the seed's sample CallVolumeUpdate row, in the seed's order."""
    return list(json.loads(SEED_003.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    contacts = generate_contacts(seed=11, start=START, days=1).lazy()
    settings = BuildSettings()
    return derive(build(contacts, window=WINDOW, settings=settings), settings=settings).collect()


def test_document_has_the_seed_fields_then_ours(table: pl.DataFrame) -> None:
    doc = callvolume_document(table, org_id="o-1", limit=3)
    assert list(doc) == ["hasMore", "CallVolumeUpdate", "totalCount"]
    fields = seed_row_fields()
    assert "maxqueueHoldTimeAbandoned" in fields  # the seed's own spelling
    row = doc["CallVolumeUpdate"][0]
    assert sorted(row) == sorted(fields + OURS)
    assert list(row)[-len(OURS) :] == OURS


@pytest.mark.parametrize("unit", ["ms", "s"])
def test_the_written_document_parses_to_the_document(
    table: pl.DataFrame, tmp_path: Path, unit: str
) -> None:
    # streamed in chunks of 7 rows (and one row a chunk), with a queue name JSON must escape
    odd = table.with_columns(
        pl.when(pl.col("queue_id") == table["queue_id"][0])
        .then(pl.lit('Sales "EU"\nline two \\ é'))
        .otherwise(pl.col("queue_name"))
        .alias("queue_name")
    )
    want = callvolume_document(odd, org_id="o-1", unit=unit)  # type: ignore[arg-type]
    assert any(r["serviceLevel"] is None for r in want["CallVolumeUpdate"])  # nulls written
    for chunk in (7, 1):
        path = write_document(
            odd, tmp_path / f"{chunk}.json", org_id="o-1", unit=unit, chunk_rows=chunk
        )  # type: ignore[arg-type]
        assert json.loads(path.read_text(encoding="utf-8")) == want
    empty = write_document(odd.clear(), tmp_path / "empty.json", org_id="o-1")
    assert json.loads(empty.read_text(encoding="utf-8")) == callvolume_document(
        odd.clear(), org_id="o-1"
    )


def test_document_values_follow_the_table(table: pl.DataFrame) -> None:
    busy = table.filter(pl.col("answered") > 0, pl.col("abandoned") > 0).row(0, named=True)
    doc = callvolume_document(table, org_id="o-1")
    row = next(
        r
        for r in doc["CallVolumeUpdate"]
        if r["queueId"] == busy["queue_id"]
        and r["source"] == busy["channel"]
        and r["intervalStartTimeStamp"]
        == busy["interval_start_utc"].strftime("%Y-%m-%dT%H:%M:%S.000Z")
    )
    assert row["offeredContacts"] == busy["offered"]
    assert row["maxqueueHoldTimeAbandoned"] == busy["wait_abandoned_max_ms"]
    assert row["conversationHandleTime"] == busy["handle_ms"]
    assert row["queueName"] == busy["queue_name"]
    assert re.fullmatch(r"[0-9a-f]{24}", row["_id"])
    seconds = callvolume_document(table, org_id="o-1", unit="s")["CallVolumeUpdate"]
    again = next(r for r in seconds if r["_id"] == row["_id"])
    assert again["conversationHandleTime"] == (busy["handle_ms"] + 500) // 1000


@given(skip=st.integers(0, 900), limit=st.integers(1, 400))
def test_paging_covers_every_row_once(table: pl.DataFrame, skip: int, limit: int) -> None:
    total = table.height
    page = callvolume_document(table, org_id="o", skip=skip, limit=limit)
    assert page["totalCount"] == total
    assert len(page["CallVolumeUpdate"]) == max(0, min(limit, total - skip))
    assert page["hasMore"] == (skip + limit < total)


def test_walking_all_pages_gives_unique_stable_ids(table: pl.DataFrame) -> None:
    ids, skip = [], 0
    while True:
        page = callvolume_document(table, org_id="o", skip=skip, limit=500)
        ids += [r["_id"] for r in page["CallVolumeUpdate"]]
        skip += 500
        if not page["hasMore"]:
            break
    assert len(ids) == len(set(ids)) == table.height
    assert ids == [r["_id"] for r in callvolume_document(table, org_id="o")["CallVolumeUpdate"]]


def test_store_is_partitioned_by_utc_date_and_replaced_whole(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"interval_start_utc": [START, START + timedelta(days=1, hours=1)], "v": [1, 2]},
        schema={"interval_start_utc": pl.Datetime("us", "UTC"), "v": pl.Int64},
    )
    target = tmp_path / "store" / "t"
    write_store(frame, target, by="interval_start_utc")
    parts = sorted(p.parent.name for p in target.rglob("*.parquet"))
    assert parts == ["date=2026-10-01", "date=2026-10-02"]
    write_store(frame.head(1), target, by="interval_start_utc")  # a rebuild replaces, never merges
    back = pl.read_delta(str(target)).drop("date")  # the table's current version, as users read it
    assert back["v"].to_list() == [1]
    assert pl.read_delta(str(target), version=0)["v"].to_list() == [1, 2]  # the first, still there
    assert [p.name for p in tmp_path.joinpath("store").iterdir()] == ["t"]  # no temp leftovers


def test_row_count_and_partitions_come_from_the_log_as_a_read_gives_them(tmp_path: Path) -> None:
    at = [START + timedelta(hours=h) for h in (0, 1, 30, 75)]
    frame = pl.DataFrame({"interval_start_utc": at, "v": [1, 2, 3, 4]}).with_columns(
        pl.col("interval_start_utc").dt.cast_time_unit("us")
    )
    target = tmp_path / "t"
    delta.commit(target, frame, by="interval_start_utc", tag="a")
    first = START.date()
    assert delta.partition_days(target) == [first, first + timedelta(days=1), first + timedelta(3)]
    assert delta.row_count(target) == 4 == delta.scan(target).collect().height
    delta.commit(target, frame.head(0), by="interval_start_utc", days=[first, first + timedelta(1)])
    assert delta.row_count(target) == 1 == delta.scan(target).collect().height  # two emptied
    assert delta.partition_days(target) == [first + timedelta(days=3)]
    got = delta.scan(target, days=[first + timedelta(days=3)]).collect()
    assert got["v"].to_list() == [4]


def test_csv_and_ndjson_round_trip(table: pl.DataFrame, tmp_path: Path) -> None:
    csv = pl.read_csv(write_csv(table, tmp_path / "t.csv"))
    lines = write_ndjson(table, tmp_path / "t.ndjson").read_text().splitlines()
    nd = [json.loads(line) for line in lines]
    assert csv.height == len(nd) == table.height
    assert csv["interval_start_utc"][0].endswith("Z")
    assert nd[0]["offered"] == table["offered"][0]
    assert csv["offered"].sum() == table["offered"].sum()


def test_write_json_streams_the_indented_text(tmp_path: Path) -> None:
    """The file holds exactly the one-space indented text, UTF-8, and nothing is left beside it."""
    doc = {"hasMore": False, "CallVolumeUpdate": [{"a": 1, "b": "é"}, {"a": None}], "n": 2.5}
    path = write_json(doc, tmp_path / "exports" / "doc.json")
    text = path.read_bytes().decode("utf-8")
    assert text.startswith('{\n "hasMore": false,\n "CallVolumeUpdate": [\n  {\n   "a": 1,')
    assert '"b": "\\u00e9"' in text
    assert json.loads(text) == doc
    assert [p.name for p in path.parent.iterdir()] == ["doc.json"]


def test_a_table_read_again_after_commits_is_read_forward(tmp_path: Path) -> None:
    """A table read once and committed to since is brought forward from the version it was
    loaded at (not loaded afresh), and reads what the newest commit holds."""
    from unittest.mock import patch

    at = START + timedelta(hours=1)
    frame = pl.DataFrame({"interval_start_utc": [at], "v": [1]}).with_columns(
        pl.col("interval_start_utc").dt.cast_time_unit("us")
    )
    target = tmp_path / "t"
    delta.commit(target, frame, by="interval_start_utc", tag="a")
    assert delta.scan(target).collect()["v"].to_list() == [1]
    loads = []
    real = delta.DeltaTable

    def counted(*args: object, **kwargs: object) -> object:
        loads.append(args)
        return real(*args, **kwargs)

    later = frame.with_columns(pl.col("interval_start_utc") + timedelta(days=1), v=pl.lit(2))
    first, second = at.date(), at.date() + timedelta(days=1)
    delta.commit(target, later, by="interval_start_utc", days=[second], tag="b")
    three = frame.with_columns(v=pl.lit(3))
    delta.commit(target, three, by="interval_start_utc", days=[first], tag="c")
    with patch.object(delta, "DeltaTable", counted):
        assert sorted(delta.scan(target).collect()["v"].to_list()) == [2, 3]
        assert delta.row_count(target) == 2
    assert loads == []  # read forward, not loaded again


def test_a_store_restored_from_a_copy_is_read_as_it_is_now(tmp_path: Path) -> None:
    """A table read once is reused while its log is unchanged; a store restored from a copy
    whose next commit takes the same version number as the replaced store's is read afresh."""
    import shutil

    at = START + timedelta(hours=1)
    frame = pl.DataFrame({"interval_start_utc": [at], "v": [1]}).with_columns(
        pl.col("interval_start_utc").dt.cast_time_unit("us")
    )
    target, backup = tmp_path / "t", tmp_path / "backup"
    delta.commit(target, frame, by="interval_start_utc", tag="a")
    shutil.copytree(target, backup)
    replaced = delta.commit(target, frame.with_columns(v=pl.lit(2)), by="interval_start_utc",
                            tag="b")  # fmt: skip
    assert delta.scan(target).collect()["v"].to_list() == [2]
    shutil.rmtree(target)
    shutil.copytree(backup, target)  # the operator restores yesterday's copy (no read since)
    delta.commit(target, frame.with_columns(v=pl.lit(3)), by="interval_start_utc", tag="c")
    assert delta.version(target) == replaced  # the number the replaced store's commit had
    assert delta.scan(target).collect()["v"].to_list() == [3]
    assert delta.row_count(target) == 1


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_a_file_write_is_durable_before_its_rename_and_its_folders_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a power cut after the run's state is saved must not undo: the new file's bytes
    are flushed before it takes the name, and the entries of the file and of the folders it
    created after. (Watched at the system calls: ``os.fsync`` and ``os.replace``.)"""
    import os

    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        events.append(("replace", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "new" / "exports" / "t.csv"
    write_csv(pl.DataFrame({"a": [1, 2]}), path)
    assert path.read_text() == "a\n1\n2\n"
    temporary = [i for i, (kind, p) in enumerate(events) if kind == "fsync" and ".t.csv.tmp-" in p]
    renamed = events.index(("replace", str(path)))
    assert temporary
    assert temporary[-1] < renamed
    after = [p for kind, p in events[renamed:] if kind == "fsync"]
    assert str(path.parent) in after  # the file's new entry
    made = {p for kind, p in events if kind == "fsync"}  # the new folders' entries, any time
    assert made >= {str(path.parent.parent), str(tmp_path)}


def test_a_failed_file_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    write_csv(pl.DataFrame({"a": [1]}), path)

    class Full(pl.DataFrame):
        def iter_slices(self, n_rows: int = 10_000) -> Any:
            yield from super().iter_slices(1)
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError, match="No space left on device") as raised:
        write_csv(Full({"a": [7, 8]}), path)
    assert raised.value.filename == str(path)
    assert path.read_text() == "a\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
