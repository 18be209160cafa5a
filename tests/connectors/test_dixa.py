"""The Dixa connector against its emulator over real loopback sockets.

Every test syncs canonical contacts (offered in the last two days) through the shared sync loop,
rebuilds the canonical contacts from the landing store, and compares them with what the emulator
says a correct connector must produce: the round trip canonical -> emulator -> connector ->
canonical is exact, whatever the faults.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from pydantic import SecretStr, ValidationError

from connectors.emulator import DixaEmulator, Fault, Faults
from connectors.emulator.server import Request, Response
from connectors.errors import AuthError, ConfigError, ConnectorError
from connectors.landing import scan_landed
from connectors.normalise import normalise_stream
from connectors.state import StateStore
from connectors.sync import SyncReport, sync_source
from connectors.vendors.dixa.client import DIXA, DixaSettings
from connectors.vendors.dixa.fields import decode_fields
from connectors.vendors.dixa.mapping import DEFAULT_FIELD_MAPPING
from engine.app.config import describe_errors, load_settings
from engine.pipeline.sources import canonical_source, validated
from engine.schema import CONTACTS
from tests.connectors import dixa_support as support
from tests.connectors.dixa_support import KEY, NOW, T0, TOKEN, emulator, make_settings
from tests.environment import invoke

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def seg(cid: str, n: int, *, at: float, outcome: str = "answered", **kw: Any) -> dict[str, Any]:
    """A canonical segment in the emulator's normal form (so it comes back unchanged)."""
    offered = T0 + timedelta(seconds=at)
    answered = offered + timedelta(seconds=15.5) if outcome == "answered" else None
    ended = (answered or offered) + timedelta(seconds=200.25)
    row = {
        "source": "dixa",
        "contact_id": cid,
        "segment_no": n,
        "channel": "voice",
        "direction": "inbound",
        "queue_id": "q-sales",
        "queue_name": "Sales",
        "offered_at": offered,
        "answered_at": answered,
        "ended_at": None if outcome == "open" else ended,
        "outcome": outcome,
        "wait_ms": 15_500,
        "talk_ms": 180_250 if answered else 0,
        "hold_ms": 20_000 if answered else 0,
        "acw_ms": 30_001 if answered else 0,
        "sl_threshold_ms": 20_000,
        "messages": 0,
        "csat_responses": 0,
        "csat_score": 0,
        "updated_at": offered + timedelta(minutes=10),
    }
    return row | kw


NORMAL = pl.DataFrame(
    [
        seg("101", 1, at=60, csat_responses=1, csat_score=4),
        seg("102", 1, at=3600, outcome="flow_out"),
        seg("102", 2, at=3615.5, queue_id="q-billing", queue_name="Billing", sl_threshold_ms=None),
        seg("103", 1, at=86_400, outcome="abandoned"),
        seg("104", 1, at=90_000, outcome="open", wait_ms=3_000),
        seg("201", 1, at=100_000, channel="chat", queue_id="q-web", queue_name="Web", messages=9),
        seg("202", 1, at=110_000, channel="email", queue_id="q-mail", queue_name="Mail"),
        seg("203", 1, at=120_000, channel="messaging", queue_id="q-msg", queue_name="Msg"),
        seg("204", 1, at=130_000, channel="callback", queue_id="q-cb", queue_name="CB"),
        seg("205", 1, at=140_000, direction="outbound"),
    ],
    schema=CONTACTS,
).sort("contact_id", "segment_no")


def sync(
    emu: DixaEmulator, root: Path, *, sleeps: list[float] | None = None, **overrides: Any
) -> list[SyncReport]:
    return sync_source(
        DIXA,
        make_settings(emu, **overrides),
        landing_root=root / "landing",
        state_root=root / "state",
        sleep=(sleeps if sleeps is not None else []).append,
    )


def synced(emu: DixaEmulator, root: Path, **overrides: Any) -> pl.DataFrame:
    return support.synced(emu, root / "landing", **overrides)


