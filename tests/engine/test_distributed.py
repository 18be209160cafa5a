"""``--engine ray``: the volume table, both callback tables and the callback metrics document
built by Ray tasks over UTC days equal the single-machine ones, value for value, on a local
two-worker cluster (issue 14; engine/distributed/): as functions (Hypothesis properties over
random contacts and callback chains, DST days, chains crossing midnight, repeat customers over
days), and as commands (``build``, ``callbacks`` and ``run`` write the same store).

The cluster starts once for the module (two CPUs, so two worker processes run the day tasks)
and shuts down after it; the commands run in this process, so they join it. A spy on the day
tasks proves the ray engine ran them. Ray is the optional ``ray`` extra (and in the dev extra,
so CI runs this); without it the module is skipped with that reason.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from deltalake.transaction import AddAction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.app.sections import EngineSettings
from engine.cli.main import cli
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.output import datafiles, delta
from engine.output.store import write_attempts
from engine.pipeline.build import volume_table
from engine.pipeline.callbacks import callback_results
from engine.pipeline.tables import TABLES
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS
from engine.settings import BuildSettings
from engine.tables import callback_intervals
from engine.tables.callback_requests import in_chain_order
from engine.validate.callback_attempts import validate_callback_attempts
from engine.validate.contacts import validate_contacts
from tests.engine.run_support import SECRETS, Stack, invoke, table, write_config
from tests.engine.run_support import clean_environment as _clean
from tests.strategies import contact_rows

ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
#: Ray Data's own use of its deprecated settings warns inside Ray; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from engine.distributed import callbacks as ray_callbacks  # noqa: E402
from engine.distributed import cluster as ray_cluster  # noqa: E402
from engine.distributed import ray_engine  # noqa: E402
from engine.distributed.ray_engine import volume_table as on_ray  # noqa: E402

RAY = EngineSettings(kind="ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture
def day_tasks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spies on the day tasks: one entry per Ray Data job (``volume``, ``callbacks``: the
    driver handed the rows; ``... from the store``: it handed file paths only, one list per
    partition (none: no partition the grid draws from), and the tasks read them)."""
    jobs: list[str] = []
    for name, module in (("volume", ray_engine), ("callbacks", ray_callbacks)):

        def spy(rows: pl.DataFrame, task: Any, _real: Any = module.map_days, _n: str = name) -> Any:
            jobs.append(_n)
            return _real(rows, task)

        def reads(
            parts: list[list[str]],
            *args: Any,
            _real: Any = module.map_partitions,
            _n: str = name,
            **kwargs: Any,
        ) -> Any:
            assert all(isinstance(f, str) and f.endswith(".parquet") for p in parts for f in p)
            jobs.append(f"{_n} from the store")
            return _real(parts, *args, **kwargs)

        monkeypatch.setattr(module, "map_days", spy)
        monkeypatch.setattr(module, "map_partitions", reads)
    return jobs


@pytest.fixture
def driver_kinds(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """The kinds of the tasks' frames that reach this process (the driver): a spy on
    :func:`engine.distributed.cluster.unpack` wherever the driver calls it."""
    kinds: set[str] = set()
    real = ray_cluster.unpack

    def spy(packed: list[pl.DataFrame]) -> Any:
        kinds.update(k for p in packed for k in p["kind"].to_list())
        return real(packed)

    for module in (ray_cluster, ray_engine, ray_callbacks):
        monkeypatch.setattr(module, "unpack", spy)
    return kinds


def _stored_contacts(contacts: pl.DataFrame, where: Path) -> Path:
    """``contacts`` committed as the store does (``store/contacts``, by offer date)."""
    delta.commit(where / "contacts", contacts, by="offered_at")
    return where / "contacts"


def _valid(rows: pl.DataFrame) -> pl.DataFrame:
    clean, _ = validate_contacts(rows.lazy())
    return clean.collect()


def test_three_days_across_a_fall_back_equal_the_single_machine_table(cluster: None) -> None:
    s = BuildSettings(tz="America/New_York")
    start = datetime(2026, 10, 31, tzinfo=UTC)  # New York falls back on Nov 1
    contacts = _valid(generate_contacts(seed=3, start=start, days=3, scale=0.2, time_zone=s.tz))
    grid = s.grid((start, start + timedelta(days=3)))
    mine = on_ray(contacts, grid=grid, settings=s)
    assert mine.height > 0
    assert_frame_equal(mine, volume_table(contacts, window=grid, settings=s))
    busy = on_ray(contacts, grid=grid, settings=s, dense=False)  # no zero row: the store's rows
    assert 0 < busy.height < mine.height
    assert_frame_equal(busy, volume_table(contacts, window=grid, settings=s, dense=False))


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from([("UTC", 15), ("Asia/Kolkata", 15), ("America/New_York", 15),
                                   ("Asia/Kathmandu", 60)]),
       st.sampled_from(["arrival", "end"]), st.booleans())  # fmt: skip
