"""The streamed build: contacts validated into the store's files as they stream (issue 13 item 2).

The canonical rows and the quarantine must be exactly :func:`validate_contacts`' (which the
quarantine and oracle tests pin down), whatever the identities' hashes do; nothing is visible
in the store before the commit, and a build that fails first leaves no file behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.io.plugins import register_io_source

from engine.demo.contacts import generate_contacts, make_dirty
from engine.output import datafiles, delta
from engine.output.contacts import scan_files, sink_contacts
from engine.pipeline.build import build_contacts
from engine.schema import CONTACTS, CONTACTS_KEY
from engine.settings import BuildSettings
from engine.validate.contacts import (
    conform_contacts,
    repeated_identities,
    resolve_contacts,
    split_contacts,
    validate_contacts,
)

START = datetime(2026, 10, 1, tzinfo=UTC)
KEY = list(CONTACTS_KEY)


@pytest.fixture(scope="module")
def dirty() -> pl.DataFrame:
    """Text columns, bad rows of every reason, exact copies, older versions and conflicts."""
    clean = generate_contacts(start=START, days=2, scale=0.3)
    frame, _ = make_dirty(clean, seed=5, fraction=0.05)
    return frame


def _sorted(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.sort(by, nulls_last=True, maintain_order=True)


def test_the_store_holds_exactly_what_validation_keeps(dirty: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "contacts"
    sunk = sink_contacts(dirty.lazy(), path, tag="t1")
    assert not delta.is_table(path)  # files written, nothing committed yet
    delta.commit_files(path, sunk.files, schema=pl.Schema(CONTACTS), tag="t1")
    clean, quarantine = pl.collect_all(validate_contacts(dirty.lazy()))
    stored = delta.scan(path, CONTACTS).collect()
    assert clean.height > 0
    assert quarantine.height > 0
    assert _sorted(stored, KEY).equals(_sorted(clean, KEY))
    assert scan_files(path, sunk.files).collect().height == sunk.contacts == clean.height
    columns = ["record_id", "reason", "detail", "raw"]
    assert _sorted(sunk.quarantine, columns).equals(_sorted(quarantine, columns))
    assert sunk.rows_in == dirty.height
    assert delta.problems(path) == []
    days = {d.isoformat() for d in clean["offered_at"].dt.date().unique()}
    assert {a.partition_values["date"] for a in sunk.files} == days


def test_every_identity_sent_through_the_rules_changes_nothing(dirty: pl.DataFrame) -> None:
    """Two identities sharing a hash only send their rows through the de-duplication rules:
    with every hash 'repeated', the same rows come out."""
    repeated = repeated_identities(dirty.lazy()).collect().to_series()
    every = conform_contacts(dirty.lazy()).select(pl.struct(KEY).hash()).collect().to_series()
    results = []
    for hashes in (repeated, every):
        single, others = split_contacts(dirty.lazy(), hashes)
        kept, quarantine = resolve_contacts(others)
        results.append((pl.concat([single, kept]).collect(), quarantine.collect()))
    (clean_a, bad_a), (clean_b, bad_b) = results
    assert repeated.len() > 0
    assert _sorted(clean_a, KEY).equals(_sorted(clean_b, KEY))
    columns = ["record_id", "reason", "detail", "raw"]
    assert _sorted(bad_a, columns).equals(_sorted(bad_b, columns))


def test_a_failed_build_leaves_no_file(tmp_path: Path) -> None:
    """No valid contact and no window: the build fails after writing, and takes its files away
    (none was committed, so the store is as it was: here, absent)."""
    rows = generate_contacts(start=START, days=1, scale=0.05).head(3)
    bad = rows.with_columns(pl.lit("fax").alias("channel")).lazy()
    with pytest.raises(ValueError, match="no valid contacts"):
        build_contacts(bad, settings=BuildSettings(), out_dir=tmp_path, formats=("parquet",))
    path = tmp_path / "store" / "contacts"
    assert not delta.is_table(path)
    assert list(path.rglob("*.parquet")) == []


def test_a_rebuild_replaces_the_table_whole(tmp_path: Path) -> None:
    frame = generate_contacts(start=START, days=2, scale=0.1)
    settings = BuildSettings()
    first = build_contacts(frame.lazy(), settings=settings, out_dir=tmp_path, formats=("parquet",))
    second = build_contacts(
        frame.head(100).lazy(), settings=settings, out_dir=tmp_path, formats=("parquet",)
    )
    path = tmp_path / "store" / "contacts"
    assert (first.contacts, second.contacts) == (frame.height, 100)
    assert delta.row_count(path) == 100
    assert delta.version(path) == 1  # created with its first rows, then a second commit
    assert delta.problems(path) == []


def test_sunk_files_are_described_for_the_commit(tmp_path: Path) -> None:
    at = [datetime(2026, 10, 1, 23, tzinfo=UTC), datetime(2026, 10, 2, 1, tzinfo=UTC)]
    rows = pl.LazyFrame({"at": at * 3, "n": range(6)})
    datafiles.sink_partitions(rows, tmp_path, by="at", tag="w1").collect()
    actions = datafiles.added(tmp_path, "w1")
    assert sorted(str(a.partition_values["date"]) for a in actions) == ["2026-10-01", "2026-10-02"]
    assert all(a.path.split("/")[1].startswith("part-w1-") for a in actions)
    schema = pl.Schema([("at", pl.Datetime("us", "UTC")), ("n", pl.Int64())])
    delta.commit_files(tmp_path, actions, schema=schema, tag="w1")
    assert sorted(delta.scan(tmp_path).collect()["n"].to_list()) == list(range(6))
    assert delta.problems(tmp_path) == []
    assert delta.row_count(tmp_path) == 6


def _counted(frame: pl.DataFrame) -> tuple[pl.LazyFrame, list[int]]:
    """``frame`` as a lazy source that counts how many times it is read."""
    reads: list[int] = []

    def source(
        columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _: int | None
    ) -> Iterator[pl.DataFrame]:
        reads.append(1)
        out = frame if columns is None else frame.select(columns)
        out = out if predicate is None else out.filter(predicate)
        yield out if n_rows is None else out.head(n_rows)

    return register_io_source(source, schema=frame.schema), reads


@pytest.fixture(scope="module")
def resent() -> pl.DataFrame:
    """Valid rows only, with re-sent updates, exact copies and two conflicting versions."""
    rows = generate_contacts(start=START, days=2, scale=0.3)
    updates = rows.head(40).with_columns(
        pl.col("acw_ms") + 30_000, pl.col("updated_at") + timedelta(hours=1)
    )
    conflict = rows.slice(100, 1).with_columns(pl.col("acw_ms") + 1)
    return pl.concat([rows, updates, rows.slice(50, 10), conflict, rows.slice(100, 1)])


def test_a_clean_input_is_read_twice_and_kept_exactly(resent: pl.DataFrame, tmp_path: Path) -> None:
    """No invalid row: the hashes' pass and the sink's (and the row count) read the input, no
    third pass; the store and the quarantine (the conflicts alone) are validation's."""
    path = tmp_path / "contacts"
    frame, reads = _counted(resent)
    sunk = sink_contacts(frame, path, tag="t1")
    assert len(reads) == 3  # the identities' hashes, the sink, the row count
    clean, quarantine = pl.collect_all(validate_contacts(resent.lazy()))
    stored = scan_files(path, sunk.files).collect()
    assert _sorted(stored, KEY).equals(_sorted(clean, KEY))
    assert set(quarantine["reason"]) == {"conflicting_duplicate"}
    columns = ["record_id", "reason", "detail", "raw"]
    assert _sorted(sunk.quarantine, columns).equals(_sorted(quarantine, columns))
    assert sunk.rows_in == resent.height
    assert sorted(p.name for p in path.iterdir()) == sorted(f"date={d}" for d in _days(clean))


