"""Records set aside at landing (a shape that does not fit): one quarantine row per record, for as
long as no version of it at least as new has landed (SPEC §7: never dropped silently).

Each case lands pages the way the sync does (``screen``, ``land_page``, ``land_rejected``) with
the real UJET and Dixa stream declarations, then rebuilds (:func:`connectors.normalise.rebuild`
and the pipeline edge, :func:`engine.pipeline.sources.canonical_source`).
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import SecretStr

from connectors.landing import PiiScrubber, RecordKey, land_page
from connectors.normalise import land_rejected, screen
from connectors.source import Source, Stream
from connectors.vendors.dixa.client import DIXA, DixaSettings
from connectors.vendors.ujet.client import UJET
from engine.pipeline.sources import canonical_source
from tests.connectors import dixa_support, ujet_support

KEY = SecretStr("hmac-key")


def _land(root: Path, source: Source, stream: Stream, records: list[Any], day: int) -> int:
    """Land one page fetched on 2026-10-``day`` as the sync does; how many were set aside."""
    at = datetime(2026, 10, day, tzinfo=UTC)
    scrub = PiiScrubber(stream.pii_drop, stream.pii_hash, KEY)
    kept, rejected = screen(stream, records, scrub)
    key = stream.record_key or RecordKey(stream.primary_key, stream.cursor_field)
    landed = land_page(root, source.name, stream.name, kept, key=key, scrubber=scrub, fetched_at=at,
                       batch_id=f"b{day}", record_dtype=stream.landed_dtype)  # fmt: skip
    rejected += landed.rejected
    land_rejected(root, source.name, stream.name, rejected, batch_id=f"b{day}", fetched_at=at)
    return len(rejected)


def _rebuilt(root: Path, source: Source, settings: Any = None) -> tuple[pl.DataFrame, list[Any]]:
    rows, quarantine = canonical_source(source, root, settings)
    bad = quarantine.collect().select("record_id", "reason").rows()
    return rows.collect(), bad


def _ujet_call() -> dict[str, Any]:
    with ujet_support.emulator(ujet_support.small_contacts()) as emu:
        return copy.deepcopy(emu.records("calls")[0])


def _misfit(call: dict[str, Any], stamp: str) -> dict[str, Any]:
    return call | {"updated_at": stamp, "rating": "five"}  # rating is an integer


def test_a_newer_misfit_version_is_listed_while_the_one_before_stays_counted(
    tmp_path: Path,
) -> None:
    """The vendor changes a call it served before, and the new version does not fit: once it
    was dropped without a word (its id had landed before, any version of it), the old version
    counted, exit 0. Now it is listed; the version landed before it stays counted (the newest
    version that fits counts, as the validation of a build's input does)."""
    stream, call = UJET.streams[0], _ujet_call()
    assert _land(tmp_path, UJET, stream, [call], day=2) == 0
    counted, _ = _rebuilt(tmp_path, UJET)
    assert _land(tmp_path, UJET, stream, [_misfit(call, "2026-10-03T00:00:00.000Z")], day=3) == 1
    rows, bad = _rebuilt(tmp_path, UJET)
    assert bad == [(f"call-{call['id']}", "wrong_type")]
    assert rows.equals(counted)


def test_a_record_set_aside_night_after_night_is_one_quarantine_row(tmp_path: Path) -> None:
    """Three misfit versions of one call: once three quarantine rows (one per payload), which
    inflated the quarantined share a run exits 1 on; now one, its newest version's."""
    stream, call = UJET.streams[0], _ujet_call()
    for day in (2, 3, 4):
        _land(tmp_path, UJET, stream, [_misfit(call, f"2026-10-0{day}T00:00:00.000Z")], day=day)
    rows, bad = _rebuilt(tmp_path, UJET)
    assert bad == [(f"call-{call['id']}", "wrong_type")]
    assert rows.is_empty()
    _land(tmp_path, UJET, stream, [call | {"updated_at": "2026-10-05T00:00:00.000Z"}], day=5)
    rows, bad = _rebuilt(tmp_path, UJET)
    assert bad == []  # a version that fits, newer: counted, and nothing listed
    assert set(rows["contact_id"]) == {f"call-{call['id']}"}


def test_an_older_misfit_gives_way_to_a_newer_version_landed(tmp_path: Path) -> None:
    stream, call = UJET.streams[0], _ujet_call()
    _land(tmp_path, UJET, stream, [call | {"updated_at": "2026-10-04T00:00:00.000Z"}], day=4)
    _land(tmp_path, UJET, stream, [_misfit(call, "2026-10-03T00:00:00.000Z")], day=5)  # late
    assert _rebuilt(tmp_path, UJET)[1] == []


def test_a_dixa_misfit_is_filed_under_its_id_and_cleared_by_its_fixed_version(
    tmp_path: Path,
) -> None:
    """Dixa's id is a field of the record, not a top-level ``id``: once every misfit was filed
    with no id, so a conversation the vendor fixed was counted and quarantined for ever."""
    with dixa_support.emulator() as emu:
        settings: DixaSettings = dixa_support.make_settings(emu)
        good = copy.deepcopy(emu.records("conversations")[0])
    source = DIXA.configured(settings)
    stream = source.streams[0]
    bad = copy.deepcopy(good)
    bad["fields"][0]["field"]["label"] = {"oops": 1}  # a misfit of the declared shape
    assert _land(tmp_path, source, stream, [bad], day=2) == 1
    rows, listed = _rebuilt(tmp_path, source, settings)
    assert rows.is_empty()
    (only,) = listed
    assert only[0] != "?"  # the conversation's id
    assert only[1] == "wrong_type"
    assert _land(tmp_path, source, stream, [good], day=3) == 0  # the same stamp, fetched later
    rows, listed = _rebuilt(tmp_path, source, settings)
    assert listed == []
    assert rows.height >= 1
