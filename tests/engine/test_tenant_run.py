"""Several tenants of one vendor in one configuration (a BPO; issue 14 item 4), end to end:
two UJET emulators on loopback, each with its own credentials and its own traffic, named by
``[tenants.acme]`` and ``[tenants.beta]`` of one file.

Each tenant's store equals a single-tenant run of its data, value for value; the tenants'
landing stores, states (and locks) and outputs are disjoint folders; ``--tenant`` runs one; a
second run is incremental per tenant; a tenant that fails does not stop the others, and the exit
code is the worst; no tenant's secret appears in another's files, or in any output or log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import Result
from polars.testing import assert_frame_equal

from connectors.emulator import UjetEmulator
from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.demo.stack import write_toml
from engine.output import delta
from tests.engine.run_support import T0, table
from tests.engine.run_support import clean_environment as _clean
from tests.environment import invoke

TENANTS = ("acme", "beta")
#: Each tenant's secrets, by the variables that give them (and the emulator's password).
SECRETS = {
    name: {
        f"WFM_TENANTS__{name.upper()}__SOURCES__UJET__PASSWORD": f"{name}-pw-{n}7Zq-never-logged",
        f"WFM_TENANTS__{name.upper()}__SOURCES__UJET__PII_HASH_SECRET": f"{name}-hmac-{n}3Yk-x",
    }
    for n, name in enumerate(TENANTS)
}
ENV = SECRETS["acme"] | SECRETS["beta"]
_FAST = {"rate_limit_per_s": 1000.0, "retry_base_s": 0.001, "retry_max_s": 0.01, "max_retries": 3}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


def _password(name: str) -> str:
    return SECRETS[name][f"WFM_TENANTS__{name.upper()}__SOURCES__UJET__PASSWORD"]


def _hmac(name: str) -> str:
    return SECRETS[name][f"WFM_TENANTS__{name.upper()}__SOURCES__UJET__PII_HASH_SECRET"]


@pytest.fixture
def ujet(now: datetime) -> Iterator[dict[str, UjetEmulator]]:
    """One UJET emulator per tenant: its own credentials and its own day of traffic."""
    emulators: dict[str, UjetEmulator] = {}
    try:
        for seed, name in enumerate(TENANTS, start=11):
            contacts = generate_contacts(seed=seed, start=T0, days=1, scale=0.03, source="ujet")
            channel = pl.col("channel").cast(pl.String)
            chat_out = (channel == "chat") & (pl.col("direction").cast(pl.String) == "outbound")
            served = contacts.filter(channel.is_in(["voice", "chat"]) & ~chat_out)
            emulator = UjetEmulator(
                served, username=f"{name}-key", password=_password(name), rate_limit_per_s=None
            )
            emulators[name] = emulator.__enter__()
        yield emulators
    finally:
        for emulator in emulators.values():
            emulator.__exit__(None, None, None)


def _bpo(root: Path, ujet: dict[str, UjetEmulator]) -> Path:
    """The BPO's file: UJET in the base, each tenant's account in its table (no secrets)."""
    root.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {
        "sources.ujet": {"enabled": True, "start": T0, **_FAST},
        "store": {"landing": str(root / "landing"), "state": str(root / "state")},
        "output": {"dir": str(root / "out"), "vendor_profiles": ["genesys"]},
        "run": {"lookback_minutes": 60, "report": False},
    }
    for name in TENANTS:
        tables[f"tenants.{name}.sources.ujet"] = {
            "base_url": ujet[name].base_url,
            "username": f"{name}-key",
        }
    return write_toml(root / "bpo.toml", tables)


def _single(root: Path, emulator: UjetEmulator, name: str) -> tuple[Path, dict[str, str]]:
    """A configuration of one tenant's account alone (no tenants), and its secrets."""
    root.mkdir(parents=True, exist_ok=True)
    tables: dict[str, dict[str, Any]] = {
        "sources.ujet": {
            "enabled": True,
            "start": T0,
            "base_url": emulator.base_url,
            "username": f"{name}-key",
            **_FAST,
        },
        "store": {"landing": str(root / "landing"), "state": str(root / "state")},
        "output": {"dir": str(root / "out"), "vendor_profiles": ["genesys"]},
        "run": {"lookback_minutes": 60, "report": False},
    }
    env = {
        "WFM_SOURCES__UJET__PASSWORD": _password(name),
        "WFM_SOURCES__UJET__PII_HASH_SECRET": _hmac(name),
    }
    return write_toml(root / "single.toml", tables), env


