"""A tenant's folders end to end, against the UJET emulators on loopback: the store ``serve
--tenant`` reads is that tenant's (never another's, never an empty folder beside its tables)."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import click
import httpx
import jwt
import polars as pl
import pytest

from connectors.emulator import UjetEmulator
from engine.app.config import AppSettings
from engine.cli import run as cli_run
from engine.cli.main import cli
from tests.engine.run_support import T0, one_error_line
from tests.engine.run_support import clean_environment as _clean
from tests.engine.test_serve_process import APP_ID, APP_SECRET, _serving
from tests.engine.test_tenant_run import ENV, _bpo, _invoke, ujet
from tests.environment import invoke

__all__ = ["ujet"]  # the emulators' fixture, used by name


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


def _with(config: Path, extra: str) -> Path:
    config.write_text(config.read_text() + "\n" + extra)
    return config


def _offered(origin: str) -> int:
    """The Contact Volume total of the test day, as ``serve`` answers it."""
    body = {
        "orgId": "wfm-intervals",
        "fromTimeStamp": T0.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "toTimeStamp": (T0 + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "skip": 0,
        "limit": 1000,
    }
    answer = httpx.post(
        f"{origin}/agentassist/api/public/analytics/account/acc-1/callvolume",
        json=body,
        headers={"auth": jwt.encode({"appId": APP_ID}, APP_SECRET, algorithm="HS256")},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return sum(row["offeredContacts"] for row in answer.json()["CallVolumeUpdate"])


def _exported(config: Path, tenant: str) -> int:
    done = _invoke(["export", "contact-volume", "--tenant", tenant, "--limit", "1000"], config)
    assert done.exit_code == 0, done.output
    return sum(row["offeredContacts"] for row in json.loads(done.stdout)["CallVolumeUpdate"])


def test_serve_of_a_tenant_with_its_own_output_dir_reads_that_dir(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """The base's ``[serve] store`` is its ``[output] dir`` (docs/serve.md's example) and acme
    sets its own ``[output] dir``: ``serve --tenant acme`` read ``out/tenants/acme``, a folder
    acme's runs never write (503 "no such table", or a stale store left there)."""
    root = tmp_path / "bpo"
    config = _with(
        _bpo(root, ujet),
        f'[serve]\nstore = "{root / "out"}"\n\n'
        f'[tenants.acme.output]\ndir = "{root / "acme-out"}"\n',
    )
    (root / ".env").write_text("".join(f"{k}={v}\n" for k, v in ENV.items()))
    ran = _invoke(["run", "--quiet"], config)
    assert ran.exit_code == 0, ran.output
    assert (root / "acme-out" / "store" / "callvolume").is_dir()
    assert not (root / "out" / "tenants" / "acme").exists()
    expected = {name: _exported(config, name) for name in ("acme", "beta")}
    assert expected["acme"] != expected["beta"]
    for name in ("acme", "beta"):
        with _serving(config, tmp_path, more=("--tenant", name)) as origin:
            assert _offered(origin) == expected[name]


