"""``--engine ray``: the volume table built by Ray tasks over UTC days equals the single-machine
table, row for row, on a local two-worker cluster (issue 14; engine/distributed/ray_engine.py).

The cluster starts once for the module (two CPUs, so two worker processes run the day tasks)
and shuts down after it. Ray is the optional ``ray`` extra (and in the dev extra, so CI runs
this); without it the module is skipped with that reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.pipeline.build import volume_table
from engine.schema import CONTACTS
from engine.settings import BuildSettings
from engine.validate.contacts import validate_contacts
from tests.strategies import contact_rows

ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
#: Ray Data's own use of its deprecated settings warns inside Ray; nothing of ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

from engine.distributed.ray_engine import volume_table as on_ray  # noqa: E402


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def _clean(rows: pl.DataFrame) -> pl.DataFrame:
    clean, _ = validate_contacts(rows.lazy())
    return clean.collect()


def test_three_days_across_a_fall_back_equal_the_single_machine_table(cluster: None) -> None:
    s = BuildSettings(tz="America/New_York")
    start = datetime(2026, 10, 31, tzinfo=UTC)  # New York falls back on Nov 1
    contacts = _clean(generate_contacts(seed=3, start=start, days=3, scale=0.2, time_zone=s.tz))
    grid = s.grid((start, start + timedelta(days=3)))
    mine = on_ray(contacts, grid=grid, settings=s)
    assert mine.height > 0
    assert_frame_equal(mine, volume_table(contacts, window=grid, settings=s))


@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), st.sampled_from(["UTC", "Asia/Kolkata", "America/New_York"]),
       st.sampled_from(["arrival", "end"]))  # fmt: skip
def test_random_contacts_over_two_days_equal_the_single_machine_table(
    cluster: None, data: st.DataObject, tz: str, attribution: str
) -> None:
    s = BuildSettings(tz=tz, attribution=attribution)  # type: ignore[arg-type]
    start = datetime(2026, 11, 1, tzinfo=UTC)
    rows = data.draw(contact_rows(start, start + timedelta(days=2), max_size=30))
    contacts = _clean(pl.DataFrame(rows, schema=CONTACTS))
    grid = s.grid((start, start + timedelta(days=2)))
    assert_frame_equal(
        on_ray(contacts, grid=grid, settings=s), volume_table(contacts, window=grid, settings=s)
    )


def test_build_engine_ray_writes_the_same_store(cluster: None, tmp_path: Path) -> None:
    start = datetime(2026, 11, 1, tzinfo=UTC)
    contacts = generate_contacts(seed=5, start=start, days=2, scale=0.1)
    contacts.write_parquet(tmp_path / "c.parquet")
    args = ["build", "--contacts", str(tmp_path / "c.parquet"), "--format", "parquet"]
    local = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "local")])
    remote = CliRunner().invoke(cli, [*args, "--out", str(tmp_path / "ray"), "--engine", "ray"])
    assert local.exit_code == remote.exit_code == 0, remote.output
    read = [pl.read_delta(str(tmp_path / d / "store" / "callvolume")) for d in ("local", "ray")]
    assert read[0].height > 0
    assert_frame_equal(read[0], read[1], check_row_order=False)