def test_random_contacts_over_two_days_equal_the_single_machine_table(
    cluster: None, data: st.DataObject, zone: tuple[str, int], attribution: str, dense: bool
) -> None:
    """From the rows the driver hands over, and from the store's partitions the tasks read
    (Kathmandu's 60-minute intervals cross UTC midnight: a contact of one partition counts in
    the previous day's task; at the end, a contact counts where it ends)."""
    s = BuildSettings(tz=zone[0], interval_minutes=zone[1], attribution=attribution)  # type: ignore[arg-type]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = data.draw(contact_rows(start, start + timedelta(days=2), max_size=30))
    contacts = _valid(pl.DataFrame(rows, schema=CONTACTS))
    grid = s.grid((start, start + timedelta(days=2)))
    want = volume_table(contacts, window=grid, settings=s)
    assert_frame_equal(on_ray(contacts, grid=grid, settings=s), want)
    with tempfile.TemporaryDirectory() as where:
        store = _stored_contacts(contacts, Path(where))
        mine = on_ray(store, grid=grid, settings=s, dense=dense)
    assert_frame_equal(mine, volume_table(contacts, window=grid, settings=s, dense=dense))


def test_the_tasks_read_only_the_partitions_the_grid_draws_from(
    cluster: None, tmp_path: Path, day_tasks: list[str]
) -> None:
    """Kathmandu, 60-minute intervals (23:15-00:15 UTC belongs to the day it starts on, so the
    grid of Nov 2 runs from 23:15 UTC on Nov 1 to 00:15 on Nov 3): a contact offered at 00:10
    UTC is in the next partition but in the previous day's task; partitions outside the grid's
    dates are not read at arrival; at the end, an earlier one is read when the log's greatest
    ``ended_at`` of its file reaches the grid (a contact offered two days before the grid and
    ending in it counts in it), not when it ends before (Oct 30), and never a later one."""
    s = BuildSettings(tz="Asia/Kathmandu", interval_minutes=60)
    day = datetime(2026, 11, 2, tzinfo=UTC)

    def contact(cid: str, at: datetime, end: datetime | None = None) -> dict[str, Any]:
        return {"source": "ujet", "contact_id": cid, "segment_no": 1, "channel": "voice",
                "direction": "inbound", "queue_id": "q1", "queue_name": f"Q {cid}",
                "offered_at": at, "ended_at": end or at + timedelta(seconds=4),
                "outcome": "abandoned", "wait_ms": 4_000, "updated_at": at}  # fmt: skip

    rows = [
        contact("early", day - timedelta(days=3)),  # Oct 30: read at the end only
        contact("long", day - timedelta(hours=2), day + timedelta(hours=3)),  # ends in the grid
        contact("longer", day - timedelta(days=2), day + timedelta(hours=1)),  # Oct 31, likewise
        contact("late", day + timedelta(hours=23, minutes=20)),
        contact("after", day + timedelta(days=1, minutes=10)),  # Nov 3, in Nov 2's last interval
        contact("away", day + timedelta(days=8)),  # never read
    ]
    contacts = _valid(pl.DataFrame(rows, schema=CONTACTS))
    assert contacts.height == len(rows)
    store = _stored_contacts(contacts, tmp_path)
    # a later commit rewrites Nov 2 (a late change): its old file stays on disk, and only the
    # log says which file is current
    late = pl.col("contact_id") == "late"
    contacts = contacts.with_columns(
        pl.when(late).then(9_000).otherwise("wait_ms").alias("wait_ms")
    )
    nov2 = contacts.filter(pl.col("offered_at").dt.date() == day.date())
    delta.commit(store, nov2, by="offered_at", days=[day.date()])
    assert len(list((store / f"date={day.date()}").glob("*.parquet"))) == 2
    grid = s.grid((day, day + timedelta(days=1)))
    read: list[list[str]] = []
    real = ray_cluster.store_partitions

    def partitions(*args: Any, **kwargs: Any) -> list[list[str]]:
        found: list[list[str]] = real(*args, **kwargs)
        read.append([Path(files[0]).parent.name.removeprefix("date=2026-") for files in found])
        return found

    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(ray_engine, "store_partitions", partitions)
    try:
        for attribution in ("arrival", "end"):
            at = s.model_copy(update={"attribution": attribution})
            mine = on_ray(store, grid=grid, settings=at)
            assert_frame_equal(mine, volume_table(contacts, window=grid, settings=at))
            assert mine["offered"].sum() == (2 if attribution == "arrival" else 4)
        # partitions read, but not a row of them in the grid: no day task, the empty table
        at, empty = (
            s.model_copy(update={"attribution": "end"}),
            s.grid((day.replace(day=6), day.replace(day=7))),
        )
        assert_frame_equal(
            on_ray(store, grid=empty, settings=at, dense=False),
            volume_table(contacts, window=empty, settings=at, dense=False),
        )
    finally:
        monkeypatch.undo()
    assert day_tasks == ["volume from the store"] * 3
    # Nov 1-3; at the end, Oct 31 too (Oct 30's contact ends before the grid); none reaches Nov 6
    assert read == [["11-01", "11-02", "11-03"], ["10-31", "11-01", "11-02", "11-03"], []]


