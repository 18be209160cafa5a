"""The streamed callbacks build: attempts validated into the store's files day by day, the tables
and the document merged from each day's parts (issue 13 item 2).

The stored attempts and the quarantine must be exactly :func:`validate_callback_attempts`' (which
the quarantine and oracle tests pin down), whatever the identities' and chains' hashes do and
however the input is cut into batches; the tables and the document must be exactly the in-memory
builders'; nothing is visible in the store before the commit, and a build that fails leaves no
file behind.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from engine.demo.callbacks import generate_attempts
from engine.demo.callbacks_dirty import make_dirty_attempts
from engine.errors import NothingValidError
from engine.killpoint import VARIABLE
from engine.output import attempts as streamed
from engine.output import delta, store
from engine.pipeline.callbacks import build_callbacks, callback_outputs
from engine.schema import CALLBACK_ATTEMPTS
from engine.settings import BuildSettings
from engine.tables.callback_requests import in_chain_order
from engine.validate.callback_attempts import (
    CHAIN_HASH,
    DAY,
    attempt_keys,
    chain_hash,
    identity_hash,
    validate_callback_attempts,
)
from tests.calendar import run_process

KEY = ["source", "attempt_id"]
COLUMNS = ["record_id", "reason", "detail", "raw"]


@pytest.fixture(scope="module")
def dirty() -> pl.DataFrame:
    """Text columns, vendor spellings, bad rows of every reason, exact copies and conflicts,
    shuffled, over three days (chains whose retries cross midnight)."""
    frame, _ = make_dirty_attempts(generate_attempts(days=3, scale=0.2), seed=4, fraction=0.05)
    return frame


def _sorted(frame: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    return frame.sort(by, nulls_last=True, maintain_order=True)


def _sink(dirty: pl.DataFrame, path: Path) -> streamed.SunkAttempts[int]:
    return streamed.sink_attempts(dirty.lazy(), path, tag="t1", each=lambda o, r: o.height)


def _check_sunk(dirty: pl.DataFrame, path: Path, sunk: streamed.SunkAttempts[int]) -> None:
    assert not delta.is_table(path)  # files written, nothing committed yet
    delta.commit_files(path, sunk.files, schema=pl.Schema(CALLBACK_ATTEMPTS), tag="t1")
    clean, quarantine = pl.collect_all(validate_callback_attempts(dirty.lazy()))
    stored = delta.scan(path, CALLBACK_ATTEMPTS).collect()
    assert clean.height > 0
    assert quarantine.height > 0
    assert _sorted(stored, KEY).equals(_sorted(clean, KEY))
    assert _sorted(sunk.quarantine, COLUMNS).equals(_sorted(quarantine, COLUMNS))
    assert sunk.attempts == sum(sunk.units) == clean.height
    assert sunk.rows_in == dirty.height
    assert delta.problems(path) == []
    assert store.is_chain_ordered(path)  # every chain one run, in order, in one file
    ordered = in_chain_order(clean.lazy()).collect()
    days = ordered.select(delta.days_of(store.request_instant())).to_series()
    by_day = stored.join(
        ordered.with_columns(days.alias("want")).select(*KEY, "want"), on=KEY, how="left"
    )
    for action in sunk.files:  # each file holds only rows of its request date
        rows = pl.read_parquet(path / action.path).select(KEY).join(by_day, on=KEY, how="left")
        assert rows["want"].unique().to_list() == [
            datetime.fromisoformat(action.partition_values["date"]).date()
        ]


def test_the_store_holds_exactly_what_validation_keeps(dirty: pl.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "callback_attempts"
    _check_sunk(dirty, path, _sink(dirty, path))


def test_small_batches_change_nothing(
    dirty: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streamed, "BATCH_ROWS", 777)
    path = tmp_path / "callback_attempts"
    _check_sunk(dirty, path, _sink(dirty, path))


def test_every_hash_shared_changes_nothing(
    dirty: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hashes only route rows: with every identity 'repeated' (all rows through the rules) and
    every chain 'straddling' (each on its earliest day), the same rows come out."""
    repeated = attempt_keys(dirty.lazy())[0].collect()
    assert repeated.height > 0
    frame = dirty.lazy()
    every = frame.select(identity_hash()).unique()
    created = validate_callback_attempts(frame)[0].select(
        chain_hash(), pl.col("created_at").dt.date().alias(DAY)
    )
    chains = created.group_by(CHAIN_HASH).agg(pl.col(DAY).min())
    monkeypatch.setattr(streamed, "attempt_keys", lambda _: (every, chains))
    path = tmp_path / "callback_attempts"
    _check_sunk(dirty, path, _sink(dirty, path))


