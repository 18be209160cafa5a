"""The canonical snapshot (``engine.pipeline.snapshot``) against the rebuild from the whole landing.

A run keeps its validated rows between runs and redoes only the records that landed files
added or removed touch (closed over shared identities). The oracle here is the full rebuild
(:func:`connectors.normalise.rebuild` then :func:`engine.pipeline.sources.validated`: every
landed file read, every record mapped and validated), which the snapshot must equal after every
step of a generated history of pages: new versions, re-sent versions, conflicting contents under
one ``updated_at``, records that share a contact across record ids, rows the validation or the
mapping quarantines, records landed without an id, compactions and lost files.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import httpx
import polars as pl
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.landing import RECORD, PiiScrubber, RecordKey, RejectedRecord, compact, land_page
from connectors.landing.manifest import landed_files
from connectors.normalise import land_rejected, rebuild
from connectors.source import Normalised, Source, SourceSettings, Stream
from engine.errors import StoreError
from engine.output.store import request_dates
from engine.pipeline.snapshot import redo, refresh_sources, snapshot_dir
from engine.pipeline.snapshot.canonical import Canonical
from engine.pipeline.snapshot.landed import id_of
from engine.pipeline.snapshot.sums import day_digests
from engine.pipeline.sources import validated
from engine.schema import CONTACTS_KEY, QUARANTINE
from engine.tables.callback_requests import in_chain_order
from engine.validate.callback_attempts import callback_gaps

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
PAYLOAD = pl.Struct(
    {
        "id": pl.Int64(),
        "cid": pl.String(),
        "seg": pl.Int64(),
        "at": pl.String(),
        "outcome": pl.String(),
        "mapbad": pl.Boolean(),
    }
)


def _normalise(landed: pl.LazyFrame) -> Normalised:
    """Each record is one contact segment (``cid``, ``seg``: records may share them); a record
    flagged ``mapbad`` is set aside by the mapping itself, with its payload. A stream that
    lands decoded is read from its typed ``record`` column (as UJET's is)."""
    decoded = RECORD in landed.collect_schema().names()
    r = pl.col(RECORD) if decoded else pl.col("payload").str.json_decode(PAYLOAD)
    frame = landed.with_columns(r.alias("r"))
    flagged = r.struct.field("mapbad").fill_null(False)
    rows = frame.filter(~pl.col("r").struct.field("mapbad").fill_null(False)).select(
        pl.lit("tst").alias("source"),
        pl.col("r").struct.field("cid").alias("contact_id"),
        pl.col("r").struct.field("seg").alias("segment_no"),
        pl.lit("voice").alias("channel"),
        pl.lit("q1").alias("queue_id"),
        pl.col("r").struct.field("outcome").alias("outcome"),
        pl.col("r").struct.field("at").alias("offered_at"),
        "updated_at",
        "record_id",
    )
    quarantine = frame.filter(flagged).select(
        pl.lit("tst").alias("source"),
        pl.lit("contacts").alias("table"),
        pl.concat_str(pl.lit("rec-"), "record_id").alias("record_id"),
        pl.lit("unmappable").alias("reason"),
        pl.lit("mapbad").alias("detail"),
        pl.col("payload").alias("raw"),
    )
    return Normalised(rows, quarantine.cast(QUARANTINE))  # type: ignore[arg-type]


STREAM = Stream(
    name="recs", path="recs", primary_key="id", normalise=_normalise, record_ref="rec-{id}"
)
SOURCE = Source("tst", SourceSettings, lambda _s, _t: httpx.Client(), streams=(STREAM,))
DECODED = Source(
    "tst",
    SourceSettings,
    lambda _s, _t: httpx.Client(),
    streams=(replace(STREAM, record_dtype=PAYLOAD, land_decoded=True),),
)


def _oracle(landing: Path, source: Source = SOURCE) -> tuple[pl.DataFrame, pl.DataFrame]:
    rows, bad = pl.collect_all(list(validated(rebuild(source, landing), "contacts")))
    return _sorted(rows, bad)


def _sorted(rows: pl.DataFrame, bad: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    return (
        rows.sort(list(CONTACTS_KEY), nulls_last=True),
        bad.sort(list(QUARANTINE), nulls_last=True),
    )


def _snapshot(root: Path, source: Source = SOURCE, **kw: Any) -> Any:
    return refresh_sources(
        [source], "contacts", landing=root / "landing", state=root / "state", **kw
    )


record = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(0, 7), st.none()),
        "cid": st.sampled_from(["c0", "c1", "c2", "c3"]),
        "seg": st.integers(1, 2),
        "updated_at": st.sampled_from(
            ["2026-10-01T10:00:00Z", "2026-10-01T10:01:00Z", "2026-10-01T10:02:00Z"]
        ),
        "at": st.sampled_from(
            [
                "2026-09-30T23:55:00Z",  # the month before, and another partition day
                "2026-10-01T09:00:00Z",
                "2026-10-01T09:15:00Z",
                "2026-11-02T09:15:00Z",  # the month after
                "not a time",
            ]
        ),
        "outcome": st.sampled_from(["answered", "abandoned"]),
        "mapbad": st.booleans().map(lambda b: b or None),
    }
)
step = st.one_of(
    st.tuples(st.just("land"), st.lists(record, min_size=1, max_size=6)),
    st.tuples(st.just("compact"), st.just(0)),
    st.tuples(st.just("lose"), st.integers(0, 20)),
)


