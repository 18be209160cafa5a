"""Configuration at its edges: digits from text layers for the settings that are one of a few
numbers, files that are not UTF-8 or start with a byte order mark, a ``WFM_`` variable that
must hold JSON, the bounds of the durations and counts, and ``state reset`` without ``--yes``."""

from __future__ import annotations

import os
import re
import typing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pydantic import BaseModel, ValidationError

from connectors.errors import ConfigError
from connectors.state import StateStore
from engine.app.config import AppSettings, describe_errors, load_settings
from engine.app.limits import BOUNDS, MAX_DAYS, MAX_LOOKBACK_MINUTES
from engine.cli.main import cli

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
SECRET = "s3cr3t-\u00e9-value"  # noqa: S105 - a fake, to show it is never printed


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable and no .env of the developer's leaks into these tests."""
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def invoke(args: list[str], env: dict[str, str] | None = None, stdin: str | None = None) -> Any:
    return CliRunner().invoke(cli, args, env=env, input=stdin, catch_exceptions=False)


def _literal_ints(model: type[BaseModel], at: str = "") -> list[tuple[str, tuple[int, ...]]]:
    """Every setting under ``model`` typed ``Literal[<ints>]``: its dotted path and values."""
    found = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is typing.Literal and all(type(a) is int for a in args):
            found.append((f"{at}{name}", args))
        elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _literal_ints(annotation, f"{at}{name}.")
    return found


LITERAL_INTS = _literal_ints(AppSettings)


def _variable(path: str) -> str:
    return "WFM_" + path.upper().replace(".", "__")


def _value(settings: AppSettings, path: str) -> Any:
    found: Any = settings
    for key in path.split("."):
        found = getattr(found, key)
    return found


def test_the_literal_number_settings_are_found() -> None:
    paths = [path for path, _ in LITERAL_INTS]
    assert {"build.interval_minutes", "sources.kore.interval_minutes"} <= set(paths)


@pytest.mark.parametrize(("path", "values"), LITERAL_INTS)
@pytest.mark.parametrize("layer", ["environment", ".env", "secrets dir"])
def test_each_literal_number_takes_its_digits_from_a_text_layer(
    tmp_path: Path, path: str, values: tuple[int, ...], layer: str
) -> None:
    name = _variable(path)
    for value in values:
        environ: dict[str, str] = {}
        if layer == "environment":
            environ[name] = str(value)
        elif layer == ".env":
            (tmp_path / ".env").write_text(f"{name}={value}\n")
        else:
            (tmp_path / "secrets").mkdir(exist_ok=True)
            (tmp_path / "secrets" / name).write_text(f"{value}\n")
            environ["WFM_SECRETS_DIR"] = str(tmp_path / "secrets")
        assert _value(load_settings(environ=environ, allow_missing=True), path) == value