def test_the_build_equals_the_in_memory_builders(dirty: pl.DataFrame, tmp_path: Path) -> None:
    settings = BuildSettings(tz="America/New_York")
    report = build_callbacks(dirty.lazy(), settings=settings, out_dir=tmp_path)
    clean = pl.collect_all(validate_callback_attempts(dirty.lazy()))[0]
    out, grid = callback_outputs(
        in_chain_order(clean.lazy()).collect(), window=None, settings=settings
    )
    assert report.window[0] == grid.start.isoformat().replace("+00:00", "Z")
    assert (report.attempts, report.requests) == (clean.height, out.requests)
    assert (report.table_rows, report.retry_rows) == (out.table.height, out.retries.height)
    exports = tmp_path / "exports"
    assert pl.read_ndjson(exports / "callback_intervals.ndjson").height == out.table.height
    assert json.loads((exports / "callback_metrics.json").read_text()) == out.document
    table = pl.read_csv(exports / "callback_intervals.csv", infer_schema=False)
    assert table.equals(pl.read_csv(_csv(out.table, tmp_path), infer_schema=False))
    retries = pl.read_csv(exports / "retry_outcomes.csv", infer_schema=False)
    assert retries.equals(pl.read_csv(_csv(out.retries, tmp_path), infer_schema=False))
    gaps = pl.read_ndjson(exports / "callback_gaps.ndjson")
    assert gaps.height == out.gaps.height == report.gaps


def _csv(frame: pl.DataFrame, folder: Path) -> Path:
    from engine.output import files

    return files.write_csv(frame, folder / "want" / "t.csv")


def test_a_window_keeps_the_store_and_filters_the_tables(
    dirty: pl.DataFrame, tmp_path: Path
) -> None:
    settings = BuildSettings(tz="Asia/Kolkata", interval_minutes=60)  # intervals across midnight
    window = (datetime(2026, 10, 1, 12, tzinfo=UTC), datetime(2026, 10, 3, 6, tzinfo=UTC))
    build_callbacks(
        dirty.lazy(), settings=settings, out_dir=tmp_path, window=window, formats=("parquet",)
    )
    clean = pl.collect_all(validate_callback_attempts(dirty.lazy()))[0]
    out, _ = callback_outputs(
        in_chain_order(clean.lazy()).collect(), window=window, settings=settings, dense=False
    )
    for name, want in (("callback_intervals", out.table), ("retry_outcomes", out.retries)):
        got = delta.scan(tmp_path / "store" / name).collect()
        assert got.height == want.height > 0
        key = ["interval_start_utc", "call_target_id"]
        stored = delta.scan(tmp_path / "store" / name).collect().cast(want.schema)  # type: ignore[arg-type]
        assert _sorted(stored, [*key, *want.columns[5:7]]).equals(
            _sorted(want, [*key, *want.columns[5:7]])
        )
    assert delta.row_count(tmp_path / "store" / "callback_attempts") == clean.height


def test_a_failed_build_leaves_its_quarantine_and_no_store_file(tmp_path: Path) -> None:
    """No valid attempt and no window: the build fails after reading (a data problem, every
    row quarantined), and leaves the quarantine that says why, no store file or folder."""
    rows = generate_attempts(days=1, scale=0.05).head(3)
    bad = rows.with_columns(pl.lit(-1).alias("retry_attempt")).lazy()
    with pytest.raises(NothingValidError, match=r"\(negative_retry_attempt 3; written to "):
        build_callbacks(bad, settings=BuildSettings(), out_dir=tmp_path, formats=("parquet",))
    found = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert found == ["quarantine", "quarantine/callback_attempts.csv"]
    assert pl.read_csv(tmp_path / "quarantine" / "callback_attempts.csv").height == 3


def test_a_failure_midway_takes_the_written_files_away(dirty: pl.DataFrame, tmp_path: Path) -> None:
    calls = []

    def each(ordered: pl.DataFrame, _reqs: pl.LazyFrame) -> int:
        calls.append(ordered.height)
        if len(calls) == 2:
            raise RuntimeError("boom")
        return ordered.height

    path = tmp_path / "store" / "callback_attempts"
    with pytest.raises(RuntimeError, match="boom"):
        streamed.sink_attempts(dirty.lazy(), path, tag="t1", each=each)
    assert list(tmp_path.rglob("*")) == []


def test_a_chain_across_midnight_stays_whole(tmp_path: Path) -> None:
    """A chain whose retries come the next UTC day is spilled and written with its first
    attempt, on its request's date."""
    frame = generate_attempts(days=1, scale=0.1)
    retried = frame.filter(pl.col("retry_attempt") == 1).head(5).select("source", "original_id")
    marked = retried.with_columns(pl.lit(value=True).alias("_m"))
    flagged = frame.join(marked, on=["source", "original_id"], how="left")
    late = pl.col("_m").fill_null(value=False) & (pl.col("retry_attempt") >= 1)
    instants = [c for c, t in CALLBACK_ATTEMPTS.items() if isinstance(t, pl.Datetime)]
    moved = flagged.with_columns(
        pl.when(late).then(pl.col(c) + pl.duration(days=1)).otherwise(pl.col(c)) for c in instants
    ).drop("_m")
    straddling = pl.collect_all(attempt_keys(moved.lazy()))[1]
    assert straddling.height == retried.height
    path = tmp_path / "callback_attempts"
    sunk = streamed.sink_attempts(moved.lazy(), path, tag="t1", each=lambda o, r: o.height)
    assert sunk.quarantine.height == 0
    _check_sunk_clean(moved, path, sunk)