def quarantined(emu: DixaEmulator, root: Path) -> pl.DataFrame:
    return canonical_source(DIXA, root / "landing", make_settings(emu))[1].collect()


@pytest.mark.parametrize("next_key", ["meta", "meta_url", "top"])
def test_round_trip_is_exact_wherever_the_next_key_is(tmp_path: Path, next_key: str) -> None:
    with emulator(NORMAL, next_key=next_key) as emu:
        (report,) = sync(emu, tmp_path, per_page=2)
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path), NORMAL)  # NORMAL is in normal form
        assert report.pages > 5  # several pages in a window, and windows with one page
        assert quarantined(emu, tmp_path).height == 0
    with emulator(next_key=next_key) as emu:
        (report,) = sync(emu, tmp_path / "generated")
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path / "generated"), emu.expected_contacts())
        assert (report.retries, emu.stats.rate_limited_429) == (0, 0)


def test_catalogue_is_read_first_and_windows_cover_the_period(tmp_path: Path) -> None:
    with emulator() as emu:
        (report,) = sync(emu, tmp_path)
        log = emu.request_log
        assert (log[0].method, log[0].path) == ("GET", "/v1/analytics/records")
        assert all((e.method, e.path) == ("POST", "/v1/analytics/records") for e in log[1:])
        state = StateStore(tmp_path / "state").get("dixa", "conversations")
        assert state is not None
        day = timedelta(days=1)  # the default window: the current one is not done yet
        assert state.cursor == EPOCH + (NOW - EPOCH) // day * day
        assert report.cursor is not None
        assert report.started_from == T0.strftime("%Y-%m-%dT%H:%M:%S.000Z")


@pytest.mark.parametrize(
    "faults",
    [
        Faults(schedule={1: Fault.THROTTLE, 2: Fault.THROTTLE, 5: Fault.THROTTLE}, retry_after_s=2),
        Faults(schedule={2: Fault.THROTTLE_BARE, 3: Fault.THROTTLE_BARE}),
        Faults(schedule={1: Fault.SERVER_ERROR, 4: Fault.UNAVAILABLE, 6: Fault.SERVER_ERROR}),
        Faults(schedule={3: Fault.DROP, 4: Fault.DROP, 7: Fault.TRUNCATE}),
        Faults(schedule={2: Fault.SLOW, 5: Fault.SLOW}, slow_s=0.6),
        Faults(unknown_keys=True),
        Faults(rates={Fault.SERVER_ERROR: 0.15, Fault.DROP: 0.1, Fault.TRUNCATE: 0.1}),
    ],
    ids=["429-retry-after", "429-bare", "5xx", "drop-truncate", "slow", "unknown-keys", "mixed"],
)
def test_every_fault_is_survived_with_the_fault_free_result(tmp_path: Path, faults: Faults) -> None:
    with emulator(faults=faults, seed=3) as emu:
        sleeps: list[float] = []
        timeouts = {"connect": 2.0, "read": 0.3, "write": 2.0, "pool": 2.0}
        (report,) = sync(emu, tmp_path, sleeps=sleeps, timeouts=timeouts)
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path), emu.expected_contacts())
        assert quarantined(emu, tmp_path).height == 0
        stats = emu.stats
        hit = [stats.injected_429, stats.server_errors_5xx, stats.dropped, stats.truncated]
        injected = sum(hit) + stats.slowed
        assert (
            injected == len(faults.schedule)
            if faults.schedule
            else injected > 0 or not faults.rates
        )
        if faults.retry_after_s == 2:
            assert 2.0 in sleeps  # Retry-After honoured (the sleep is injected)


