"""The Mindful connector against its emulator over real loopback sockets.

Every test syncs generated attempts (the day before the last hour, so every hour of them has
ended) through the
shared sync loop, rebuilds the canonical attempts from the landing store, and compares them with
what the emulator says a correct connector must produce.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import SecretStr, ValidationError

from connectors.emulator import Fault, Faults, MindfulEmulator
from connectors.emulator.mindful.app import hour_path
from connectors.errors import ResponseShapeError
from connectors.landing import scan_landed
from connectors.normalise import normalise_stream
from connectors.source import TimeoutSettings
from connectors.state import StateStore, format_utc
from connectors.sync import Progress, SyncReport, sync_source
from connectors.vendors.mindful.client import (
    MINDFUL,
    MindfulSettings,
    fetch_metrics,
)
from connectors.vendors.mindful.mapping import canonical
from engine import clock
from engine.demo.callbacks import generate_attempts
from engine.pipeline.sources import canonical_source, validated
from engine.schema import CALLBACK_ATTEMPTS, QUARANTINE
from engine.tables.callback_metrics import document
from engine.tables.callback_requests import requests
from engine.validate.callback_attempts import not_callbacks
from tests.calendar import TEST_NOW

NOW = TEST_NOW
HOUR_NOW = NOW.replace(minute=0, second=0, microsecond=0)
DAY0 = HOUR_NOW - timedelta(hours=26)
#: A day of requests from DAY0, cut an hour before now (so every attempt is in an ended hour).
ATTEMPTS = generate_attempts(seed=11, start=DAY0, days=1, scale=0.3).filter(
    pl.col("created_at") < HOUR_NOW - timedelta(hours=1)
)
KEY = SecretStr("test-hmac-key-7f3a")
STATIC = "static-bearer-9c1e"  # a fake credential of the emulator
FAST = 1000.0


def make_settings(emu: MindfulEmulator, **overrides: Any) -> MindfulSettings:
    values: dict[str, Any] = {
        "enabled": True,
        "base_url": emu.base_url,
        "token_url": emu.token_url,
        "client_id": emu.client_id,
        "client_secret": SecretStr(emu.client_secret),
        "pii_hash_secret": KEY,
        "start": DAY0,
        "rate_limit_per_s": FAST,
        "metrics_rate_limit_per_s": FAST,
        "max_retries": 8,
    }
    return MindfulSettings(**(values | overrides))


def sync(
    emu: MindfulEmulator,
    root: Path,
    *,
    sleeps: list[float] | None = None,
    progress: Callable[[Progress], None] | None = None,
    **overrides: Any,
) -> SyncReport:
    (report,) = sync_source(
        MINDFUL,
        make_settings(emu, **overrides),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=(sleeps if sleeps is not None else []).append,
        progress=progress,
    )
    return report


def synced(root: Path) -> pl.DataFrame:
    return canonical_source(MINDFUL, root / "landing")[0].collect().sort("attempt_id")


def emulator(**kw: Any) -> MindfulEmulator:
    kw = {"rate_limit_per_s": FAST, "metrics_rate_limit_per_s": FAST, "extra_holds": 6} | kw
    return MindfulEmulator(ATTEMPTS, **kw)


def data_requests(emu: MindfulEmulator) -> list[str]:
    return [e.path for e in emu.request_log if e.path.startswith("/v2/data/")]


def request_number(hour: datetime) -> int:
    """The admitted-request number of an hour in a fault-free OAuth sync from ``DAY0``."""
    return 2 + (hour - DAY0) // timedelta(hours=1)  # 1 is the token exchange


def test_fault_free_sync_rebuilds_the_attempts_exactly(tmp_path: Path) -> None:
    with emulator() as emu:
        report = sync(emu, tmp_path)
        current = clock.now().replace(minute=0, second=0, microsecond=0)
        assert report.ok, report.error
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))
        state = StateStore(tmp_path / "state").get("mindful", "attempts")
        assert state is not None
        assert state.cursor in (current, current - timedelta(hours=1))  # the hour rolled over?
        assert report.pages == (state.cursor - DAY0) // timedelta(hours=1) + 1
        assert data_requests(emu)[:2] == [hour_path(DAY0), hour_path(DAY0 + timedelta(hours=1))]
        assert data_requests(emu)[-1] == hour_path(state.cursor)  # the current hour is read...
        assert report.cursor == format_utc(state.cursor)  # ...but not committed
        landed = scan_landed(tmp_path / "landing", "mindful", "attempts")
        holds = not_callbacks(canonical(landed)).collect()
        assert holds.height == emu.not_callbacks == 6
        assert canonical_source(MINDFUL, tmp_path / "landing")[1].collect().height == 0
        assert (report.retries, report.throttled, emu.stats.rate_limited_429) == (0, 0, 0)


_SCHEDULE = (1, 4, 9, 30)  # 1 is the token exchange


@pytest.mark.parametrize(
    ("faults", "timeout"),
    [
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.THROTTLE), retry_after_s=2), None),
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.THROTTLE_BARE)), None),
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.SERVER_ERROR)), None),
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.UNAVAILABLE)), None),
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.DROP)), None),
        (Faults(schedule=dict.fromkeys(_SCHEDULE, Fault.TRUNCATE)), None),
        (Faults(schedule={3: Fault.SLOW, 7: Fault.SLOW}, slow_s=1.0), 0.2),
        (Faults(unknown_keys=True), None),
        (Faults(rates={Fault.SERVER_ERROR: 0.1, Fault.DROP: 0.05, Fault.TRUNCATE: 0.05}), None),
        (Faults(rates=dict.fromkeys(Fault, 0.04), unknown_keys=True, slow_s=0.5), 0.3),
    ],
    ids=[
        "429",
        "429-bare",
        "500",
        "503",
        "drop",
        "truncate",
        "slow",
        "unknown-keys",
        "mixed",
        "all-at-once",
    ],
)
def test_every_fault_gives_the_fault_free_result(
    tmp_path: Path, faults: Faults, timeout: float | None
) -> None:
    sleeps: list[float] = []
    extra = {} if timeout is None else {"timeouts": TimeoutSettings(read=timeout)}
    with emulator(faults=faults, seed=5) as emu:
        report = sync(emu, tmp_path, sleeps=sleeps, **extra)
        assert report.ok, report.error
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))
        assert (
            not_callbacks(canonical(scan_landed(tmp_path / "landing", "mindful", "attempts")))
            .collect()
            .height
            == emu.not_callbacks
        )
    # Read the log only once the emulator has stopped: a SLOW request the client abandoned is
    # logged when its (0.5 s) sleep ends, which can be after a short sync has already returned;
    # stop() wakes and joins it.
    injected = [e for e in emu.request_log if e.fault is not None]
    if faults.schedule:
        assert report.retries == len(faults.schedule)
    else:
        assert report.retries == len(injected)
    if faults.retry_after_s == 2 and faults.schedule.get(1) is Fault.THROTTLE:
        assert sleeps.count(2.0) == 4  # Retry-After honoured (sleeps are injected)


def move(emu: MindfulEmulator, truth: pl.DataFrame, aid: str, to: datetime) -> None:
    """Re-create attempt ``aid`` at ``to``, shifting all of its instants alike."""
    row = truth.filter(pl.col("attempt_id") == aid).row(0, named=True)
    shift = to - row["created_at"]
    instants = ("created_at", "processed_at", "estimated_for", "ended_at")
    emu.update_attempts([aid], **{k: row[k] and row[k] + shift for k in instants})


def _other(outcome: str) -> str:
    return "abandoned" if outcome != "abandoned" else "canceled"


def test_records_changing_while_paging_and_the_lookback(tmp_path: Path) -> None:
    with emulator() as emu:
        truth = emu.expected_attempts(KEY)
        (a, b, c, old), was = (
            truth["attempt_id"].head(4),
            dict(truth.select("attempt_id", "outcome").iter_rows()),
        )
        two, one = HOUR_NOW - timedelta(hours=2), HOUR_NOW - timedelta(hours=1)
        move(emu, truth, a, two + timedelta(minutes=5))
        move(emu, truth, b, one + timedelta(minutes=5))

        def mid_walk(n: int) -> None:
            if n == request_number(one):  # hour now-2h was read, now-1h is being read
                emu.update_attempts([a], outcome=_other(was[a]))
                emu.update_attempts([b], outcome=_other(was[b]))

        emu.add_hook(mid_walk)
        assert sync(emu, tmp_path).ok
        first = dict(synced(tmp_path).select("attempt_id", "outcome").iter_rows())
        assert first[a] == was[a]  # changed after its hour was read: not yet seen
        assert first[b] == _other(was[b])  # changed before its hour was read: seen
        # after the run: a late record and a change inside the lookback, one outside it
        late = ATTEMPTS.filter(pl.col("attempt_id") == c).with_columns(
            attempt_id=pl.lit("late-1"), original_id=pl.lit("late-1"), retry_attempt=pl.lit(0)
        )
        emu.add_attempts(late)
        move(emu, emu.expected_attempts(KEY), "late-1", one + timedelta(minutes=9))
        emu.update_attempts([old], outcome=_other(was[old]))
        assert sync(emu, tmp_path).ok  # re-reads the 3 hours behind the cursor
        second = dict(synced(tmp_path).select("attempt_id", "outcome").iter_rows())
        assert second[a] == _other(was[a])
        assert "late-1" in second
        assert second[old] == was[old]  # outside the lookback: not re-read
        assert hour_path(one) in data_requests(emu)[-4:]
        assert sync(emu, tmp_path, lookback_minutes=30 * 60).ok
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))


def test_resync_is_idempotent(tmp_path: Path) -> None:
    with emulator() as emu:
        assert sync(emu, tmp_path).ok
        once = synced(tmp_path)
        state = StateStore(tmp_path / "state").get("mindful", "attempts")
        again = sync(emu, tmp_path)
        assert again.ok
        assert again.pages in (4, 5)  # the lookback: 3 ended hours and the current one
        assert_frame_equal(synced(tmp_path), once)
        assert StateStore(tmp_path / "state").get("mindful", "attempts").cursor == state.cursor  # type: ignore[union-attr]


class _CrashError(Exception):
    """Stands for a kill right after a commit."""


def test_crash_and_resume_is_exact(tmp_path: Path) -> None:
    def crash(progress: Progress) -> None:
        if progress.pages == 20:
            raise _CrashError

    with emulator() as emu:
        with pytest.raises(_CrashError):
            sync(emu, tmp_path, progress=crash)
        state = StateStore(tmp_path / "state").get("mindful", "attempts")
        assert state is not None
        assert state.cursor == DAY0 + timedelta(hours=20)
        before = len(data_requests(emu))
        assert sync(emu, tmp_path).ok
        assert data_requests(emu)[before] == hour_path(DAY0 + timedelta(hours=17))
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))


def test_token_is_refreshed_during_a_long_sync(tmp_path: Path) -> None:
    with emulator(token_lifetime_s=1.0) as emu:
        report = sync(emu, tmp_path, rate_limit_per_s=15, rate_limit_burst=1)  # ~1.8 s
        assert report.ok, report.error
        assert emu.tokens_issued >= 3
        assert emu.stats.unauthorized_401 == 0  # refreshed before expiry, never after
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))


def test_a_revoked_token_is_replaced_once(tmp_path: Path) -> None:
    with emulator() as emu:
        emu.add_hook(lambda n: emu.revoke_tokens() if n == 10 else None)
        report = sync(emu, tmp_path)
        assert report.ok, report.error
        assert (emu.stats.unauthorized_401, emu.tokens_issued) == (1, 2)
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))


def test_static_token_mode(tmp_path: Path) -> None:
    with emulator(static_token=STATIC) as emu:
        report = sync(emu, tmp_path, auth="static", static_token=SecretStr(STATIC))
        assert report.ok, report.error
        assert emu.tokens_issued == 0
        assert_frame_equal(synced(tmp_path), emu.expected_attempts(KEY))


def test_refused_credentials_fail_without_leaking(tmp_path: Path) -> None:
    with emulator() as emu:
        report = sync(emu, tmp_path, client_secret=SecretStr("wrong-secret-123"))
        assert not report.ok
        assert "refused" in str(report.error)
        assert "wrong-secret-123" not in str(report.error)
        assert StateStore(tmp_path / "state").get("mindful", "attempts") is None


@pytest.mark.parametrize("auth", ["oauth2", "static"])
def test_unreachable_source_names_the_url(tmp_path: Path, auth: str) -> None:
    with emulator() as emu:
        settings = make_settings(emu, auth=auth, static_token=SecretStr(STATIC), max_retries=1)
        origin = emu.origin
    (report,) = sync_source(
        MINDFUL,
        settings,
        landing_root=tmp_path / "landing",
        state_root=tmp_path / "state",
        sleep=lambda _: None,
    )
    assert not report.ok
    assert origin in str(report.error)
    assert STATIC not in str(report.error)
    assert emu.client_secret not in str(report.error)


def test_client_rate_limit_keeps_the_server_limit(tmp_path: Path) -> None:
    with emulator(rate_limit_per_s=20, rate_limit_retry_after=False) as emu:
        report = sync(emu, tmp_path, rate_limit_per_s=20, rate_limit_margin_s=0.15)
        assert report.ok, report.error
        assert (emu.stats.rate_limited_429, report.throttled, report.retries) == (0, 0, 0)
        admitted = [e.monotonic for e in emu.request_log if e.path.startswith("/v2/data/")]
        assert len(admitted) >= 27
        assert all(sum(t <= u < t + 1 for u in admitted) <= 20 for t in admitted)


def test_no_secret_and_no_pii_lands_or_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with emulator(faults=Faults(schedule={5: Fault.SERVER_ERROR})) as emu:
        assert sync(emu, tmp_path).ok
        records = emu.records()
        pii = {r[k] for r in records for k in ("ani", "phoneNumber") if r[k]}
        pii |= {v for r in records for v in r["metadata"].values()}
        secrets = {emu.client_secret, KEY.get_secret_value(), *emu.issued_tokens}
    assert len(pii) > 50
    texts = [caplog.text]
    for path in tmp_path.rglob("*"):
        if path.suffix == ".parquet":
            frame = pl.read_parquet(path)
            texts.append(frame.select(pl.col(pl.String)).write_csv())
        elif path.is_file():
            texts.append(path.read_text())
    blob = "\n".join(texts)
    digits = re.sub(r"\D", "", blob)
    for value in secrets | pii:
        assert value not in blob
    for phone in (p for p in pii if p.startswith("+")):
        assert phone[1:] not in digits or len(phone) < 10
    landed = scan_landed(tmp_path / "landing", "mindful", "attempts").collect()
    payloads = [json.loads(p) for p in landed["payload"]]
    assert not any("ani" in p or "metadata" in p for p in payloads)
    keys = {p["phoneNumber"] for p in payloads if p["phoneNumber"] is not None}
    assert all(re.fullmatch(r"[0-9a-f]{64}", k) for k in keys)


def test_bad_records_are_quarantined_with_their_scrubbed_payload(tmp_path: Path) -> None:
    with emulator() as emu:
        hour = HOUR_NOW - timedelta(hours=5)
        at, end = ((hour + timedelta(minutes=m)).isoformat().replace("+00:00", "Z") for m in (1, 3))
        template = emu.records()[0] | {"ani": "+14155550123", "createdAt": at, "endedAt": end}
        template |= {"type": "asap", "outcome": "Success", "phoneNumber": "+1 415 555 0199"}
        bad = [
            template | {"id": "bad-ts", "originalId": "bad-ts", "createdAt": "yesterday"},
            template | {"id": "bad-out", "originalId": "bad-out", "outcome": "Boom"},
            template | {"id": "bad-type", "originalId": "bad-type", "retryAttempt": "two"},
            template | {"id": "bad-ms", "originalId": "bad-ms", "talkDuration": 1.0005},
            {k: v for k, v in template.items() if k != "id"} | {"originalId": "no-id"},
        ]
        emu.add_raw_records(bad, hour=hour)
        assert sync(emu, tmp_path).ok
        rows, quarantine = pl.collect_all(list(canonical_source(MINDFUL, tmp_path / "landing")))
        assert_frame_equal(rows.sort("attempt_id"), emu.expected_attempts(KEY))
        assert quarantine.schema == pl.Schema(QUARANTINE)
        assert sorted(quarantine["reason"]) == [
            "missing_record_id",  # set aside at landing: no primary key
            "unknown_outcome",
            "unparsable_timestamp",
            "wrong_type",  # at landing: "two" does not fit the record dtype
            "wrong_type",  # at validation: 1.0005 s is not a whole millisecond
        ]
        assert set(quarantine["table"]) == {"callback_attempts"}
        for name in ("bad-ts", "bad-out", "bad-ms", "bad-type", "?"):
            assert quarantine.filter(pl.col("record_id") == name).height == 1
        raws = [json.loads(raw) for raw in quarantine["raw"]]
        assert sorted(r["originalId"] for r in raws) == sorted(r["originalId"] for r in bad)
        for raw in raws:
            assert "ani" not in raw
            assert "metadata" not in raw
            assert re.fullmatch(r"[0-9a-f]{64}", raw["phoneNumber"])


def test_hour_boundaries_end_to_end(tmp_path: Path) -> None:
    t = HOUR_NOW - timedelta(hours=5)
    base = ATTEMPTS.head(1)

    def at(aid: str, when: datetime) -> pl.DataFrame:
        ids = {"attempt_id": pl.lit(aid), "original_id": pl.lit(aid), "retry_attempt": pl.lit(0)}
        return base.with_columns(**ids, created_at=pl.lit(when, CALLBACK_ATTEMPTS["created_at"]))

    frame = pl.concat(
        [
            at("before", t - timedelta(milliseconds=1)),
            at("on-the-hour", t),
            at("last-ms", t + timedelta(hours=1) - timedelta(milliseconds=1)),
        ]
    ).with_columns(ended_at=pl.col("created_at") + timedelta(minutes=1), processed_at=None)
    with MindfulEmulator(frame, rate_limit_per_s=FAST) as emu:
        assert sync(emu, tmp_path, start=t).ok
        assert synced(tmp_path)["attempt_id"].to_list() == ["last-ms", "on-the-hour"]
        assert data_requests(emu)[0] == hour_path(t)


def test_metrics_reconcile_with_the_engine_document(tmp_path: Path) -> None:
    with emulator(faults=Faults(schedule={3: Fault.UNAVAILABLE})) as emu:
        assert sync(emu, tmp_path).ok
        ours = synced(tmp_path).lazy()
        day = DAY0 + timedelta(days=1)
        cases: list[tuple[datetime, datetime, dict[str, Any]]] = [
            (DAY0, HOUR_NOW, {}),
            (DAY0 + timedelta(hours=9), DAY0 + timedelta(hours=13), {}),
            (DAY0, day, {"call_target_id": ["4380", "4381"]}),
            (DAY0, day, {"first_party_called": "customer", "type": "asap"}),
            (DAY0, day, {"source_type": "digital"}),
        ]
        settings = make_settings(emu)
        for begin, end, filters in cases:
            theirs = fetch_metrics(settings, begin, end, sleep=lambda _: None, **filters)
            flat = {k: ",".join(v) if isinstance(v, list) else v for k, v in filters.items()}
            assert theirs == document(requests(ours), begin=begin, end=end, **flat), filters
        assert theirs["data"]["totalCallbacks"] > 0
        emu.faults = Faults(unknown_keys=True)
        noisy = fetch_metrics(settings, DAY0, HOUR_NOW, sleep=lambda _: None)
        assert noisy == document(requests(ours), begin=DAY0, end=HOUR_NOW)
        with pytest.raises(ValueError, match="unknown metrics filter"):
            fetch_metrics(settings, DAY0, HOUR_NOW, queue="x")


def test_metrics_shape_is_checked(tmp_path: Path) -> None:
    with emulator() as emu:
        settings = make_settings(emu)
        emu.metrics = lambda *a, **k: {"data": {"outcomes": {}}}  # type: ignore[method-assign]
        with pytest.raises(ResponseShapeError, match="data lacks performance"):
            fetch_metrics(settings, DAY0, HOUR_NOW)


def test_settings_validation() -> None:
    with pytest.raises(ValidationError, match="client_id, client_secret"):
        MindfulSettings(enabled=True, pii_hash_secret=KEY)
    with pytest.raises(ValidationError, match="static_token"):
        MindfulSettings(enabled=True, auth="static", pii_hash_secret=KEY)
    with pytest.raises(ValidationError, match="pii_hash_secret"):
        MindfulSettings(enabled=True, client_id="c", client_secret=SecretStr("s"))
    with pytest.raises(ValidationError, match="HTTPS"):
        MindfulSettings(base_url="http://api.example.com")
    with pytest.raises(ValidationError, match="HTTPS"):
        MindfulSettings(token_url="http://auth.example.com/oauth2/token")  # noqa: S106
    settings = MindfulSettings(client_secret=SecretStr("s3cret"), static_token=SecretStr("t0k"))
    assert "s3cret" not in repr(settings)
    assert "t0k" not in repr(settings)
    assert settings.base_url == "https://api.getmindful.com"
    assert settings.token_url == "https://auth.getmindful.com/oauth2/token"  # noqa: S105


def test_normalise_reads_vendor_variants() -> None:
    template = {"originalId": "x", "retryAttempt": 0, "type": "ASAP", "outcome": "Success"}
    template |= {"createdAt": "2023-06-08T12:12:53.000Z", "firstPartyCalled": "customer_first"}
    records = [
        template | {"id": "a", "source": "+1 (855) 555-0100", "talkDuration": 61.5},
        template | {"id": "b", "source": "Phone:+18555550100", "talkDuration": 61},
        template | {"id": "c", "source": "CBWidget:dc4e", "x_new_key": {"y": 1}},
        template | {"id": "d", "type": "unknown", "outcome": "Chose Hold"},
    ]
    landed = pl.LazyFrame(
        {"record_id": [r["id"] for r in records], "payload": [json.dumps(r) for r in records]}
    )
    mapped = normalise_stream(MINDFUL, MINDFUL.streams[0], landed)
    rows = validated(mapped, "callback_attempts")[0].collect().sort("attempt_id")
    assert rows["source_type"].to_list() == ["voice", "voice", "digital"]
    assert rows["talk_ms"].to_list() == [61_500, 61_000, None]
    assert set(rows["first_party_called"]) == {"customer"}
    assert not_callbacks(canonical(landed)).collect()["attempt_id"].to_list() == ["d"]