def _apply(root: Path, n: int, op: str, arg: Any, source: Source = SOURCE) -> None:
    landing = root / "landing"
    dtype = source.streams[0].landed_dtype
    if op == "land":
        batch = land_page(
            landing,
            "tst",
            "recs",
            arg,
            key=RecordKey("id", "updated_at"),
            scrubber=PiiScrubber(),
            fetched_at=T0 + timedelta(minutes=n),
            batch_id=f"b{n}",
            record_dtype=dtype,
        )
        land_rejected(landing, "tst", "recs", batch.rejected, batch_id=f"b{n}",
                      fetched_at=T0 + timedelta(minutes=n))  # fmt: skip
    elif op == "compact":
        compact(landing, "tst", "recs", min_files=2, record_dtype=dtype)
    elif files := landed_files(landing, "tst", "recs"):
        files[arg % len(files)].unlink()


@given(steps=st.lists(step, min_size=1, max_size=8), decoded=st.booleans())
def test_the_snapshot_equals_the_rebuild_from_the_whole_landing(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]], decoded: bool
) -> None:
    """JSON-only streams and streams landed decoded (read without their payloads but for the
    records quarantined) alike."""
    root, source = tmp_path_factory.mktemp("snap"), DECODED if decoded else SOURCE
    modes = []
    for n, (op, arg) in enumerate(steps):
        _apply(root, n, op, arg, source)
        # Never "too much changed, redo all": these landings are small.
        with patch.object(redo, "_WHOLE", 1.01):
            got = _snapshot(root, source)
        modes.append(got.mode)
        want_rows, want_bad = _oracle(root / "landing", source)
        rows, bad = _sorted(*got.frames)
        assert_frame_equal(rows, want_rows)
        assert_frame_equal(bad, want_bad)
        # the digests kept per month shard, spliced run by run, equal those of the rebuild
        days = want_rows["offered_at"].dt.date()
        assert got.digests == day_digests(want_rows, days)
        # the count of distinct landed records, kept run by run, equals a whole count
        assert got.records == _snapshot(root, source, whole=True, write=False).records
        _assert_each_month_in_row_order(got, CONTACT_ORDER)
    assert modes[0] == "whole"
    assert "whole" not in modes[1:]


@pytest.fixture
def landed(tmp_path: Path) -> Path:
    for n in range(3):
        records = [
            {"id": i, "cid": f"c{i}", "seg": 1, "updated_at": "2026-10-01T10:00:00Z"}
            | {"at": "2026-10-01T09:00:00Z", "outcome": "answered"}
            for i in range(n * 10, n * 10 + 10)
        ]
        _apply(tmp_path, n, "land", records)
    return tmp_path


