"""Configuration: TOML layers, environment, .env, secrets dir, masking, errors, and the commands
that read it (``config show``, ``state show``/``reset``, ``sync``)."""

from __future__ import annotations

import json
import os
import sys
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import SecretStr, ValidationError

from connectors.errors import ConfigError
from connectors.state import StateStore
from engine.app.config import DEFAULTS_FILE, AppSettings, describe_errors, load_settings
from engine.app.origin import to_toml
from engine.cli.main import cli, main
from engine.clock import FixedClock, use_clock
from tests.connectors import ujet_support as sup
from tests.environment import invoke as beside

#: The example tenant files shipped in the repository's config/ folder.
EXAMPLES = Path(__file__).resolve().parents[2] / "config" / "examples"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable and no .env of the developer's leaks into these tests."""
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_file_states_the_model_defaults() -> None:
    from_file = load_settings(env_file=None)
    data = tomllib.loads(DEFAULTS_FILE.read_text())
    assert from_file.sources.ujet.rate_limit_per_s == data["sources"]["ujet"]["rate_limit_per_s"]
    bare = AppSettings.model_construct()  # no sources at all: the models' own defaults
    assert from_file.masked()["build"] == bare.build.model_dump(mode="json")
    assert from_file.masked()["sources"]["ujet"] == AppSettings().masked()["sources"]["ujet"]


def test_layers_in_priority_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "tenant.toml"
    config.write_text(
        "[sources.ujet]\nper_page = 50\nlookback_minutes = 10\nusername = 'from-toml'\n"
        "rate_limit_per_s = 3.0\n[build]\ntz = 'Europe/London'\n"
    )
    (tmp_path / ".env").write_text(
        "WFM_SOURCES__UJET__LOOKBACK_MINUTES=20\nWFM_SOURCES__UJET__USERNAME=from-dotenv\n"
        "WFM_CONFIG=ignored.toml\n"
    )
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "WFM_SOURCES__UJET__PASSWORD").write_text("pw-from-secrets-dir\n")
    (secrets / "WFM_SOURCES__UJET__USERNAME").write_text("from-secrets")
    monkeypatch.setenv("WFM_SOURCES__UJET__USERNAME", "from-env")
    monkeypatch.setenv("WFM_SECRETS_DIR", str(secrets))
    settings = load_settings(config, env_file=tmp_path / ".env")
    ujet = settings.sources.ujet
    assert ujet.per_page == 50  # the --config file over defaults.toml
    assert ujet.rate_limit_per_s == 3.0
    assert ujet.lookback_minutes == 20  # .env over the file
    assert ujet.username == "from-env"  # the environment over everything
    assert isinstance(ujet.password, SecretStr)
    assert ujet.password.get_secret_value() == "pw-from-secrets-dir"
    assert settings.build.tz == "Europe/London"
    assert settings.build.interval_minutes == 15  # untouched keys keep their defaults
    assert (
        load_settings(env_file=None, sources={"ujet": {"per_page": 7}}).sources.ujet.per_page == 7
    )


def test_config_file_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "c.toml").write_text("[store]\nstate = 'elsewhere/state'\n")
    monkeypatch.setenv("WFM_CONFIG", str(tmp_path / "c.toml"))
    assert load_settings(env_file=None).store.state == Path("elsewhere/state")