@pytest.mark.parametrize(("path", "values"), LITERAL_INTS)
@pytest.mark.parametrize("given", ["45", "thirty", "30.5", "015x"])
def test_a_literal_number_refuses_other_text_naming_the_setting(
    path: str, values: tuple[int, ...], given: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        load_settings(env_file=None, environ={_variable(path): given}, allow_missing=True)
    shown = ", ".join(str(v) for v in values[:-1]) + f" or {values[-1]}"
    assert describe_errors(caught.value) == [f"{path}: Input should be {shown}"]


def test_interval_minutes_from_the_environment_on_the_command_line() -> None:
    shown = invoke(["config", "show"], {"WFM_BUILD__INTERVAL_MINUTES": "30"})
    assert shown.exit_code == 0, shown.output
    assert "interval_minutes = 30" in shown.output
    bad = invoke(["config", "show"], {"WFM_BUILD__INTERVAL_MINUTES": "45"})
    assert bad.exit_code == 2
    assert bad.stderr.splitlines() == [
        "wfm-intervals: error: invalid setting build.interval_minutes: Input should be 15, 30 or 60"
    ]


@pytest.mark.parametrize("variable", ["WFM_STORE__LANDING", "WFM_STORE__STATE", "WFM_OUTPUT__DIR"])
def test_an_empty_folder_setting_is_refused_not_the_working_directory(variable: str) -> None:
    """A blank line ``WFM_STORE__LANDING=`` in an EnvironmentFile (or ``dir = ""``) was the
    working directory, ``.``: `config show --check` said ok and a run from cron wrote its
    landing store, state or outputs into ``/``."""
    result = invoke(["config", "show", "--check"], {variable: " "})
    assert result.exit_code == 2
    setting = variable.removeprefix("WFM_").lower().replace("__", ".")
    assert result.stderr.splitlines() == [
        f"wfm-intervals: error: invalid setting {setting}: empty: give a folder (or leave the "
        "setting out for its default)"
    ]


def test_a_dotenv_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"WFM_BUILD__TZ=UTC\nWFM_SOURCES__UJET__PASSWORD=p\xffw\n")
    with pytest.raises(ConfigError, match=r"env file \.env: not UTF-8 text \(line 2\)"):
        load_settings()
    result = invoke(["config", "show"])
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "wfm-intervals: error: env file .env: not UTF-8 text (line 2); save it as UTF-8"
    ]


def test_a_secrets_file_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "WFM_SOURCES__UJET__USERNAME").write_text("someone")
    (secrets / "WFM_SOURCES__UJET__PASSWORD").write_bytes(SECRET.encode("latin-1"))
    with pytest.raises(ConfigError) as caught:
        load_settings(secrets_dir=secrets)
    assert str(caught.value) == (
        f"secrets dir {secrets}: file WFM_SOURCES__UJET__PASSWORD is not UTF-8 text"
    )
    result = invoke(["config", "show"], {"WFM_SECRETS_DIR": str(secrets)})
    assert result.exit_code == 2
    assert len(result.stderr.splitlines()) == 1
    assert "WFM_SOURCES__UJET__PASSWORD is not UTF-8" in result.stderr
    assert "s3cr3t" not in result.output


def test_a_byte_order_mark_starts_a_toml_or_dotenv_file_as_nothing(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text("\ufeff[build]\ntz = 'Europe/London'\n", encoding="utf-8")
    (tmp_path / ".env").write_text("\ufeffWFM_OUTPUT__ORG_ID=from-dotenv\n", encoding="utf-8")
    settings = load_settings(tmp_path / "site.toml")
    assert (settings.build.tz, settings.output.org_id) == ("Europe/London", "from-dotenv")
    shown = invoke(["config", "show", "--origin", "--config", str(tmp_path / "site.toml")])
    assert shown.exit_code == 0, shown.output
    assert f'build.tz = "Europe/London"  # {tmp_path / "site.toml"}' in shown.output
    assert 'output.org_id = "from-dotenv"  # .env' in shown.output


JSON_CASES = {
    "a list": ("WFM_SERVE__TOKENS", "serve.tokens", """a list, e.g. '["a"]'"""),
    "formats": ("WFM_OUTPUT__FORMATS", "output.formats", """a list, e.g. '["a"]'"""),
    "a section": ("WFM_BUILD", "build", "an object, e.g. '{}'"),
    "a table": ("WFM_SERVE__OAUTH_CLIENTS", "serve.oauth_clients", "an object, e.g. '{}'"),
}


@pytest.mark.parametrize("case", JSON_CASES)
def test_a_variable_that_is_not_json_is_named_with_the_shape_it_takes(
    tmp_path: Path, case: str
) -> None:
    name, setting, shape = JSON_CASES[case]
    line = f"invalid setting {setting}: {name} is not valid JSON ({shape})"
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, environ={name: SECRET})
    assert str(caught.value) == line
    result = invoke(["config", "show"], {name: SECRET})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"wfm-intervals: error: {line}"]
    (tmp_path / ".env").write_text(f"{name}={SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert str(caught.value) == line.replace(f"{name} is", f"{name} in .env is")
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / name).write_text(SECRET)
    with pytest.raises(ConfigError) as caught:
        load_settings(env_file=None, secrets_dir=secrets)
    assert str(caught.value) == line.replace(f"{name} is", f"{name} in secrets dir {secrets} is")
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize("case", JSON_CASES)
def test_a_tenants_variable_that_is_not_json_is_named_as_the_bases_is(
    tmp_path: Path, case: str
) -> None:
    """``WFM_TENANTS__ACME__SERVE__TOKENS=[tok-1`` was only "invalid setting
    tenants.acme.serve.tokens: Input should be a valid tuple": no variable, no shape."""
    base, setting, shape = JSON_CASES[case]
    name = base.replace("WFM_", "WFM_TENANTS__ACME__", 1)
    line = f"invalid setting tenants.acme.{setting}: {name} is not valid JSON ({shape})"
    config = tmp_path / "bpo.toml"
    config.write_text('[tenants.acme.output]\norg_id = "acme"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env_file=None, environ={name: SECRET})
    assert str(caught.value) == line
    result = invoke(["config", "show", "--config", str(config)], {name: SECRET})
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [f"wfm-intervals: error: {line}"]
    (tmp_path / ".env").write_text(f"{name}={SECRET}\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert str(caught.value) == line.replace(f"{name} is", f"{name} in .env is")
    (tmp_path / ".env").unlink()
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / name).write_text(SECRET)
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env_file=None, secrets_dir=secrets)
    assert str(caught.value) == line.replace(f"{name} is", f"{name} in secrets dir {secrets} is")
    assert SECRET not in str(caught.value)