def test_records_changing_while_paging_lose_nothing(tmp_path: Path) -> None:
    recent = (NOW - T0).total_seconds() - 60
    fresh = pl.DataFrame([seg("800", 1, at=recent, outcome="abandoned")], schema=CONTACTS)
    late = pl.DataFrame([seg("900", 1, at=0)], schema=CONTACTS)  # before everything
    with emulator() as emu:
        served = emu.records("conversations")
        last = str(served[-1]["fields"][0]["field"]["value"])  # on the last page

        def while_paging(n: int) -> None:
            if n == 3:  # a new conversation arrives, one not read yet changes
                emu.add_contacts(fresh)
                emu.update_records([last], outcome="abandoned", answered_at=None, talk_ms=0)

        emu.add_hook(while_paging)
        (report,) = sync(emu, tmp_path, per_page=10)
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path), emu.expected_contacts())

        state = StateStore(tmp_path / "state").get("dixa", "conversations")
        assert state is not None  # re-read from T0: 900 is first in the first window
        lookback = {"per_page": 10, "lookback_minutes": (state.cursor - T0).total_seconds() / 60}
        emu.add_hook(lambda n: emu.add_contacts(late) if n == report.pages + 4 else None)
        (again,) = sync(emu, tmp_path, **lookback)  # 900 shifts the pages: one record comes twice
        assert again.ok, again.error
        rows = synced(emu, tmp_path, **lookback)
        assert rows.select(pl.struct("contact_id", "segment_no").is_unique().all()).item()
        assert "900" not in rows["contact_id"]  # it arrived behind the reader...
        (third,) = sync(emu, tmp_path, **lookback)  # ...and the lookback picks it up
        assert third.ok, third.error
        assert_frame_equal(synced(emu, tmp_path), emu.expected_contacts())


def test_resync_is_idempotent_and_the_lookback_picks_up_late_changes(tmp_path: Path) -> None:
    with emulator() as emu:
        sync(emu, tmp_path)
        before = synced(emu, tmp_path)
        (again,) = sync(emu, tmp_path)
        assert again.ok
        assert_frame_equal(synced(emu, tmp_path), before)
        recent = pl.col("offered_at") > NOW - timedelta(hours=20)
        truth = emu.expected_contacts()
        # a contact with one segment (a transfer has two, and the update changes both)
        single = truth.group_by("contact_id").len().filter(pl.col("len") == 1)["contact_id"]
        one_segment = pl.col("contact_id").is_in(single.implode())
        answered = truth.filter(recent & one_segment & (pl.col("outcome") == "answered"))
        waiting = answered["contact_id"][0]
        emu.update_records([waiting], outcome="abandoned", answered_at=None, talk_ms=0)
        (late,) = sync(emu, tmp_path, lookback_minutes=24 * 60)
        assert late.ok
        after = synced(emu, tmp_path)
        assert_frame_equal(after, emu.expected_contacts())
        assert after.filter(pl.col("contact_id") == waiting)["outcome"].to_list() == ["abandoned"]
        assert after.height == before.height


def test_a_change_sent_without_its_updated_at_is_not_lost_to_the_last_stamped_version(
    tmp_path: Path,
) -> None:
    """Dixa stops sending the mapped ``updated_at`` field (dropped from the records, as a
    tenant's field catalogue can change), and a conversation changes. Its new version lands
    without a stamp; taken as older than any stamp, it lost to the version synced before, and
    this and every later change were ignored for good, exit 0. As new as its fetch, it wins."""

    def without_stamp(n: int, request: Request, response: Response) -> Response:
        body = response.payload
        if request.method != "POST" or not isinstance(body, dict) or "data" not in body:
            return response
        records = [
            r | {"fields": [f for f in r.get("fields", []) if f.get("name") != "updated_at"]}
            for r in body["data"]
        ]
        return Response(response.status, body | {"data": records}, response.headers)

    with emulator() as emu:
        assert all(r.ok for r in sync(emu, tmp_path))
        truth = emu.expected_contacts()
        single = truth.group_by("contact_id").len().filter(pl.col("len") == 1)["contact_id"]
        recent = (pl.col("offered_at") > NOW - timedelta(hours=20)) & (
            pl.col("outcome") == "answered"
        )
        changed = truth.filter(recent & pl.col("contact_id").is_in(single.implode()))
        cid = changed["contact_id"][0]
        emu.update_records([cid], outcome="abandoned", answered_at=None, talk_ms=0)
        emu.add_rewrite(without_stamp)
        (late,) = sync(emu, tmp_path, lookback_minutes=24 * 60)
        assert late.ok, late.error
        after = synced(emu, tmp_path).filter(pl.col("contact_id") == cid)
    assert after["outcome"].to_list() == ["abandoned"]
    assert after["updated_at"].to_list() == [None]  # the stamp it came without


