"""Tenants in the configuration (issue 14 item 4): ``[tenants.<name>]`` tables merged over the
base settings key by key, their secrets from ``WFM_TENANTS__<NAME>__…`` in every layer, their
folders, names and keys checked, and the commands' ``--tenant``."""

from __future__ import annotations

import json
import logging
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from pydantic import ValidationError

from connectors.errors import ConfigError
from engine.app import logs
from engine.app.config import describe_errors, load_settings
from engine.app.origin import to_toml
from engine.app.tenants import merge, tenant_data
from engine.cli.main import cli
from tests.engine.run_support import away_from_configs

#: A BPO's file: one vendor enabled in the base, two tenants giving their own accounts.
BPO = """
[sources.ujet]
enabled = true
rate_limit_per_s = 2.0
per_page = 50

[store]
landing = "{root}/landing"
state = "{root}/state"

[output]
dir = "{root}/out"
formats = ["parquet", "csv"]

[tenants.acme.sources.ujet]
base_url = "https://acme.ujet.example/manager/api/v1"
username = "acme-key"
per_page = 100

[tenants.beta_eu.build]
tz = "Europe/London"

[tenants.beta_eu.sources.ujet]
base_url = "https://beta.ujet.example/manager/api/v1"
username = "beta-key"

[tenants.beta_eu.output]
dir = "{root}/beta-out"
formats = ["ndjson"]
"""
ACME = {
    "WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD": "acme-pw-Qq81",
    "WFM_TENANTS__ACME__SOURCES__UJET__PII_HASH_SECRET": "acme-hmac-Qh52",
}
BETA = {
    "WFM_TENANTS__BETA_EU__SOURCES__UJET__PASSWORD": "beta-pw-Bb36",
    "WFM_TENANTS__BETA_EU__SOURCES__UJET__PII_HASH_SECRET": "beta-hmac-Bh07",
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable and no .env of the developer's; the working directory is elsewhere."""
    away_from_configs(monkeypatch, tmp_path)


def _bpo(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "bpo" / "bpo.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(BPO.format(root=tmp_path) + extra)
    return path


def _invoke(args: list[str], env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_a_tenant_is_the_base_with_its_table_merged_over_it_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (ACME | BETA).items():
        monkeypatch.setenv(name, value)
    base = load_settings(_bpo(tmp_path), env_file=None)
    assert base.tenant_names() == ["acme", "beta_eu"]
    acme, beta = base.tenant("acme"), base.tenant("beta_eu")
    assert (acme.sources.ujet.username, acme.sources.ujet.per_page) == ("acme-key", 100)
    assert (beta.sources.ujet.username, beta.sources.ujet.per_page) == ("beta-key", 50)
    assert acme.sources.ujet.rate_limit_per_s == beta.sources.ujet.rate_limit_per_s == 2.0
    assert acme.sources.ujet.lookback_minutes == 60.0  # the defaults under both
    assert (acme.build.tz, beta.build.tz) == ("UTC", "Europe/London")
    assert (acme.output.formats, beta.output.formats) == (("parquet", "csv"), ("ndjson",))
    assert acme.sources.ujet.password is not None
    assert beta.sources.ujet.password is not None
    assert acme.sources.ujet.password.get_secret_value() == "acme-pw-Qq81"
    assert beta.sources.ujet.password.get_secret_value() == "beta-pw-Bb36"
    # each tenant's folders: its tenants/<name> folder of the base's, unless it sets its own
    assert acme.store.landing == tmp_path / "landing" / "tenants" / "acme"
    assert acme.store.state == tmp_path / "state" / "tenants" / "acme"
    assert acme.output.dir == tmp_path / "out" / "tenants" / "acme"
    assert beta.store.state == tmp_path / "state" / "tenants" / "beta_eu"
    assert beta.output.dir == tmp_path / "beta-out"
    assert acme.tenants == beta.tenants == {}  # a tenant's settings hold no tenants
    assert base.tenant("acme") is acme  # made once: a thousand tenants load in about a second
    moved = base.model_copy(update={"output": base.output.model_copy(update={"dir": Path("x")})})
    assert moved.tenant("acme").output.dir == Path("x") / "tenants" / "acme"  # not the cached
    assert load_settings(_bpo(tmp_path), env_file=None, tenant="acme") == acme
    assert base.store.landing == tmp_path / "landing"  # the base is left as it is
    assert base.sources.ujet.base_url is None  # and may lack what each tenant gives


def test_the_example_bpo_file_loads_with_each_tenants_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    example = Path(__file__).resolve().parents[2] / "config" / "examples" / "bpo.toml"
    for tenant in ("ACME", "GLOBEX_EU"):
        for key in ("PASSWORD", "PII_HASH_SECRET"):
            monkeypatch.setenv(f"WFM_TENANTS__{tenant}__SOURCES__UJET__{key}", f"{tenant}-{key}")
    base = load_settings(example, env_file=None)
    assert base.tenant_names() == ["acme", "globex_eu"]
    acme, globex = base.tenant("acme"), base.tenant("globex_eu")
    assert acme.enabled_sources() == globex.enabled_sources() == ["ujet"]
    assert (acme.build.tz, globex.build.tz) == ("America/New_York", "Europe/London")
    assert acme.output.dir == Path("/var/lib/wfm-intervals/out/tenants/acme")
    assert globex.output.dir == Path("/srv/globex/wfm-out")
    assert globex.store.state == Path("/var/lib/wfm-intervals/state/tenants/globex_eu")
    assert (acme.output.vendor_profiles, globex.output.vendor_profiles) == (
        ("genesys",),
        ("calabrio",),
    )
    assert globex.sources.ujet.password is not None
    assert globex.sources.ujet.password.get_secret_value() == "GLOBEX_EU-PASSWORD"


def test_merge_replaces_values_and_lists_and_merges_tables() -> None:
    base = {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 2}
    over = {"a": {"c": [3], "d": {"g": 2}}, "h": {"i": 3}}
    assert merge(base, over) == {
        "a": {"b": 1, "c": [3], "d": {"e": 1, "g": 2}},
        "f": 2,
        "h": {"i": 3},
    }
    assert base == {"a": {"b": 1, "c": [1, 2], "d": {"e": 1}}, "f": 2}  # unchanged
    data = tenant_data(
        "t1",
        {"store": {"landing": Path("l"), "state": Path("s")}, "output": {"dir": Path("o")},
         "serve": {"store": Path("served")}},
        {"output": {"dir": "/x"}},
    )  # fmt: skip
    assert data["store"] == {"landing": Path("l/tenants/t1"), "state": Path("s/tenants/t1")}
    assert data["output"] == {"dir": "/x"}
    assert data["serve"] == {"store": "/x"}  # its own output dir: where its tables are
    data = tenant_data("t1", {"output": {"dir": Path("o")}, "serve": {"store": Path("s")}}, {})
    assert data["serve"] == {"store": Path("s/tenants/t1")}
    assert tenant_data("t1", {"serve": {"store": None}}, {})["serve"] == {"store": None}
    own = {"output": {"dir": "/x"}, "serve": {"store": "/y"}}
    assert tenant_data("t1", {"serve": {"store": Path("s")}}, own)["serve"] == {"store": "/y"}


@pytest.mark.parametrize("layer", ["environment", "dotenv", "secrets"])
def test_tenant_secrets_come_from_every_layer_by_variable_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layer: str
) -> None:
    config = _bpo(tmp_path)
    given = ACME | BETA | {"WFM_SOURCES__UJET__PASSWORD": "base-pw-Ss44"}
    if layer == "environment":
        for name, value in given.items():
            monkeypatch.setenv(name, value)
    elif layer == "dotenv":  # beside the config file: found from any working directory
        (config.parent / ".env").write_text("".join(f"{k}={v}\n" for k, v in given.items()))
    else:
        (config.parent / "secrets").mkdir()
        for name, value in given.items():
            (config.parent / "secrets" / name).write_text(value)
    base = load_settings(config)
    for name, secrets in (("acme", ACME), ("beta_eu", BETA)):
        ujet = base.tenant(name).sources.ujet
        assert ujet.password is not None
        assert ujet.pii_hash_secret is not None
        want = [secrets[k] for k in sorted(secrets)]
        assert [ujet.password.get_secret_value(), ujet.pii_hash_secret.get_secret_value()] == want
    assert base.sources.ujet.password is not None  # the base's own, under every tenant's
    assert base.sources.ujet.password.get_secret_value() == "base-pw-Ss44"


def test_a_tenant_without_its_own_secret_inherits_the_base_one_and_its_own_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tenant's layer is the more specific one: its TOML value wins over a base value
    from the environment, and a base secret is every tenant's unless it has its own."""
    monkeypatch.setenv("WFM_SOURCES__UJET__PASSWORD", "shared-pw-Sh11")
    monkeypatch.setenv("WFM_SOURCES__UJET__PII_HASH_SECRET", "shared-hmac-Sh12")
    monkeypatch.setenv("WFM_SOURCES__UJET__USERNAME", "base-user")
    monkeypatch.setenv("WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD", "acme-pw-Qq81")
    base = load_settings(_bpo(tmp_path), env_file=None)
    acme, beta = base.tenant("acme"), base.tenant("beta_eu")
    assert acme.sources.ujet.username == "acme-key"  # the tenant's file over the base's variable
    assert acme.sources.ujet.password is not None
    assert acme.sources.ujet.password.get_secret_value() == "acme-pw-Qq81"
    assert beta.sources.ujet.password is not None
    assert beta.sources.ujet.password.get_secret_value() == "shared-pw-Sh11"


def test_a_tenant_setting_its_own_serve_credentials_keeps_none_of_the_bases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[serve] kore_apps`` and ``oauth_clients`` are maps: merged key by key, the base's app
    and client stayed beside the tenant's own, so whoever held a base credential read every
    tenant that had set its own (its tokens, a list, were replaced). A tenant's map replaces
    the base's whole; a tenant that sets none serves the base's, as any inherited secret."""
    for name, value in (ACME | BETA).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("WFM_SERVE__KORE_APPS", '{"base-app": "base-app-secret-of-32-bytes-000000"}')
    monkeypatch.setenv("WFM_SERVE__OAUTH_CLIENTS", '{"base-client": "base-client-Bc31"}')
    monkeypatch.setenv(
        "WFM_TENANTS__ACME__SERVE__KORE_APPS", '{"acme-app": "acme-app-secret-of-32-bytes-000000"}'
    )
    monkeypatch.setenv("WFM_TENANTS__ACME__SERVE__OAUTH_CLIENTS", '{"acme-client": "acme-Ac31"}')
    base = load_settings(_bpo(tmp_path), env_file=None)
    acme, beta = base.tenant("acme").serve, base.tenant("beta_eu").serve
    assert (sorted(acme.kore_apps), sorted(acme.oauth_clients)) == (["acme-app"], ["acme-client"])
    assert (sorted(beta.kore_apps), sorted(beta.oauth_clients)) == (["base-app"], ["base-client"])


def test_one_tenant_missing_a_secret_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ACME.items():
        monkeypatch.setenv(name, value)
    base = load_settings(_bpo(tmp_path), env_file=None)  # loads: a secret is the tenant's lack
    assert base.tenant("acme").sources.ujet.password is not None
    with pytest.raises(ValidationError) as info:
        base.tenant("beta_eu")
    assert describe_errors(info.value) == [
        "tenants.beta_eu.sources.ujet: required when enabled: password, pii_hash_secret"
    ]
    assert base.tenant("beta_eu", allow_missing=True).sources.ujet.password is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[tenants.Acme]\n", r"tenants\.Acme: not a tenant name \(lowercase"),
        ('[tenants."a-b"]\n', r"tenants\.a-b: not a tenant name"),
        ('[tenants."../up"]\n', r"tenants\.\.\./up: not a tenant name"),
        ('[tenants."a__b"]\n', r"tenants\.a__b: not a tenant name"),
        (
            "[tenants.gamma.sourcs.ujet]\nenabled = true\n",
            r"unknown section \[tenants\.gamma\.sourcs\]",
        ),
        ("[tenants.gamma.tenants.x]\n", r"unknown section \[tenants\.gamma\.tenants\]"),
        ("[tenants]\ngamma = 3\n", r"tenants\.gamma must be a table"),
        (
            '[tenants.gamma.store]\nstate = "{root}/state/tenants/acme/x"\n',
            r"tenants\.gamma\.store\.state \(.*tenants/acme/x\) is inside "
            r"tenants\.acme\.store\.state \(.*tenants/acme\)",
        ),
        (
            '[tenants.gamma.output]\ndir = "{root}/beta-out"\n',
            r"tenants\.gamma\.output\.dir \(.*beta-out\) is tenants\.beta_eu\.output\.dir",
        ),
    ],
)
def test_bad_tenants_fail_with_one_line(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        load_settings(_bpo(tmp_path, "\n" + extra.format(root=tmp_path)), env_file=None)
    assert "\n" not in str(info.value)


def test_a_tenant_path_of_the_wrong_type_is_one_line(tmp_path: Path) -> None:
    """``landing = 5`` in a tenant's table: pydantic's ``path_type`` error could not be rebuilt
    under the tenant's name (a ``KeyError``: an internal error, exit 2 with a traceback)."""
    with pytest.raises(ValidationError) as info:
        load_settings(_bpo(tmp_path, "\n[tenants.gamma.store]\nlanding = 5\n"), env_file=None)
    assert describe_errors(info.value) == [
        "tenants.gamma.store.landing: Input is not a valid path for <class 'pathlib.Path'>"
    ]


def test_unknown_keys_and_bad_values_of_a_tenant_name_the_tenant(tmp_path: Path) -> None:
    extra = "[tenants.gamma.sources.ujet]\nper_pag = 5\nrate_limit_per_s = 0\n"
    with pytest.raises(ValidationError) as info:
        load_settings(_bpo(tmp_path, "\n" + extra), env_file=None)
    assert describe_errors(info.value) == [
        "tenants.gamma.sources.ujet.rate_limit_per_s: Input should be greater than 0",
        "tenants.gamma.sources.ujet.per_pag: Extra inputs are not permitted",
    ]


def test_a_tenant_named_only_by_a_variable_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A typo in a variable (or a tenant removed from the file) would otherwise make a tenant
    of the base settings: tenants are declared in config files."""
    monkeypatch.setenv("WFM_TENANTS__AMCE__SOURCES__UJET__PASSWORD", "typo-pw-Tt90")
    with pytest.raises(ConfigError) as info:
        load_settings(_bpo(tmp_path), env_file=None)
    assert str(info.value) == (
        "tenants.amce: set by a variable, .env or secrets file (WFM_TENANTS__AMCE__...) but "
        "declared in no config file (add [tenants.amce]; declared: acme, beta_eu)"
    )
    assert "typo-pw" not in str(info.value)


def test_a_configuration_without_tenants_is_unchanged(tmp_path: Path) -> None:
    config = tmp_path / "one.toml"
    config.write_text('[store]\nlanding = "l"\nstate = "s"\n[output]\ndir = "o"\n')
    settings = load_settings(config, env_file=None)
    assert settings.tenant_names() == []
    assert (settings.store.landing, settings.store.state, settings.output.dir) == (
        Path("l"),
        Path("s"),
        Path("o"),
    )
    assert "tenants" not in settings.masked()
    with pytest.raises(ValidationError, match="required when enabled"):  # still strict
        load_settings(config, env_file=None, sources={"ujet": {"enabled": True}})
    with pytest.raises(ConfigError, match="tenant 'acme': no tenants are configured"):
        settings.tenant("acme")


def test_the_masked_view_shows_each_tenant_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in (ACME | BETA).items():
        monkeypatch.setenv(name, value)
    masked = load_settings(_bpo(tmp_path), env_file=None).masked()
    rendered = to_toml(masked)
    for secret in (*ACME.values(), *BETA.values()):
        assert secret not in rendered
        assert secret not in json.dumps(masked)
    shown = tomllib.loads(rendered)["tenants"]
    assert shown["acme"]["sources"]["ujet"] == {
        "base_url": "https://acme.ujet.example/manager/api/v1",
        "username": "acme-key",
        "per_page": 100,
        "password": "**********",
        "pii_hash_secret": "**********",
    }
    assert shown["acme"]["store"] == {
        "landing": f"{tmp_path}/landing/tenants/acme",
        "state": f"{tmp_path}/state/tenants/acme",
    }
    assert shown["beta_eu"]["output"]["dir"] == f"{tmp_path}/beta-out"


def test_commands_take_the_tenant_and_refuse_a_missing_or_unknown_one(tmp_path: Path) -> None:
    config = ["--config", str(_bpo(tmp_path))]
    for command in (
        ["state", "show"],
        ["verify"],
        ["report"],
        ["export", "contact-volume"],
        ["callback-metrics", "--begin", "2026-11-01", "--end", "2026-11-02"],
        ["reconcile", "--start", "2026-11-01", "--end", "2026-11-02"],
        ["serve"],
    ):
        unnamed = _invoke([*command, *config])
        assert unnamed.exit_code == 2, (command, unnamed.output)
        assert unnamed.stderr.splitlines() == [
            "wfm-intervals: error: tenants are configured (acme, beta_eu): give --tenant NAME"
        ]
        unknown = _invoke([*command, *config, "--tenant", "gamma"])
        assert unknown.exit_code == 2
        assert unknown.stderr.splitlines() == [
            "wfm-intervals: error: --tenant gamma: unknown tenant (known: acme, beta_eu)"
        ]
    for command in (["run"], ["sync"]):
        unknown = _invoke([*command, *config], {"WFM_TENANT": "../gamma"})
        assert unknown.exit_code == 2
        assert unknown.stderr.splitlines() == [
            "wfm-intervals: error: --tenant '../gamma': unknown tenant (known: acme, beta_eu)"
        ]
    plain = tmp_path / "plain.toml"
    plain.write_text("[build]\ntz = 'UTC'\n")
    refused = _invoke(["state", "show", "--config", str(plain), "--tenant", "acme"])
    assert refused.exit_code == 2
    assert refused.stderr.splitlines() == [
        "wfm-intervals: error: --tenant acme: no tenants are configured (add a [tenants.<name>] "
        "table)"
    ]


def test_state_show_reads_the_tenants_own_state(tmp_path: Path) -> None:
    from engine.pipeline.state import record_run

    env = ACME | BETA
    record_run(tmp_path / "state" / "tenants" / "acme", {"started_at": "A", "exit_code": 0})
    record_run(tmp_path / "state" / "tenants" / "beta_eu", {"started_at": "B", "exit_code": 1})
    config = ["--config", str(_bpo(tmp_path))]
    runs = {
        name: json.loads(
            _invoke(["state", "show", "--json", *config, "--tenant", name], env).stdout
        )
        for name in ("acme", "beta_eu")
    }
    assert [r["started_at"] for r in runs["acme"]["runs"]] == ["A"]
    assert [r["started_at"] for r in runs["beta_eu"]["runs"]] == ["B"]


def test_config_show_of_a_tenant_merges_masks_and_names_each_origin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = ["--config", str(_bpo(tmp_path))]
    monkeypatch.setenv("WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD", "acme-pw-Qq81")
    shown = _invoke(["config", "show", "--json", *config, "--tenant", "acme"])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.stdout)
    assert "tenants" not in doc
    assert doc["sources"]["ujet"]["username"] == "acme-key"
    assert doc["sources"]["ujet"]["password"] == "*" * 10
    assert doc["sources"]["ujet"]["rate_limit_per_s"] == 2.0
    assert doc["output"]["dir"] == f"{tmp_path}/out/tenants/acme"
    assert "acme-pw-Qq81" not in shown.output
    assert shown.stderr.splitlines() == [  # what acme still lacks, by its variable
        "missing: tenants.acme.sources.ujet.pii_hash_secret (required when enabled; "
        "WFM_TENANTS__ACME__SOURCES__UJET__PII_HASH_SECRET)"
    ]
    origins = _invoke(["config", "show", "--origin", *config, "--tenant", "acme"]).stdout
    bpo = str(_bpo(tmp_path))
    assert f'sources.ujet.username = "acme-key"  # {bpo}' in origins
    assert f"sources.ujet.rate_limit_per_s = 2.0  # {bpo}" in origins
    assert (
        'sources.ujet.password = "**********"  # environment '
        "WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD"
    ) in origins
    assert (
        f'store.state = "{tmp_path}/state/tenants/acme"  # tenants/acme folder of store.state '
        f"({bpo})"
    ) in origins
    base = _invoke(["config", "show", "--origin", *config]).stdout  # the base, and each tenant
    assert f"sources.ujet.enabled = true  # {bpo}" in base
    assert f'tenants.acme.sources.ujet.username = "acme-key"  # {bpo}' in base
    assert (
        f'tenants.acme.store.landing = "{tmp_path}/landing/tenants/acme"  # tenants/acme folder '
        f"of store.landing ({bpo})"
    ) in base
    every = _invoke(["config", "show", "--check", *config])  # the base, and every tenant's lack
    assert every.exit_code == 2
    assert "[tenants.acme.sources.ujet]" in every.stdout
    assert every.stderr.splitlines() == [
        "missing: tenants.acme.sources.ujet.pii_hash_secret (required when enabled; "
        "WFM_TENANTS__ACME__SOURCES__UJET__PII_HASH_SECRET)",
        "missing: tenants.beta_eu.sources.ujet.password (required when enabled; "
        "WFM_TENANTS__BETA_EU__SOURCES__UJET__PASSWORD)",
        "missing: tenants.beta_eu.sources.ujet.pii_hash_secret (required when enabled; "
        "WFM_TENANTS__BETA_EU__SOURCES__UJET__PII_HASH_SECRET)",
        "wfm-intervals: error: 3 required setting(s) missing (listed above)",
    ]


def test_log_lines_inside_a_tenant_scope_name_the_tenant(
    capsys: pytest.CaptureFixture[str],
) -> None:
    logs.configure("text")
    try:
        with logs.tenant_scope("acme"):
            logging.getLogger("engine.test").info("inside")
        logging.getLogger("engine.test").info("outside")
        logs.configure("json")
        with logs.tenant_scope("beta_eu"):
            logging.getLogger("engine.test").info("inside")
    finally:
        logs.uninstall()
    lines = capsys.readouterr().err.splitlines()
    assert " tenant=acme inside" in lines[0]
    assert "tenant=" not in lines[1]
    assert json.loads(lines[2])["tenant"] == "beta_eu"


@pytest.mark.parametrize("spelled", ["dots", "symlink"])
def test_tenants_sharing_a_folder_under_another_spelling_are_refused(
    tmp_path: Path, spelled: str
) -> None:
    """``common`` and ``x/../common`` (or a link to it) are one folder: once accepted, and one
    tenant synced with the other's cursors into its landing store and store, exit 0."""
    (tmp_path / "x").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "common", target_is_directory=True)
    other = tmp_path / ("x/../common" if spelled == "dots" else "link")
    extra = (
        f'\n[tenants.acme.output]\ndir = "{tmp_path}/common"\n'
        f'\n[tenants.gamma.output]\ndir = "{other}"\n'
    )
    with pytest.raises(
        ConfigError, match=r"tenants\.\w+\.output\.dir .* is tenants\.\w+\.output\.dir"
    ):
        load_settings(_bpo(tmp_path, extra), env_file=None, allow_missing=True)


def test_a_tenant_inherits_the_bases_max_window_days(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``[build] max_window_days`` is left out of dumps (it is no table setting: the run state
    records none), so a tenant, made from the base's dump, fell back to 400 and refused the
    windows the base allowed, advising to raise the setting already raised."""
    for name, value in (ACME | BETA).items():
        monkeypatch.setenv(name, value)
    extra = "\n[build]\nmax_window_days = 1000\n\n[tenants.beta_eu.build.sl_default_ms]\n"
    extra += "voice = 30000\n"
    base = load_settings(_bpo(tmp_path, extra), env_file=None)
    assert base.build.max_window_days == 1000
    assert base.tenant("acme").build.max_window_days == 1000
    assert base.tenant("beta_eu").build.max_window_days == 1000
    own = _bpo(tmp_path, extra + "\n[tenants.acme.build]\nmax_window_days = 500\n")
    assert load_settings(own, env_file=None).tenant("acme").build.max_window_days == 500