def test_a_new_page_redoes_only_its_records(landed: Path) -> None:
    assert _snapshot(landed).mode == "whole"
    assert _snapshot(landed).mode == "unchanged"
    page = [
        {"id": 3, "cid": "c3", "seg": 1, "updated_at": "2026-10-01T11:00:00Z"}
        | {"at": "2026-10-01T09:00:00Z", "outcome": "abandoned"}
    ]
    _apply(landed, 9, "land", page)
    got = _snapshot(landed)
    assert (got.mode, got.redone, got.records) == ("incremental", 1, 30)
    assert got.rows.filter(pl.col("contact_id") == "c3")["outcome"].to_list() == ["abandoned"]


def test_a_run_rewrites_only_the_months_its_records_touch(landed: Path) -> None:
    november = [
        {"id": 40, "cid": "c40", "seg": 1, "updated_at": "2026-11-03T10:00:00Z"}
        | {"at": "2026-11-03T09:00:00Z", "outcome": "answered"}
    ]
    _apply(landed, 8, "land", november)
    _snapshot(landed)
    meta = snapshot_dir(landed / "state", "contacts") / "meta.json"
    before = json.loads(meta.read_text())["shards"]
    before_parts = json.loads(meta.read_text())["parts"]
    assert set(before) == {"2026-10", "2026-11"}
    moved = [november[0] | {"updated_at": "2026-11-03T11:00:00Z", "outcome": "abandoned"}]
    _apply(landed, 9, "land", moved)
    got = _snapshot(landed)
    after = json.loads(meta.read_text())["shards"]
    assert after["2026-10"] == before["2026-10"]  # not written again: same file, same digests
    assert got.snap.shards["2026-10"] is None  # nor read: its records are not touched
    parts = (before_parts, json.loads(meta.read_text())["parts"])
    assert parts[0]["homes"]["2026-10"] == parts[1]["homes"]["2026-10"]  # nor its bookkeeping
    assert parts[0]["idents"]["2026-10"] == parts[1]["idents"]["2026-10"]
    assert got.height == 31
    assert got.near([(T0, T0)]).height == 30  # October's month alone
    assert after["2026-11"]["file"] != before["2026-11"]["file"]
    assert got.digests is not None
    assert set(got.digests) == {"2026-10-01", "2026-11-03"}
    files = {p.name for p in meta.parent.iterdir()}
    assert {after["2026-10"]["file"], after["2026-11"]["file"]} <= files
    assert before["2026-11"]["file"] not in files  # the replaced shard is gone


@pytest.mark.parametrize("write", [True, False])
def test_rows_let_go_after_the_volume_build_read_back_the_same(landed: Path, write: bool) -> None:
    """A run lets go of the contacts it read whole once their volume is built; a later reader
    reads the same rows back from the committed shards (a dry run's rows, never committed,
    stay held)."""
    _snapshot(landed)
    _apply(landed, 9, "land", [{"id": 1, "cid": "c1", "seg": 1, "updated_at": "2026-10-02"}])
    canon = Canonical.of(_snapshot(landed, write=write), None, None)
    whole = canon.contact_rows
    assert whole is not None
    canon.let_go_of_contact_rows()
    found = canon.contacts_found
    assert isinstance(found, redo.Refreshed)
    held = [n for n, f in found.snap.shards.items() if f is not None]
    assert held == ([] if write else ["2026-10"])
    again, near = canon.contact_rows, canon.contacts_near([(T0, T0)])
    assert again is not None
    assert near is not None
    assert_frame_equal(again, whole)
    assert_frame_equal(near, whole)


def test_a_contact_landed_later_takes_its_place_in_its_month(landed: Path) -> None:
    """A night's contact whose id sorts before the month's others is not appended at the end:
    the month is kept in row order (the order a run reads it in)."""
    _snapshot(landed)
    _apply(landed, 9, "land", [_one(99, "b1")])  # "b1" sorts before c0..c29
    got = _snapshot(landed)
    assert got.mode == "incremental"
    _assert_each_month_in_row_order(got, CONTACT_ORDER)