def _check_sunk_clean(frame: pl.DataFrame, path: Path, sunk: streamed.SunkAttempts[int]) -> None:
    delta.commit_files(path, sunk.files, schema=pl.Schema(CALLBACK_ATTEMPTS), tag="t1")
    clean = pl.collect_all(validate_callback_attempts(frame.lazy()))[0]
    stored = delta.scan(path, CALLBACK_ATTEMPTS).collect()
    assert _sorted(stored, KEY).equals(_sorted(clean, KEY))
    assert store.is_chain_ordered(path)


@pytest.mark.parametrize("quarantined", [False, True])
def test_parquet_alone_writes_each_date_as_the_whole_tables_would(
    dirty: pl.DataFrame, tmp_path: Path, quarantined: bool
) -> None:
    """With ``--format parquet`` the tables go to the store one date of intervals at a time:
    each partition holds the rows of the busy tables built whole, in their order, and the report
    counts the zero-filled tables' sizes as the dense build does (no request at all: the same)."""
    settings = BuildSettings(tz="America/New_York")
    window = (datetime(2026, 10, 1, 4, tzinfo=UTC), datetime(2026, 10, 4, 4, tzinfo=UTC))
    rows = dirty.with_columns(pl.lit("yesterday").alias("created_at")) if quarantined else dirty
    kw = {"settings": settings, "window": window}
    alone = build_callbacks(rows.lazy(), out_dir=tmp_path / "p", formats=("parquet",), **kw)
    dense = build_callbacks(rows.lazy(), out_dir=tmp_path / "d", **kw)
    keep = ("table_rows", "retry_rows", "intervals", "combinations", "requests", "quarantined")
    assert [getattr(alone, k) for k in keep] == [getattr(dense, k) for k in keep]
    clean = pl.collect_all(validate_callback_attempts(rows.lazy()))[0]
    out, _ = callback_outputs(
        in_chain_order(clean.lazy()).collect(), window=window, settings=settings, dense=False
    )
    for name, want in (("callback_intervals", out.table), ("retry_outcomes", out.retries)):
        folder = tmp_path / "p" / "store" / name
        parts = sorted(folder.glob("date=*/*.parquet"))
        got = [pl.read_parquet(p, hive_partitioning=False) for p in parts]
        stored = pl.concat(got).cast(want.schema) if got else want.head(0)  # type: ignore[arg-type]
        by_date = want.sort(pl.col("interval_start_utc").dt.date(), maintain_order=True)
        assert stored.equals(by_date)
        assert delta.row_count(folder) == want.height


def test_a_killed_build_leaves_no_scratch_for_good(dirty: pl.DataFrame, tmp_path: Path) -> None:
    """``callbacks`` killed while its parts and spilled rows are on disk (``SIGKILL``: no
    ``finally``) leaves its scratch folder beside the store; the next build removes it, and
    every other such folder this host's dead processes left, but not a running process's or
    another host's (on a shared disk: not ours to judge)."""
    source = tmp_path / "attempts.parquet"
    dirty.write_parquet(source)
    out = tmp_path / "out"
    command = [sys.executable, "-m", "engine.cli.main", "callbacks", "--attempts", str(source),
               "--out", str(out), "--format", "parquet",
               "--max-quarantine-fraction", "1"]  # fmt: skip  # the dirty rows: no exit 1
    env = {**os.environ, VARIABLE: "delta.files_written"}
    killed = run_process(command, timeout=300, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    store, host = out / "store", socket.gethostname()
    left = [p.name for p in store.glob(".parts-*")]
    assert len(left) == 1, left
    assert f"@{host}@" in left[0]  # the killed build's, named by it
    gone = run_process([sys.executable, "-c", "import os; print(os.getpid())"], timeout=60)
    dead = int(gone.stdout)
    planted = {
        f".spill-{dead}@{host}@a1": False,  # a dead process of this host: removed
        f".spill-{os.getpid()}@{host}@b2": True,  # running: kept
        f".spill-{dead}@elsewhere.example@c3": True,  # another host's: kept
        ".spill-legacy": True,  # not of this shape: kept
    }
    for name in planted:
        (store / name).mkdir()
        (store / name / "0.arrow").write_bytes(b"x")
    again = run_process(command, timeout=300, env=dict(os.environ))
    assert again.returncode == 0, again.stderr
    assert list(store.glob(".parts-*")) == []
    assert {p.name: p.is_dir() for p in store.glob(".spill-*")} == {
        name: True for name, kept in planted.items() if kept
    }
    clean = pl.collect_all(validate_callback_attempts(dirty.lazy()))[0]
    assert delta.row_count(store / "callback_attempts") == clean.height