#: A value no deployment would give, each a crash or a spin once a run used it.
OUT_OF_BOUNDS = {
    "run.lookback_minutes": "1e15",
    "sources.ujet.lookback_minutes": "1e15",
    "sources.kore.lookback_minutes": "inf",
    "run.report_days": "1000000000000",
    "sources.dixa.window_hours": "0.0000001",
    "sources.mindful.initial_days": "100000000",
    "sources.ujet.timeouts.read": "1e300",
    "sources.dixa.retry_after_max_s": "1e20",
    "sources.kore.rate_limit_per_s": "1e-300",
    "sources.mindful.per_page": "1000000000",
    "serve.token_lifetime_s": "1000000000000000",
    "build.short_abandon_ms": "100000000000000000000",
}


@pytest.mark.parametrize("path", OUT_OF_BOUNDS)
def test_a_value_out_of_bounds_is_refused_at_load_naming_the_setting(path: str) -> None:
    environ = {_variable(path): OUT_OF_BOUNDS[path]}
    with pytest.raises(ValidationError) as caught:
        load_settings(env_file=None, environ=environ, allow_missing=True)
    (line,) = describe_errors(caught.value)
    assert line.startswith(f"{path}: Input should be "), line
    checked = invoke(["config", "show", "--check"], environ)
    assert checked.exit_code == 2
    assert checked.stderr.startswith(f"wfm-intervals: error: invalid setting {path}: ")


def test_a_tenants_value_out_of_bounds_names_the_tenant(tmp_path: Path) -> None:
    (tmp_path / "bpo.toml").write_text("[tenants.acme.sources.dixa]\nwindow_hours = 0.001\n")
    with pytest.raises(ValidationError) as caught:
        load_settings(tmp_path / "bpo.toml", env_file=None)
    assert describe_errors(caught.value) == [
        "tenants.acme.sources.dixa.window_hours: Input should be greater than or equal to "
        "0.0166667 (a minute)"
    ]