def test_a_record_sharing_a_contact_with_a_new_one_is_redone_with_it(landed: Path) -> None:
    """Record 25 arrives with record 4's contact: both are redone (a duplicate identity is a
    conflict only the pair shows)."""
    _snapshot(landed)
    page = [
        {"id": 25, "cid": "c4", "seg": 1, "updated_at": "2026-10-01T10:00:00Z"}
        | {"at": "2026-10-01T09:15:00Z", "outcome": "abandoned"}
    ]
    _apply(landed, 9, "land", page)
    got = _snapshot(landed)
    assert (got.mode, got.redone) == ("incremental", 2)
    want_rows, want_bad = _oracle(landed / "landing")
    assert_frame_equal(_sorted(*got.frames)[0], want_rows)
    assert_frame_equal(_sorted(*got.frames)[1], want_bad)
    assert set(want_bad["reason"]) == {"conflicting_duplicate"}


@pytest.mark.parametrize(
    "damage", ["missing", "torn", "torn index", "lost homes", "other settings"]
)
def test_a_missing_torn_or_foreign_snapshot_is_redone_whole(landed: Path, damage: str) -> None:
    """Also with nothing landed since (a snapshot loaded without its bookkeeping parts)."""
    _snapshot(landed)
    folder = snapshot_dir(landed / "state", "contacts")
    meta = json.loads((folder / "meta.json").read_text())
    settings = None
    if damage == "missing":
        shutil.rmtree(folder)
    elif damage == "torn":
        part = folder / next(iter(meta["shards"].values()))["file"]
        part.write_bytes(part.read_bytes()[:50])
    elif damage == "torn index":
        part = folder / next(iter(meta["parts"]["index"].values()))
        part.write_bytes(part.read_bytes()[:50])
    elif damage == "lost homes":
        (folder / next(iter(meta["parts"]["homes"].values()))).unlink()
    else:
        settings = {"interval_minutes": 30}
    got = _snapshot(landed, settings=settings)
    assert got.mode == "whole"
    want_rows, want_bad = _oracle(landed / "landing")
    assert_frame_equal(_sorted(*got.frames)[0], want_rows)
    assert_frame_equal(_sorted(*got.frames)[1], want_bad)


def test_a_dry_run_leaves_the_snapshot_as_it_was(landed: Path) -> None:
    _snapshot(landed)
    meta = snapshot_dir(landed / "state", "contacts") / "meta.json"
    before = meta.read_bytes()
    _apply(landed, 9, "land", [{"id": 1, "cid": "c1", "seg": 1, "updated_at": "2026-10-02"}])
    assert _snapshot(landed, write=False).mode == "incremental"
    assert meta.read_bytes() == before
    assert _snapshot(landed).mode == "incremental"
    assert meta.read_bytes() != before


def test_an_unreadable_landed_file_is_one_line_naming_the_store(landed: Path) -> None:
    _snapshot(landed)
    torn = landed_files(landed / "landing", "tst", "recs")[0]
    torn.write_bytes(torn.read_bytes()[:60] + b"\x00\xff")
    with pytest.raises(StoreError) as caught:
        _snapshot(landed)
    line = str(caught.value)
    assert "\n" not in line
    assert line.startswith(f"store.landing {landed / 'landing'}: the landed records of contacts")
    assert "state reset" in line


