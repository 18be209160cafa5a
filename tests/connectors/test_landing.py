"""The raw landing store: PII scrubbing, durable pages, de-duplication, compaction, crash safety."""

from __future__ import annotations

import copy
import doctest
import hashlib
import hmac
import json
import os
import random
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

import connectors.landing
import connectors.pii
from connectors.errors import ConfigError
from connectors.landing import (
    DECODE_MIN_RECORDS,
    LANDING_SCHEMA,
    RECORD,
    PiiScrubber,
    RecordKey,
    compact,
    decoded_suffix,
    land_page,
    latest_records,
    pii_hash,
    scan_landed,
)
from connectors.state import StateStore

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
KEY = SecretStr("hmac-key")
UJET = RecordKey("id", "updated_at")
NO_PII = PiiScrubber()


def land(
    root: Path,
    records: list[Any],
    *,
    at: datetime = T0,
    batch: str = "run-1",
    page_no: int = 1,
    **kw: Any,
) -> Any:
    return land_page(
        root,
        kw.pop("source", "ujet"),
        kw.pop("stream", "calls"),
        records,
        key=kw.pop("key", UJET),
        scrubber=kw.pop("scrubber", NO_PII),
        fetched_at=at,
        batch_id=batch,
        page_no=page_no,
        record_dtype=kw.pop("record_dtype", None),
    )


