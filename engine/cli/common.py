"""Shared pieces of the commands: settings, tenants, option types, tables, log lines.

- :func:`settings_or_fail` loads the configuration (a tenant's, with ``--tenant``) or exits 2
  with one line per bad setting; :func:`each_tenant` gives ``run`` and ``sync`` the tenants
  they do, :func:`work_through` does them, and :func:`tenant_error` says one failed;
- :func:`print_table` prints a table with rich on a terminal and as aligned plain text otherwise.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from pydantic import BaseModel, SecretStr, ValidationError
from rich.console import Console
from rich.table import Table

from connectors.errors import ConnectorError
from engine.app import logs
from engine.app.config import AppSettings, describe_errors, load_settings
from engine.app.logs import log_lines
from engine.app.sections import EngineSettings
from engine.app.tenants import for_tenant, is_name
from engine.errors import OutputClosedError, WfmError, a_bug, printable
from engine.settings import BuildSettings

__all__ = ["CONFIG_OPTION", "EACH_TENANT_OPTION", "TENANT_OPTION", "FiniteFloat", "GivenPath",
           "config_or_fail", "each_tenant", "engine_options", "engine_settings",
           "fail", "instant", "log_lines", "log_to", "print_table", "settings_or_fail",
           "tenant_error", "work_through"]  # fmt: skip


class FiniteFloat(click.FloatRange):
    """Every float option's type: ``FloatRange`` refusing ``nan`` (past any bound) and ``inf``."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


class GivenPath(click.Path):
    """Every path option's type: ``click.Path`` that refuses ``""`` (the working directory)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if value == "":
            self.fail("an empty path (give one: '.' is the working directory)", param, ctx)
        return super().convert(value, param, ctx)


CONFIG_OPTION = click.option(
    "--config",
    "config_path",
    type=GivenPath(path_type=Path, dir_okay=False),
    multiple=True,
    help="TOML file layered over the built-in defaults; repeat to layer several in order "
    "(a tenant's file over a site's) [$WFM_CONFIG, paths separated by ':'].",
)


#: ``--tenant`` of the commands that read or write one tenant's data.
TENANT_OPTION = click.option(
    "--tenant",
    metavar="NAME",
    envvar="WFM_TENANT",
    help="The tenant ([tenants.<name>] of the configuration) whose settings and data to use; "
    "required when tenants are configured [$WFM_TENANT].",
)
#: ``--tenant`` of ``run`` and ``sync``, which do every tenant without it.
EACH_TENANT_OPTION = click.option(
    "--tenant",
    metavar="NAME",
    envvar="WFM_TENANT",
    help="Only this tenant ([tenants.<name>] of the configuration) [$WFM_TENANT; default: "
    "every tenant in turn, each under its own lock; the exit code is the worst].",
)


def secret_values(settings: AppSettings) -> list[str]:
    """Every secret value of ``settings`` (its ``SecretStr`` fields, at any depth)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, SecretStr):
            found.append(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, Mapping | list | tuple):
            for item in value.values() if isinstance(value, Mapping) else value:
                walk(item)

    walk(settings)
    return found


def store_dir(store: Path | None, config_path: Sequence[Path], tenant: str | None = None) -> Path:
    """The built output directory a command reads: ``--store``, else ``[output] dir`` of the
    configuration (``--config`` files, ``$WFM_CONFIG``, ``WFM_OUTPUT__DIR``; ``--tenant``'s)."""
    return store if store is not None else settings_or_fail(config_path, tenant=tenant).output.dir


def fail(message: str, code: int = 2) -> NoReturn:
    """``message`` on stderr, then exit ``code``: 1 (data problems) says ``problem``."""
    click.echo(f"wfm-intervals: {'problem' if code == 1 else 'error'}: {message}", err=True)
    sys.exit(code)