def test_a_snapshot_the_disk_refuses_names_the_state_not_the_landing(
    landed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the snapshot is saved was reported as landed records that cannot be
    read, with the advice to move a file away and fetch everything again from the vendor."""
    full = landed / "state" / "snapshot" / "contacts" / "rows-1.parquet"

    def refused(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", str(full))

    monkeypatch.setattr(redo, "save", refused)
    with pytest.raises(StoreError) as caught:
        _snapshot(landed)
    line = str(caught.value)
    assert line.startswith(f"store.state {landed / 'state'}: [Errno 28] No space left on device")
    assert str(full) in line
    assert "state reset" not in line


def test_a_ref_reads_back_to_the_id_of_its_own_stream_only() -> None:
    """The redo finds records from their quarantine refs: a ref of another stream (or too short
    to hold the prefix and the suffix) names no id of this one; ``?`` is a null id's."""
    calls = replace(STREAM, record_ref="call-{id}-x")
    refs = pl.Series(["call-7-x", "chat-7-x", "call--x", "call-x", "call-?-x", "call-7"])
    got = pl.select(id_of(calls, pl.lit(refs))).to_series().to_list()
    assert got == ["7", None, "", None, "?", None]


def _normalise_attempts(landed: pl.LazyFrame) -> Normalised:
    """Each record is one callback attempt of chain ``cid``, retry number ``seg``: records
    share chains, and a chain's first attempt (its request) can land after its retries."""
    r = pl.col("payload").str.json_decode(PAYLOAD)
    rows = landed.with_columns(r.alias("r")).select(
        pl.lit("tst").alias("source"),
        pl.concat_str(pl.lit("a"), pl.col("r").struct.field("id")).alias("attempt_id"),
        pl.col("r").struct.field("cid").alias("original_id"),
        pl.col("r").struct.field("seg").alias("retry_attempt"),
        pl.lit("ASAP").alias("type"),
        pl.col("r").struct.field("at").alias("created_at"),
        pl.lit("Success").alias("outcome"),
        "updated_at",
        "record_id",
    )
    return Normalised(rows, pl.LazyFrame(schema=QUARANTINE))


ATTEMPTS = Source(
    "tst",
    SourceSettings,
    lambda _s, _t: httpx.Client(),
    streams=(replace(STREAM, normalise=_normalise_attempts),),
    table="callback_attempts",
)


def test_a_run_with_nothing_new_reads_the_index_as_committed_for_records_set_aside(
    tmp_path: Path,
) -> None:
    """A snapshot made from exactly the landed files is loaded without its index, identities
    and homes (nothing to redo); a record set aside at landing is still quarantined only while
    no version of it has landed, which the index, read as committed, tells."""
    stamp = datetime(2026, 10, 1, 9, tzinfo=UTC)  # older than the version of 5 landed since
    misfits = [
        RejectedRecord("shape", "misfit", f'{{"id":{i},"cid":"c{i}"}}', str(i), stamp)
        for i in (5, 6)
    ]
    land_rejected(tmp_path / "landing", "tst", "recs", misfits, batch_id="b0", fetched_at=T0)
    _apply(tmp_path, 1, "land", [_one(5, "c5")])  # 5 landed since; 6 never
    first, again = _snapshot(tmp_path), _snapshot(tmp_path)
    assert (first.mode, again.mode) == ("whole", "unchanged")
    want_bad = _oracle(tmp_path / "landing")[1]
    assert want_bad.select("record_id", "reason").rows() == [("rec-6", "shape")]
    for got in (first, again):
        assert_frame_equal(_sorted(*got.frames)[1], want_bad)


#: A month shard's row order, as the contract states it (``docs/architecture.md``).
CONTACT_ORDER, ATTEMPT_ORDER = ["source", "contact_id", "segment_no"], ["source", "attempt_id"]


def _assert_each_month_in_row_order(got: Any, key: list[str]) -> None:
    """Each month shard of the saved snapshot holds its rows sorted by ``key`` (the order a
    run reads them in: month by month, each in row order), however the redo was grouped."""
    for month, rows in got.snap.read(got.snap.shards).items():
        assert rows.equals(rows.sort(key, nulls_last=True, maintain_order=True)), month


def _assert_the_attempts_rebuild(got: Any, root: Path) -> None:
    """The rows, quarantine, request days' digests, chains and gaps of the refreshed ``got``
    equal those of the attempts validated from the whole landing at ``root``."""
    rows, bad = pl.collect_all(list(validated(rebuild(ATTEMPTS, root / "landing"),
                                              "callback_attempts")))  # fmt: skip
    key = ["source", "attempt_id"]
    assert_frame_equal(got.rows.sort(key), rows.sort(key))
    assert_frame_equal(got.quarantine.sort(list(QUARANTINE), nulls_last=True),
                       bad.sort(list(QUARANTINE), nulls_last=True))  # fmt: skip
    ordered = in_chain_order(rows.lazy()).collect()
    assert got.digests == day_digests(ordered, request_dates(ordered))
    chains, gaps = got.chains
    assert chains == ordered.select(pl.struct("source", "original_id").n_unique()).item()
    assert_frame_equal(gaps, callback_gaps(ordered.lazy()).collect())


@given(steps=st.lists(step, min_size=1, max_size=8))
def test_the_attempts_snapshot_equals_the_rebuild_chain_by_chain(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]]
) -> None:
    """Kept by the month of each chain's request: the rows, the request days' digests, the
    chains and their gaps equal those of the whole landing's attempts, run after run."""
    root, modes = tmp_path_factory.mktemp("attempts"), []
    for n, (op, arg) in enumerate(steps):
        _apply(root, n, op, arg)
        with patch.object(redo, "_WHOLE", 1.01):
            got = refresh_sources([ATTEMPTS], "callback_attempts", landing=root / "landing",
                                  state=root / "state")  # fmt: skip
        _assert_the_attempts_rebuild(got, root)
        _assert_each_month_in_row_order(got, ATTEMPT_ORDER)
        modes.append(got.mode)
    assert "whole" not in modes[1:]