def call(i: int, minute: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": i, "updated_at": f"2026-10-01T10:{minute:02d}:00.000Z", **extra}


def landed(root: Path) -> dict[str, dict[str, Any]]:
    frame = scan_landed(root, "ujet", "calls").collect()
    return {row["record_id"]: json.loads(row["payload"]) for row in frame.iter_rows(named=True)}


# -- PII -------------------------------------------------------------------------------------------


def test_pii_hash_is_a_keyed_hmac() -> None:
    expected = hmac.new(b"hmac-key", b"13307526714", hashlib.sha256).hexdigest()
    assert pii_hash("13307526714", KEY) == expected
    assert pii_hash("13307526714", SecretStr("other")) != expected
    assert len(expected) == 64


UJET_CALL = {
    "id": 1,
    "end_user": {"id": 9, "phone_number": "+1 (330) 752-6714", "email": "eu@x.test"},
    "agent_info": {"name": "Ann", "email": "ann@x.test", "id": 3},
    "queue_durations": [
        {"queue": "a", "agent": {"email": "a@x.test", "id": 1}},
        {"queue": "b", "agent": {"email": "b@x.test", "id": 2}},
    ],
    "recording_url": "https://media.test/rec.mp3",
}


def test_scrubber_drops_nested_paths_and_walks_lists() -> None:
    scrub = PiiScrubber(
        drop=(
            "end_user.email",
            "agent_info.name",
            "agent_info.email",
            "queue_durations.agent.email",
            "recording_url",
        ),
        hash_paths=("end_user.phone_number",),
        secret=KEY,
    )
    original = copy.deepcopy(UJET_CALL)
    clean = scrub(UJET_CALL)
    assert original == UJET_CALL  # never mutates its input
    assert clean == {
        "id": 1,
        "end_user": {"id": 9, "phone_number": pii_hash("13307526714", KEY)},
        "agent_info": {"id": 3},
        "queue_durations": [{"queue": "a", "agent": {"id": 1}}, {"queue": "b", "agent": {"id": 2}}],
    }


def test_phone_formats_hash_alike() -> None:
    scrub = PiiScrubber(hash_paths=("phoneNumber",), secret=KEY)
    values = ["+13307526714", "1-330-752-6714", "13307526714", 13307526714]
    assert len({scrub({"phoneNumber": v})["phoneNumber"] for v in values}) == 1
    assert scrub({"phoneNumber": None}) == {"phoneNumber": None}
    assert scrub({"phoneNumber": {"nested": "x"}}) == {"phoneNumber": None}
    assert scrub({"other": 1}) == {"other": 1}


def test_wildcards_and_selectors() -> None:
    dixa = {
        "primaryTimestampField": {"name": "created_at", "timestamp": "2023-04-21T10:23:14.293Z"},
        "fields": [
            {"name": "csid", "field": {"value": 184472, "_type": "LongField"}},
            {"name": "contact_point", "field": {"value": "+4511223344", "label": "+4511223344"}},
            {"name": "requester_email", "field": {"value": "x@y.z"}},
        ],
    }
    scrub = PiiScrubber(
        drop=("fields[name=requester_email]",),
        hash_paths=("fields[name=contact_point].field.*",),
        secret=KEY,
    )
    clean = scrub(dixa)
    digest = pii_hash("4511223344", KEY)
    assert clean["fields"] == [
        {"name": "csid", "field": {"value": 184472, "_type": "LongField"}},
        {"name": "contact_point", "field": {"value": digest, "label": digest}},
    ]
    assert PiiScrubber(drop=("*.note",))(  # not a PII name: those go at any depth
        {"a": {"note": 1, "b": 2}, "c": [{"note": 3}], "note": 4}
    ) == {
        "a": {"b": 2},
        "c": [{}],
        "note": 4,
    }


def test_scrubber_tolerates_absent_and_odd_shapes() -> None:
    scrub = PiiScrubber(drop=("a.b.c", "list[k=v]", "x"))
    record = {"a": {"b": "not-a-dict"}, "list": "not-a-list", "y": [1, None, "s"]}
    assert scrub(record) == record


def test_drop_wins_over_hash() -> None:
    assert PiiScrubber(drop=("p",), hash_paths=("p",), secret=KEY)({"p": "123", "q": 1}) == {"q": 1}


def _one_path_at_a_time(node: Any, path: tuple[Any, ...], leaf: Any) -> Any:
    """The scrubber's rules applied one path at a time over the whole record: the reference
    the one-walk scrubber must agree with."""
    if isinstance(node, list):
        return [_one_path_at_a_time(item, path, leaf) for item in node]
    if not isinstance(node, dict) or not path:
        return node
    (key, attr, value), rest = path[0], path[1:]
    names = list(node) if key == "*" else [key] if key in node else []
    out = dict(node) if names else node
    for name in names:
        child = out[name]
        if attr is not None:
            if isinstance(child, list):
                hit = [isinstance(i, dict) and str(i.get(attr)) == value for i in child]
                if rest or leaf is not None:
                    out[name] = [
                        _one_path_at_a_time(i, rest, leaf) if h else i
                        for i, h in zip(child, hit, strict=True)
                    ]
                else:
                    out[name] = [i for i, h in zip(child, hit, strict=True) if not h]
        elif rest:
            out[name] = _one_path_at_a_time(child, rest, leaf)
        elif leaf is None:
            del out[name]
        else:
            out[name] = leaf(child)
    return out


_KEYS = st.sampled_from(["a", "b", "k", "tel"])  # no PII name: those go at any depth
_OBJECT = lambda inner: st.dictionaries(_KEYS, inner, min_size=1, max_size=4)  # noqa: E731
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["v", "w", "+1 555 0100"]),
    lambda inner: _OBJECT(inner) | st.lists(_OBJECT(inner) | inner, min_size=1, max_size=3),
    max_leaves=16,
)
# "k" as a key too: a selected item's rest of the path may change the attribute it was picked by
_SEGMENT = st.sampled_from(["a", "b", "k", "tel", "*", "a[k=v]", "b[k=1]", "*[k=w]", "a[k=w]"])
_PATH = st.lists(_SEGMENT, min_size=1, max_size=3).map(".".join)


@settings(max_examples=300, deadline=None)
@example(  # selectors that drop, and reach into, the items they pick
    record={"a": [{"k": "v", "tel": "+1 555 0100", "b": 1}, {"k": "w", "b": 2}], "b": {"a": 1}},
    drop=["a[k=w]", "*.a", "a.b"],
    hashed=["a[k=v].tel"],
)
@example(  # a rule renames what the next selector on the same attribute looks for
    record={"a": [{"k": "v", "b": 1}, {"k": "w", "b": 2}]},
    drop=["a[k=v].k", "a[k=None]", "a[k=w].b"],
    hashed=["a[k=v].k"],
)
@given(
    record=st.dictionaries(_KEYS, _JSON, min_size=2, max_size=4),
    drop=st.lists(_PATH, max_size=4),
    hashed=st.lists(_PATH, max_size=3),
)
def test_one_walk_equals_applying_each_path_in_turn(
    record: dict[str, Any], drop: list[str], hashed: list[str]
) -> None:
    scrub = PiiScrubber(drop=tuple(drop), hash_paths=tuple(hashed), secret=KEY)
    before = copy.deepcopy(record)
    expected: Any = dict(record)
    for paths, leaf in ((hashed, scrub._hash), (drop, None)):
        for path in paths:
            expected = _one_path_at_a_time(expected, connectors.pii._parse_path(path), leaf)
    assert scrub(record) == expected
    assert record == before  # never mutates its input


