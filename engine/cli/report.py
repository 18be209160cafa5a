"""The ``report`` command of ``wfm-intervals`` (registered on :data:`engine.cli.main.cli`).

Writes one self-contained HTML file (:func:`engine.report.build.write_report`) from the output
directory of a ``build``, ``callbacks`` or ``demo`` run. Errors are one line on stderr and exit
code 2, like every other command.

Example:
    $ wfm-intervals report --store demo-out --out report.html
    $ wfm-intervals report --store out/ --start 2026-10-05 --end 2026-10-12 --tz Europe/London
"""

from __future__ import annotations

from pathlib import Path

import click
import polars as pl

from engine.cli.common import (
    CONFIG_OPTION,
    TENANT_OPTION,
    FiniteFloat,
    GivenPath,
    fail,
    instant,
    store_dir,
)
from engine.errors import StoreError
from engine.report.build import write_report
from engine.settings import SL_FORMULAS, SlFormula

__all__ = ["report"]


@click.command()
@click.option(
    "--store",
    type=GivenPath(path_type=Path, file_okay=False),
    help="Output directory of a build, callbacks or demo run (holding store/) "
    "[output.dir of --config].",
)
@CONFIG_OPTION
@TENANT_OPTION
@click.option(
    "--out",
    default=Path("report.html"),
    show_default=True,
    type=GivenPath(path_type=Path, dir_okay=False),
    help="The HTML file to write.",
)
@click.option(
    "--start", help="Window start, ISO 8601 instant (default: the store's first interval)."
)
@click.option("--end", help="Window end (exclusive), ISO 8601 instant (default: the store's end).")
@click.option("--tz", help="IANA zone of days, hours and weekdays (default: the build's zone).")
@click.option(
    "--sl-formula",
    type=click.Choice(SL_FORMULAS),
    help="Service-level formula (default: the one the store was built with).",
)
@click.option(
    "--sl-target",
    default=None,
    type=FiniteFloat(0, 1),
    help="One service-level target for every channel's colours and chart line, as a fraction "
    "(default: each channel's own [build.sl_target], as the staffing table holds it).",
)
def report(
    *,
    store: Path | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    out: Path,
    start: str | None,
    end: str | None,
    tz: str | None,
    sl_formula: SlFormula | None,
    sl_target: float | None,
) -> None:
    """Write a self-contained HTML report (charts, tables, data quality) of a built store."""
    given, store = store is not None, store_dir(store, config_path, tenant)
    try:
        data = write_report(
            store,
            out,
            start=instant(start, "start"),
            end=instant(end, "end"),
            tz=tz,
            sl_formula=sl_formula,
            sl_target=sl_target,
        )
    except StoreError as exc:
        fail(str(exc) if given else f"{exc} (give --store, or --config with [output] dir)")
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {exc.filename or out}")
    except pl.exceptions.PolarsError as exc:  # e.g. a damaged Parquet file in the store
        fail(f"--store {store}: {str(exc).splitlines()[0]}")
    first, last = (f"{t:%Y-%m-%dT%H:%MZ}" for t in data.window)
    size = out.stat().st_size / 1024
    click.echo(f"wrote {out} ({size:,.0f} KiB): {first} .. {last}, days and hours in {data.tz}")
