"""Configuration layers an operator uses (issue 15 item 3): several ``--config`` files in order,
``.env`` and ``secrets/`` beside the config file wherever the command starts, ``config show``
with missing settings and ``--origin``, ``state show --json`` with the run window and history,
and ``--config`` on the commands that read a built store."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from engine.app.config import load_settings
from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.pipeline import build as pipeline
from engine.pipeline.state import HISTORY_KEPT, record_run, run_history
from engine.settings import BuildSettings
from tests.engine.run_support import away_from_configs


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable and no .env of the developer's; the working directory is elsewhere."""
    away_from_configs(monkeypatch, tmp_path)


def _files(tmp_path: Path) -> tuple[Path, Path]:
    site, tenant = tmp_path / "site", tmp_path / "tenant"
    site.mkdir()
    tenant.mkdir()
    (site / "site.toml").write_text(
        '[build]\ntz = "America/Chicago"\n[output]\ndir = "/srv/out"\norg_id = "site"\n'
    )
    (tenant / "tenant.toml").write_text(
        '[output]\norg_id = "tenant"\n[sources.ujet]\nenabled = true\n'
        'base_url = "https://acme.ujet.co"\n'
    )
    return site / "site.toml", tenant / "tenant.toml"


def invoke(args: list[str]) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_config_files_layer_in_order_and_env_beside_them_is_found(tmp_path: Path) -> None:
    site, tenant = _files(tmp_path)
    (tenant.parent / ".env").write_text("WFM_SOURCES__UJET__USERNAME=from-dotenv\n")
    secrets = tenant.parent / "secrets"
    secrets.mkdir()
    (secrets / "WFM_SOURCES__UJET__PASSWORD").write_text("pw-from-secrets")
    (secrets / "WFM_SOURCES__UJET__PII_HASH_SECRET").write_text("h" * 32)
    s = load_settings([site, tenant])
    assert (s.build.tz, s.output.org_id, str(s.output.dir)) == (
        "America/Chicago",
        "tenant",
        "/srv/out",
    )
    assert s.sources.ujet.username == "from-dotenv"  # .env beside tenant.toml, cwd elsewhere
    assert s.sources.ujet.password is not None
    assert s.sources.ujet.password.get_secret_value() == "pw-from-secrets"
    reverse = load_settings([tenant, site])  # the later file wins, key by key
    assert reverse.output.org_id == "site"
    assert reverse.sources.ujet.enabled is True  # the earlier file's other keys stay
    (Path.cwd() / ".env").write_text("WFM_SOURCES__UJET__USERNAME=from-cwd\n")
    assert load_settings([site, tenant]).sources.ujet.username == "from-cwd"  # cwd over beside
    shown = invoke(["config", "show", "--config", str(site), "--config", str(tenant)])
    assert shown.exit_code == 0, shown.output  # type: ignore[attr-defined]
    assert 'org_id = "tenant"' in shown.output  # type: ignore[attr-defined]