@pytest.mark.parametrize("path", ["", "a..b", "a[b]", "a[=x]", "a]"])
def test_invalid_paths_fail_fast(path: str) -> None:
    with pytest.raises(ConfigError, match="pii path"):
        PiiScrubber(drop=(path,))


def test_hashing_needs_a_secret() -> None:
    with pytest.raises(ConfigError, match=r"^pii\.hash_secret"):
        PiiScrubber(hash_paths=("phoneNumber",))
    with pytest.raises(ConfigError):
        PiiScrubber(hash_paths=("phoneNumber",), secret=SecretStr(""))
    assert "hmac-key" not in repr(PiiScrubber(hash_paths=("p",), secret=KEY))


# -- landing ---------------------------------------------------------------------------------------


def test_a_landed_page_is_one_parquet_file_in_its_partition(tmp_path: Path) -> None:
    batch = land(tmp_path, [call(1), call(2, 5)], at=T0, page_no=3)
    assert batch.path is not None
    assert (
        batch.path.parent == tmp_path / "raw" / "source=ujet" / "stream=calls" / "date=2026-10-01"
    )
    assert batch.path.name.startswith("part-")
    assert batch.path.suffix == ".parquet"
    assert batch.rows == 2
    assert batch.max_updated_at == datetime(2026, 10, 1, 10, 5, tzinfo=UTC)
    frame = pl.read_parquet(batch.path)
    assert frame.schema == pl.Schema(LANDING_SCHEMA)
    assert frame.to_dicts() == [
        {
            "record_id": "1",
            "updated_at": datetime(2026, 10, 1, 10, tzinfo=UTC),
            "fetched_at": T0,
            "batch_id": "run-1",
            "page_no": 3,
            "payload": '{"id":1,"updated_at":"2026-10-01T10:00:00.000Z"}',
        },
        {
            "record_id": "2",
            "updated_at": datetime(2026, 10, 1, 10, 5, tzinfo=UTC),
            "fetched_at": T0,
            "batch_id": "run-1",
            "page_no": 3,
            "payload": '{"id":2,"updated_at":"2026-10-01T10:05:00.000Z"}',
        },
    ]
    assert [p.name for p in batch.path.parent.iterdir()] == [batch.path.name]  # no temp file left