def test_the_vendor_rate_limit_is_never_hit(tmp_path: Path) -> None:
    """The client's limiter keeps under the vendor's. Its margin absorbs the jitter between a
    request's start and its arrival: 0.1 s was hit once (one 429) on a machine at load 9.6."""
    with emulator(NORMAL, rate_limit_per_s=10, rate_limit_burst=4) as emu:
        limits = {"rate_limit_per_s": 10.0, "rate_limit_burst": 4, "rate_limit_margin_s": 0.3}
        (report,) = sync(emu, tmp_path, per_page=1, window_hours=6, **limits)
        assert report.ok, report.error
        assert emu.stats.requests >= 12
        assert emu.stats.rate_limited_429 == 0
        assert report.throttled == report.retries == 0
        admitted = [e.monotonic for e in emu.request_log]
        assert all(sum(t <= u < t + 0.4 for u in admitted) <= 4 for t in admitted)
        assert all(sum(t <= u < t + 1.0 for u in admitted) <= 10 for t in admitted)
        assert_frame_equal(synced(emu, tmp_path), NORMAL)


def test_no_secret_and_no_pii_in_the_run_dirs_or_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults(schedule={2: Fault.SERVER_ERROR, 3: Fault.THROTTLE_BARE})
    with emulator(faults=faults) as emu:
        sync(emu, tmp_path)
        pii: set[str] = set()
        for record in emu.records("conversations"):
            for f in record["fields"]:
                if f["name"].startswith("requester_"):
                    pii |= {str(f["field"]["value"]).lstrip("+"), str(f["field"]["label"])}
                elif f["name"] == "agent_id":
                    pii.add(f["field"]["label"])  # the agent's name (the id is not PII)
        blob = caplog.text + "".join(
            p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()
        )
        landed = scan_landed(tmp_path / "landing", "dixa", "conversations").collect()
        blob += "".join(landed["payload"])
        for secret in (TOKEN, KEY.get_secret_value()):
            assert secret not in blob
        assert [v for v in pii if v in blob] == []
        hashed = [json.loads(p) for p in landed["payload"] if "requester_phone" in p]
        assert hashed
        phone = next(f for f in hashed[0]["fields"] if f["name"] == "requester_phone")
        assert len(phone["field"]["value"]) == 64
        assert "label" not in phone["field"]


def test_unknown_type_survives_as_a_string(tmp_path: Path) -> None:
    with emulator(unknown_type=True) as emu:
        (report,) = sync(emu, tmp_path)
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path), emu.expected_contacts())
        landed = scan_landed(tmp_path / "landing", "dixa", "conversations")
        odd = decode_fields(landed).filter(pl.col("name") == "sentiment").collect()
        assert odd.height == emu.expected_contacts().height
        assert set(odd["type"]) == {"SentimentField"}
        assert odd["string"].null_count() == 0
        assert json.loads(odd["string"][0])["model"] == {"v": 2}
        assert (
            odd.select(
                pl.sum_horizontal(pl.col("long", "double", "timestamp").is_not_null().sum())
            ).item()
            == 0
        )