def test_a_tenants_serve_store_that_is_another_tenants_output_dir_is_refused(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """The base sets ``[serve] store = W/serve``; acme's ``[output] dir`` is
    ``W/serve/tenants/beta``, beta's serve store: once checked ok, run exit 0, and ``serve
    --tenant beta`` answered with acme's numbers."""
    root = tmp_path / "bpo"
    config = _with(
        _bpo(root, ujet),
        f'[serve]\nstore = "{root / "serve"}"\n\n'
        f'[tenants.acme.output]\ndir = "{root / "serve" / "tenants" / "beta"}"\n',
    )
    for args in (["config", "show", "--check"], ["run", "--quiet"]):
        done = _invoke(args, config)
        assert done.exit_code == 2, done.output
        line = one_error_line(done)
        assert "tenants.beta.serve.store (" in line
        assert "is tenants.acme.output.dir (" in line
        assert "give each tenant its own folder" in line
    assert not (root / "serve").exists()
    assert not (root / "landing").exists()


def test_a_tenants_serve_store_containing_another_tenants_folder_is_refused(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """A tenant's own ``[serve] store`` holding another tenant's state is refused too."""
    root = tmp_path / "bpo"
    config = _with(_bpo(root, ujet), f'[tenants.acme.serve]\nstore = "{root / "state"}"\n')
    done = _invoke(["config", "show", "--check"], config)
    assert done.exit_code == 2, done.output
    line = one_error_line(done)
    assert "tenants.beta.store.state (" in line
    assert "is inside tenants.acme.serve.store (" in line


def _landed(root: Path, tenant: str) -> Path:
    return root / "landing" / "tenants" / tenant / "raw" / "source=ujet" / "stream=calls"


def test_a_folder_set_aside_in_a_landing_store_is_one_line_and_the_others_run(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """A partition copied aside (``date=YYYY-MM-DD.bak``) in acme's landing store: the run
    crashed (a traceback, "internal error") before beta ran and printed no summary; ``sync``
    listed the copy's files in the manifest and ``verify`` said ok."""
    root = tmp_path / "bpo"
    config = _bpo(root, ujet)
    assert _invoke(["run", "--quiet"], config).exit_code == 0
    calls = _landed(root, "acme")
    day = sorted(calls.glob("date=*"))[0]
    shutil.copytree(day, calls / f"{day.name}.bak")
    manifest = (calls / "manifest.jsonl").read_bytes()
    ran = _invoke(["run", "--quiet", "--json"], config)
    assert ran.exit_code == 2, ran.output
    _acme_failed_and_beta_ran(ran.stdout)
    assert "Traceback" not in ran.stderr
    errors = [line for line in ran.stderr.splitlines() if line.startswith("wfm-intervals:")]
    assert errors == [
        f"wfm-intervals: error: tenant acme: landing folder {calls / day.name}.bak is not a day "
        f"partition of the landing store (date=YYYY-MM-DD): move it out of [store] landing "
        f"({root / 'landing' / 'tenants' / 'acme'})"
    ]
    for args in (["sync", "--tenant", "acme"], ["verify", "--tenant", "acme"]):
        done = _invoke(args, config)
        assert done.exit_code == 2, done.output
        said = [line for line in done.stderr.splitlines() if line.startswith("wfm-intervals:")]
        assert len(said) == 1, done.stderr
        assert ".bak is not a day partition" in said[0]
    assert (calls / "manifest.jsonl").read_bytes() == manifest  # nothing of the copy listed
    shutil.rmtree(calls / f"{day.name}.bak")  # the fix the line gives
    assert _invoke(["run", "--quiet", "--tenant", "acme"], config).exit_code == 0


def _acme_failed_and_beta_ran(document: str) -> None:
    """The ``--json`` document of every tenant: acme exit 2, beta run all the same, exit 0."""
    acme, beta = json.loads(document)["tenants"]
    assert (acme["tenant"], acme["exit_code"], beta["tenant"], beta["exit_code"]) == (
        "acme", 2, "beta", 0,
    )  # fmt: skip


@pytest.mark.parametrize("bug", [RuntimeError, pl.exceptions.PanicException])
def test_an_unexpected_error_in_one_tenant_does_not_stop_the_others(
    tmp_path: Path,
    ujet: dict[str, UjetEmulator],
    monkeypatch: pytest.MonkeyPatch,
    bug: type[BaseException],
) -> None:
    """An error no command turns into a line (a bug; a panic in Polars' Rust code, which is a
    ``BaseException``) in acme's run: its traceback and an ``internal error`` line for acme,
    exit 2, and beta still runs, its summary in the document (it stopped the whole command,
    beta never attempted and no document printed; a panic did so after the first fix)."""
    root = tmp_path / "bpo"
    config = _bpo(root, ujet)
    real = cli_run.run

    def broken(settings: AppSettings, **kw: Any) -> Any:
        if "acme" in settings.output.dir.parts:
            raise bug("a bug in acme's run")
        return real(settings, **kw)

    monkeypatch.setattr(cli_run, "run", broken)
    ran = _invoke(["run", "--quiet", "--json"], config)
    assert ran.exit_code == 2, ran.output
    _acme_failed_and_beta_ran(ran.stdout)
    assert "Traceback" in ran.stderr
    assert ran.stderr.splitlines()[-1] == (
        f"wfm-intervals: error: tenant acme: internal error ({bug.__name__}: a bug in acme's "
        "run): a bug; please report it with the traceback above"
    )
    assert (root / "out" / "tenants" / "beta" / "store" / "callvolume").is_dir()
    with pytest.raises(bug):  # one tenant: the command line's handler, as before
        _invoke(["run", "--quiet", "--tenant", "acme"], config)


def test_an_interrupt_in_one_tenant_stops_every_tenant(
    tmp_path: Path, ujet: dict[str, UjetEmulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in acme's run is not acme's failure: it goes on up (the command line's 130) and
    beta is not started (the tenants' loop catches a Polars panic, a ``BaseException``, as a
    bug of that tenant's; never an interrupt)."""
    root = tmp_path / "bpo"
    config = _bpo(root, ujet)
    started: list[str] = []

    def interrupted(settings: AppSettings, **kw: Any) -> Any:
        started.append("acme" if "acme" in settings.output.dir.parts else "beta")
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_run, "run", interrupted)
    args = ["run", "--quiet", "--json", "--config", str(config)]
    with pytest.raises(click.exceptions.Abort):  # click's for it; the command line's 130
        invoke(cli, args, ENV, catch_exceptions=False, standalone_mode=False)
    assert started == ["acme"]


def test_a_tenants_fix_hints_name_the_tenant_and_work_as_printed(
    tmp_path: Path, ujet: dict[str, UjetEmulator]
) -> None:
    """The hints of a tenant's problems named no tenant: ``state reset ujet calls --yes`` as
    printed was refused ("give --tenant NAME"), verify's ``run --full-refresh`` rebuilt every
    tenant, a 401 named ``sources.ujet.…`` (the base's settings), and ``state reset`` asked
    about "every stream" of no tenant."""
    root = tmp_path / "bpo"
    config = _bpo(root, ujet)
    assert _invoke(["run", "--quiet"], config).exit_code == 0
    (root / "state" / "tenants" / "acme" / "ujet" / "calls.json").write_text('{"x')
    ran = _invoke(["run", "--quiet", "--tenant", "acme"], config)
    assert ran.exit_code == 2, ran.output
    hint = "`wfm-intervals state reset --tenant acme ujet calls --yes`"
    assert hint in one_error_line(ran)
    checked = _invoke(["verify", "--tenant", "acme"], config)
    assert checked.exit_code == 2
    assert "(fix: " + hint in checked.stdout
    as_printed = hint.strip("`").split()[1:]
    assert _invoke([*as_printed], config).exit_code == 0  # the hint, as printed, works
    assert _invoke(["run", "--quiet", "--tenant", "acme"], config).exit_code == 0

    shutil.rmtree(root / "out" / "tenants" / "beta" / "store" / "contacts")
    checked = _invoke(["verify", "--tenant", "beta"], config)
    assert checked.exit_code == 2
    assert "fix: wfm-intervals run --tenant beta --full-refresh" in checked.stderr
    assert "wfm-intervals run --full-refresh" not in checked.output

    wrong = ENV | {"WFM_TENANTS__BETA__SOURCES__UJET__PASSWORD": "wrong-pw-Ww19"}
    refused = _invoke(["run", "--quiet", "--tenant", "beta"], config, wrong)
    assert refused.exit_code == 2
    line = one_error_line(refused)
    assert "HTTP 401" in line
    assert "; check tenants.beta.sources.ujet.username, tenants.beta.sources.ujet.password" in line
    assert "`wfm-intervals config show --tenant beta --origin`" in line
    asked = invoke(
        cli, ["state", "reset", "--tenant", "acme", "--config", str(config)], ENV, input="n\n"
    )
    assert asked.stdout.startswith("reset the sync state of every stream of tenant acme? ")