def test_partition_is_the_utc_fetch_date(tmp_path: Path) -> None:
    late = datetime(2026, 10, 1, 23, 30, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
    batch = land(tmp_path, [call(1)], at=late)
    assert batch.path is not None
    assert batch.path.parent.name == "date=2026-10-01"


def test_records_without_a_key_are_rejected_for_quarantine(tmp_path: Path) -> None:
    scrub = PiiScrubber(drop=("email",))
    records = [
        call(1),
        {"updated_at": "x", "email": "pii@x.test"},
        {"id": None},
        {"id": ""},
        {"id": True},
        "junk",
        7,
    ]
    batch = land(tmp_path, records, scrubber=scrub)
    assert batch.rows == 1
    assert [r.reason for r in batch.rejected] == ["missing_record_id"] * 4 + ["not_an_object"] * 2
    assert batch.rejected[0].raw == '{"updated_at":"x"}'  # scrubbed before it goes anywhere
    assert batch.rejected[-1].raw == "7"


def test_unparsable_updated_at_lands_as_null(tmp_path: Path) -> None:
    land(tmp_path, [{"id": "a", "updated_at": "not a time"}, {"id": "b"}])
    frame = scan_landed(tmp_path, "ujet", "calls").collect()
    assert frame["updated_at"].null_count() == 2


def test_key_functions(tmp_path: Path) -> None:
    def csid(record: Any) -> object:
        return next(f["field"]["value"] for f in record["fields"] if f["name"] == "csid")

    dixa = RecordKey(csid, lambda r: r["primaryTimestampField"]["timestamp"])
    record = {
        "primaryTimestampField": {"timestamp": "2023-04-21T10:23:14.293Z"},
        "fields": [{"name": "csid", "field": {"value": 184472}}],
    }
    batch = land(tmp_path, [record], key=dixa, source="dixa", stream="conversations")
    assert batch.rows == 1
    frame = scan_landed(tmp_path, "dixa", "conversations").collect()
    assert frame["record_id"].to_list() == ["184472"]
    assert frame["updated_at"].to_list() == [datetime(2023, 4, 21, 10, 23, 14, 293000, tzinfo=UTC)]


def test_an_empty_page_writes_nothing(tmp_path: Path) -> None:
    batch = land(tmp_path, [])
    assert batch.path is None
    assert batch.rows == 0
    assert not (tmp_path / "raw").exists()
    assert scan_landed(tmp_path, "ujet", "calls").collect().schema == pl.Schema(LANDING_SCHEMA)


def test_a_record_repeated_within_a_page_lands_once(tmp_path: Path) -> None:
    batch = land(tmp_path, [call(1, 5, v="newer"), call(1, 1, v="older"), call(1, 5, v="newer")])
    assert batch.rows == 1
    assert landed(tmp_path)["1"]["v"] == "newer"


def versions(root: Path) -> list[tuple[str, str]]:
    frame = scan_landed(root, "ujet", "calls").collect()
    return sorted(frame.select("record_id", "payload").iter_rows())


def test_copies_that_differ_under_one_stamp_in_a_page_are_a_conflict_as_across_syncs(
    tmp_path: Path,
) -> None:
    """Two contents under one ``updated_at`` in two syncs are both kept, for the pipeline edge
    to quarantine as ``conflicting_duplicate``; in one page the later copy won silently."""
    page = [call(1, 5, v="a"), call(2, 1), call(1, 5, v="b"), call(1, 1, v="old")]
    batch = land(tmp_path / "page", [*page, call(1, 5, v="a")])
    land(tmp_path / "syncs", [call(1, 5, v="a"), call(2, 1)])
    land(tmp_path / "syncs", [call(1, 5, v="b")], batch="run-2", at=T0 + timedelta(hours=1))
    assert batch.rows == 3  # the two contents of 1 (the identical copy once), and 2
    both = [json.dumps(call(1, 5, v=v), separators=(",", ":")) for v in ("a", "b")]
    assert versions(tmp_path / "page") == versions(tmp_path / "syncs")
    assert [p for rid, p in versions(tmp_path / "page") if rid == "1"] == both


def test_unstamped_copies_that_differ_in_a_page_are_a_conflict(tmp_path: Path) -> None:
    """A source that stamps no ``updated_at`` (Mindful, Kore.ai) sending one id twice in one
    page with other contents (Successful and Unavailable): the later copy won silently, exit
    0. Both are landed now, and read back (and compacted) as both, for the pipeline edge to
    quarantine as ``conflicting_duplicate``; a later fetch of the record is still its newer
    version, and an identical copy is one row."""
    page = [{"id": "a", "v": "ok"}, {"id": "b"}, {"id": "a", "v": "no"}, {"id": "a", "v": "ok"}]
    batch = land(tmp_path, page)
    assert batch.rows == 3
    got = contents(tmp_path)
    assert got == {"a": ["no", "ok"], "b": [""]}
    compact(tmp_path, "ujet", "calls", min_files=1)
    got = contents(tmp_path)
    assert got == {"a": ["no", "ok"], "b": [""]}
    land(tmp_path, [{"id": "a", "v": "later"}], batch="run-2", at=T0 + timedelta(hours=1))
    got = contents(tmp_path)
    assert got == {"a": ["later"], "b": [""]}


def contents(root: Path) -> dict[str, list[str]]:
    """Each landed id's contents (its ``v``, "" without one), sorted."""
    frame = scan_landed(root, "ujet", "calls").collect()
    grouped = frame.group_by("record_id").agg("payload").iter_rows()
    return {rid: sorted(json.loads(p).get("v", "") for p in ps) for rid, ps in grouped}


def test_naive_fetched_at_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        land(tmp_path, [call(1)], at=datetime(2026, 10, 1))  # noqa: DTZ001 - on purpose


# -- reading back ----------------------------------------------------------------------------------


def test_latest_updated_at_wins_then_latest_fetch(tmp_path: Path) -> None:
    land(
        tmp_path, [call(1, 5, v="a"), call(2, 1, v="a"), {"id": 3, "v": "a"}], at=T0, batch="run-1"
    )
    land(
        tmp_path,
        [call(1, 3, v="b"), call(2, 1, v="b"), {"id": 3, "v": "b"}],
        at=T0 + timedelta(hours=1),
        batch="run-2",
    )
    land(tmp_path, [{"id": 1, "v": "c"}], at=T0 + timedelta(hours=2), batch="run-3")
    frame = scan_landed(tmp_path, "ujet", "calls").collect()
    versions = {
        rid: sorted(json.loads(p)["v"] for p in group["payload"])
        for (rid,), group in frame.group_by("record_id")
    }
    # fetched last without a stamp (the vendor stopped sending it): as new as its fetch, so
    # it wins; "null never wins" kept the last stamped version, and ignored every later change
    assert versions["1"] == ["c"]
    assert versions["2"] == ["a", "b"]  # same stamp, other content: both, a conflict
    assert versions["3"] == ["b"]  # no updated_at at all: the later fetch


def test_a_re_read_of_the_same_version_is_one_row(tmp_path: Path) -> None:
    for hour in range(3):
        land(tmp_path, [call(1, 4, v="a")], at=T0 + timedelta(hours=hour), batch=f"run-{hour}")
    assert scan_landed(tmp_path, "ujet", "calls").collect().height == 1


def test_scan_keeps_one_row_per_record(tmp_path: Path) -> None:
    for run in range(3):
        land(
            tmp_path,
            [call(i, run) for i in range(10)],
            batch=f"run-{run}",
            at=T0 + timedelta(days=run),
        )
    frame = scan_landed(tmp_path, "ujet", "calls").collect()
    assert frame.height == 10
    assert frame.schema == pl.Schema(LANDING_SCHEMA)
    assert set(frame["updated_at"].to_list()) == {datetime(2026, 10, 1, 10, 2, tzinfo=UTC)}


def test_streams_are_separate(tmp_path: Path) -> None:
    land(tmp_path, [call(1)], stream="calls")
    land(tmp_path, [call(1), call(2)], stream="chats")
    assert scan_landed(tmp_path, "ujet", "calls").collect().height == 1
    assert scan_landed(tmp_path, "ujet", "chats").collect().height == 2
    assert scan_landed(tmp_path, "mindful", "callbacks").collect().height == 0


# -- crash safety ----------------------------------------------------------------------------------


class SimulatedCrashError(Exception):
    pass


def sync(
    root: Path,
    states: StateStore,
    pages: list[list[dict[str, Any]]],
    run: str,
    crash_before_commit: bool = False,
) -> None:
    """What a connector does: land every page, then commit the cursor."""
    latest = None
    for number, records in enumerate(pages, start=1):
        batch = land(root, records, batch=run, page_no=number)
        latest = max(filter(None, [latest, batch.max_updated_at]))
    if crash_before_commit:
        raise SimulatedCrashError
    assert latest is not None
    states.commit("ujet", "calls", latest, lookback=timedelta(minutes=30))


def test_a_crash_between_landing_and_commit_loses_and_double_counts_nothing(tmp_path: Path) -> None:
    states = StateStore(tmp_path / "state")
    pages = [[call(1, 1), call(2, 2)], [call(3, 3)]]
    with pytest.raises(SimulatedCrashError):
        sync(tmp_path, states, pages, "run-1", crash_before_commit=True)
    assert states.get("ujet", "calls") is None  # the cursor did not advance
    assert len(landed(tmp_path)) == 3  # but the data is there
    sync(tmp_path, states, pages, "run-2")  # the next run re-reads the same pages
    assert states.get("ujet", "calls").cursor == datetime(2026, 10, 1, 10, 3, tzinfo=UTC)  # type: ignore[union-attr]
    frame = scan_landed(tmp_path, "ujet", "calls").collect()
    assert sorted(frame["record_id"].to_list()) == ["1", "2", "3"]  # no double count
    files = list((tmp_path / "raw").rglob("*.parquet"))
    assert len(files) == 4  # both runs' pages are on disk; de-duplication makes it exact


def test_a_crash_while_landing_leaves_no_visible_partial_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    land(tmp_path, [call(1)])

    def crash(src: object, dst: object) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        land(tmp_path, [call(2)])
    monkeypatch.undo()
    assert set(landed(tmp_path)) == {"1"}
    assert all(not p.name.endswith(".tmp") for p in (tmp_path / "raw").rglob("*"))


# -- compaction ------------------------------------------------------------------------------------


def test_compaction_merges_small_files_without_changing_the_result(tmp_path: Path) -> None:
    for day in range(3):
        for number in range(4):
            at = T0 + timedelta(days=day, minutes=number)
            land(
                tmp_path,
                [call(i, number + day) for i in range(number, number + 5)],
                at=at,
                page_no=number,
            )
    before = scan_landed(tmp_path, "ujet", "calls").sort("record_id").collect()
    assert compact(tmp_path, "ujet", "calls", before=date(2026, 10, 3)) == 8
    parts = sorted((tmp_path / "raw" / "source=ujet" / "stream=calls").glob("date=*"))
    assert [len(list(p.glob("*.parquet"))) for p in parts] == [1, 1, 4]
    after = scan_landed(tmp_path, "ujet", "calls").sort("record_id").collect()
    assert after.equals(before)
    assert compact(tmp_path, "ujet", "calls") == 4
    assert compact(tmp_path, "ujet", "calls") == 0  # idempotent
    assert scan_landed(tmp_path, "ujet", "calls").sort("record_id").collect().equals(before)


# -- landing decoded -------------------------------------------------------------------------------

#: A record shape with the kinds a vendor dtype has: scalars, a struct, a list of structs.
DTYPE = pl.Struct(
    {
        "updated_at": pl.String,
        "n": pl.Int64,
        "menu": pl.Struct({"id": pl.String}),
        "queues": pl.List(pl.Struct({"s": pl.Float64, "event": pl.String})),
    }
)


def shaped(i: int, minute: int = 0, **extra: Any) -> dict[str, Any]:
    queues = [{"s": i / 2, "event": "answered", "new": [1]}] * (i % 3)
    return call(i, minute, n=i, menu={"id": str(i)} if i % 2 else None, queues=queues, **extra)


def expected_records(frame: pl.DataFrame) -> dict[str, Any]:
    """What each landed payload decodes to, by ``str.json_decode`` (not the landing's decoder)."""
    decoded = frame.select("record_id", pl.col("payload").str.json_decode(DTYPE).alias("r"))
    return dict(decoded.iter_rows())


def test_a_page_lands_decoded_too_when_asked(tmp_path: Path) -> None:
    records = [shaped(i, i, extra_key={"x": i}) for i in range(DECODE_MIN_RECORDS + 7)]
    batch = land(tmp_path, records, record_dtype=DTYPE)
    assert batch.path is not None
    assert batch.path.name.endswith(decoded_suffix(DTYPE))
    frame = pl.read_parquet(batch.path)
    assert frame.schema == pl.Schema(LANDING_SCHEMA | {RECORD: DTYPE})
    assert dict(frame.select("record_id", RECORD).iter_rows()) == expected_records(frame)
    assert frame[RECORD][1] == {
        "updated_at": "2026-10-01T10:01:00.000Z",
        "n": 1,
        "menu": {"id": "1"},
        "queues": [{"s": 0.5, "event": "answered"}],
    }
    assert all('"extra_key"' in p for p in frame["payload"])  # unknown keys: payload only
    plain = scan_landed(tmp_path, "ujet", "calls").collect()  # without a dtype: as before
    assert plain.schema == pl.Schema(LANDING_SCHEMA)
    assert plain.sort("record_id").equals(frame.drop(RECORD).sort("record_id"))


def test_a_small_page_lands_json_only_and_reads_and_compacts_decoded(tmp_path: Path) -> None:
    """Below ``DECODE_MIN_RECORDS`` a page of a decoded stream lands JSON only (Mindful's
    hourly pages of ~5 records: decoding would cost more than landing them); read with the
    stream's dtype it gives the same ``record`` as a decoded page, and compaction decodes it."""
    small = [shaped(i, i) for i in range(DECODE_MIN_RECORDS - 1)]
    batch = land(tmp_path, small, record_dtype=DTYPE)
    assert batch.path is not None
    assert not batch.path.name.endswith(decoded_suffix(DTYPE))
    assert pl.read_parquet(batch.path).schema == pl.Schema(LANDING_SCHEMA)
    other = tmp_path / "other"
    decoded = land(other, [*small, shaped(99)], record_dtype=DTYPE)  # one more: decoded
    assert decoded.path is not None
    assert decoded.path.name.endswith(decoded_suffix(DTYPE))
    read = scan_landed(tmp_path, "ujet", "calls", record_dtype=DTYPE).collect()
    assert dict(read.select("record_id", RECORD).iter_rows()) == expected_records(read)
    want = pl.read_parquet(decoded.path).filter(pl.col("record_id") != "99")
    assert (
        read.select("record_id", RECORD)
        .sort("record_id")
        .equals(want.select("record_id", RECORD).sort("record_id"))
    )
    assert compact(tmp_path, "ujet", "calls", record_dtype=DTYPE) == 1  # a lone JSON-only file
    (after,) = (tmp_path / "raw").rglob("*.parquet")
    assert after.name.endswith(decoded_suffix(DTYPE))


def test_a_store_landed_before_reads_decoded_and_compacts_to_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connectors.landing, "DECODE_MIN_RECORDS", 1)  # pages of 6 land decoded here
    days = [T0 + timedelta(days=d) for d in range(3)]
    for n, at in enumerate(days):  # JSON-only pages first, then decoded ones, ids overlapping
        land(tmp_path, [shaped(i, n) for i in range(n, n + 6)], at=at, page_no=1)
        decoded = [shaped(i, n + 10) for i in range(n + 3, n + 9)]
        land(tmp_path, decoded, at=at + timedelta(minutes=5), page_no=2, record_dtype=DTYPE)
    before = scan_landed(tmp_path, "ujet", "calls", record_dtype=DTYPE).collect()
    assert before.schema == pl.Schema(LANDING_SCHEMA | {RECORD: DTYPE})
    assert before.height == 11
    assert dict(before.select("record_id", RECORD).iter_rows()) == expected_records(before)
    plain = scan_landed(tmp_path, "ujet", "calls").collect()
    assert plain.sort("record_id").equals(before.drop(RECORD).sort("record_id"))

    assert compact(tmp_path, "ujet", "calls", before=days[2].date(), record_dtype=DTYPE) == 4
    names = sorted(p.name for p in (tmp_path / "raw").rglob("*.parquet"))
    assert sum(n.endswith(decoded_suffix(DTYPE)) for n in names) == 3  # two merged + day 3's page 2
    after = scan_landed(tmp_path, "ujet", "calls", record_dtype=DTYPE).collect()
    assert after.sort("record_id").equals(before.sort("record_id"))
    land(tmp_path, [shaped(40)], at=days[0] - timedelta(days=1))  # a lone JSON-only file
    assert compact(tmp_path, "ujet", "calls", before=days[1].date(), record_dtype=DTYPE) == 1
    lone = tmp_path / "raw" / "source=ujet" / "stream=calls" / "date=2026-09-30"
    assert [p.name.endswith(decoded_suffix(DTYPE)) for p in lone.iterdir()] == [True]
    assert compact(tmp_path, "ujet", "calls", before=days[1].date(), record_dtype=DTYPE) == 0