def test_a_file_the_log_gives_no_greatest_end_for_is_read_at_the_end(tmp_path: Path) -> None:
    """A store written before the log held bounds (its files' statistics: a count only): at
    the end, every earlier partition is read, as nothing says where its contacts end; with
    the bounds the writer records, the one that ends before the grid is not."""
    s = BuildSettings(attribution="end")
    day = datetime(2026, 11, 2, tzinfo=UTC)
    rows = [{"source": "ujet", "contact_id": "c", "segment_no": 1, "channel": "voice",
             "direction": "inbound", "queue_id": "q1", "offered_at": day - timedelta(days=3),
             "ended_at": day - timedelta(days=3), "outcome": "abandoned",
             "updated_at": day}]  # fmt: skip
    contacts = _valid(pl.DataFrame(rows, schema=CONTACTS))
    grid = s.grid((day, day + timedelta(days=1))).frame
    bounded = _stored_contacts(contacts, tmp_path / "bounded")
    assert ray_engine._partitions(bounded, grid, s) == []
    dated = contacts.with_columns(datafiles.days_of("offered_at"))
    actions = [
        AddAction(a.path, a.size, a.partition_values, a.modification_time, a.data_change,
                  json.dumps({"numRecords": 1}))
        for a in datafiles.write_partitions(tmp_path / "old", dated, "old")
    ]  # fmt: skip
    delta.commit_files(tmp_path / "old", actions, schema=pl.Schema(CONTACTS), tag="old")
    assert delta.data_files(tmp_path / "old", maxima=("ended_at",))["max.ended_at"].to_list() == [
        None
    ]
    assert len(ray_engine._partitions(tmp_path / "old", grid, s)) == 1


