"""Incremental state: commit, show, reset, atomicity, and no secrets in state files."""

from __future__ import annotations

import doctest
import json
import os
import tempfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

import connectors.state
from connectors.errors import ConfigError, StateError
from connectors.http import basic_auth, make_client
from connectors.landing import PiiScrubber, RecordKey, land_page
from connectors.paging import PageNumberPaginator, iterate_pages
from connectors.retry import ApiRequest
from connectors.state import StateStore, check_name, format_utc, parse_utc
from engine.durable import atomic_write_bytes, durable_mkdir

T0 = datetime(2026, 10, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
SECRET = "tenant-Pa55word-9f8e"  # noqa: S105 - a fake credential the tests look for in outputs
HASH_KEY = "pii-hmac-key-1c2d"


def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state", now=lambda: T0 + timedelta(minutes=5))


def test_commit_then_get(tmp_path: Path) -> None:
    states = store(tmp_path)
    assert states.get("ujet", "calls") is None
    committed = states.commit("ujet", "calls", T0, lookback=HOUR)
    assert states.get("ujet", "calls") == committed
    assert committed.cursor == T0
    assert committed.lookback == HOUR
    assert committed.committed_at == T0 + timedelta(minutes=5)
    document = json.loads((tmp_path / "state" / "ujet" / "calls.json").read_text())
    assert document == {
        "version": 1,
        "source": "ujet",
        "stream": "calls",
        "cursor": "2026-10-01T12:00:00.000000Z",
        "lookback_s": 3600.0,
        "committed_at": "2026-10-01T12:05:00.000000Z",
        "landed": False,  # nothing of the stream landed yet (a lost landing store is told apart)
    }


def test_resume_from_applies_the_configured_lookback(tmp_path: Path) -> None:
    states = store(tmp_path)
    initial = datetime(2026, 1, 1, tzinfo=UTC)
    now = T0 + HOUR
    assert (
        states.resume_from("mindful", "callbacks", lookback=HOUR, initial=initial, now=now)
        == initial
    )
    states.commit("mindful", "callbacks", T0, lookback=HOUR)
    assert (
        states.resume_from("mindful", "callbacks", lookback=3 * HOUR, initial=initial, now=now)
        == T0 - 3 * HOUR
    )


def test_a_cursor_ahead_of_the_clock_is_refused_not_resumed_from(tmp_path: Path) -> None:
    """The clock ran back (or was ahead when the cursor was committed): resuming from the
    cursor would ask the vendor for changes after an instant that has not come yet, get none,
    and end well every night until the clock passes it. It is refused with the way out; a
    cursor a few minutes ahead (two clocks apart by seconds, a record changed while the sync
    ran) is resumed from."""
    states, initial = store(tmp_path), datetime(2026, 1, 1, tzinfo=UTC)
    states.commit("ujet", "calls", T0 + timedelta(days=365), lookback=HOUR)
    with pytest.raises(StateError) as raised:
        states.resume_from("ujet", "calls", lookback=HOUR, initial=initial, now=T0)
    message = str(raised.value)
    assert "ujet/calls" in message
    assert "2027-10-01T12:00:00.000Z" in message
    assert "ahead of the clock (2026-10-01T12:00:00.000Z)" in message
    assert "wfm-intervals state reset ujet calls --since" in message
    close = T0 + timedelta(minutes=5)
    states.rewind("ujet", "calls", close, lookback=HOUR)
    resumed = states.resume_from("ujet", "calls", lookback=HOUR, initial=initial, now=T0)
    assert resumed == close - HOUR


def test_cursor_never_moves_backwards(tmp_path: Path) -> None:
    states = store(tmp_path)
    states.commit("ujet", "calls", T0, lookback=HOUR)
    assert states.commit("ujet", "calls", T0 - HOUR, lookback=HOUR).cursor == T0
    assert states.commit("ujet", "calls", T0 + HOUR, lookback=HOUR).cursor == T0 + HOUR


def test_cursor_is_stored_in_utc_with_microseconds(tmp_path: Path) -> None:
    states = store(tmp_path)
    local = datetime(2026, 10, 1, 14, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    states.commit("dixa", "conversations", local, lookback=HOUR)
    cursor = states.get("dixa", "conversations").cursor  # type: ignore[union-attr]
    assert cursor == local
    assert cursor.tzinfo == UTC
    assert cursor.microsecond == 123456


def test_naive_cursor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="naive"):
        store(tmp_path).commit("ujet", "calls", datetime(2026, 10, 1), lookback=HOUR)  # noqa: DTZ001 - on purpose


def test_show_and_reset(tmp_path: Path) -> None:
    states = store(tmp_path)
    for source, stream in [
        ("ujet", "calls"),
        ("ujet", "chats"),
        ("dixa", "calls"),
        ("kore", "callvolume"),
    ]:
        states.commit(source, stream, T0, lookback=HOUR)
    (tmp_path / "state" / "ujet" / "Not-A-Stream.json").write_text("{}")  # ignored by show()
    assert [(s.source, s.stream) for s in states.show()] == [
        ("dixa", "calls"),
        ("kore", "callvolume"),
        ("ujet", "calls"),
        ("ujet", "chats"),
    ]
    assert [(s.source, s.stream) for s in states.reset(stream="calls")] == [
        ("dixa", "calls"),
        ("ujet", "calls"),
    ]
    assert [(s.source, s.stream) for s in states.reset(source="ujet")] == [("ujet", "chats")]
    assert states.get("ujet", "chats") is None
    assert [(s.source, s.stream) for s in states.reset()] == [("kore", "callvolume")]
    assert states.show() == []
    assert states.reset() == []


def test_show_on_a_missing_directory(tmp_path: Path) -> None:
    assert StateStore(tmp_path / "nowhere").show() == []


@pytest.mark.parametrize("name", ["../etc", "UJET", "", "a/b", "a.b", "-x", "x" * 65])
def test_names_are_validated(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError):
        store(tmp_path).commit(name, "calls", T0, lookback=HOUR)
    with pytest.raises(ConfigError):
        store(tmp_path).get("ujet", name)


def test_check_name() -> None:
    assert check_name("kore_ai-2", what="source") == "kore_ai-2"
    with pytest.raises(ConfigError, match=r"^stream: "):
        check_name(5, what="stream")


@pytest.mark.parametrize(
    "content",
    [
        b"not json",
        b"[]",
        b'{"version": 2}',
        b'{"version": 1, "source": "ujet", "stream": "calls", "cursor": "x", "lookback_s": 1,'
        b' "committed_at": "2026-10-01T00:00:00Z"}',
        b'{"version": 1, "source": "../x", "stream": "calls", "cursor": "2026-10-01T00:00:00Z",'
        b' "lookback_s": 1, "committed_at": "2026-10-01T00:00:00Z"}',
        b'{"version": 1, "source": "dixa", "stream": "calls", "cursor": "2026-10-01T00:00:00Z",'
        b' "lookback_s": 1, "committed_at": "2026-10-01T00:00:00Z"}',
        b'{"version": 1, "source": "ujet", "stream": "calls", "cursor": "2026-10-01T00:00:00Z",'
        b' "lookback_s": Infinity, "committed_at": "2026-10-01T00:00:00Z"}',
    ],
)
def test_corrupt_state_is_a_state_error(tmp_path: Path, content: bytes) -> None:
    states = store(tmp_path)
    path = states.path("ujet", "calls")
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(StateError, match="state file"):
        states.get("ujet", "calls")


def test_a_crash_during_commit_keeps_the_old_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    states = store(tmp_path)
    states.commit("ujet", "calls", T0, lookback=HOUR)

    def crash(src: object, dst: object) -> None:
        raise OSError("power loss")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="power loss"):
        states.commit("ujet", "calls", T0 + HOUR, lookback=HOUR)
    monkeypatch.undo()
    assert states.get("ujet", "calls").cursor == T0  # type: ignore[union-attr]
    assert [p.name for p in (tmp_path / "state" / "ujet").iterdir()] == [
        "calls.json"
    ]  # no temp left