def test_settings_read_every_variable_from_the_environment_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``load_settings(environ=...)`` and a command given ``obj={"environ": ...}`` read every
    ``WFM_`` variable from that mapping (a settings variable, ``WFM_CONFIG``), none from the
    process, and change nothing in it."""
    config = tmp_path / "given.toml"
    config.write_text('[output]\nduration_unit = "s"\n')
    monkeypatch.setenv("WFM_STORE__LANDING", "/from/the/process")
    given = {"WFM_STORE__STATE": "/from/the/mapping", "WFM_CONFIG": str(config)}
    settings = load_settings(env_file=None, environ=given)
    assert settings.store.state == Path("/from/the/mapping")
    assert settings.store.landing == Path("data/landing")  # the process's value is not read
    assert settings.output.duration_unit == "s"
    before = dict(os.environ)
    shown = CliRunner().invoke(cli, ["config", "show", "--json"], obj={"environ": given})
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["store"] == {
        "landing": "data/landing",
        "state": "/from/the/mapping",
    }
    assert dict(os.environ) == before
    main(["config", "show", "--json"], environ=given)  # the entry point, as a scheduler calls it
    assert json.loads(capsys.readouterr().out)["store"]["state"] == "/from/the/mapping"
    assert dict(os.environ) == before
    assert load_settings(env_file=None).store.landing == Path("/from/the/process")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[sourcs.ujet]\nenabled = true\n", r"unknown section \[sourcs\]"),
        ("[store\n", "not valid TOML"),
    ],
)
def test_bad_files_fail_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(tmp_path / "c.toml", env_file=None)
    with pytest.raises(ConfigError, match="no such file"):
        load_settings(tmp_path / "missing.toml", env_file=None)


def test_missing_built_in_defaults_fail_instead_of_being_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A package without its defaults file stops with one line: its values are not the models'."""
    monkeypatch.setattr("engine.app.config.DEFAULTS_FILE", tmp_path / "defaults.toml")
    with pytest.raises(ConfigError, match=r"built-in defaults .*defaults\.toml: missing"):
        load_settings(env_file=None)


@pytest.mark.parametrize(
    ("sources", "line"),
    [
        (
            {"ujet": {"rate_limit_per_s": 0}},
            "sources.ujet.rate_limit_per_s: Input should be greater",
        ),
        ({"ujet": {"per_page": 500}}, "sources.ujet.per_page: Input should be less than or equal"),
        ({"ujet": {"enabled": True}}, "sources.ujet: required when enabled: base_url, username"),
        ({"ujet": {"base_url": "http://ujet.example.com/v1"}}, "sources.ujet.base_url: HTTPS"),
        ({"ujet": {"base_url": "https://u:leak-9@h.test/v1"}}, "sources.ujet.base_url: credent"),
        ({"ujet": {"lookbak_minutes": 5}}, "sources.ujet.lookbak_minutes: Extra inputs"),
        ({"nope": {}}, "sources.nope: Extra inputs are not permitted"),
    ],
)
def test_every_validation_error_is_one_line_naming_the_setting(
    sources: dict[str, Any], line: str
) -> None:
    with pytest.raises(ValidationError) as info:
        load_settings(env_file=None, sources=sources)
    lines = describe_errors(info.value)
    assert any(text.startswith(line) for text in lines), lines
    assert all("\n" not in text and "leak-9" not in text for text in lines)


def test_masked_view_hides_secrets_and_renders_as_toml() -> None:
    settings = load_settings(
        env_file=None,
        sources={"ujet": {"password": "pw-1", "pii_hash_secret": "k-2", "username": "u"}},
    )
    masked = settings.masked()
    assert masked["sources"]["ujet"]["password"] == "*" * 10
    rendered = to_toml(masked)
    assert "pw-1" not in rendered
    assert "k-2" not in rendered
    parsed = tomllib.loads(rendered)
    assert parsed["sources"]["ujet"]["username"] == "u"
    assert parsed["build"]["sl_default_ms"]["chat"] == 60_000
    assert "start" not in parsed["sources"]["ujet"]  # unset values are comments