def test_build_engine_ray_writes_the_same_store(
    cluster: None, tmp_path: Path, day_tasks: list[str], driver_kinds: set[str]
) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    contacts = generate_contacts(seed=5, start=start, days=2, scale=0.1)
    contacts.write_parquet(tmp_path / "c.parquet")
    args = ["build", "--contacts", str(tmp_path / "c.parquet"), "--format", "parquet"]
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local")])
    remote = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert day_tasks == ["volume from the store"]  # the contacts it wrote, read by the tasks
    assert "busy" not in driver_kinds  # the tasks wrote the table (the store alone)
    read = [pl.read_delta(str(tmp_path / d / "store" / "callvolume")) for d in ("local", "ray")]
    assert read[0].height > 0
    assert_frame_equal(read[0], read[1], check_row_order=False)
    shape = ("intervals", "queue_channels", "table_rows", "contacts")
    summaries = [json.loads((tmp_path / d / "summary.json").read_text()) for d in ("local", "ray")]
    assert [summaries[0][k] for k in shape] == [summaries[1][k] for k in shape]


def _log(path: Path) -> pl.DataFrame:
    """What the log records of each file of a table: its partition, rows and greatest start."""
    files = delta.data_files(path, maxima=("interval_start_utc",))
    return files.drop("path", "size_bytes").sort(delta.PARTITION)


def test_the_tasks_write_the_volume_table_the_driver_commits_it(
    cluster: None, tmp_path: Path, driver_kinds: set[str]
) -> None:
    """With attribution at the end across New York's fall-back: the store table the tasks
    write equals the local build's, row for row and in what the log records of each file;
    no busy row reaches the driver; the table replaces the previous version whole."""
    s = BuildSettings(tz="America/New_York", attribution="end")
    start = datetime(2026, 10, 31, tzinfo=UTC)
    contacts = _valid(generate_contacts(seed=8, start=start, days=3, scale=0.1, time_zone=s.tz))
    store = _stored_contacts(contacts, tmp_path)
    first = s.grid((start, start + timedelta(days=1)))
    grid = s.grid((start, start + timedelta(days=3)))
    into = tmp_path / "callvolume"
    ray_engine.write_volume_table(store, into, grid=first, settings=s, address=None)
    assert delta.partition_days(into) == [start.date()]
    groups = ray_engine.write_volume_table(store, into, grid=grid, settings=s, address=None)
    assert "busy" not in driver_kinds
    assert {"names", "groups"} <= driver_kinds
    want = volume_table(contacts, window=grid, settings=s, dense=False)
    local = tmp_path / "local"
    delta.commit(local, want, by="interval_start_utc")
    assert_frame_equal(pl.read_delta(str(into)), pl.read_delta(str(local)), check_row_order=False)
    assert_frame_equal(_log(into), _log(local))
    assert (
        groups.select("queue_id", "channel").n_unique()
        == want.select("queue_id", "channel").n_unique()
    )
    assert delta.version(into) == 1  # created with its first rows, then a second commit
    assert delta.remove_orphans(into) == 0