def _one(rid: int, cid: str) -> dict[str, Any]:
    """A record of contact ``cid`` answered in October (its ``at``) whose id is ``rid``."""
    at, updated = "2026-10-01T09:00:00Z", "2026-10-01T10:00:00Z"
    return {"id": rid, "cid": cid, "seg": 1, "updated_at": updated, "at": at,
            "outcome": "answered", "mapbad": None}  # fmt: skip


@given(
    steps=st.lists(step, min_size=2, max_size=8),
    group=st.integers(1, 8),
    most=st.integers(1, 4),
    decoded=st.booleans(),
)
@example(  # one month's contacts landed in reverse order, a group each: sorted once, at the end
    steps=[("land", [_one(3, "c3")]), ("land", [_one(2, "c2")]), ("land", [_one(1, "c1")])],
    group=1, most=4, decoded=False,
)  # fmt: skip
def test_a_whole_redo_in_groups_of_files_equals_the_rebuild(
    tmp_path_factory: pytest.TempPathFactory,
    steps: list[tuple[str, Any]],
    group: int,
    most: int,
    decoded: bool,
) -> None:
    """A whole redo (a first run, ``--full-refresh``) takes the landed files a few records at a
    time (in at most ``most`` groups), each group after the first closed over identities with
    those before: the rows, the
    quarantine, the digests and the record count equal the rebuild's, and the snapshot it saves
    is the one the next run starts from."""
    root, source = tmp_path_factory.mktemp("groups"), DECODED if decoded else SOURCE
    for n, (op, arg) in enumerate(steps):
        _apply(root, n, op, arg, source)
    with patch.object(redo, "GROUP_RECORDS", group), patch.object(redo, "MAX_GROUPS", most):
        got = _snapshot(root, source, whole=True)
    want_rows, want_bad = _oracle(root / "landing", source)
    rows, bad = _sorted(*got.frames)
    assert_frame_equal(rows, want_rows)
    assert_frame_equal(bad, want_bad)
    assert got.digests == day_digests(want_rows, want_rows["offered_at"].dt.date())
    assert (got.mode, got.records, got.redone) == ("whole", got.records, got.records)
    assert got.records == _snapshot(root, source, whole=True, write=False).records
    again = _snapshot(root, source)  # read back from what the grouped redo saved
    assert again.mode == "unchanged"
    assert_frame_equal(_sorted(*again.frames)[0], want_rows)
    assert again.digests == got.digests
    _assert_each_month_in_row_order(got, CONTACT_ORDER)


@given(steps=st.lists(step, min_size=2, max_size=8),
       group=st.integers(1, 8))  # fmt: skip
def test_a_whole_redo_of_attempts_in_groups_equals_the_rebuild(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, Any]], group: int
) -> None:
    """Grouped, a chain whose attempts landed in different groups is still judged whole."""
    root = tmp_path_factory.mktemp("attempt-groups")
    for n, (op, arg) in enumerate(steps):
        _apply(root, n, op, arg)
    with patch.object(redo, "GROUP_RECORDS", group):
        got = refresh_sources([ATTEMPTS], "callback_attempts", landing=root / "landing",
                              state=root / "state", whole=True)  # fmt: skip
    _assert_the_attempts_rebuild(got, root)
    _assert_each_month_in_row_order(got, ATTEMPT_ORDER)
