"""``serve`` end to end: the project's own connectors sync from it with zero differences, and
its documents are the commands' own."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import polars as pl
import pytest
from click.testing import CliRunner
from deltalake import DeltaTable
from pydantic import SecretStr

from connectors.source import TimeoutSettings
from connectors.state import StateStore
from connectors.sync import sync_stream
from connectors.vendors.kore.client import KORE, KoreSettings
from connectors.vendors.mindful.client import MindfulSettings, fetch_metrics
from engine.cli.main import cli
from engine.output import delta
from engine.output import files as outputs
from engine.output.store import requests_of, write_attempts
from engine.tables import callback_metrics
from engine.tables.compare import compare_callvolume, compare_documents
from tests.connectors.kore_support import DAY, NOW, imported
from tests.engine.serve_support import (
    APP_ID,
    CLIENT_ID,
    CLIENT_SECRET,
    KORE_SECRET,
    ORG_ID,
    TOKEN,
    WINDOW,
    attempts,
    ours,
    running,
    write_store,
)

ACCOUNT = "acc-serve"
KORE_URL = f"/agentassist/api/public/analytics/account/{ACCOUNT}/callvolume"
METRICS = "/v2/callback/historical/metrics"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("serve") / "out")


@pytest.fixture(scope="module")
def origin(store: Path) -> Iterator[str]:
    with running(store) as url:
        yield url


def auth() -> dict[str, str]:
    return {"auth": jwt.encode({"appId": APP_ID}, KORE_SECRET, algorithm="HS256")}


def test_kore_connector_syncs_from_serve_with_zero_differences(origin: str, tmp_path: Path) -> None:
    s = KoreSettings(
        enabled=True, base_url=origin, account_id=ACCOUNT, org_id=ORG_ID, app_id=APP_ID,
        client_secret=SecretStr(KORE_SECRET), start=DAY, per_page=100,
        rate_limit_per_s=1000.0, rate_limit_burst=1000, rate_limit_period_s=1.0,
        timeouts=TimeoutSettings(read=10.0),
    )  # fmt: skip
    source = KORE.configured(s)
    with source.client(s, None) as client:
        report = sync_stream(
            source, source.streams[0], s, client=client, landing_root=tmp_path / "landing",
            state=StateStore(tmp_path / "state"), limiter=s.limiter(), sleep=lambda _: None,
            now=lambda: NOW,
        )  # fmt: skip
    assert report.ok, report.error
    theirs = imported(tmp_path)
    assert theirs.height > 100  # more than one page was walked
    assert compare_callvolume(ours().lazy(), theirs.lazy(), tolerance=0).collect().height == 0


def test_mindful_metrics_fetched_from_serve_equal_our_document(origin: str) -> None:
    s = MindfulSettings.model_validate(
        {"enabled": True, "base_url": origin, "token_url": f"{origin}/oauth2/token",
         "client_id": CLIENT_ID, "client_secret": SecretStr(CLIENT_SECRET),
         "pii_hash_secret": SecretStr("p" * 32), "rate_limit_per_s": 500.0}
    )  # fmt: skip
    reqs = requests_of(attempts())
    begin, end = WINDOW[0], WINDOW[0].replace(hour=12)
    target = attempts()["call_target_id"].unique().sort()[0]
    for filters in ({}, {"type": "asap"}, {"call_target_id": target, "source_type": "voice"}):
        theirs = fetch_metrics(s, begin, end, **filters)
        mine = callback_metrics.document(reqs, begin=begin, end=end, **filters)
        assert sum(mine["data"]["outcomes"].values()) > 0, "the window has requests"
        assert compare_documents(mine, theirs, tolerance={}) == []


def test_a_page_is_export_contact_volumes_page(origin: str, store: Path) -> None:
    body = {"orgId": ORG_ID, "toTimeStamp": "2030-01-01T00:00:00Z", "skip": 150, "limit": 40}
    served = httpx.post(origin + KORE_URL, json=body, headers=auth()).json()
    args = ["export", "contact-volume", "--store", str(store), "--skip", "150", "--limit", "40"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert served == json.loads(result.stdout)  # a log line of the server's may be on stderr
    assert served["hasMore"] is True
    assert len(served["CallVolumeUpdate"]) == 40


def test_the_window_selects_interval_starts_and_pages_to_the_end(origin: str) -> None:
    since, until = "2026-10-02T00:00:00Z", "2026-10-02T06:00:00Z"
    body = {"orgId": ORG_ID, "fromTimeStamp": since, "toTimeStamp": until, "limit": 1000}
    served = httpx.post(origin + KORE_URL, json=body, headers=auth()).json()
    starts = {r["intervalStartTimeStamp"] for r in served["CallVolumeUpdate"]}
    assert min(starts) == "2026-10-02T00:00:00.000Z"
    assert max(starts) == "2026-10-02T05:45:00.000Z"
    pairs = ours().select("queue_id", "channel").unique().height
    assert served["totalCount"] == 24 * pairs == len(served["CallVolumeUpdate"])
    assert served["hasMore"] is False
    last = httpx.post(
        origin + KORE_URL, json=body | {"skip": served["totalCount"] - 1}, headers=auth()
    )
    assert (last.json()["hasMore"], len(last.json()["CallVolumeUpdate"])) == (False, 1)


def test_metrics_take_both_time_forms_and_a_list_of_targets(origin: str) -> None:
    targets = attempts()["call_target_id"].unique().sort().to_list()[:2]
    head = {"Authorization": f"Bearer {TOKEN}"}
    day = {"timeBegin": "2026-10-01", "timeEnd": "2026-10-02", "callTargetId": ",".join(targets)}
    instants = day | {"timeBegin": "2026-10-01T00:00:00Z", "timeEnd": "2026-10-02T00:00:00Z"}
    a = httpx.get(origin + METRICS, params=day, headers=head)
    b = httpx.get(origin + METRICS, params=instants, headers=head)
    assert a.status_code == b.status_code == 200
    assert a.json() == b.json()
    mine = callback_metrics.document(
        requests_of(attempts()), begin=WINDOW[0], end=WINDOW[0].replace(day=2),
        call_target_id=",".join(targets),
    )  # fmt: skip
    assert a.json() == json.loads(json.dumps(mine))


def test_a_store_deleted_and_built_again_is_served_anew(tmp_path: Path) -> None:
    """A store removed and built again into the same folder (a second ``demo``, a rebuild)
    ends at the version the first had: it was served from the cache as the old store (642
    callbacks where the new one has 267; Contact Volume likewise), 200 OK, until a restart."""
    root = write_store(tmp_path / "out")
    table = root / "store" / "callvolume"
    body = {"orgId": ORG_ID, "toTimeStamp": "2030-01-01T00:00:00Z", "limit": 1}
    head = {"Authorization": "Bearer " + TOKEN}
    day = {"timeBegin": "2026-10-01", "timeEnd": "2026-10-02"}
    with running(root, recheck_s=0.0) as url:
        volume = httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"]
        calls = httpx.get(url + METRICS, params=day, headers=head).json()
        version = delta.version(table)
        shutil.rmtree(root / "store")
        outputs.write_store(ours().head(7), table, by="interval_start_utc")
        write_attempts(attempts().head(40), root / "store" / "callback_attempts")
        assert delta.version(table) == version  # the same version: only the table is new
        assert volume != 7
        assert httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"] == 7
        assert httpx.get(url + METRICS, params=day, headers=head).json() != calls


def test_only_committed_versions_are_served_and_a_new_commit_is_picked_up(tmp_path: Path) -> None:
    root = write_store(tmp_path / "out")
    table = root / "store" / "callvolume"
    body = {"orgId": ORG_ID, "toTimeStamp": "2030-01-01T00:00:00Z", "limit": 1}
    with running(root, recheck_s=0.0) as url:
        before = httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"]
        # a writer's data file without its commit (a run killed mid-write) changes nothing
        ours().head(5).write_parquet(table / "torn-uncommitted.parquet")
        assert httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"] == before
        version = delta.version(table)
        outputs.write_store(ours().head(7), table, by="interval_start_utc")
        assert delta.version(table) == version + 1
        assert httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"] == 7
    assert pl.read_delta(str(table)).height == 7


def test_a_table_created_without_its_rows_is_503_never_an_empty_page(tmp_path: Path) -> None:
    """A first build created the volume table empty (version 0), then committed its rows
    (version 1): served between the two, it was 200 with ``totalCount`` 0, a syncing client told
    there is no data. The store now creates a table with its first rows in one commit, and a
    table created empty by an earlier release is served as no table (503) until its rows."""
    root = write_store(tmp_path / "out")
    table = root / "store" / "callvolume"
    assert delta.version(table) == 0  # created with its rows: no version without them
    assert pl.read_delta(str(table), version=0).height == ours().height
    shutil.rmtree(table)
    arrow = delta.arrow_schema(ours().with_columns(delta.days_of("interval_start_utc")))
    DeltaTable.create(str(table), schema=arrow, partition_by=[delta.PARTITION])  # as releases did
    body = {"orgId": ORG_ID, "toTimeStamp": "2030-01-01T00:00:00Z", "limit": 1}
    with running(root, recheck_s=0.0) as url:
        empty = httpx.post(url + KORE_URL, json=body, headers=auth())
        assert (empty.status_code, empty.json()) == (
            503,
            {"errors": [{"msg": "Service Unavailable", "code": 503}]},
        )
        outputs.write_store(ours().head(7), table, by="interval_start_utc")
        assert httpx.post(url + KORE_URL, json=body, headers=auth()).json()["totalCount"] == 7