def test_a_job_that_fails_before_its_commit_changes_nothing(
    cluster: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tasks have written their files when the commit fails: the table is the previous
    version, and the files are gone; files a killed driver left (written, never committed)
    are no version's, and orphan removal sweeps them."""
    s = BuildSettings()
    start = datetime(2026, 11, 1, tzinfo=UTC)
    contacts = _valid(generate_contacts(seed=9, start=start, days=2, scale=0.1))
    store, into = _stored_contacts(contacts, tmp_path), tmp_path / "callvolume"
    grid = s.grid((start, start + timedelta(days=2)))
    ray_engine.write_volume_table(store, into, grid=s.grid((start, start + timedelta(days=1))),
                                  settings=s, address=None)  # fmt: skip
    before, files = pl.read_delta(str(into)), sorted(into.rglob("*.parquet"))

    def fails(*args: Any, **kwargs: Any) -> int:
        assert len(list(into.rglob("*.parquet"))) > len(files)  # the tasks wrote theirs
        raise OSError("commit refused")

    with monkeypatch.context() as patched:
        patched.setattr(delta, "commit_files", fails)
        with pytest.raises(OSError, match="commit refused"):
            ray_engine.write_volume_table(store, into, grid=grid, settings=s, address=None)
    assert_frame_equal(pl.read_delta(str(into)), before)
    assert sorted(into.rglob("*.parquet")) == files
    _, written = ray_engine._on_cluster(
        store, grid=grid, settings=s, address=None, write=(str(into), "killed000000")
    )
    assert len(written["callvolume"]) == 2  # one file per UTC day, in no version
    assert not {f["path"] for f in written["callvolume"]} & delta.current_files(into)
    assert delta.remove_orphans(into) == 2
    assert sorted(into.rglob("*.parquet")) == files


# --- callbacks --------------------------------------------------------------------------------

#: Three UTC days across New York's fall-back (Sunday 2026-11-01).
CB_START = datetime(2026, 10, 31, tzinfo=UTC)
_NEAR_MIDNIGHT = [0, 1, 14, 15, 1380, 1425, 1439]  # minutes into a UTC day


@st.composite
def chains(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Callback chains over :data:`CB_START`'s three days: first attempts often near a UTC
    midnight (and on the 23:15 UTC hour boundary of Kathmandu), retries up to four hours later
    (across midnight), gaps in the retry numbers, names that change from day to day, customers
    with requests on several days, one ``original_id`` in two sources."""
    rows: list[dict[str, Any]] = []
    for i in range(draw(st.integers(1, 14))):
        day = draw(st.integers(0, 2))
        minute = draw(st.one_of(st.sampled_from(_NEAR_MIDNIGHT), st.integers(0, 1439)))
        at = CB_START + timedelta(days=day, minutes=minute)
        source, key = draw(st.sampled_from(["m", "n"])), draw(st.sampled_from([None, "k1", "k2"]))
        numbers = sorted(draw(st.sets(st.integers(1, 7), max_size=3)))
        for retry in [0, *numbers]:
            at += timedelta(minutes=draw(st.integers(0, 240)) if retry else 0)
            rows.append({
                "source": source, "attempt_id": f"{source}-{i}-{retry}",
                "original_id": f"o{i % 9}", "retry_attempt": retry,
                "call_target_id": draw(st.sampled_from(["t1", "t2", None])),
                "call_target_name": draw(st.sampled_from(["A", "B", None])),
                "type": draw(st.sampled_from(["asap", "scheduled"])),
                "first_party_called": draw(st.sampled_from(["agent", "customer", None])),
                "source_type": draw(st.sampled_from(["voice", "digital"])),
                "created_at": at,
                "outcome": draw(st.sampled_from(["successful", "failure", "canceled"])),
                "callback_ms": draw(st.sampled_from([None, 0, 5_000])),
                "estimated_callback_ms": draw(st.sampled_from([None, 240_000])),
                "customer_wait_ms": draw(st.sampled_from([None, 30_000, 30_001, 60_001])),
                "talk_ms": draw(st.sampled_from([None, 300_000])),
                "punctuality_ms": draw(st.sampled_from([None, -60_000, 45_000])),
                "customer_key": key,
            })  # fmt: skip
    return rows


def _attempts(rows: list[dict[str, Any]] | pl.DataFrame) -> pl.DataFrame:
    """Validated attempts in chain order, as the pipeline holds them."""
    frame = rows if isinstance(rows, pl.DataFrame) else pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)
    clean, _ = validate_callback_attempts(frame.lazy())
    return in_chain_order(clean).collect()


def _assert_same(local: Any, ray_: Any) -> None:
    """Two :func:`callback_results` equal value for value."""
    (pairs, gaps, n, doc), (ray_pairs, ray_gaps, ray_n, ray_doc) = local, ray_
    assert len(pairs) == len(ray_pairs)
    for (intervals, retries), (ray_intervals, ray_retries) in zip(pairs, ray_pairs, strict=True):
        assert_frame_equal(ray_intervals, intervals)
        assert_frame_equal(ray_retries, retries)
    assert_frame_equal(ray_gaps, gaps)
    assert (ray_n, ray_doc) == (n, doc)


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.sampled_from([("UTC", 15), ("America/New_York", 15), ("Asia/Kathmandu", 60)]),
       st.booleans(), st.booleans())  # fmt: skip
def test_random_chains_give_the_single_machine_callback_tables_and_document(
    cluster: None, rows: list[dict[str, Any]], zone: tuple[str, int], two_grids: bool, dense: bool
) -> None:
    """From the attempts the driver hands over, and from the store's partitions the tasks read
    (by request date: a chain's retries after midnight stay in its partition; in Kathmandu a
    request at 00:10 UTC is in the next partition and the previous day's task); zero-filled,
    or busy rows only (``dense``)."""
    s = BuildSettings(tz=zone[0], interval_minutes=zone[1])
    day = timedelta(days=1)
    if two_grids:  # a run's shape: grids with a day between them, the recent window across
        grids = [
            s.grid((CB_START, CB_START + day)),
            s.grid((CB_START + 2 * day, CB_START + 3 * day)),
        ]
        document = (CB_START + day / 2, CB_START + 2.5 * day)
    else:  # the callbacks command's: one grid, its document
        grids = [s.grid((CB_START, CB_START + 3 * day))]
        document = grids[0].window
    attempts = _attempts(rows)
    local = callback_results(attempts, grids, document=document, settings=s)
    _assert_same(
        local, callback_results(attempts, grids, document=document, settings=s, engine=RAY)
    )
    given = {"document": document, "settings": s, "dense": dense}
    with tempfile.TemporaryDirectory() as where:
        store = write_attempts(attempts, Path(where) / "callback_attempts")
        mine = callback_results(attempts, grids, engine=RAY, stored=store, **given)  # type: ignore[arg-type]
    _assert_same(callback_results(attempts, grids, **given), mine)  # type: ignore[arg-type]


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(chains(), st.sampled_from([("UTC", 15), ("America/New_York", 15), ("Asia/Kathmandu", 60)]),
       st.booleans())  # fmt: skip
def test_the_callbacks_command_job_writes_the_tables_and_counts_in_the_tasks(
    cluster: None, rows: list[dict[str, Any]], zone: tuple[str, int], narrow: bool
) -> None:
    """:func:`command_tables`: the tables the tasks write (busy rows) and the zero-filled
    ones equal the single machine's; the requests and gaps the read tasks find, over every
    partition of the store (a window of one day: the other days' too), equal the ones found
    from all the attempts."""
    s = BuildSettings(tz=zone[0], interval_minutes=zone[1])
    days = 1 if narrow else 3
    grid = s.grid((CB_START + timedelta(days=1), CB_START + timedelta(days=1 + days)))
    attempts = _attempts(rows)
    given = {"document": grid.window, "settings": s}
    (busy,), gaps, n, doc = callback_results(attempts, [grid], dense=False, **given)  # type: ignore[arg-type]
    (dense,), *_ = callback_results(attempts, [grid], **given)  # type: ignore[arg-type]
    with tempfile.TemporaryDirectory() as where:
        stored = write_attempts(attempts, Path(where) / "callback_attempts")
        filled = ray_callbacks.command_tables(stored, grid, settings=s, address=None)
        out = Path(where) / "store"
        mine = ray_callbacks.command_tables(stored, grid, settings=s, address=None, store=out)
        assert mine.stored == [out / "callback_intervals", out / "retry_outcomes"]
        for i, path in enumerate(mine.stored):
            if delta.partition_days(path) or busy[i].height:
                got = pl.read_delta(str(path)).drop(delta.PARTITION).cast(busy[i].schema)  # type: ignore[arg-type]
                assert_frame_equal(got, busy[i], check_row_order=False)
    for got in (filled, mine):
        assert (got.requests, got.document) == (n, doc)
        assert_frame_equal(got.gaps, gaps.sort("source", "original_id"))
    assert_frame_equal(filled.table, dense[0])
    assert_frame_equal(filled.retries, dense[1])
    assert (
        mine.table.select(callback_intervals.GROUP).n_unique()
        == busy[0].select(callback_intervals.GROUP).n_unique()
    )


def test_a_chain_across_midnight_and_a_customer_on_two_days(
    cluster: None, day_tasks: list[str], tmp_path: Path
) -> None:
    """The request counts in its first attempt's interval with both attempts; the customer with
    a request on each day is one repeat customer (summing the days would give none); the call
    target's name is the one on its latest request, the next day's."""

    def attempt(original: str, retry: int, at: datetime, key: str, name: str) -> dict[str, Any]:
        return {"source": "m", "attempt_id": f"{original}-{retry}", "original_id": original,
                "retry_attempt": retry, "call_target_id": "t1", "call_target_name": name,
                "type": "asap", "created_at": at, "outcome": "successful",
                "customer_wait_ms": 20_000, "customer_key": key}  # fmt: skip

    late = datetime(2026, 11, 1, 23, 50, tzinfo=UTC)
    rows = [
        attempt("c1", 0, late, "k1", "Old"),
        attempt("c1", 1, late + timedelta(minutes=30), "k1", "Old"),  # the next UTC day
        attempt("c2", 0, late + timedelta(hours=10), "k1", "New"),
        attempt("c3", 0, late + timedelta(hours=11), "k2", "New"),
    ]
    attempts = _attempts(pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS))
    s = BuildSettings()
    grids = [s.grid((late.replace(hour=0, minute=0), late + timedelta(days=1)))]
    mine = callback_results(attempts, grids, document=grids[0].window, settings=s, engine=RAY)
    assert day_tasks == ["callbacks"]
    store = write_attempts(attempts, tmp_path / "callback_attempts")  # c1 stays in Nov 1's
    assert delta.partition_days(store) == [late.date(), late.date() + timedelta(days=1)]
    _assert_same(
        mine,
        callback_results(
            attempts, grids, document=grids[0].window, settings=s, engine=RAY, stored=store
        ),
    )
    assert day_tasks == ["callbacks", "callbacks from the store"]
    _assert_same(callback_results(attempts, grids, document=grids[0].window, settings=s), mine)
    (table, _), *_ = mine[0]
    first = table.filter(pl.col("interval_start_utc") == datetime(2026, 11, 1, 23, 45, tzinfo=UTC))
    assert first.select("requests", "attempts", "retries").row(0) == (1, 2, 1)
    assert set(table["call_target_name"]) == {"New"}
    people = mine[3]["data"]["performance"]
    assert (people["totalUniqueCustomers"], people["totalRepeatCustomers"]) == (2, 1)


def _summary(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(path.read_text())
    return {k: v for k, v in found.items() if k not in ("files", "seconds")}


_WINDOW = ["--start", "2026-11-01T00:00:00Z", "--end", "2026-11-02T00:00:00Z"]


@pytest.mark.parametrize(
    "formats",
    [[], ["--format", "parquet"], ["--format", "parquet", *_WINDOW]],
    ids=["all", "parquet", "parquet-one-day"],
)
def test_callbacks_engine_ray_writes_the_same_store(
    cluster: None, tmp_path: Path, day_tasks: list[str], formats: list[str], driver_kinds: set[str]
) -> None:
    """Every output, or (``--format parquet``: busy rows only, written by the Ray tasks) the
    store; the summary's requests and gaps (counted by the read tasks, over every partition,
    also those outside a window of one day) and the gaps' export the same."""
    attempts = generate_attempts(seed=4, start=CB_START, days=3, scale=0.1)
    attempts.write_parquet(tmp_path / "a.parquet")
    args = ["callbacks", "--attempts", str(tmp_path / "a.parquet"), "--tz", "America/New_York"]
    args += formats
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local")])
    assert day_tasks == []
    remote = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert day_tasks == ["callbacks from the store"]  # the attempts it wrote, read by the tasks
    if formats:  # the tables' busy rows never reached the driver: the tasks wrote them
        assert {"requests", "gaps", "targets"} <= driver_kinds
        assert not driver_kinds & {"callback_intervals", "retry_outcomes"}
    for name in ("callback_attempts", "callback_intervals", "retry_outcomes"):
        read = [pl.read_delta(str(tmp_path / d / "store" / name)) for d in ("local", "ray")]
        assert read[0].height > 0
        assert_frame_equal(read[0], read[1], check_row_order=False)
    exports = ("callback_metrics.json", "callback_intervals.csv", "retry_outcomes.csv")
    for export in (*exports[: 3 if not formats else 1], "callback_gaps.ndjson"):
        texts = [(tmp_path / d / "exports" / export).read_text() for d in ("local", "ray")]
        assert texts[0] == texts[1]
    summaries = [_summary(tmp_path / d / "callbacks_summary.json") for d in ("local", "ray")]
    assert summaries[0] == summaries[1]


@pytest.mark.usefixtures("cluster", "now")
def test_run_engine_ray_writes_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stack: Stack, day_tasks: list[str]
) -> None:
    """A nightly run with ``[engine] kind = "ray"`` (or ``--engine ray`` over a local one)
    commits the same tables, document and exports as a local run of the same sources; so does
    the next run after a late change (incremental: the ray engine's tasks read the store as
    that run committed it)."""
    _clean(monkeypatch, tmp_path)
    lean: dict[str, dict[str, Any]] = {
        "sources__dixa": {"enabled": False}, "sources__kore": {"enabled": False},
        "run": {"report": False, "lookback_minutes": 60},
    }  # fmt: skip
    for root in ("local", "ray"):
        (tmp_path / root).mkdir()
    local = write_config(tmp_path / "local", stack, **lean, engine={"kind": "ray"})
    remote = write_config(tmp_path / "ray", stack, **lean, engine={"kind": "ray"})
    outs = [tmp_path / d / "out" for d in ("local", "ray")]

    def both_runs() -> str:
        assert invoke(["run", "--quiet", "--engine", "local"], local).exit_code == 0
        assert day_tasks == []  # the command line over the configuration
        result = invoke(["run", "--quiet"], remote)
        assert result.exit_code == 0, result.output
        # the run commits the canonical tables first; the tasks read their partitions (one
        # job per grid of the plan)
        assert set(day_tasks) == {"callbacks from the store", "volume from the store"}
        day_tasks.clear()
        for name in (*TABLES, "staffing", "contacts", "callback_attempts"):
            got, want = table(outs[1], name), table(outs[0], name)
            assert want.height > 0, name
            assert_frame_equal(got, want, check_row_order=False)
        for export in ("callback_metrics.json", "callvolume.csv", "callback_intervals.csv"):
            assert (outs[1] / "exports" / export).read_text() == (
                outs[0] / "exports" / export
            ).read_text()
        return result.output

    output = both_runs()
    assert not [v for v in SECRETS.values() if v in output]
    truth = stack.ujet.expected_contacts()
    single = truth.filter(pl.len().over("contact_id") == 1)
    late = single.filter(pl.col("outcome") == "answered").sort("offered_at").row(0, named=True)
    stack.ujet.update_records([late["contact_id"]], talk_ms=late["talk_ms"] + 60_000)
    before = table(outs[1], "callvolume")["talk_ms"].sum()
    both_runs()
    assert table(outs[1], "callvolume")["talk_ms"].sum() == before + 60_000
