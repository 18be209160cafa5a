"""The callback commands of ``wfm-intervals`` (registered on :data:`engine.cli.main.cli`).

- ``callbacks``: validate callback attempts and build ``callback_intervals``, ``retry_outcomes``
  and their exports (:func:`engine.pipeline.callbacks.build_callbacks`).
- ``callback-metrics``: print the seed-000 metrics document (or, with ``--step``, a list of
  per-interval documents) as JSON on stdout, from an attempts file or a built store.

Errors are one line on stderr and exit code 2, like every other command.

Example:
    $ wfm-intervals callbacks --attempts attempts.csv --out out/ --tz Europe/London
    $ wfm-intervals callback-metrics --begin 2026-10-01 --end 2026-10-02 --store out/ --type asap
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import click
import polars as pl

from engine.cli.build import OUT_HELP, build_settings, output_dir
from engine.cli.common import (
    CONFIG_OPTION,
    MAX_QUARANTINE_OPTION,
    TENANT_OPTION,
    GivenPath,
    check_window,
    engine_options,
    engine_settings,
    exit_on_quarantine,
    fail,
    instant,
    store_dir,
)
from engine.errors import InputSchemaError, NothingValidError, StoreError, printable
from engine.output import delta, location
from engine.output.inputs import InputFileError, read_input
from engine.output.store import requests_of, scan_requests
from engine.pipeline.callbacks import CALLBACK_FORMATS, CallbackReport, build_callbacks
from engine.settings import known_zone
from engine.tables import callback_metrics
from engine.validate.callback_attempts import validate_callback_attempts

__all__ = ["callback_metrics_command", "callbacks", "run_callbacks", "stored_requests"]


def _print_report(report: CallbackReport, *, title: str) -> None:
    q = ", ".join(f"{r}={n}" for r, n in report.quarantined.items()) or "none"
    click.echo(title)
    click.echo(f"  rows in          {report.rows_in:>12,}")
    click.echo(f"  attempts         {report.attempts:>12,}")
    click.echo(f"  requests         {report.requests:>12,}")
    click.echo(f"  not callbacks    {report.not_callbacks:>12,}  (e.g. the caller chose to hold)")
    click.echo(f"  quarantined      {report.quarantined_total:>12,}  ({q})")
    click.echo(f"  collapsed        {report.collapsed:>12,}  (exact duplicates)")
    click.echo(f"  chains with gaps {report.gaps:>12,}")
    click.echo(f"  window           {report.window[0]} .. {report.window[1]}")
    click.echo(
        f"  intervals        {report.intervals:>12,}  ({report.interval_minutes} min, {report.tz})"
    )
    click.echo(
        f"  combinations     {report.combinations:>12,}  (call target x type x party x source)"
    )
    click.echo(f"  table rows       {report.table_rows:>12,}  (+ {report.retry_rows:,} retry rows)")
    click.echo(f"  files written    {len(report.files):>12,}")
    for f in report.files:
        click.echo(f"    {f}")
    click.echo(f"  took             {report.seconds:>11.2f}s")


def run_callbacks(frame: pl.LazyFrame, out: Path, *, title: str, **opts: Any) -> CallbackReport:
    """Build the callback tables with command-line options; print the report.

    Options: ``start``, ``end`` (text), ``interval_minutes`` (text), ``tz``, ``formats``,
    ``engine`` and ``ray_address``.
    """
    start, end = instant(opts.get("start"), "start"), instant(opts.get("end"), "end")
    if (start is None) != (end is None):
        fail("give both --start and --end, or neither")
    minutes = opts.get("interval_minutes")
    settings = build_settings(interval_minutes=int(minutes) if minutes else None, tz=opts.get("tz"))
    check_window(settings, start, end, configurable=False)
    engine = engine_settings(opts.get("engine"), opts.get("ray_address"))
    try:
        report = build_callbacks(
            frame,
            settings=settings,
            out_dir=out,
            window=(start, end) if start and end else None,
            formats=tuple(opts.get("formats") or CALLBACK_FORMATS),
            set_aside=opts.get("set_aside"),
            engine=engine,
        )
    except InputSchemaError as exc:
        fail(f"{opts.get('source', 'input')}: {exc}")
    except NothingValidError as exc:
        fail(f"{opts.get('source', 'input')}: {exc}", code=exc.exit_code)
    except ValueError as exc:
        fail(str(exc))
    except pl.exceptions.PolarsError as exc:  # the input cannot be read (a torn Parquet file)
        fail(f"{opts.get('source', 'input')}: {printable(exc)}")
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {location.shown(exc.filename or out)}")
    _print_report(report, title=title)
    return report


@click.command()
@click.option(
    "--attempts",
    "attempts_path",
    required=True,
    type=GivenPath(path_type=Path),
    help="Callback attempts: .parquet, .csv, .ndjson/.jsonl, or a Parquet directory.",
)
@click.option(
    "--out",
    required=True,
    type=GivenPath(file_okay=False),
    help="Output directory (store/, exports/, quarantine/, callbacks_summary.json)." + OUT_HELP,
)
@click.option("--start", help="Window start, ISO 8601 instant (default: first request).")
@click.option("--end", help="Window end (exclusive), ISO 8601 instant (default: last request).")
@click.option(
    "--interval",
    "interval_minutes",
    type=click.Choice(["15", "30", "60"]),
    help="Interval length in minutes [15].",
)
@click.option("--tz", help="IANA reporting time zone the intervals align to [UTC].")
@click.option(
    "--format",
    "formats",
    multiple=True,
    type=click.Choice(CALLBACK_FORMATS),
    help="Table outputs to write; repeatable [all].",
)
@MAX_QUARANTINE_OPTION
@engine_options
def callbacks(attempts_path: Path, out: str, max_quarantine_fraction: float, **opts: Any) -> None:
    """Build the callback interval and retry outcome tables from callback attempts."""
    try:
        frame, set_aside = read_input(attempts_path, "callback_attempts")
    except InputFileError as exc:
        fail(f"--attempts: {exc}")
    title = f"callbacks built from {attempts_path}"
    source = f"--attempts {attempts_path}"
    with output_dir(out, ("callback_attempts", "callback_intervals", "retry_outcomes")) as where:
        report = run_callbacks(
            frame, where, title=title, set_aside=set_aside, source=source, **opts
        )
    limit = max_quarantine_fraction
    exit_on_quarantine(report.quarantined_total, report.rows_in - report.not_callbacks, limit)


def stored_requests(store: Path) -> pl.LazyFrame:
    """The callback requests of the committed ``callback_attempts`` table of ``store``: what
    ``callback-metrics --store`` (and ``serve``) renders.

    Raises:
        StoreError: no table, or a damaged one (the message names the store).
    """
    for candidate in (store / "store" / "callback_attempts", store / "callback_attempts"):
        if delta.is_table(candidate):
            try:
                return scan_requests(candidate)
            except StoreError as exc:
                raise StoreError(f"{store}: {exc}") from None
    msg = f"{store}: no callback_attempts table (run `wfm-intervals callbacks` first)"
    raise StoreError(msg)


def _stored_requests(store: Path) -> pl.LazyFrame:
    try:
        return stored_requests(store)
    except StoreError as exc:
        fail(f"--store {exc}")


def _requests(attempts_path: Path | None, store: Path) -> pl.LazyFrame:
    """The requests of the attempts file, validated, or of the store."""
    if attempts_path is None:
        return _stored_requests(store)
    try:
        frame, set_aside = read_input(attempts_path, "callback_attempts")
        clean, quarantine = validate_callback_attempts(frame)
        clean_df, bad = pl.collect_all([clean, quarantine.select(pl.len())])
    except InputFileError as exc:
        fail(f"--attempts: {exc}")
    except InputSchemaError as exc:
        fail(f"--attempts {attempts_path}: {exc}")
    except pl.exceptions.PolarsError as exc:  # the input cannot be read (a torn Parquet file)
        fail(f"--attempts {attempts_path}: {printable(exc)}")
    quarantined = bad.item() + set_aside.height
    if quarantined:
        click.echo(f"wfm-intervals: note: {quarantined} attempt rows quarantined", err=True)
    return requests_of(clean_df)


@click.command("callback-metrics")
@click.option("--begin", "--timeBegin", "begin", required=True, help="YYYY-MM-DD or …THH:MM:SSZ.")
@click.option("--end", "--timeEnd", "end", required=True, help="Exclusive; like --begin.")
@click.option("--callTargetId", "--call-target-id", "call_target_id", help="Id or id,id,….")
@click.option(
    "--firstPartyCalled", "--first-party-called", "first_party_called", help="agent|customer"
)
@click.option("--sourceType", "--source-type", "source_type", help="voice|digital")
@click.option("--type", "type_", help="asap|scheduled")
@click.option(
    "--attempts",
    "attempts_path",
    type=GivenPath(path_type=Path),
    help="Callback attempts file (validated first) instead of a built store.",
)
@click.option(
    "--store",
    type=GivenPath(path_type=Path, file_okay=False),
    help="Output directory of a callbacks build (or demo) holding store/callback_attempts "
    "[output.dir of --config].",
)
@CONFIG_OPTION
@TENANT_OPTION
@click.option(
    "--step",
    type=click.Choice(list(callback_metrics.STEPS)),
    help="Print a list of per-interval documents instead of one.",
)
@click.option("--tz", default="UTC", show_default=True, help="Zone the --step intervals align to.")
def callback_metrics_command(
    *,
    begin: str,
    end: str,
    attempts_path: Path | None,
    store: Path | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    step: callback_metrics.Step | None,
    tz: str,
    type_: str | None,
    call_target_id: str | None,
    first_party_called: str | None,
    source_type: str | None,
) -> None:
    """Print the callback metrics document (Mindful's seed-000 shape) as JSON."""
    b, e = _time(begin, "begin"), _time(end, "end")
    try:  # a zone is checked, --step or not (a typo passed when the document had no steps)
        known_zone(tz)
    except ValueError as exc:
        fail(f"--tz: {exc}")
    if step is not None:  # before anything is read: a typo'd year asks for gigabytes
        try:
            callback_metrics.check_intervals(b, e, step)
        except ValueError as exc:
            fail(f"--begin/--end with --step {step}: {exc}")
    where = store_dir(store, config_path, tenant) if attempts_path is None else Path()
    reqs = _requests(attempts_path, where)
    filters: dict[str, Any] = {
        "call_target_id": call_target_id,
        "first_party_called": first_party_called,
        "source_type": source_type,
        "type": type_,
    }
    try:
        if step is None:
            result: Any = callback_metrics.document(reqs, begin=b, end=e, **filters)
        else:
            result = callback_metrics.document_intervals(
                reqs, begin=b, end=e, step=step, tz=tz, **filters
            )
    except ValueError as exc:
        fail(str(exc))
    except (OSError, pl.exceptions.ComputeError) as exc:
        fail(f"{attempts_path or store}: {exc}")
    click.echo(json.dumps(result, indent=2))


def _time(value: str, name: str) -> datetime:
    try:
        return callback_metrics.parse_time(value)
    except ValueError as exc:
        fail(f"--{name}: {exc}")
