"""The ``reconcile`` command of ``wfm-intervals`` (registered on :data:`engine.cli.main.cli`).

Compares our numbers with the vendors' own for a window (:mod:`engine.pipeline.checks`): the
callback metrics document with Mindful's, the volume table with the Kore.ai rows. Prints the
checks and the differences (rich on a terminal, plain text otherwise, or ``--json``), writes
``reconcile.json`` (which ``report`` shows) and ``reconcile/callvolume_kore.csv`` into the output
directory. Exit codes: 0 every difference within tolerance, 1 any beyond it, 2 usage,
configuration or I/O errors (one line naming the option, setting or URL).

Example:
    $ wfm-intervals reconcile --start 2026-10-01 --end 2026-10-02 --tolerance offered=1
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Final

import click

from connectors.errors import ConnectorError
from engine.app.sections import parse_tolerance
from engine.cli.common import (
    CONFIG_OPTION,
    TENANT_OPTION,
    GivenPath,
    fail,
    instant,
    log_lines,
    print_table,
    settings_or_fail,
)
from engine.errors import InputFileError
from engine.pipeline.checks import Reconciliation, load_inputs, reconcile, write_reconciliation

__all__ = ["reconcile_command", "show_reconciliation"]

#: Differences printed on screen (all of them are in reconcile.json).
SHOWN: Final = 50


def show_reconciliation(rec: Reconciliation) -> None:
    """Print the checks and the first :data:`SHOWN` differences."""
    checks = [
        [
            c.source,
            c.status,
            f"{c.window_start or '-'} .. {c.window_end or '-'}",
            c.compared,
            c.differences,
            c.out_of_tolerance,
            c.note or c.compares,
        ]
        for c in rec.checks
    ]
    head = ("source", "status", "window", "compared", "differences", "beyond", "what")
    print_table(head, checks, title="reconciliation")
    if not rec.differences:
        return
    keys = (
        "source",
        "interval_start_utc",
        "queue_id",
        "channel",
        "field",
        "ours",
        "theirs",
        "diff",
        "within_tolerance",
    )
    rows = [[d.get(k) for k in keys] for d in rec.differences[:SHOWN]]
    heads = ("source", "interval", "queue", "channel", "field", "ours", "theirs", "diff", "within")
    print_table(heads, rows, title="differences")
    if (more := len(rec.differences) - SHOWN) > 0:
        click.echo(f"... and {more:,} more in reconcile.json")


def _tolerances(specs: tuple[str, ...]) -> dict[str, float]:
    given: dict[str, float] = {}
    for spec in specs:
        try:
            field, value = parse_tolerance(spec)
        except ValueError as exc:
            fail(f"--tolerance {exc}")
        given[field] = value
    return given


@click.command("reconcile")
@click.option("--start", required=True, help="Window start, ISO 8601 instant (a date: midnight).")
@click.option("--end", required=True, help="Window end (exclusive), ISO 8601 instant.")
@CONFIG_OPTION
@TENANT_OPTION
@click.option(
    "--tolerance",
    "tolerance_specs",
    multiple=True,
    metavar="FIELD=X",
    help="Absolute tolerance of a field or pattern (offered=1, '*_ms=500'); "
    "repeatable; over [reconcile.tolerance]; unlisted fields: exact.",
)
@click.option(
    "--store",
    type=GivenPath(path_type=Path, file_okay=False),
    help="A built output directory: our contacts and attempts from its store/ "
    "(default: rebuilt from the landing store).",
)
@click.option(
    "--out",
    type=GivenPath(path_type=Path, file_okay=False),
    help="Where reconcile.json and reconcile/ go [output.dir].",
)
@click.option("--json", "as_json", is_flag=True, help="Print reconcile.json instead of tables.")
@click.option("-v", "--verbose", is_flag=True, help="Log the connectors' retries on stderr.")
def reconcile_command(
    *,
    start: str,
    end: str,
    config_path: tuple[Path, ...],
    tenant: str | None,
    tolerance_specs: tuple[str, ...],
    store: Path | None,
    out: Path | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Compare our numbers with Mindful's and Kore.ai's own for a window."""
    settings = settings_or_fail(config_path, tenant=tenant)
    begin, until = instant(start, "start"), instant(end, "end")
    assert begin is not None
    assert until is not None
    if until <= begin:
        fail(f"--end {end!r} is not after --start {start!r}")
    given = _tolerances(tolerance_specs)
    out_dir = out or settings.output.dir
    try:
        with log_lines("connectors", level=logging.WARNING, quiet=not verbose):
            inputs = load_inputs(settings, store=store)
            window = (begin, until)
            rec = reconcile(settings, inputs, window=window, tolerance=given, out_dir=out_dir)
        write_reconciliation(rec, out_dir)
    except InputFileError as exc:
        fail(str(exc))
    except ConnectorError as exc:
        fail(str(exc))
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or out_dir}")
    if as_json:
        click.echo(json.dumps(rec.to_json(), indent=2))
    else:
        show_reconciliation(rec)
    if not rec.ok:
        beyond = sum(c.out_of_tolerance for c in rec.checks)
        click.echo(
            f"wfm-intervals: reconciliation: {beyond} differences out of tolerance", err=True
        )
        sys.exit(1)