def edge(landed: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Landed conversations mapped with the default mapping and validated, as a run does."""
    stream = DIXA.configured(DixaSettings()).streams[0]
    return validated(normalise_stream(DIXA, stream, landed), "contacts")


def test_a_mapped_field_of_an_unknown_type_is_read_from_its_text() -> None:
    fields = [
        {"name": "csid", "field": {"value": 77, "_type": "LongField"}},
        {"name": "offer_number", "field": {"value": "1", "_type": "OfferNumberField"}},
        {
            "name": "initial_channel",
            "field": {"value": "SMS", "label": "SMS", "_type": "StringField"},
        },
        {"name": "queue_id", "field": {"value": "q", "label": "Q", "_type": "StringField"}},
        {
            "name": "offered_at",
            "field": {"value": "2024-05-01T10:00:00.250Z", "_type": "InstantField"},
        },
        {"name": "queue_outcome", "field": {"value": "ABANDONED", "_type": "StringField"}},
        {"name": "queue_time", "field": {"value": {"seconds": 3}, "_type": "DurationField"}},
        {"name": "message_count", "field": {"value": 3, "_type": "CountField"}},
        {"name": "tag_ids", "field": {"value": [{"id": 1}], "_type": "ListField"}},
    ]
    landed = pl.LazyFrame({"record_id": ["77:1"], "payload": [json.dumps({"fields": fields})]})
    _, bad = pl.collect_all(list(edge(landed)))
    assert bad["reason"].to_list() == ["wrong_type"]  # the object-valued duration
    assert bad["raw"].to_list() == [landed.collect()["payload"][0]]
    fields[6]["field"] = {"value": "3.5", "_type": "DurationField"}
    again = pl.LazyFrame({"record_id": ["77:1"], "payload": [json.dumps({"fields": fields})]})
    good = edge(again)[0].collect()
    assert good.select("channel", "wait_ms", "messages").row(0) == ("messaging", 3_500, 3)
    assert good["offered_at"][0] == datetime(2024, 5, 1, 10, 0, 0, 250_000, tzinfo=UTC)


def test_bad_records_are_quarantined_with_their_raw_payload(tmp_path: Path) -> None:
    with emulator(NORMAL) as emu:
        good = emu.records("conversations")
        at = good[0]["primaryTimestampField"]
        base = good[0]["fields"]

        def variant(csid: int, **changes: Any) -> dict[str, Any]:
            out = []
            for f in base:
                value = changes.get(f["name"], f["field"])
                if f["name"] == "csid":
                    value = {"value": csid, "_type": "LongField"}
                if value is not None:
                    out.append({"name": f["name"], "field": value})
            return {"primaryTimestampField": at, "fields": out}

        emu.add_raw_records(
            "conversations",
            [
                variant(901, offered_at={"value": "yesterday", "_type": "TimestampField"}),
                variant(902, initial_channel={"value": "PIGEON", "_type": "StringField"}),
                variant(903, talk_time={"value": -5.0, "_type": "DoubleField"}),
                variant(904, queue_time={"value": "soon", "_type": "DoubleField"}),
                variant(905, queue_outcome={"value": "EXPLODED", "_type": "StringField"}),
                # past any integer millisecond: it was read as absent, a talk time of 0
                variant(907, talk_time={"value": 1e300, "_type": "DoubleField"}),
                {"primaryTimestampField": at, "fields": [{"name": "offer_number", "field": {}}]},
                {"primaryTimestampField": at, "fields": {"csid": 906}},
            ],
        )
        (report,) = sync(emu, tmp_path)
        assert report.ok, report.error
        assert_frame_equal(synced(emu, tmp_path), NORMAL)
        bad = quarantined(emu, tmp_path)
        assert sorted(zip(bad["record_id"], bad["reason"], strict=True)) == [
            ("901:1", "unparsable_timestamp"),
            ("902:1", "unknown_channel"),
            ("903:1", "negative_duration"),
            ("904:1", "wrong_type"),
            ("905:1", "unknown_outcome"),
            ("907:1", "implausible_duration"),
            ("?", "missing_record_id"),  # set aside at landing: no csid
            ("?", "wrong_type"),  # set aside at landing: fields is not a list
        ]
        assert bad.height == 8
        assert all("Freja" not in raw and "@example.com" not in raw for raw in bad["raw"])
        assert sum(report.rejected.values()) == 2


def test_half_an_emoji_in_a_record_lands_it_with_the_replacement_character(
    tmp_path: Path,
) -> None:
    """A conversation whose queue text ends in a lone surrogate escape (an emoji cut in half)
    stopped every sync at its page with a traceback: no UTF-8 store can hold it. It now lands
    with U+FFFD in its place and is counted like the others."""
    with emulator(NORMAL) as emu:
        good = emu.records("conversations")
        at, fields = good[0]["primaryTimestampField"], []
        for f in good[0]["fields"]:
            value = {"csid": {"value": 907, "_type": "LongField"},
                     "queue_id": {"value": "Sales \ud83d", "_type": "StringField"}}  # fmt: skip
            fields.append({"name": f["name"], "field": value.get(f["name"], f["field"])})
        emu.add_raw_records("conversations", [{"primaryTimestampField": at, "fields": fields}])
        (report,) = sync(emu, tmp_path)
        assert report.ok, report.error
        rows, bad = synced(emu, tmp_path), quarantined(emu, tmp_path)
    assert rows.filter(pl.col("contact_id") == "907")["queue_id"].to_list() == ["Sales \ufffd"]
    assert_frame_equal(rows.filter(pl.col("contact_id") != "907"), NORMAL)
    assert bad.height == 0


def test_unknown_record_id_fails_fast_naming_the_setting(tmp_path: Path) -> None:
    with emulator() as emu:
        with pytest.raises(
            ConfigError, match=r"^sources\.dixa\.record_ids: unknown record id 'calls'"
        ):
            sync(emu, tmp_path, record_ids=("conversations", "calls"))
        assert emu.stats.by_path == {"/v1/analytics/records": 1}  # only the catalogue was read
        assert not (tmp_path / "state").exists()


def test_a_failed_catalogue_read_names_the_source(tmp_path: Path) -> None:
    """The records catalogue, read before any stream, given up on (503s): its line named no
    source (``gave up after 3 attempts: HTTP 503 (url)``), where every stream's error names
    its stream."""
    with emulator() as emu:
        emu.faults = Faults(rates={Fault.UNAVAILABLE: 1.0})
        with pytest.raises(ConnectorError) as raised:
            sync(emu, tmp_path, max_retries=2)
    line = str(raised.value)
    assert line.startswith("dixa: gave up after 3 attempts: HTTP 503 ("), line
    assert line.endswith("/v1/analytics/records?pageLimit=100)")


def test_cli_sync_exits_2_on_an_unknown_record_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.cli.main import cli

    with emulator() as emu:
        env = {
            "WFM_SOURCES__DIXA__ENABLED": "true",
            "WFM_SOURCES__DIXA__BASE_URL": emu.base_url,
            "WFM_SOURCES__DIXA__API_TOKEN": TOKEN,
            "WFM_SOURCES__DIXA__PII_HASH_SECRET": KEY.get_secret_value(),
            "WFM_SOURCES__DIXA__RECORD_IDS": '["nope"]',
            "WFM_STORE__LANDING": str(tmp_path / "landing"),
            "WFM_STORE__STATE": str(tmp_path / "state"),
        }
        monkeypatch.chdir(tmp_path)
        result = invoke(cli, ["sync", "dixa"], env)
        assert result.exit_code == 2, result.output
        assert "sources.dixa.record_ids: unknown record id 'nope'" in result.output
        assert TOKEN not in result.output
        env["WFM_SOURCES__DIXA__RECORD_IDS"] = '["conversations"]'
        ok = invoke(cli, ["sync", "dixa", "--json"], env)
        assert ok.exit_code == 0, ok.output
        assert json.loads(ok.stdout)["pulled"][0]["landed"] > 0


def test_a_custom_mapping_reads_another_record_id(tmp_path: Path) -> None:
    mapping = {
        "csid": "contact_id",
        "initial_channel": "channel",
        "initial_direction": "direction",
        "queue_id": "queue_id",
        "queue_id.label": "queue_name",
        "closed_at": "offered_at",
        "closed_by": "outcome",
    }
    outcomes = {"AGENT": "answered", "ENDUSER": "abandoned", "UNKNOWN": "flow_out"}
    custom = {
        "record_ids": ("closed_conversations",),
        "field_mapping": mapping,
        "outcome_map": outcomes,
    }
    with emulator(NORMAL) as emu:
        (report,) = sync(emu, tmp_path, **custom)
        assert report.ok, report.error
        rows = synced(emu, tmp_path, **custom)
        assert rows["contact_id"].to_list() == [
            "101",
            "102",
            "103",
            "201",
            "202",
            "203",
            "204",
            "205",
        ]
        assert set(rows["segment_no"]) == {1}
        assert rows.filter(pl.col("contact_id") == "102")["queue_id"].to_list() == ["q-billing"]
        assert rows.filter(pl.col("contact_id") == "103")["outcome"].to_list() == ["abandoned"]


def test_settings_are_validated_with_one_line_per_problem() -> None:
    bad = {
        "timezone": "Mars/Olympus",
        "per_page": 301,
        "field_mapping": {"csid": "contact_id", "x.value": "queue_id"},
        "channel_map": {"FAX": "fax"},
        "base_url": "http://dixa.example.com",
    }
    with pytest.raises(ValidationError) as info:
        load_settings(env_file=None, sources={"dixa": bad})
    lines = describe_errors(info.value)
    where = [line.split(":")[0] for line in lines]
    assert where == [
        "sources.dixa.base_url",
        "sources.dixa.per_page",
        "sources.dixa.timezone",
        "sources.dixa.field_mapping",
        "sources.dixa.channel_map",
    ]
    with pytest.raises(ValidationError, match="required when enabled: api_token, pii_hash_secret"):
        DixaSettings(enabled=True, base_url="https://dev.dixa.io")
    with pytest.raises(ValidationError, match="no record field maps to outcome"):
        DixaSettings(
            field_mapping={k: v for k, v in DEFAULT_FIELD_MAPPING.items() if v != "outcome"}
        )


class _RepeatingKey(DixaEmulator):
    """A broken server whose next-page key never changes (and always serves page one)."""

    KEY = "c2FtZQ=="

    def route(self, request: Request) -> Response:
        if request.method == "POST":
            request = replace(request, query={"pageLimit": ["2"]})
        response = super().route(request)
        if request.method == "POST" and response.status == 200:
            assert isinstance(response.payload, dict)
            return Response(200, response.payload | {"meta": {"next": self.KEY}})
        return response


def test_a_repeated_page_key_stops_the_stream_with_an_error(tmp_path: Path) -> None:
    with _RepeatingKey(NORMAL, token=TOKEN, rate_limit_per_s=None) as emu:
        (report,) = sync(emu, tmp_path)
        assert not report.ok
        # the key's page repeats page one's records: stopped there, before the loop guard
        assert "repeated_page violated: page 2" in str(report.error)
        assert emu.stats.requests == 3  # the catalogue, page one, the key once: never again


def test_refused_credentials_fail_fast_in_one_line_without_the_token(tmp_path: Path) -> None:
    with emulator() as emu:
        settings = make_settings(emu, api_token=SecretStr("wrong-" + TOKEN))
        with pytest.raises(AuthError) as info:
            sync_source(DIXA, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s")
        assert emu.stats.unauthorized_401 == 1
    message = str(info.value)  # the source named, and the setting to check
    assert message.startswith("dixa: HTTP 401")
    assert message.endswith("; check sources.dixa.api_token (`wfm-intervals config show --origin`"
                            " says where it is set)")  # fmt: skip
    assert "\n" not in message
    assert TOKEN not in message


def test_an_unreachable_source_fails_naming_the_url(tmp_path: Path) -> None:
    with emulator() as emu:
        settings, origin = make_settings(emu, max_retries=1), emu.origin
    with pytest.raises(ConnectorError) as info:  # the emulator has stopped: the port refuses
        sync_source(
            DIXA, settings, landing_root=tmp_path / "l", state_root=tmp_path / "s", sleep=id
        )
    assert f"{origin}/v1/analytics/records" in str(info.value)
    assert TOKEN not in str(info.value)
