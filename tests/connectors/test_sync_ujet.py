"""The UJET connector against its emulator over real loopback sockets.

Every fault is survived with exactly the fault-free tables; re-syncs change nothing; the lookback
picks up late updates; the client-side limiter keeps the emulator's rate limit; no secret and no
PII field reaches a log, a state file, the landing store or an output.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.emulator import Fault, Faults, UjetEmulator
from connectors.emulator.server import Request, Response
from connectors.errors import StateError
from connectors.landing import scan_landed
from connectors.normalise import scan_rejected
from connectors.state import StateStore, parse_utc
from connectors.sync import SyncReport, sync_source
from connectors.vendors.ujet.client import UJET, UjetSettings
from engine.pipeline import build as pipeline
from engine.pipeline.sources import canonical_source
from engine.settings import BuildSettings
from tests.connectors import ujet_support as sup
from tests.environment import invoke


@pytest.fixture(scope="module")
def contacts() -> pl.DataFrame:
    return sup.small_contacts()


@pytest.fixture(scope="module")
def reference(contacts: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> pl.DataFrame:
    """The contacts a fault-free sync rebuilds (checked against the emulator's truth)."""
    root = tmp_path_factory.mktemp("reference")
    with sup.emulator(contacts) as emu:
        reports = sync(emu, root)
        truth = emu.expected_contacts()
    assert all(r.ok for r in reports)
    assert emu.stats.rate_limited_429 == emu.stats.injected_429 == 0
    rebuilt = sup.synced(root / "landing")
    assert_frame_equal(rebuilt, truth)
    assert rebuilt.height > 250
    return rebuilt


def sync(
    emu: UjetEmulator,
    root: Path,
    settings: UjetSettings | None = None,
    sleeps: list[float] | None = None,
) -> list[SyncReport]:
    return sync_source(
        UJET,
        settings or sup.settings_for(emu),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=(sleeps if sleeps is not None else []).append,
    )


FAULTS = {
    "429 with Retry-After": Faults(rates={Fault.THROTTLE: 0.3}, retry_after_s=2),
    "429 without Retry-After": Faults(rates={Fault.THROTTLE_BARE: 0.3}),
    "500": Faults(rates={Fault.SERVER_ERROR: 0.3}),
    "503": Faults(rates={Fault.UNAVAILABLE: 0.3}),
    "slow": Faults(rates={Fault.SLOW: 0.3}, slow_s=0.02),
    "slower than the read timeout": Faults(rates={Fault.SLOW: 0.15}, slow_s=1.0),
    "dropped connection": Faults(rates={Fault.DROP: 0.3}),
    "truncated JSON": Faults(rates={Fault.TRUNCATE: 0.3}),
    "new unknown keys": Faults(unknown_keys=True),
    "all at once": Faults(
        rates=dict.fromkeys(Fault, 0.06), unknown_keys=True, slow_s=0.02, retry_after_s=1
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_faults_give_the_fault_free_tables(
    name: str, contacts: pl.DataFrame, reference: pl.DataFrame, tmp_path: Path
) -> None:
    faults = FAULTS[name]
    timeouts = {"connect": 2.0, "read": 0.3, "write": 2.0, "pool": 2.0}
    sleeps: list[float] = []
    with sup.emulator(contacts, faults=faults, seed=11) as emu:
        settings = sup.settings_for(emu, timeouts=timeouts)
        reports = sync(emu, tmp_path, settings, sleeps)
        stats = emu.stats
    assert [r.error for r in reports] == [None, None]
    rebuilt = sup.synced(tmp_path / "landing")
    assert_frame_equal(rebuilt, reference)
    assert_frame_equal(sup.volume(rebuilt), sup.volume(reference))
    injected = stats.injected_429 + stats.server_errors_5xx + stats.dropped + stats.truncated
    if faults.rates and name != "slow":
        assert injected + stats.slowed > 0
        assert sum(r.retries for r in reports) >= injected
    if name == "429 with Retry-After":
        assert sum(r.throttled for r in reports) == stats.injected_429
        assert sleeps.count(2.0) == stats.injected_429  # the server's Retry-After, honoured
    if name == "429 without Retry-After":
        assert sleeps
        assert max(sleeps) <= settings.retry_max_s  # capped exponential backoff with jitter


def test_records_changed_while_paging_are_picked_up(contacts: pl.DataFrame, tmp_path: Path) -> None:
    with sup.emulator(contacts) as emu:
        truth = emu.expected_contacts()
        answered = truth.filter(pl.col("outcome") == "answered")["contact_id"].unique().sort()
        late = sup.small_contacts(seed=99, scale=0.01).with_columns(
            pl.concat_str(pl.lit("late-"), "contact_id").alias("contact_id")
        )

        def mutate(n: int) -> None:
            if n == 3:
                emu.update_records(answered[:5].to_list(), acw_ms=99_000)
                emu.add_contacts(late)

        emu.add_hook(mutate)
        reports = sync(emu, tmp_path)
        expected = emu.expected_contacts()
    assert all(r.ok for r in reports)
    rebuilt = sup.synced(tmp_path / "landing")
    assert_frame_equal(rebuilt, expected)
    assert rebuilt.filter(pl.col("acw_ms") == 99_000).height >= 5
    assert rebuilt.height == truth.height + late.height


def test_a_second_sync_with_nothing_new_changes_nothing(
    contacts: pl.DataFrame, reference: pl.DataFrame, tmp_path: Path
) -> None:
    with sup.emulator(contacts) as emu:
        first = sync(emu, tmp_path)
        state = StateStore(tmp_path / "state")
        cursors = {s.stream: s.cursor for s in state.show()}
        second = sync(emu, tmp_path)
    assert [r.cursor for r in first] == [r.cursor for r in second]
    assert {s.stream: s.cursor for s in state.show()} == cursors
    assert sum(r.records for r in second) < sum(r.records for r in first) / 2  # lookback only
    assert_frame_equal(sup.synced(tmp_path / "landing"), reference)


def test_lookback_picks_up_a_late_update_within_the_window(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    with sup.emulator(contacts) as emu:
        settings = sup.settings_for(emu, lookback_minutes=60)
        sync(emu, tmp_path, settings)
        cursor = StateStore(tmp_path / "state").get("ujet", "calls")
        assert cursor is not None
        ids = emu.expected_contacts().filter(pl.col("channel") == "voice")["contact_id"]
        within, beyond = ids[0], ids[1]
        emu.update_records(
            [within], talk_ms=1_000, updated_at=cursor.cursor - timedelta(minutes=30)
        )
        emu.update_records([beyond], talk_ms=2_000, updated_at=cursor.cursor - timedelta(hours=3))
        sync(emu, tmp_path, settings)
        expected = emu.expected_contacts()
    rebuilt = sup.synced(tmp_path / "landing")
    assert_frame_equal(
        rebuilt.filter(pl.col("contact_id") == within),
        expected.filter(pl.col("contact_id") == within),
    )
    # an update back-dated past the lookback is, by design, not seen by a tail sync
    assert not rebuilt.filter(pl.col("contact_id") == beyond).equals(
        expected.filter(pl.col("contact_id") == beyond)
    )


def test_a_record_stamped_after_the_sync_started_does_not_move_the_cursor_past_it(
    contacts: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A vendor whose clock (or data) is off sends a record updated a year from now. Its stamp
    must not become the cursor: every later sync would ask for changes after it and miss all
    of them, with exit 0. The cursor is held at the sync's start, a warning names the stamp,
    and a change made after the first sync is fetched by the next one."""
    with sup.emulator(contacts) as emu:
        ids = emu.expected_contacts().filter(pl.col("channel") == "voice")["contact_id"]
        ahead = emu.clock() + timedelta(days=365)
        emu.update_records([ids[0]], talk_ms=1_000, updated_at=ahead)
        with caplog.at_level(logging.WARNING, logger="connectors.sync"):
            first = sync(emu, tmp_path)
        assert all(r.ok for r in first)
        cursor = StateStore(tmp_path / "state").get("ujet", "calls")
        assert cursor is not None
        assert cursor.cursor < ahead
        assert cursor.cursor <= emu.clock()
        warned = [r.getMessage() for r in caplog.records if "ahead of the clock" in r.message]
        assert len(warned) == 1
        assert "ujet/calls" in warned[0]
        emu.update_records([ids[1]], talk_ms=2_222)  # after the first sync, before the stamp
        second = sync(emu, tmp_path)
        assert all(r.ok for r in second)
        expected = emu.expected_contacts()
    assert_frame_equal(sup.synced(tmp_path / "landing"), expected)


def test_a_record_seconds_ahead_holds_the_cursor_without_a_warning(
    contacts: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Records changed while a sync runs, or a vendor's clock a few seconds ahead, are normal:
    the cursor is held at the sync's start all the same (they are read again next time), and
    no warning is raised for them."""
    with sup.emulator(contacts) as emu:
        ids = emu.expected_contacts().filter(pl.col("channel") == "voice")["contact_id"]
        emu.update_records([ids[0]], talk_ms=1_000, updated_at=emu.clock() + timedelta(seconds=30))
        with caplog.at_level(logging.WARNING, logger="connectors.sync"):
            assert all(r.ok for r in sync(emu, tmp_path))
        cursor = StateStore(tmp_path / "state").get("ujet", "calls")
        assert cursor is not None
        assert cursor.cursor <= emu.clock()
        assert not [r for r in caplog.records if "ahead of the clock" in r.message]
        expected = emu.expected_contacts()
    assert_frame_equal(sup.synced(tmp_path / "landing"), expected)


def test_a_cursor_ahead_of_the_clock_stops_the_sync_until_it_is_moved_back(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    """The clock was a year fast when a sync committed its cursor, and was set right since (or
    the machine was restored from an image). Resuming from that cursor would ask for changes
    after an instant that has not come yet: none, exit 0, every night until then. The sync
    refuses before any request, naming the cursor, the clock and the way out; once the cursor
    is moved back, a change made meanwhile is fetched."""
    with sup.emulator(contacts) as emu:
        assert all(r.ok for r in sync(emu, tmp_path))
        states = StateStore(tmp_path / "state")
        synced = states.get("ujet", "calls")
        assert synced is not None
        states.commit("ujet", "calls", emu.clock() + timedelta(days=365), lookback=synced.lookback)
        ids = emu.expected_contacts().filter(pl.col("channel") == "voice")["contact_id"]
        emu.update_records([ids[0]], talk_ms=2_222)
        asked = len(emu.request_log)
        with pytest.raises(StateError, match=r"ujet/calls: its cursor .* ahead of the clock"):
            sync(emu, tmp_path)
        assert len(emu.request_log) == asked
        states.rewind("ujet", "calls", synced.cursor, lookback=synced.lookback)
        assert all(r.ok for r in sync(emu, tmp_path))
        expected = emu.expected_contacts()
    assert_frame_equal(sup.synced(tmp_path / "landing"), expected)


def test_the_client_never_exceeds_the_rate_limit(contacts: pl.DataFrame, tmp_path: Path) -> None:
    with sup.emulator(contacts, rate_limit_per_s=20.0) as emu:
        settings = sup.settings_for(emu, rate_limit_per_s=20.0, per_page=5)
        reports = sync(emu, tmp_path, settings)
        log, stats = emu.request_log, emu.stats
    assert all(r.ok for r in reports)
    assert stats.requests >= 60
    assert stats.rate_limited_429 == 0
    assert sum(r.throttled for r in reports) == 0
    window: deque[float] = deque()
    for entry in log:  # at most 20 requests in any one-second window, as the server counts
        window.append(entry.monotonic)
        while window[0] <= entry.monotonic - 1.0:
            window.popleft()
        assert len(window) <= 20


def test_no_secret_or_pii_in_logs_state_landing_or_outputs(
    contacts: pl.DataFrame, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults(rates={Fault.THROTTLE: 0.1, Fault.DROP: 0.1, Fault.TRUNCATE: 0.1})
    with sup.emulator(contacts, faults=faults) as emu:
        reports = sync(emu, tmp_path)
        served = sup.pii_values(emu)
    rows, quarantine = pl.collect_all(list(canonical_source(UJET, tmp_path / "landing")))
    pipeline.build_contacts(rows.lazy(), settings=BuildSettings(), out_dir=tmp_path / "out")
    quarantine.write_csv(tmp_path / "out" / "quarantine.csv")
    (tmp_path / "out" / "reports.json").write_text(json.dumps([r.to_dict() for r in reports]))
    texts = [("log", caplog.text), *((str(p), t) for p, t in sup.texts_under(tmp_path))]
    assert len(texts) > 20
    assert "retrying" in caplog.text  # the faults were logged, redacted
    for where, text in texts:
        for secret in sup.secrets():
            assert secret not in text, f"secret in {where}"
        for value in served:
            assert value not in text, f"PII value {value!r} in {where}"
        for key in sup.pii_keys():
            assert key not in text, f"PII key {key} in {where}"


def test_refused_credentials_fail_with_one_line_and_no_secret(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    with sup.emulator(contacts) as emu:
        settings = sup.settings_for(emu, password="wrong-pass-9Kq")  # noqa: S106 - fake
        reports = sync(emu, tmp_path, settings)
    assert [r.ok for r in reports] == [False, False]
    error = reports[0].error or ""
    assert "401" in error
    assert "\n" not in error
    assert "wrong-pass-9Kq" not in error
    # what to check, by name (once: the URL only)
    assert error.endswith("; check sources.ujet.username, sources.ujet.password (`wfm-intervals"
                          " config show --origin` says where it is set)")  # fmt: skip
    assert StateStore(tmp_path / "state").show() == []


def test_unreachable_source_names_the_url(tmp_path: Path) -> None:
    with sup.emulator(sup.small_contacts(scale=0.005)) as emu:
        settings = sup.settings_for(emu, max_retries=1)
    reports = sync(emu, tmp_path, settings)  # the emulator is stopped: connection refused
    assert not reports[0].ok
    assert "127.0.0.1" in (reports[0].error or "")


def _records_server(records: list[object]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params.get("page", "1"))
        body = records if page == 1 and request.url.path.endswith("/calls") else []
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def test_misfit_records_are_quarantined_at_landing(tmp_path: Path) -> None:
    good = {"id": 1, "updated_at": "2026-10-01T10:00:00.000Z", "queue_durations": []}
    wrong = {
        "id": 2,
        "updated_at": "2026-10-01T10:00:01.000Z",
        "queue_durations": {"a": 1},
        "end_user": {"identifier": "+15550001111"},
    }
    keyless = {"updated_at": "2026-10-01T10:00:02.000Z", "agent_info": {"name": "Quinn Kim"}}
    settings = UjetSettings(
        enabled=True,
        base_url="https://ujet.test/manager/api/v1",
        username="u",
        password="p",  # noqa: S106 - a fake test credential
        pii_hash_secret="k",  # noqa: S106 - a fake test key
        start="2026-09-01T00:00:00Z",
    )
    reports = sync_source(
        UJET,
        settings,
        landing_root=tmp_path / "landing",
        state_root=tmp_path / "state",
        streams=["calls"],
        transport=_records_server([good, wrong, keyless, "junk"]),
    )
    assert reports[0].rejected == {"wrong_type": 2, "missing_record_id": 1}
    assert reports[0].landed == 1
    rejected = scan_rejected(tmp_path / "landing", "ujet", "calls").collect()
    assert "+15550001111" not in " ".join(rejected["raw"])
    assert "Quinn Kim" not in " ".join(rejected["raw"])
    quarantine = canonical_source(UJET, tmp_path / "landing")[1].collect().sort("record_id")
    assert quarantine.select("record_id", "reason").rows() == [
        ("call-2", "wrong_type"),
        ("call-?", "missing_record_id"),
        ("call-?", "wrong_type"),
    ]
    assert quarantine["detail"][0] == "$.queue_durations"


# -- a server that misbehaves (issue 12): named errors, honest cursors --------------------------


def unsorted_after(emu: UjetEmulator, pages: int, broken: list[bool]) -> None:
    """From the calls request after ``pages`` on, the server ignores ``sort_direction=ASC``."""

    def rewrite(n: int, request: Request, response: Response) -> Response:
        if not (broken[0] and n > pages and request.path.endswith("/calls")):
            return response
        return emu.route(replace(request, query={**request.query, "sort_direction": ["DESC"]}))

    emu.add_rewrite(rewrite)


def landed_calls(root: Path) -> set[str]:
    return set(scan_landed(root / "landing", "ujet", "calls").collect()["record_id"])


def test_a_server_that_stops_sorting_stops_the_stream_without_losing_records(
    contacts: pl.DataFrame, reference: pl.DataFrame, tmp_path: Path
) -> None:
    broken = [True]
    with sup.emulator(contacts) as emu:
        unsorted_after(emu, 3, broken)
        calls, chats = sync(emu, tmp_path)
        served = emu.records("calls")
        requests = emu.stats.by_path
        cursor = StateStore(tmp_path / "state").get("ujet", "calls")
        landed = landed_calls(tmp_path)
        broken[0] = False  # the vendor fixes its server: the next sync brings the rest
        again = sync(emu, tmp_path)
    assert (calls.error or "").startswith("paging invariant cursor_order violated: page 4: ")
    assert "\n" not in (calls.error or "")
    assert calls.pages == 3
    assert requests["/manager/api/v1/calls"] == 4
    assert chats.ok
    assert cursor is not None
    behind = {str(r["id"]) for r in served if parse_utc(r["updated_at"]) < cursor.cursor}
    assert behind <= landed  # the cursor stands on records that were all landed
    assert len(landed) < len(served)
    assert [r.error for r in again] == [None, None]
    assert landed_calls(tmp_path) == {str(r["id"]) for r in served}
    assert_frame_equal(sup.synced(tmp_path / "landing"), reference)


def test_the_cli_exits_2_naming_source_stream_and_invariant(
    contacts: pl.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli.main import cli

    with sup.emulator(contacts) as emu:
        unsorted_after(emu, 3, [True])
        env = {
            "WFM_SOURCES__UJET__ENABLED": "true",
            "WFM_SOURCES__UJET__BASE_URL": emu.base_url,
            "WFM_SOURCES__UJET__USERNAME": sup.USER,
            "WFM_SOURCES__UJET__PASSWORD": sup.PASSWORD,
            "WFM_SOURCES__UJET__PII_HASH_SECRET": sup.PII_SECRET,
            "WFM_SOURCES__UJET__RATE_LIMIT_PER_S": "500",
            "WFM_SOURCES__UJET__PER_PAGE": "25",
            "WFM_SOURCES__UJET__START": "2026-09-01T00:00:00Z",
            "WFM_STORE__LANDING": str(tmp_path / "landing"),
            "WFM_STORE__STATE": str(tmp_path / "state"),
        }
        monkeypatch.chdir(tmp_path)
        result = invoke(cli, ["sync", "ujet", "--stream", "calls"], env)
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if "error:" in line]
    assert len(errors) == 1
    assert "ujet/calls: paging invariant cursor_order violated: page 4" in errors[0]
    assert sup.PASSWORD not in result.output


def test_a_server_stuck_on_one_page_is_stopped_at_once(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    with sup.emulator(contacts) as emu:
        sent: dict[int, Response] = {}

        def stuck(n: int, request: Request, response: Response) -> Response:
            sent.setdefault(n, response)
            return sent[2] if n > 2 and request.path.endswith("/calls") else response

        emu.add_rewrite(stuck)
        calls, chats = sync(emu, tmp_path)
        requests = emu.stats.by_path
    assert (calls.error or "").startswith("paging invariant cursor_start violated: page 3: ")
    assert requests["/manager/api/v1/calls"] == 3  # it was followed for 373 pages
    assert chats.ok


def test_a_page_over_the_size_cap_is_a_fatal_error_fetched_once(
    contacts: pl.DataFrame, tmp_path: Path
) -> None:
    with sup.emulator(contacts) as emu:

        def huge(n: int, request: Request, response: Response) -> Response:
            if n == 3 and request.path.endswith("/calls"):
                return Response(200, body=b"<html>" + b"x" * 300_000)  # not JSON either
            return response

        emu.add_rewrite(huge)
        settings = sup.settings_for(emu, max_page_bytes=200_000)  # an honest page: ~74 kB
        calls, chats = sync(emu, tmp_path, settings)
        requests = emu.stats.by_path
    assert calls.error is not None
    assert calls.error.startswith("response body over the cap of max_page_bytes=200000 (http")
    assert requests["/manager/api/v1/calls"] == 3  # not retried (it was downloaded 7 times)
    assert calls.retries == 0
    assert chats.ok