#: ``--max-quarantine-fraction`` of ``build`` and ``callbacks`` (``run`` has ``[run]``'s).
MAX_QUARANTINE_OPTION = click.option(
    "--max-quarantine-fraction",
    type=FiniteFloat(0.0, 1.0),
    default=0.05,
    show_default=True,
    help="Exit 1 (data problems) when more of the rows read than this are quarantined.",
)


def engine_options(f: Any) -> Any:
    """``--engine`` and ``--ray-address`` (of ``build``, ``callbacks`` and ``run``)."""
    f = click.option(
        "--ray-address",
        metavar="ADDRESS",
        help="The cluster of --engine ray: 'auto' (running on this machine), "
        "'ray://HOST:10001' (a remote one) [run: [engine] address; unset: start a local one].",
    )(f)
    return click.option(
        "--engine",
        type=click.Choice(["local", "ray"]),
        help="Where the tables are built: here (local), or by Ray tasks over UTC days on a Ray "
        "cluster: the same tables (docs/scale-out.md) [run: [engine] kind; else local].",
    )(f)


def engine_settings(
    kind: str | None, address: str | None, base: EngineSettings | None = None
) -> EngineSettings:
    """The engine a command builds on: ``base`` (``run``: the configuration's ``[engine]``;
    ``build`` and ``callbacks`` read no configuration: local) with ``--engine`` and
    ``--ray-address`` over it. Exit 2 on an address that is not one, or an address for the
    local engine."""
    base = base or EngineSettings()
    chosen = kind or base.kind
    if address is not None and chosen != "ray":
        fail("--ray-address: the engine is local; add --engine ray")
    try:
        return EngineSettings.model_validate({"kind": chosen, "address": address or base.address})
    except ValidationError as exc:
        fail(f"--ray-address {address!r}: {describe_errors(exc)[0].partition(': ')[2]}")


def exit_on_quarantine(quarantined: int, rows_in: int, limit: float) -> None:
    """Exit 1 with one line when the quarantined share of ``rows_in`` is above ``limit`` (the
    outputs are written all the same)."""
    share = quarantined / rows_in if rows_in else 0.0
    if share > limit:
        fail(
            f"{quarantined:,} of {rows_in:,} rows quarantined ({share:.1%} > "
            f"--max-quarantine-fraction {limit:.1%}); see quarantine/",
            code=1,
        )


def check_window(
    settings: BuildSettings,
    start: datetime | None,
    end: datetime | None,
    *,
    configurable: bool = True,
) -> None:
    """Exit 2 when ``--start``/``--end`` span more than ``[build] max_window_days``
    (``configurable``: the command reads the configuration, so the line says which setting
    raises it; ``build`` and ``callbacks`` do not read it)."""
    if start is None or end is None:
        return
    try:
        settings.check_window((start, end))
    except ValueError as exc:
        fix = "raise [build] max_window_days" if configurable else "build it in parts"
        fail(f"--start/--end: {exc}; give a shorter window, or {fix}")