def test_atomic_write_and_durable_mkdir(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert sorted(p.name for p in target.parent.iterdir()) == ["c.bin"]
    durable_mkdir(tmp_path / "a" / "b")  # existing: a no-op
    durable_mkdir(tmp_path / "x" / "y")
    assert (tmp_path / "x" / "y").is_dir()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2018-05-30T20:46:31.333Z", datetime(2018, 5, 30, 20, 46, 31, 333000, tzinfo=UTC)),
        ("2018-05-30T22:46:31+02:00", datetime(2018, 5, 30, 20, 46, 31, tzinfo=UTC)),
        ("2018-05-30T20:46:31", datetime(2018, 5, 30, 20, 46, 31, tzinfo=UTC)),
        (" 2018-05-30 ", datetime(2018, 5, 30, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (1527713191, None),
        (T0, T0),
        # valid ISO 8601, but no UTC date: year 0 and year 10000 (an OverflowError escaped)
        ("0001-01-01T00:00:00+01:00", None),
        ("9999-12-31T23:59:59-01:00", None),
        (datetime(1, 1, 1, tzinfo=timezone(HOUR)), None),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
    ],
)
def test_parse_utc(value: object, expected: datetime | None) -> None:
    assert parse_utc(value) == expected


@given(st.datetimes(timezones=st.timezones()))
def test_format_parse_round_trip(value: datetime) -> None:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        return
    parsed = parse_utc(format_utc(utc, timespec="microseconds"))
    assert parsed == utc
    assert format_utc(utc).endswith("Z")


def test_format_utc_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_utc(datetime(2026, 1, 1))  # noqa: DTZ001 - on purpose


def test_a_sync_leaves_no_secret_in_state_or_landing(tmp_path: Path) -> None:
    """Credentials and raw phone numbers appear nowhere on disk after a full sync."""
    records = [
        {
            "id": i,
            "updated_at": f"2026-10-01T10:0{i}:00Z",
            "phoneNumber": "+1 330 752 6714",
            "ani": "13125551212",
        }
        for i in range(5)
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        number = int(request.url.params["page"])
        rows = records[(number - 1) * 2 : number * 2]
        return httpx.Response(200, json=rows, headers={"Total": str(len(records)), "Per-Page": "2"})

    auth = basic_auth("tenant-api", SecretStr(SECRET))
    client = make_client(
        "https://acme.ujet.test/manager/api/v1", auth=auth, transport=httpx.MockTransport(handler)
    )
    scrubber = PiiScrubber(drop=("ani",), hash_paths=("phoneNumber",), secret=SecretStr(HASH_KEY))
    states = StateStore(tmp_path / "state")
    latest = None
    first = ApiRequest(url="calls", params={"page": 1, "per": 2})
    for page in iterate_pages(client, first, PageNumberPaginator()):
        batch = land_page(
            tmp_path / "data",
            "ujet",
            "calls",
            page.records,
            key=RecordKey("id", "updated_at"),
            scrubber=scrubber,
            fetched_at=page.response.received_at,
            batch_id="run-1",
            page_no=page.page_no,
        )
        latest = max(filter(None, [latest, batch.max_updated_at]))
    assert latest is not None
    states.commit("ujet", "calls", latest, lookback=HOUR)
    on_disk = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    for needle in (SECRET, HASH_KEY, "3307526714", "13125551212", "tenant-api"):
        assert needle.encode() not in on_disk
    assert (
        b"2026-10-01T10:04:00.000000Z" in (tmp_path / "state" / "ujet" / "calls.json").read_bytes()
    )


def test_docstring_examples_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the examples' temp dirs go here
    result = doctest.testmod(connectors.state)
    assert result.attempted > 0
    assert result.failed == 0


def test_the_landed_flag_is_kept_until_a_repair_says_otherwise(tmp_path: Path) -> None:
    """What a stream's state says of its landing store: unknown in a state written before the
    flag, known from the first commit after it, kept once set by commits, cleared by a rewind
    that says every landed file was lost (so that an empty landing store is not a lost one)."""
    store, t, hour = StateStore(tmp_path), datetime(2026, 10, 1, tzinfo=UTC), timedelta(hours=1)
    path = store.path("ujet", "calls")
    store.commit("ujet", "calls", t, lookback=hour)
    data = json.loads(path.read_text())
    data.pop("landed")
    path.write_text(json.dumps(data))  # as written before the flag
    assert store.get("ujet", "calls").landed is None  # type: ignore[union-attr]
    assert store.commit("ujet", "calls", t, lookback=hour).landed is False
    assert store.commit("ujet", "calls", t + hour, lookback=hour, landed=True).landed is True
    assert store.commit("ujet", "calls", t + 2 * hour, lookback=hour).landed is True
    assert store.rewind("ujet", "calls", t, lookback=hour).landed is True
    assert store.rewind("ujet", "calls", t, lookback=hour, landed=False).landed is False
    assert store.get("ujet", "calls").landed is False  # type: ignore[union-attr]
