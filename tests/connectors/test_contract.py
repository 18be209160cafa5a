"""The connector contract, for every registered source against its emulator.

Each vendor's test support module ``tests/connectors/<source>_support.py`` provides
``contract_harness()``: a context manager that starts the vendor's emulator and yields the
source's settings pointing at it (adding a vendor = one such function). Every stream must
terminate, advance its cursor, and rebuild into the canonical table's schema with unique keys;
a second sync must terminate too, keep the cursor, and change nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.normalise import rebuild
from connectors.registry import SOURCES
from connectors.source import Source, SourceSettings
from connectors.state import StateStore, parse_utc
from connectors.sync import sync_source
from connectors.vendors.kore.rows import KORE_CALLVOLUME
from engine.pipeline.sources import canonical_source
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, CONTACTS_KEY, QUARANTINE

#: Canonical table -> (schema, key).
TABLES: dict[str, tuple[dict[str, pl.DataType], tuple[str, ...]]] = {
    "contacts": (CONTACTS, CONTACTS_KEY),
    "callback_attempts": (CALLBACK_ATTEMPTS, ("source", "attempt_id")),
    "callvolume_kore": (KORE_CALLVOLUME, ("source", "interval_start_utc", "queue_id", "channel")),
}


def harness(name: str) -> Callable[[], AbstractContextManager[SourceSettings]]:
    try:
        module = importlib.import_module(f"tests.connectors.{name}_support")
        found: Callable[[], AbstractContextManager[SourceSettings]] = module.contract_harness
    except (ModuleNotFoundError, AttributeError):
        pytest.fail(
            f"source {name!r}: add contract_harness() to tests/connectors/{name}_support.py"
        )
    return found


def canonical(
    source: Source, landing: Path, settings: SourceSettings
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """What a run makes of a source's landed records: validated at the pipeline edge (contacts,
    callback attempts), or the connector's own rows (Kore.ai's interval rows)."""
    if source.table in ("contacts", "callback_attempts"):
        return canonical_source(source, landing, settings)
    out = rebuild(source, landing, settings)
    return out.rows, out.quarantine


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_connector_contract(name: str, tmp_path: Path) -> None:
    source = SOURCES[name]
    assert source.table in TABLES, f"{name}: add table {source.table!r} to TABLES"
    schema, key = TABLES[source.table]
    landing, state = tmp_path / "landing", tmp_path / "state"
    with harness(name)() as settings:
        first = sync_source(
            source, settings, landing_root=landing, state_root=state, sleep=lambda _: None
        )
        cursors = {s.stream: s.cursor for s in StateStore(state).show()}
        rows, quarantine = pl.collect_all(list(canonical(source, landing, settings)))
        second = sync_source(
            source, settings, landing_root=landing, state_root=state, sleep=lambda _: None
        )
        again = canonical(source, landing, settings)[0].collect()
    configured = source.configured(settings)
    assert [r.stream for r in first] == [s.name for s in configured.streams]
    for report in first + second:
        assert report.ok, f"{report.stream}: {report.error}"
        assert 1 <= report.pages <= settings.max_pages  # terminated, within the guard
    for report in first:
        started = parse_utc(report.started_from)
        assert started is not None
        assert cursors[report.stream] > started, f"{report.stream}: cursor did not advance"
    assert {s.stream: s.cursor for s in StateStore(state).show()} == cursors
    assert rows.height > 0
    assert rows.schema == pl.Schema(schema)
    assert not rows.select(key).is_duplicated().any()
    assert quarantine.schema == pl.Schema(QUARANTINE)
    assert set(rows["source"]) == {name}
    assert_frame_equal(again, rows, check_row_order=False)