def test_the_bounds_themselves_are_taken_and_reach_no_overflow() -> None:
    at_bounds = {
        "WFM_RUN__LOOKBACK_MINUTES": str(MAX_LOOKBACK_MINUTES),
        "WFM_RUN__REPORT_DAYS": str(MAX_DAYS),
        "WFM_SOURCES__UJET__LOOKBACK_MINUTES": str(MAX_LOOKBACK_MINUTES),
        "WFM_SOURCES__UJET__INITIAL_DAYS": str(MAX_DAYS),
        "WFM_SOURCES__DIXA__WINDOW_HOURS": str(1 / 60),
    }
    settings = load_settings(env_file=None, environ=at_bounds, allow_missing=True)
    ujet, now = settings.sources.ujet, datetime(2026, 1, 1, tzinfo=UTC)
    assert ujet.initial_cursor(now).year == 2016
    assert (now - ujet.lookback - timedelta(days=settings.run.report_days)).year == 2005
    assert (now - timedelta(minutes=settings.run.lookback_minutes or 0)).year == 2016
    assert settings.sources.dixa.window_hours * 3600 == pytest.approx(60)


def test_every_bound_names_a_setting_and_is_documented() -> None:
    dumped = load_settings(env_file=None).model_dump()

    def paths(data: dict[str, Any], at: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
        found: list[tuple[str, ...]] = []
        for key, value in data.items():
            here = (*at, key)
            found += paths(value, here) if isinstance(value, dict) else [here]
        return found

    known = paths(dumped)
    page = OPERATIONS.read_text(encoding="utf-8")
    table = page[page.index("## Settings given as text, and their bounds") :]
    for pattern in BOUNDS:
        keys = pattern.split(".")
        same = [p for p in known if len(p) == len(keys)]
        assert any(all(k in ("*", x) for k, x in zip(keys, p, strict=True)) for p in same), pattern
        assert re.search(rf"\b{[k for k in keys if k != '*'][-1]}\b", table), pattern
    for setting in ("lookback_minutes", "report_days", "window_hours", "window_minutes"):
        assert re.search(rf"\b{setting}\b", table), setting


def _one_cursor(tmp_path: Path) -> tuple[dict[str, str], StateStore]:
    store = StateStore(tmp_path / "state")
    store.commit("ujet", "calls", datetime(2026, 10, 1, tzinfo=UTC), lookback=timedelta(hours=1))
    return {"WFM_STORE__STATE": str(tmp_path / "state")}, store


def test_state_reset_with_no_answer_on_stdin_asks_for_yes_and_exits_2(tmp_path: Path) -> None:
    env, store = _one_cursor(tmp_path)
    result = invoke(["state", "reset"], env, stdin="")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "wfm-intervals: error: state reset: no answer on standard input (cron, ssh): pass --yes"
        " to reset"
    ]
    assert [s.stream for s in store.show()] == ["calls"]


def test_state_reset_answered_no_resets_nothing_and_exits_0(tmp_path: Path) -> None:
    env, store = _one_cursor(tmp_path)
    result = invoke(["state", "reset"], env, stdin="n\n")
    assert result.exit_code == 0
    assert "cancelled: nothing was reset" in result.stdout
    assert result.stderr == ""
    assert [s.stream for s in store.show()] == ["calls"]
    answered = invoke(["state", "reset"], env, stdin="y\n")
    assert answered.exit_code == 0
    assert store.show() == []


@pytest.mark.parametrize(
    ("toml", "args", "where"),
    [
        ("[build]\ninterval_minutes = 30\n", [], "output.vendor_profiles"),
        ("[tenants.beta.build]\ninterval_minutes = 30\n", ["--tenant", "beta"],
         "tenants.beta.output.vendor_profiles"),
    ],
)  # fmt: skip
def test_a_vendor_profile_that_does_not_fit_the_interval_is_refused_at_load(
    tmp_path: Path, toml: str, args: list[str], where: str
) -> None:
    """Genesys needs 15-minute intervals: with 30, the check passed and every run committed
    its tables, then failed at the export, exit 2 after the commit, every night."""
    config = tmp_path / "c.toml"
    config.write_text('[output]\nvendor_profiles = ["genesys"]\n' + toml)
    result = invoke(["config", "show", "--check", "--config", str(config), *args])
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"wfm-intervals: error: invalid setting {where}: profile 'genesys' needs 15-minute "
        "intervals, and build.interval_minutes is 30"
    )