def instant(value: str | None, name: str) -> datetime | None:
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:  # a date alone means its UTC midnight
            return datetime.fromisoformat(text).replace(tzinfo=UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--{name} {value!r} is not an ISO 8601 instant (e.g. 2026-10-01T00:00:00Z)")
    if parsed.tzinfo is None:
        fail(f"--{name} {value!r} has no UTC offset; add Z or +HH:MM")
    return parsed.astimezone(UTC)


def settings_or_fail(
    config_path: Sequence[Path] | Path | None,
    *,
    allow_missing: bool = False,
    tenant: str | None = None,
) -> AppSettings:
    """The effective settings (``tenant``'s, with tenants configured), or exit 2: one
    ``invalid setting <path>: <message>`` per line; one line naming the known tenants when
    ``tenant`` is unknown, or missing while tenants are configured. With ``allow_missing``, an
    enabled source may lack what it needs to run."""
    base = config_or_fail(config_path, allow_missing=allow_missing)
    return _tenant_or_fail(base, tenant, allow_missing=allow_missing)


def each_tenant(
    config_path: Sequence[Path], tenant: str | None
) -> list[tuple[str | None, AppSettings | list[str]]]:
    """What ``run`` and ``sync`` work through, in order: ``(None, settings)`` without tenants;
    ``--tenant``'s settings; else every tenant's, sorted by name. A tenant whose settings are
    invalid (a secret missing) comes with its problem lines instead, so the others still run.
    Exit 2 as :func:`settings_or_fail` does for everything else."""
    base = config_or_fail(config_path)
    if tenant is not None or not base.tenants:
        return [(tenant, _tenant_or_fail(base, tenant))]
    found: list[tuple[str | None, AppSettings | list[str]]] = []
    for name in base.tenant_names():
        try:
            found.append((name, base.tenant(name)))
        except ValidationError as exc:
            found.append((name, [f"invalid setting {line}" for line in describe_errors(exc)]))
    return found


def tenant_error(tenant: str | None, message: str) -> dict[str, Any]:
    """Print ``message`` as an error line (naming ``tenant``, its fix hints made the tenant's:
    :func:`~engine.app.tenants.for_tenant`) and return the tenant's result for
    :func:`work_through`: exit code 2."""
    where, message = f"tenant {tenant}: " if tenant is not None else "", for_tenant(tenant, message)
    click.echo(f"wfm-intervals: error: {where}{message}", err=True)
    return {"ok": False, "exit_code": 2, "error": message}


def work_through(
    todo: Sequence[tuple[str | None, AppSettings | list[str]]],
    one: Callable[[AppSettings, str | None], dict[str, Any]],
    *,
    every: bool,
    as_json: bool,
) -> int:
    """Do ``one`` for each of :func:`each_tenant`'s entries (its log lines naming the tenant),
    and return the worst exit code of their results (``exit_code``, 0 when absent). A tenant
    with invalid settings is its error lines and exit 2. ``every``: the command does every
    tenant: a ``tenant <name>`` line before each one's output, an error ``one`` raises is that
    tenant's line (:func:`_unexpected`) and the next tenant runs, and ``--json`` prints one
    document ``{ok, exit_code, tenants: [...]}``; otherwise ``--json`` prints the one result
    (with ``tenant``: its name), unless it failed (its error line is enough)."""
    results: list[tuple[str | None, dict[str, Any]]] = []
    for name, found in todo:
        if every and not as_json:
            click.echo(f"tenant {name}")
        if isinstance(found, list):
            for line in found[:-1]:
                tenant_error(name, line)
            results.append((name, tenant_error(name, found[-1])))
            continue
        with logs.tenant_scope(name):
            try:
                results.append((name, one(found, name)))
            except BaseException as exc:  # no command said it: the other tenants still run
                if not every or isinstance(exc, OutputClosedError) or not a_bug(exc):
                    raise
                results.append((name, _unexpected(name, exc)))
    worst = max((r.get("exit_code", 0) for _, r in results), default=0)
    shown = [({"tenant": name} if name else {}) | r for name, r in results]
    if as_json and every:
        click.echo(json.dumps({"ok": worst == 0, "exit_code": worst, "tenants": shown}, indent=2))
    elif as_json and shown and "error" not in shown[0]:
        click.echo(json.dumps(shown[0], indent=2))
    return worst


def _unexpected(tenant: str | None, exc: BaseException) -> dict[str, Any]:
    """``tenant``'s result for an error its command did not turn into a line: the error's line
    (a :class:`WfmError` or :class:`OSError`: its exit code, else 2); any other is a bug, its
    traceback first, as the command line says one (``internal error``)."""
    if isinstance(exc, WfmError | OSError):
        return tenant_error(tenant, printable(exc)) | {"exit_code": getattr(exc, "exit_code", 2)}
    click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    name = type(exc).__name__
    bug = f"internal error ({name}: {printable(exc)}): a bug; please report it with the traceback"
    return tenant_error(tenant, f"{bug} above")


def _tenant_or_fail(
    base: AppSettings, tenant: str | None, *, allow_missing: bool = False
) -> AppSettings:
    if tenant is None:
        if base.tenants:
            fail(f"tenants are configured ({', '.join(base.tenant_names())}): give --tenant NAME")
        return base
    shown = tenant if is_name(tenant) else repr(tenant)
    if not base.tenants:
        fail(f"--tenant {shown}: no tenants are configured (add a [tenants.<name>] table)")
    if tenant not in base.tenants:
        fail(f"--tenant {shown}: unknown tenant (known: {', '.join(base.tenant_names())})")
    try:
        return base.tenant(tenant, allow_missing=allow_missing)
    except ValidationError as exc:
        _invalid(describe_errors(exc))


def _invalid(lines: Sequence[str]) -> NoReturn:
    for line in lines[:-1]:
        click.echo(f"wfm-intervals: error: invalid setting {line}", err=True)
    fail(f"invalid setting {lines[-1]}")


def config_or_fail(
    config_path: Sequence[Path] | Path | None, *, allow_missing: bool = False
) -> AppSettings:
    """The configuration as loaded (with tenants: the base they merge over, and its tenants:
    ``config show``), every secret of it and of its tenants masked in the log lines; or exit
    2 (:func:`settings_or_fail`'s lines)."""
    try:
        settings = load_settings(config_path or None, allow_missing=allow_missing)
        if any(str(p).startswith("s3:/") for p in (settings.output.dir, settings.store.landing)):
            fail("[output] dir, [store] landing: object storage (s3://) is not supported here")
        found = secret_values(settings)
        for name in settings.tenant_names():
            found += secret_values(settings.tenant(name, allow_missing=True))
        logs.mask(found)  # a second guard: no line shows a secret
        return settings
    except ConnectorError as exc:
        fail(str(exc))
    except ValidationError as exc:
        _invalid(describe_errors(exc))


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.6g}"
    return str(value)


