"""A run's CSV and NDJSON dumps of the interval tables are zero-filled (SPEC §4, docs/exports.md):
over each window of the days it rewrote, exactly the builders' zero-filled tables of that window
(the rows of ``build`` and ``callbacks``, ``engine.read_table(..., dense=True)``), in interval
order; not the busy rows the store keeps. Two windows apart (a row years before the sources'
start adds its day, not the days between) are each filled on their own."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from engine.app.config import AppSettings
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.interval import Grid
from engine.output.files import PartFiles, write_csv, write_ndjson
from engine.output.read import read_table
from engine.pipeline.build import volume_table
from engine.pipeline.callbacks import callback_tables
from engine.pipeline.export import export_tables
from engine.pipeline.tables import build_tables, staffing_rows
from engine.pipeline.window import Canonical, plan_run
from engine.schema import QUARANTINE
from engine.settings import BuildSettings
from engine.tables.callback_requests import requests
from engine.tables.dense import SHAPES
from tests.engine.run_support import Stack, invoke, write_config
from tests.engine.run_support import clean_environment as _clean

START = datetime(2026, 10, 1, tzinfo=UTC)
NOW = START + timedelta(days=3, hours=6, minutes=7)  # the last window ends mid-day
LONG_BEFORE = timedelta(days=-900)
QUARANTINE_ROWS = pl.DataFrame(schema=QUARANTINE)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


def _in_dump_order(frame: pl.DataFrame, name: str) -> pl.DataFrame:
    """The dumps' order: by interval, then group."""
    group = SHAPES["callvolume" if name == "staffing" else name].group
    return frame.sort(["interval_start_utc", *group], nulls_last=False)


def _staffing(volume: pl.DataFrame, settings: BuildSettings) -> pl.DataFrame:
    """The staffing dump of a filled volume table: the staffing rows, with the interval's end,
    local start and offset and the queue's name of their volume row (an analyst outside UTC
    reads the dump in local time, as every other interval table's)."""
    keys = ["interval_start_utc", "queue_id", "channel"]
    along = volume.select(*keys, "interval_end_utc", "interval_start_local", "utc_offset_min",
                          "queue_name").with_columns(pl.col("channel").cast(pl.String))  # fmt: skip
    rows = staffing_rows(volume, settings=settings).join(along, on=keys, how="left")
    first = ["interval_start_utc", "interval_end_utc", "interval_start_local", "utc_offset_min",
             "queue_id", "queue_name", "channel"]  # fmt: skip
    return rows.select(*first, pl.exclude(first))


def _wrong_dumps(out: Path, filled: dict[str, pl.DataFrame], scratch: Path) -> list[str]:
    """The run's dumps (CSV, NDJSON) that do not hold their table of ``filled``, row for row
    and value for value: the bytes the writers give for it in the dumps' order (staffing: its
    floats but for their last bits, which Polars' float kernels round by the array's length)."""
    scratch.mkdir(exist_ok=True)
    writers: list[tuple[str, Callable[[pl.DataFrame, Path], Path]]] = [
        (".csv", write_csv),
        (".ndjson", write_ndjson),
    ]
    wrong = []
    for name, expected in filled.items():
        assert expected.height > 0
        for suffix, write in writers:
            dumped = out / "exports" / f"{name}{suffix}"
            want = write(_in_dump_order(expected, name), scratch / dumped.name)
            if name == "staffing":
                same = _near(_read(dumped), _read(want))
            else:
                same = dumped.read_bytes() == want.read_bytes()
            if not same:
                wrong.append(dumped.name)
    return wrong


def _near(got: pl.DataFrame, want: pl.DataFrame) -> bool:
    try:
        assert_frame_equal(got, want, check_exact=False, rel_tol=1e-9)
    except AssertionError:
        return False
    return True


def _read(path: Path) -> pl.DataFrame:
    if path.suffix == ".csv":
        return pl.read_csv(path, infer_schema_length=None)
    return pl.read_ndjson(path, infer_schema_length=None)


def _long_before(
    frame: pl.DataFrame, ids: tuple[str, ...], first: int, *, by: timedelta = LONG_BEFORE
) -> pl.DataFrame:
    """The rows of the first ``first`` values of ``ids[0]``, every instant moved ``by``, under
    new ids."""
    kept = frame[ids[0]].unique(maintain_order=True).head(first)
    instants = [c for c, t in frame.schema.items() if isinstance(t, pl.Datetime)]
    chosen = frame.filter(pl.col(ids[0]).is_in(kept.implode()))
    return chosen.with_columns(pl.col(c) + by for c in instants).with_columns(
        pl.concat_str(pl.lit("old-"), c).alias(c) for c in ids
    )


def _days_are(out: Path, grids: list[Grid], name: str) -> None:
    """The dump of ``name`` holds every interval of ``grids`` and no other."""
    dumped = pl.read_csv(out / "exports" / f"{name}.csv", infer_schema=False)
    starts = set(dumped["interval_start_utc"].unique().to_list())
    want = pl.concat(g.frame for g in grids)["interval_start_utc"]
    assert starts == set(want.dt.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_list())