def invoke(args: list[str], env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_config_show_command_masks_and_fails_in_one_line() -> None:
    env = {"WFM_SOURCES__UJET__PASSWORD": "pw-cli-3", "WFM_SOURCES__UJET__USERNAME": "u"}
    result = invoke(["config", "show"], env)
    assert result.exit_code == 0
    assert "pw-cli-3" not in result.output
    assert 'password = "**********"' in result.output
    shown = json.loads(invoke(["config", "show", "--json"], env).output)
    assert shown["sources"]["ujet"]["username"] == "u"
    bad = invoke(["config", "show"], {"WFM_SOURCES__UJET__RATE_LIMIT_PER_S": "fast"})
    assert bad.exit_code == 2
    assert bad.output.strip().splitlines() == [
        "wfm-intervals: error: invalid setting sources.ujet.rate_limit_per_s: "
        "Input should be a valid number, unable to parse string as a number"
    ]


def test_state_show_and_reset(tmp_path: Path) -> None:
    env = {"WFM_STORE__STATE": str(tmp_path / "state")}
    assert "no state" in invoke(["state", "show"], env).output
    store = StateStore(tmp_path / "state")
    for stream in ("calls", "chats"):
        store.commit("ujet", stream, datetime(2026, 10, 1, tzinfo=UTC), lookback=timedelta(hours=1))
    shown = invoke(["state", "show"], env).output
    assert "ujet/calls  cursor 2026-10-01T00:00:00.000Z  lookback 60 min" in shown
    reset = invoke(["state", "reset", "ujet", "calls", "--yes"], env)
    assert reset.exit_code == 0
    assert "reset ujet/calls" in reset.output
    assert [s.stream for s in store.show()] == ["chats"]
    assert invoke(["state", "reset", "--yes"], env).exit_code == 0
    assert store.show() == []
    # A named stream without a state is marked reset all the same (the output says so).
    again = invoke(["state", "reset", "ujet", "calls", "--yes"], env)
    assert again.exit_code == 0
    assert "reset ujet/calls (it had no readable state)" in again.output
    assert store.was_reset("ujet", "calls")
    assert "nothing to reset for every stream" in invoke(["state", "reset", "--yes"], env).output


def test_state_reset_since_moves_cursors_back_and_never_forward(tmp_path: Path) -> None:
    """``--since`` is the way out of a cursor ahead of the clock, and of "re-read the changes
    since the vendor fixed its data": it moves cursors back, keeps those already before it,
    leaves a stream without a cursor alone and refuses an instant ahead of the clock."""
    env = {"WFM_STORE__STATE": str(tmp_path / "state")}
    store, hour = StateStore(tmp_path / "state"), timedelta(hours=1)
    at = datetime(2026, 10, 1, tzinfo=UTC)
    store.commit("ujet", "calls", at + timedelta(days=365), lookback=hour)
    store.commit("ujet", "chats", at - timedelta(days=2), lookback=hour)
    with use_clock(FixedClock(at)):
        moved = invoke(["state", "reset", "ujet", "--since", "2026-09-30", "--yes"], env)
        assert moved.exit_code == 0, moved.output
        assert moved.output.splitlines() == [
            "reset ujet/calls to 2026-09-30T00:00:00.000Z (was 2027-10-01T00:00:00.000Z)",
            "kept ujet/chats at 2026-09-29T00:00:00.000Z (before 2026-09-30T00:00:00.000Z)",
        ]
        assert [s.cursor for s in store.show()] == [at - timedelta(days=1), at - timedelta(days=2)]
        ahead = invoke(["state", "reset", "--since", "2026-10-02T00:00:00Z", "--yes"], env)
        assert ahead.exit_code == 2
        assert "--since '2026-10-02T00:00:00Z' is ahead of the clock" in ahead.output
        bad = invoke(["state", "reset", "--since", "last week", "--yes"], env)
        assert bad.exit_code == 2
        assert "is not an ISO 8601 instant" in bad.output
        none = invoke(["state", "reset", "dixa", "--since", "2026-09-30", "--yes"], env)
        assert "no cursor to move back for dixa" in none.output
    assert [s.cursor for s in store.show()] == [at - timedelta(days=1), at - timedelta(days=2)]


def test_sync_command_against_the_emulator(tmp_path: Path) -> None:
    assert invoke(["sync"]).exit_code == 2  # nothing enabled
    assert "unknown source 'nope'" in invoke(["sync", "nope"]).output
    with sup.emulator(sup.small_contacts(scale=0.01)) as emu:
        env = {
            "WFM_SOURCES__UJET__ENABLED": "true",
            "WFM_SOURCES__UJET__BASE_URL": emu.base_url,
            "WFM_SOURCES__UJET__USERNAME": sup.USER,
            "WFM_SOURCES__UJET__PASSWORD": sup.PASSWORD,
            "WFM_SOURCES__UJET__PII_HASH_SECRET": sup.PII_SECRET,
            "WFM_SOURCES__UJET__RATE_LIMIT_PER_S": "200",
            "WFM_SOURCES__UJET__START": "2026-09-01T00:00:00Z",
            "WFM_STORE__LANDING": str(tmp_path / "landing"),
            "WFM_STORE__STATE": str(tmp_path / "state"),
        }
        table = beside(cli, ["sync"], env)  # the emulator's thread runs: tests.environment
        as_json = beside(cli, ["sync", "ujet", "--json", "--stream", "chats"], env)
        truth = emu.expected_contacts()
        refused = beside(cli, ["sync", "ujet"], env | {"WFM_SOURCES__UJET__PASSWORD": "wrong-7"})
    assert table.exit_code == 0, table.output
    assert "ujet/calls" in table.output
    assert "ujet/chats" in table.output
    assert [r["stream"] for r in json.loads(as_json.stdout)["pulled"]] == ["chats"]
    assert sup.synced(tmp_path / "landing").equals(truth)
    assert refused.exit_code == 2
    assert "HTTP 401" in refused.output
    assert "wrong-7" not in refused.output
    assert sup.PASSWORD not in table.output + as_json.output


@pytest.mark.parametrize("name", ["ujet", "mindful", "dixa", "kore"])
def test_every_example_tenant_file_loads(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.demo.stack import SECRET_NAMES

    for secret in SECRET_NAMES:
        monkeypatch.setenv(secret, "set-in-the-environment")
    settings = load_settings(EXAMPLES / f"{name}.toml", env_file=None)
    assert settings.enabled_sources() == [name]
    assert "set-in-the-environment" not in settings.model_dump_json()  # secrets stay masked


def test_the_engine_section_defaults_to_local_and_takes_a_ray_address() -> None:
    assert load_settings(env_file=None).masked()["engine"] == {"kind": "local", "address": None}
    for address in ("auto", "ray://head.example:10001", "10.0.0.5:6379"):
        chosen = load_settings(env_file=None, engine={"kind": "ray", "address": address})
        assert (chosen.engine.kind, chosen.engine.address) == ("ray", address)


@pytest.mark.parametrize(
    ("engine", "line"),
    [
        ({"kind": "dask"}, "engine.kind: Input should be 'local' or 'ray'"),
        ({"kind": "ray", "address": "head"}, "engine.address: not a Ray address: give auto, "),
        ({"kind": "ray", "adress": "auto"}, "engine.adress: Extra inputs are not permitted"),
    ],
)
def test_a_bad_engine_setting_is_one_line_and_exit_2(
    tmp_path: Path, engine: dict[str, str], line: str
) -> None:
    config = tmp_path / "wfm.toml"
    config.write_text(to_toml({"engine": engine}))
    result = invoke(["run", "--config", str(config)])
    assert result.exit_code == 2
    (only,) = result.output.strip().splitlines()
    assert only.startswith(f"wfm-intervals: error: invalid setting {line}"), only


@pytest.mark.parametrize(
    ("configured", "args", "line"),
    [
        (
            "local",
            ["--ray-address", "auto"],
            "--ray-address: the engine is local; add --engine ray",
        ),
        ("ray", ["--engine", "local", "--ray-address", "auto"], "--ray-address: the engine is lo"),
        ("ray", ["--ray-address", "head"], "--ray-address 'head': not a Ray address: give auto, "),
    ],
)
def test_the_command_line_engine_is_checked_over_the_configuration(
    tmp_path: Path, configured: str, args: list[str], line: str
) -> None:
    config = tmp_path / "wfm.toml"
    config.write_text(to_toml({"engine": {"kind": configured}}))
    result = invoke(["run", "--config", str(config), *args])
    assert result.exit_code == 2
    (only,) = result.output.strip().splitlines()
    assert only.startswith(f"wfm-intervals: error: {line}"), only


def test_the_ray_engine_without_ray_installed_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contacts = tmp_path / "contacts.csv"
    contacts.write_text(
        "source,contact_id,segment_no,channel,direction,queue_id,queue_name,offered_at,"
        "outcome,wait_ms,updated_at\n"
        "ujet,c1,1,voice,inbound,q1,Sales,2026-10-01T09:00:00Z,abandoned,4000,"
        "2026-10-01T09:01:00Z\n"
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # what `import ray` meets without the extra
    args = ["build", "--contacts", str(contacts), "--out", str(tmp_path / "out"), "--engine", "ray"]
    result = invoke(args)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "wfm-intervals: error: engine ray: Ray is not installed (pip install 'wfm-intervals[ray]')"
    ]