def _numeric(values: Sequence[Any]) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    return any(number(v) for v in values) and all(v is None or number(v) for v in values)


def print_table(
    headers: Sequence[str], rows: Sequence[Sequence[Any]], *, title: str | None = None
) -> None:
    """Print ``rows`` under ``headers`` on stdout: rich on a terminal, aligned text otherwise.

    Numbers are right-aligned and grouped by thousands; ``None`` prints as ``-``.
    """
    cells = [[_cell(v) for v in row] for row in rows]
    numeric = [_numeric([r[i] for r in rows]) for i in range(len(headers))]
    if sys.stdout.isatty():
        table = Table(title=title, title_justify="left")
        for header, right in zip(headers, numeric, strict=True):
            table.add_column(header, justify="right" if right else "left")
        for row in cells:
            table.add_row(*row)
        Console(file=sys.stdout).print(table)
        return
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        parts = (
            v.rjust(w) if right else v.ljust(w)
            for v, w, right in zip(values, widths, numeric, strict=True)
        )
        return "  ".join(parts).rstrip()

    if title:
        click.echo(title)
    click.echo(line(headers))
    for row in cells:
        click.echo(line(row))


@contextmanager
def log_to(console: Console | None, *, verbose: bool) -> Iterator[None]:
    """Send the connectors' log to stderr (through rich's console on a terminal): ``sync``'s."""
    logger = logging.getLogger("connectors")
    handler: logging.Handler | None = None
    if console is not None:  # a person at a terminal: the lines above the progress bars
        from rich.logging import RichHandler  # noqa: PLC0415 - terminals only

        handler = RichHandler(console=console, show_path=False)
        logger.addHandler(handler)
        logger.propagate = False
    previous = logger.level
    logger.setLevel(min(logging.INFO if verbose else logging.WARNING, logs.level()))
    try:
        yield
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.propagate = True
        logger.setLevel(previous)
