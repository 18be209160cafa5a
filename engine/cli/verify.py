"""``wfm-intervals verify``: check the landing store, the state and the store against each other.

Prints one line per check (``ok``, ``behind``: a run has work to do, ``problem``: something is
missing or damaged, with the command that fixes it: a tenant's names it, ``--tenant NAME``), or
``--json``. Writes nothing. Exit 0 when nothing is a problem, 2 otherwise.

Example:
    $ wfm-intervals verify --config wfm.toml
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import click

from connectors.errors import ConnectorError
from engine.app.tenants import for_tenant
from engine.cli.common import CONFIG_OPTION, TENANT_OPTION, fail, settings_or_fail
from engine.errors import StoreError
from engine.pipeline.verify import verify

__all__ = ["verify_command"]


@click.command("verify")
@CONFIG_OPTION
@TENANT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
def verify_command(*, config_path: tuple[Path, ...], tenant: str | None, as_json: bool) -> None:
    """Check the landing store, the state and the store against each other (writes nothing)."""
    settings = settings_or_fail(config_path, tenant=tenant)
    if not settings.enabled_sources():
        fail(for_tenant(tenant, "no source is enabled: set sources.<name>.enabled = true"))
    try:
        found = verify(settings)
    except (ConnectorError, StoreError, OSError) as exc:
        fail(for_tenant(tenant, str(exc)))
    # a tenant's: its fix commands and settings (--tenant NAME, tenants.NAME.sources.…)
    ours = [(f, for_tenant(tenant, f.detail), for_tenant(tenant, f.fix)) for f in found]
    findings = [replace(f, detail=detail, fix=fix) for f, detail, fix in ours]
    problems = [f for f in findings if f.status == "problem"]
    if as_json:
        click.echo(json.dumps({"ok": not problems, "findings": [f.to_dict() for f in findings]}))
    else:
        for f in findings:
            fix = f" (fix: {f.fix})" if f.fix and f.status != "ok" else ""
            click.echo(f"{f.status:<8} {f.check}: {f.detail}{fix}")
    if problems:
        first = problems[0]
        fix = f" (fix: {first.fix})" if first.fix else ""
        click.echo(f"wfm-intervals: error: {first.detail}{fix}", err=True)
        sys.exit(2)