def test_an_invalid_row_costs_one_more_read_and_nothing_is_left_apart(
    dirty: pl.DataFrame, tmp_path: Path
) -> None:
    path = tmp_path / "contacts"
    frame, reads = _counted(dirty)
    sunk = sink_contacts(frame, path, tag="t1")
    assert len(reads) == 4  # and the invalid rows' own pass, for their raw values
    clean, _ = pl.collect_all(validate_contacts(dirty.lazy()))
    assert sorted(p.name for p in path.iterdir()) == sorted(f"date={d}" for d in _days(clean))
    assert [f for f in path.rglob("*.parquet") if "-t1x-" in f.name] == []
    assert sunk.quarantine.height > 0


def _days(frame: pl.DataFrame) -> set[str]:
    return {d.isoformat() for d in frame["offered_at"].dt.date().unique()}


def test_rows_set_apart_go_to_folders_of_their_own_tag(tmp_path: Path) -> None:
    """A killed writer's set-apart files look like orphans of another writer: no version names
    them, and the next run's :func:`delta.remove_orphans` deletes them."""
    at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    rows = pl.LazyFrame({"at": [at] * 3, "n": [1, 2, 3], "apart": [None, "aside", "aside"]})
    datafiles.sink_partitions(rows, tmp_path, by="at", tag="w1", apart="apart").collect()
    kept = datafiles.added(tmp_path, "w1")
    assert [a.partition_values for a in kept] == [{"date": "2026-10-01"}]
    apart = [tmp_path / f for f in datafiles.set_apart(tmp_path, "w1", "aside")]  # relative
    assert pl.read_parquet(apart).columns == ["at", "n"]
    assert sorted(pl.read_parquet(apart)["n"]) == [2, 3]
    datafiles.discard(tmp_path, "w1")
    assert list(tmp_path.rglob("*.parquet")) == []
    assert not (tmp_path / "date=aside").exists()