def _invoke(args: list[str], config: Path, env: dict[str, str] | None = None) -> Result:
    given = ENV if env is None else env  # the emulators' threads run: the process's untouched
    return invoke(cli, [*args, "--config", str(config)], given, catch_exceptions=False)


def _stored(out: Path) -> dict[str, pl.DataFrame]:
    return {p.name: table(out, p.name) for p in sorted((out / "store").iterdir()) if p.is_dir()}


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_each_tenant_is_its_own_store_equal_to_a_single_tenant_run(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    config = _bpo(tmp_path / "bpo", ujet)
    ran = _invoke(["run", "--json", "--quiet"], config)
    assert ran.exit_code == 0, ran.output
    assert ran.stderr == ""
    doc = json.loads(ran.stdout)
    assert (doc["ok"], doc["exit_code"]) == (True, 0)
    assert [t["tenant"] for t in doc["tenants"]] == list(TENANTS)
    assert all(t["exit_code"] == 0 and t["window"]["full_rebuild"] for t in doc["tenants"])
    root = tmp_path / "bpo"
    for folder in ("landing", "state", "out"):  # every file of a tenant in its own folder
        assert [p.name for p in (root / folder).iterdir()] == ["tenants"]
        assert sorted(p.name for p in (root / folder / "tenants").iterdir()) == list(TENANTS)
    for name in TENANTS:
        assert (root / "state" / "tenants" / name / "wfm-intervals.lock").is_file()
        summary = json.loads((root / "out" / "tenants" / name / "run_summary.json").read_text())
        assert summary["segments"] == ujet[name].expected_contacts().height > 0

    stores = {name: _stored(root / "out" / "tenants" / name) for name in TENANTS}
    assert not stores["acme"]["contacts"].equals(stores["beta"]["contacts"])  # not one source
    for name in TENANTS:  # value for value: each tenant as if it ran alone
        single, env = _single(tmp_path / f"single-{name}", ujet[name], name)
        alone = _invoke(["run", "--json", "--quiet"], single, env)
        assert alone.exit_code == 0, alone.output
        assert "tenant" not in json.loads(alone.stdout)  # no tenants: the summary as before
        assert sorted(p.name for p in (tmp_path / f"single-{name}" / "landing").iterdir()) == [
            "raw"
        ]  # no tenant folder without tenants
        want = _stored(tmp_path / f"single-{name}" / "out")
        assert sorted(stores[name]) == sorted(want)
        assert {"contacts", "callvolume", "staffing"} <= set(want)
        for key, frame in want.items():
            assert_frame_equal(stores[name][key], frame, check_row_order=False)
        exports = root / "out" / "tenants" / name / "exports"
        single_exports = tmp_path / f"single-{name}" / "out" / "exports"
        assert (exports / "callvolume.csv").read_text() == (
            single_exports / "callvolume.csv"
        ).read_text()

    for name, other in (("acme", "beta"), ("beta", "acme")):  # no secret crosses over
        theirs = [s.encode() for s in SECRETS[other].values()]
        mine = [s.encode() for s in SECRETS[name].values()]
        for folder in ("landing", "state", "out"):
            for path in _files(root / folder / "tenants" / name):
                data = path.read_bytes()
                assert not [s for s in theirs + mine if s in data], path
    assert not [s for s in ENV.values() if s in ran.output]

    for name in TENANTS:  # each tenant's tables read and exported on their own
        page = _invoke(["export", "contact-volume", "--tenant", name, "--limit", "1"], config)
        assert page.exit_code == 0, page.output
        volume = stores[name]["callvolume"]
        assert json.loads(page.stdout)["totalCount"] >= volume.height > 0
        shown = _invoke(["state", "show", "--json", "--tenant", name], config)
        assert [r["exit_code"] for r in json.loads(shown.stdout)["runs"]] == [0]


def test_tenant_runs_one_and_each_tenant_runs_incrementally(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    config = _bpo(tmp_path, ujet)
    only = _invoke(["run", "--json", "--quiet", "--tenant", "acme"], config)
    assert only.exit_code == 0, only.output
    first = json.loads(only.stdout)
    assert (first["tenant"], first["window"]["full_rebuild"]) == ("acme", True)
    assert [p.name for p in (tmp_path / "out" / "tenants").iterdir()] == ["acme"]
    assert not (tmp_path / "state" / "tenants" / "beta").exists()

    both = _invoke(["run"], config)  # text: a summary per tenant, log lines naming the tenant
    assert both.exit_code == 0, both.output
    assert [line for line in both.stdout.splitlines() if line.startswith("tenant ")] == [
        "tenant acme",
        "tenant beta",
    ]
    assert not [s for s in ENV.values() if s in both.output]  # nor in a log line
    steps = [line for line in both.stderr.splitlines() if "event=step step=build" in line]
    assert len(steps) == 2
    assert " tenant=acme " in steps[0]
    assert " tenant=beta " in steps[1]
    acme = json.loads((tmp_path / "out" / "tenants" / "acme" / "run_summary.json").read_text())
    beta = json.loads((tmp_path / "out" / "tenants" / "beta" / "run_summary.json").read_text())
    assert acme["window"]["full_rebuild"] is False  # acme: nothing new since its first run
    assert [p["new"] for p in acme["pulled"]] == [0, 0]
    assert beta["window"]["full_rebuild"] is True  # beta: its first run
    assert all(p["new"] > 0 for p in beta["pulled"])

    out = {name: tmp_path / "out" / "tenants" / name / "store" for name in TENANTS}
    versions = {name: delta.version(out[name] / "contacts") for name in TENANTS}
    late = ujet["beta"].expected_contacts().sort("offered_at").row(0, named=True)
    ujet["beta"].update_records([late["contact_id"]], talk_ms=late["talk_ms"] + 60_000)
    again = _invoke(["run", "--json", "--quiet"], config)
    assert again.exit_code == 0, again.output
    runs = {t["tenant"]: t for t in json.loads(again.stdout)["tenants"]}
    assert [p["new"] for p in runs["acme"]["pulled"]] == [0, 0]
    assert sum(p["new"] for p in runs["beta"]["pulled"]) == 1  # beta's late change, only
    assert delta.version(out["acme"] / "contacts") == versions["acme"]  # acme's store untouched
    assert delta.version(out["beta"] / "contacts") == versions["beta"] + 1
    stored = table(out["beta"].parent, "contacts")
    changed = stored.filter(pl.col("contact_id") == late["contact_id"])
    assert changed["talk_ms"].to_list()[0] == late["talk_ms"] + 60_000
    history = {
        name: json.loads(_invoke(["state", "show", "--json", "--tenant", name], config).stdout)
        for name in TENANTS
    }
    assert len(history["acme"]["runs"]) == 3
    assert len(history["beta"]["runs"]) == 2
    planned = _invoke(["run", "--dry-run", "--json"], config)
    assert planned.exit_code == 0, planned.output
    plans = json.loads(planned.stdout)["tenants"]
    assert [(p["tenant"], p["sources"], p["window"]["full_rebuild"]) for p in plans] == [
        ("acme", ["ujet"], False),
        ("beta", ["ujet"], False),
    ]
    for name in TENANTS:  # each tenant's landing, state and store agree with each other
        checked = _invoke(["verify", "--json", "--tenant", name], config)
        assert checked.exit_code == 0, checked.output
        assert json.loads(checked.stdout)["ok"] is True


def test_a_failing_tenant_does_not_stop_the_others_and_the_worst_exit_code_wins(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    config = _bpo(tmp_path, ujet)
    wrong = ENV | {"WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD": "wrong-pw-Ww19"}
    ran = _invoke(["run", "--json", "--quiet"], config, wrong)
    assert ran.exit_code == 2
    doc = json.loads(ran.stdout)
    assert (doc["ok"], doc["exit_code"]) == (False, 2)
    acme, beta = doc["tenants"]
    assert (acme["tenant"], acme["exit_code"], beta["tenant"], beta["exit_code"]) == (
        "acme",
        2,
        "beta",
        0,
    )
    assert "HTTP 401" in acme["error"]
    lines = ran.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("wfm-intervals: error: tenant acme: ")
    assert "wrong-pw" not in ran.output
    assert (tmp_path / "out" / "tenants" / "beta" / "store" / "callvolume").is_dir()
    assert not (tmp_path / "out" / "tenants" / "acme" / "store").exists()  # nothing built for acme

    lacking = {k: v for k, v in ENV.items() if not k.startswith("WFM_TENANTS__BETA__")}
    synced = _invoke(["sync", "--json"], config, lacking)  # beta lacks its secrets: acme syncs
    assert synced.exit_code == 2
    tenants = json.loads(synced.stdout)["tenants"]
    assert [(t["tenant"], t["exit_code"]) for t in tenants] == [("acme", 0), ("beta", 2)]
    errors = [line for line in synced.stderr.splitlines() if line.startswith("wfm-intervals:")]
    assert errors == [
        "wfm-intervals: error: tenant beta: invalid setting tenants.beta.sources.ujet: required "
        "when enabled: password, pii_hash_secret"
    ]
    streams = [line for line in synced.stderr.splitlines() if "event=sync.stream" in line]
    assert len(streams) == 2  # acme's calls and chats, each line naming the tenant
    assert all(" tenant=acme " in line for line in streams)
    assert not [s for s in ENV.values() if s in synced.output]
    one = _invoke(["sync", "--tenant", "acme"], config, lacking)
    assert one.exit_code == 0, one.output
    assert "sync summary" in one.stdout
    unknown = _invoke(["run", "--tenant", "gamma"], config)
    assert unknown.exit_code == 2
    assert unknown.stderr.splitlines() == [
        "wfm-intervals: error: --tenant gamma: unknown tenant (known: acme, beta)"
    ]


def test_an_existing_install_moved_into_a_tenant_folder_runs_on_incrementally(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """docs/operations.md: a single-tenant install becomes a BPO's tenant by moving its three
    folders into the tenant's; its next run finds everything where it left it."""
    single, env = _single(tmp_path, ujet["acme"], "acme")
    assert _invoke(["run", "--quiet"], single, env).exit_code == 0
    before = _stored(tmp_path / "out")
    for folder in ("landing", "state", "out"):
        (tmp_path / folder).rename(tmp_path / f"{folder}.old")
        (tmp_path / folder / "tenants").mkdir(parents=True)
        (tmp_path / f"{folder}.old").rename(tmp_path / folder / "tenants" / "acme")
    config = _bpo(tmp_path, ujet)  # the same base folders, and tenants
    ran = _invoke(["run", "--json", "--quiet", "--tenant", "acme"], config)
    assert ran.exit_code == 0, ran.output
    summary = json.loads(ran.stdout)
    assert summary["window"]["full_rebuild"] is False
    assert [p["new"] for p in summary["pulled"]] == [0, 0]
    assert summary["repaired"] == []
    after = _stored(tmp_path / "out" / "tenants" / "acme")
    for name, frame in before.items():
        assert_frame_equal(after[name], frame, check_row_order=False)