def test_a_runs_dumps_over_two_windows_are_the_builders_zero_filled_tables(
    tmp_path: Path,
) -> None:
    """The run's own steps (build_tables, then export_tables as ``_commit`` calls them) on a
    first run whose contacts and callback chains include some 900 days before the start: two
    windows for each kind of table, the second ending at now's interval."""
    recent = generate_contacts(seed=11, start=START, days=3, scale=0.02)
    contacts = pl.concat([_long_before(recent, ("contact_id",), 4), recent])
    chains = generate_attempts(seed=11, start=START, days=3, scale=0.05)
    attempts = pl.concat([_long_before(chains, ("original_id", "attempt_id"), 3), chains])
    settings = AppSettings()
    canon = Canonical.of((contacts, QUARANTINE_ROWS), (attempts, QUARANTINE_ROWS), None)
    ordered = canon.attempt_rows  # chain order
    assert ordered is not None
    plan = plan_run(
        canon, settings=settings.build, first_start=START, recent_start=None,
        given=(None, None), previous=None, now=NOW,
    )  # fmt: skip
    assert len(plan.volume) == len(plan.callbacks) == 2  # the days long before, then the recent
    out = tmp_path / "out"
    built = build_tables(out, settings, plan=plan, canonical=canon, tag="t")
    export_tables(
        out, settings.output, built.tables, grids=plan.volume, callback_grids=plan.callbacks,
        build=settings.build, now=NOW,
    )  # fmt: skip

    build = settings.build  # the tables `build` and `callbacks` write for each window
    volume = pl.concat(volume_table(contacts, window=g, settings=build) for g in plan.volume)
    reqs = requests(ordered.lazy())
    both = [pl.collect_all(callback_tables(reqs, window=g, settings=build)) for g in plan.callbacks]
    filled = {
        "callvolume": volume,
        "staffing": _staffing(volume, build),
        "callback_intervals": pl.concat(b[0] for b in both),
        "retry_outcomes": pl.concat(b[1] for b in both),
    }
    assert _wrong_dumps(out, filled, tmp_path / "want") == []
    _days_are(out, plan.volume, "callvolume")
    _days_are(out, plan.callbacks, "callback_intervals")
    document = json.loads((out / "exports" / "callvolume_document.json").read_text())
    assert document["totalCount"] == volume.height


def test_a_runs_dumps_are_zero_filled_as_read_dense_from_its_store(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    """``wfm-intervals run`` over the emulators, one UJET call ten years before the sources'
    start among them: every dump is the zero-filled table ``engine.read_table(...,
    dense=True)`` gives over the run's windows (two for the volume and staffing, one for the
    callback tables), the volume's as many rows as its document."""
    first = stack.ujet.expected_contacts().filter(pl.col("segment_no") == 1).head(1)
    old = _long_before(first, ("contact_id",), 1, by=timedelta(days=-3650))
    stack.ujet.add_contacts(old)  # stamped updated now: the first run pulls it
    config = write_config(tmp_path, stack, run={"report": False})
    result = invoke(["run", "--json", "--quiet"], config)
    assert result.exit_code == 0, result.output
    plan, out = json.loads(result.stdout)["plan"], tmp_path / "out"
    windows = {
        "callvolume": plan["callvolume"],
        "callback_intervals": plan["callback_tables"],
        "retry_outcomes": plan["callback_tables"],
    }
    assert len(windows["callvolume"]) == 2
    filled = {}
    for name, spans in windows.items():
        parts = []
        for lo, hi in spans:
            window = (datetime.fromisoformat(lo), datetime.fromisoformat(hi))
            parts.append(read_table(out, name, window=window, dense=True).collect())
        filled[name] = pl.concat(parts)
    filled["staffing"] = _staffing(filled["callvolume"], BuildSettings())
    assert _wrong_dumps(out, filled, tmp_path / "want") == []
    document = json.loads((out / "exports" / "callvolume_document.json").read_text())
    assert document["totalCount"] == filled["callvolume"].height
    busy = pl.read_delta(str(out / "store" / "callvolume")).height
    assert filled["callvolume"].height > busy  # zero rows, which the store does not keep


def test_dumps_written_together_keep_their_old_files_when_the_pass_fails(tmp_path: Path) -> None:
    """A run's volume parts feed several files in one pass (``PartFiles``): a failure before
    the pass ends leaves every file as it was and no temporary file."""
    old = write_csv(pl.DataFrame({"a": [1]}), tmp_path / "a.csv")
    files = PartFiles()

    def a_failed_pass() -> None:
        with files:
            adds = files.csv(tmp_path / "a.csv", {"a": pl.Int64()}), files.ndjson(tmp_path / "b")
            for add in adds:
                add(pl.DataFrame({"a": [2, 3]}))
            raise RuntimeError("a part failed")

    with pytest.raises(RuntimeError, match="a part failed"):
        a_failed_pass()
    assert old.read_text() == "a\n1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
    assert files.paths == []