CREDENTIALS = [
    ("sources.ujet.username", "api-user\n", "it contains a line break"),
    ("sources.ujet.password", SECRET + "\n", "it contains a line break"),
    ("sources.dixa.api_token", SECRET + "\r\n", "it contains a line break"),
    ("sources.kore.app_id", "app\x7f", "it contains a control character"),
    ("sources.kore.client_secret", SECRET + "\r", "it contains a line break"),
    ("sources.mindful.client_id", "client\x1b", "it contains a control character"),
    ("sources.mindful.client_secret", SECRET + "\n", "it contains a line break"),
    ("sources.mindful.static_token", "\n" + SECRET, "it contains a line break"),
]


@pytest.mark.parametrize(("path", "value", "why"), CREDENTIALS)
def test_a_credential_that_cannot_be_sent_is_refused_by_the_preflight(
    path: str, value: str, why: str
) -> None:
    """A token pasted into a variable with its trailing newline passed ``config show --check``
    (exit 0) and failed at the first request of the night (Basic auth, the JWT's secret and the
    token exchange encode it: a 401 that blamed the credential, not the newline)."""
    environ = {_variable(path): value}
    checked = invoke(["config", "show", "--check"], environ)
    assert checked.exit_code == 2
    line = f"wfm-intervals: error: invalid setting {path}: not a usable credential: {why}"
    assert checked.stderr.strip() == line
    assert SECRET not in checked.output + checked.stderr
    with pytest.raises(ValidationError):
        load_settings(env_file=None, environ=environ, allow_missing=True)


def test_whitespace_inside_a_credential_is_kept() -> None:
    """Only what no credential holds is refused at load: a space or a tab inside one (or at its
    ends, refused when sent as a header, not when encoded as Basic auth's password is) is kept."""
    environ = {"WFM_SOURCES__UJET__PASSWORD": " pass word\t", "WFM_SOURCES__DIXA__API_TOKEN": "a b"}
    settings = load_settings(env_file=None, environ=environ, allow_missing=True)
    assert settings.source("ujet").password.get_secret_value() == " pass word\t"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WFM_SOURCES__KORE__CLIENT_SECRET", "TopSecretValue123\n"),  # refused by its field
        ("WFM_SOURCES__KORE__CLIENT_SECRET", "TopSecretValue123\x00"),
        ("WFM_SERVE__TOKENS", '["TopSecretValue123", 7]'),  # refused inside a list
    ],
)
def test_a_refused_secret_is_not_quoted_by_the_python_api(name: str, value: str) -> None:
    """``load_settings`` (the scheduler's way in, docs/operations.md) raised a
    ``ValidationError`` whose text quoted the refused value, ``input_value='TopSecret…'``: a
    scheduler logging the traceback wrote the secret to its logs."""
    environ = {
        "WFM_SOURCES__KORE__ENABLED": "true",
        "WFM_SOURCES__KORE__BASE_URL": "https://kore.example.com",
        "WFM_SOURCES__KORE__ACCOUNT_ID": "acc",
        "WFM_SOURCES__KORE__ORG_ID": "org",
        "WFM_SOURCES__KORE__APP_ID": "app",
        "WFM_SOURCES__KORE__CLIENT_SECRET": "fine-secret",
        name: value,
    }
    with pytest.raises(ValidationError) as raised:
        load_settings(env_file=None, environ=environ)
    assert "TopSecret" not in str(raised.value)
    assert "TopSecret" not in repr(raised.value.errors(include_input=False))