def test_config_show_prints_with_missing_secrets_and_names_each_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site, tenant = _files(tmp_path)
    monkeypatch.setenv("WFM_SOURCES__UJET__USERNAME", "svc-user")
    result = CliRunner().invoke(
        cli, ["config", "show", "--origin", "--config", str(site), "--config", str(tenant)]
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert 'output.org_id = "tenant"  # ' + str(tenant) in out
    assert 'build.tz = "America/Chicago"  # ' + str(site) in out
    assert "sources.ujet.rate_limit_per_s = 1.0  # built-in defaults" in out
    assert 'sources.ujet.username = "svc-user"  # environment WFM_SOURCES__UJET__USERNAME' in out
    assert "sources.ujet.password = null  # model default" in out
    assert result.stderr.splitlines() == [
        "missing: sources.ujet.password (required when enabled; WFM_SOURCES__UJET__PASSWORD)",
        "missing: sources.ujet.pii_hash_secret (required when enabled; "
        "WFM_SOURCES__UJET__PII_HASH_SECRET)",
    ]
    as_json = CliRunner().invoke(
        cli,
        ["config", "show", "--origin", "--json", "--config", str(site), "--config", str(tenant)],
    )
    doc = json.loads(as_json.stdout)
    assert doc["output.org_id"] == {"value": "tenant", "origin": str(tenant)}
    with pytest.raises(Exception, match="required when enabled"):  # a run still refuses
        load_settings([site, tenant])
    layered = ["--config", str(site), "--config", str(tenant)]
    checked = CliRunner().invoke(cli, ["config", "show", "--check", *layered])
    assert checked.exit_code == 2  # the preflight fails, after the same listing
    assert checked.stderr.splitlines()[-1] == (
        "wfm-intervals: error: 2 required setting(s) missing (listed above)"
    )


def test_state_show_json_has_the_run_window_and_a_bounded_history(tmp_path: Path) -> None:
    state = tmp_path / "state"
    for n in range(HISTORY_KEPT + 3):
        record_run(state, {"started_at": f"2026-11-{n + 1:02d}T02:00:00Z", "exit_code": n % 2})
    runs = run_history(state)
    assert len(runs) == HISTORY_KEPT
    assert runs[-1]["started_at"] == f"2026-11-{HISTORY_KEPT + 3:02d}T02:00:00Z"
    (tmp_path / "c.toml").write_text(f'[store]\nstate = "{state}"\n')
    shown = CliRunner().invoke(
        cli, ["state", "show", "--json", "--config", str(tmp_path / "c.toml")]
    )
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert doc["streams"] == []
    assert doc["run"] is None  # no run state yet
    assert [r["exit_code"] for r in doc["runs"]] == [n % 2 for n in range(3, HISTORY_KEPT + 3)]


def test_store_readers_take_the_store_from_the_config(tmp_path: Path) -> None:
    out = tmp_path / "built"
    contacts = generate_contacts(seed=5, start=datetime(2026, 11, 1, tzinfo=UTC), days=1)
    pipeline.build_contacts(contacts.lazy(), settings=BuildSettings(), out_dir=out)
    config = tmp_path / "c.toml"
    config.write_text(f'[output]\ndir = "{out}"\n')
    report = CliRunner().invoke(
        cli, ["report", "--config", str(config), "--out", str(tmp_path / "r.html")]
    )
    assert report.exit_code == 0, report.output
    assert (tmp_path / "r.html").is_file()
    page = CliRunner().invoke(
        cli, ["export", "contact-volume", "--config", str(config), "--limit", "1"]
    )
    assert page.exit_code == 0, page.output
    assert json.loads(page.stdout)["totalCount"] > 0
    missing = CliRunner().invoke(cli, ["export", "contact-volume"])  # [output] dir = out: absent
    assert missing.exit_code == 2
    assert "no volume table" in missing.stderr


_APPEND = """
import sys
from pathlib import Path
from engine.pipeline import state as history
history.HISTORY_KEPT = 1_000  # every entry of the test kept
state, who = Path(sys.argv[1]), sys.argv[2]
sys.stdin.readline()  # both start together
for n in range(int(sys.argv[3])):
    history.record_run(state, {"started_at": f"{who}{n}", "exit_code": 0})
"""


def test_two_runs_recording_at_once_lose_no_entry(tmp_path: Path) -> None:
    """Runs record themselves after the store's lock is released (two tenants of one state
    folder, or a run finishing as the next one starts): each read and write of the history is
    made under its own lock, so no entry is lost to the other writer."""
    state, each = tmp_path / "state", 100
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _APPEND, str(state), who, str(each)],
            stdin=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],  # the repository: `engine` importable
        )
        for who in "ab"
    ]
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.close()
    assert [proc.wait(timeout=120) for proc in procs] == [0, 0]
    got = sorted(r["started_at"] for r in run_history(state))
    assert got == sorted(f"{who}{n}" for who in "ab" for n in range(each))