def test_files_decoded_to_another_dtype_are_decoded_again(tmp_path: Path) -> None:
    old = pl.Struct({"updated_at": pl.String, "n": pl.Int64})  # before the stream's dtype grew
    land(tmp_path, [shaped(i) for i in range(5)], record_dtype=old)
    landed = scan_landed(tmp_path, "ujet", "calls", record_dtype=DTYPE).collect()
    assert dict(landed.select("record_id", RECORD).iter_rows()) == expected_records(landed)
    assert landed[RECORD].struct.field("queues").list.len().sum() == 4  # not null: from payload
    assert compact(tmp_path, "ujet", "calls", record_dtype=DTYPE) == 1
    names = [p.name for p in (tmp_path / "raw").rglob("*.parquet")]
    assert len(names) == 1
    assert names[0].endswith(decoded_suffix(DTYPE))
    assert decoded_suffix(DTYPE) != decoded_suffix(old)


def test_latest_records_on_a_frame() -> None:
    frame = pl.LazyFrame(
        {
            "record_id": ["a", "a", "a", "b"],
            "updated_at": [T0, None, T0, None],
            "fetched_at": [T0, T0 + timedelta(hours=1), T0 + timedelta(minutes=1), T0],
            "batch_id": ["x", "y", "z", "x"],
            "page_no": [1, 1, 1, 1],
            "payload": ["a1", "a2", "a3", "b1"],
        },
        schema=LANDING_SCHEMA,
    )
    result = latest_records(frame).sort("record_id", "payload").collect()
    # a2 came without a stamp an hour after a1 and a3 were fetched: as new as its fetch, it wins
    assert result["payload"].to_list() == ["a2", "b1"]
    stamped = frame.filter(pl.col("payload") != "a2")
    result = latest_records(stamped).sort("record_id", "payload").collect()
    # a1 and a3 carry the same latest updated_at with other content: a conflict, both kept
    assert result["payload"].to_list() == ["a1", "a3", "b1"]


@settings(max_examples=25, deadline=None)  # each example fsyncs real files
@given(
    versions=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 50)), min_size=1, max_size=60),
    chunk=st.integers(1, 10),
    seed=st.integers(0, 2**16),
)
def test_page_chunking_order_and_reruns_change_nothing(
    versions: list[tuple[int, int]], chunk: int, seed: int
) -> None:
    """Land the same versions in any order and chunking, twice: the scan is the per-id latest."""
    records = [
        {"id": i, "updated_at": (T0 + timedelta(seconds=s)).isoformat(), "v": s}
        for i, s in versions
    ]
    expected = {str(i): max(s for j, s in versions if j == i) for i, _ in versions}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for run in range(2):
            shuffled = records[:]
            random.Random(seed + run).shuffle(shuffled)
            for number, start in enumerate(range(0, len(shuffled), chunk)):
                land(
                    root,
                    shuffled[start : start + chunk],
                    batch=f"run-{run}",
                    page_no=number,
                    at=T0 + timedelta(minutes=run),
                )
        got = {rid: payload["v"] for rid, payload in landed(root).items()}
        assert got == expected
        compact(root, "ujet", "calls")
        assert {rid: payload["v"] for rid, payload in landed(root).items()} == expected


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' temp dirs go here
    result = doctest.testmod(connectors.landing)
    assert result.attempted > 0
    assert result.failed == 0


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.integers(0, 6),  # record id: a few, so that many repeat
            st.one_of(st.none(), st.integers(0, 3)),  # updated_at (null: as new as its fetch)
            st.integers(0, 3),  # fetched_at (hours, as updated_at: the two are compared)
            st.sampled_from(["x", "y"]),  # batch_id
            st.integers(0, 2),  # page_no
        ),
        max_size=40,
    )
)
def test_latest_records_equals_the_rule_row_by_row(
    rows: list[tuple[int, int | None, int, str, int]],
) -> None:
    """The scan keeps, per id, the latest version by ``updated_at``, a version without one
    as new as its fetch (ties: the later fetch, batch, page); when that version has a stamp,
    every distinct content under it (one row when they agree), and when it has none, every
    distinct unstamped content of its page: checked against the rule applied in plain Python."""
    frame = pl.LazyFrame(
        {
            "record_id": [str(r[0]) for r in rows],
            "updated_at": [None if r[1] is None else T0 + timedelta(hours=r[1]) for r in rows],
            "fetched_at": [T0 + timedelta(hours=r[2]) for r in rows],
            "batch_id": [r[3] for r in rows],
            "page_no": [r[4] for r in rows],
            "payload": [f"p{n}" for n in range(len(rows))],
        },
        schema=LANDING_SCHEMA,
    )
    got = latest_records(frame).collect()
    for rid in {str(r[0]) for r in rows}:
        mine = [(r, f"p{n}") for n, r in enumerate(rows) if str(r[0]) == rid]
        kept = set(got.filter(pl.col("record_id") == rid)["payload"].to_list())

        def rank(r: tuple[int, int | None, int, str, int]) -> tuple[int, int, str, int]:
            return (r[2] if r[1] is None else r[1], r[2], r[3], r[4])

        best = max(rank(r) for r, _ in mine)

        def page(r: tuple[int, int | None, int, str, int]) -> tuple[int, str, int]:
            return (r[2], r[3], r[4])

        allowed = [  # what each winner keeps (exact ties on the order may pick either)
            {p for s, p in mine if s[1] == r[1]}
            if r[1] is not None
            else {p for s, p in mine if s[1] is None and page(s) == page(r)}
            for r, _ in mine
            if rank(r) == best
        ]
        assert kept in allowed, rid
