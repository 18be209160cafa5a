"""``wfm-intervals build``: the interval tables from a canonical contacts file.

Example:
    $ wfm-intervals build --contacts contacts.parquet --out out/ --tz Europe/London
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import click
import polars as pl
from pydantic import ValidationError

from engine.cli.common import (
    MAX_QUARANTINE_OPTION,
    GivenPath,
    check_window,
    engine_options,
    engine_settings,
    exit_on_quarantine,
    fail,
    instant,
)
from engine.errors import (
    InputSchemaError,
    NothingValidError,
    StoreError,
    StoreLockedError,
    printable,
)
from engine.output import location
from engine.output.files import DurationUnit
from engine.output.inputs import InputFileError, read_input
from engine.pipeline import build as pipeline
from engine.pipeline.build import FORMATS, BuildReport, Format
from engine.pipeline.lock import LOCK_FILE, set_aside_unreadable, store_lock
from engine.schema import CHANNELS
from engine.settings import (
    MAX_DURATION_LIMIT_HOURS,
    MAX_THRESHOLD_MS,
    SL_FORMULAS,
    BuildSettings,
    ThresholdOverride,
)

__all__ = ["OUT_HELP", "build", "build_options", "build_settings", "output_dir", "run_build"]

#: The option of ``build`` and ``callbacks`` that gives each field of :class:`BuildSettings`.
_OPTION_OF = {
    "interval_minutes": "--interval",
    "tz": "--tz",
    "attribution": "--attribution",
    "sl_formula": "--sl-formula",
    "sl_comparator": "--sl-comparator",
    "sl_default_ms": "--sl-threshold",
    "sl_overrides": "--sl-threshold",
    "use_vendor_threshold": "--use-vendor-threshold",
    "short_abandon_ms": "--short-abandon-ms",
    "max_duration_hours": "--max-duration-hours",
}


def build_settings(**options: Any) -> BuildSettings:
    """The :class:`BuildSettings` of ``build``'s and ``callbacks``' options (``None``: not
    given, the default), or exit 2 with one line naming the option as typed:
    ``--tz: unknown IANA time zone 'Mars/X'``."""
    try:
        return BuildSettings(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        field = str(error["loc"][0]) if error["loc"] else ""
        fail(f"{_OPTION_OF.get(field, field)}: {str(error['msg']).removeprefix('Value error, ')}")


def _thresholds(specs: tuple[str, ...]) -> tuple[dict[str, int], tuple[ThresholdOverride, ...]]:
    """``voice=20000`` (channel default), ``QUEUE=15000`` or ``QUEUE/chat=30000`` (overrides).

    A channel is one of :data:`engine.schema.CHANNELS` as it is spelt (``QUEUE/vioce`` is
    refused, as it would match no contact); the channel of ``QUEUE/CHANNEL`` follows the last
    ``/``. A bare target is a queue id, unless it is a channel but for case or spaces
    (``Voice``): that is refused as a typo (a queue of that name is set by ``sl_overrides``)."""
    defaults: dict[str, int] = {}
    overrides: list[ThresholdOverride] = []
    channels = tuple(CHANNELS.categories)
    for spec in specs:
        target, sep, raw = spec.partition("=")
        value = raw.strip().lower()
        ms = value.removesuffix("ms")
        if value.endswith("s") and not value.endswith("ms"):
            ms = str(int(value.removesuffix("s")) * 1000) if value[:-1].isdigit() else "x"
        queue, slash, channel = target.rpartition("/") if "/" in target else (target, "", "")
        if not sep or not ms.isdigit() or not queue or (slash and not channel):
            fail(f"--sl-threshold {spec!r}: expected TARGET=MILLISECONDS (e.g. voice=20000)")
        if int(ms) > MAX_THRESHOLD_MS:
            fail(f"--sl-threshold {spec!r}: at most {MAX_THRESHOLD_MS} ms (a week)")
        typo = target not in channels and target.strip().lower() in channels
        if typo or (slash and channel not in channels):
            fail(
                f"--sl-threshold {spec!r}: unknown channel {(channel or target)!r} (channels: "
                f"{', '.join(channels)}; a queue so named is set in [build] sl_overrides)"
            )
        if target in channels:
            defaults[target] = int(ms)
        else:
            overrides.append(
                ThresholdOverride(queue_id=queue, channel=channel or None, threshold_ms=int(ms))
            )
    return defaults, tuple(overrides)


def _print_report(report: BuildReport, *, title: str) -> None:
    q = ", ".join(f"{r}={n}" for r, n in report.quarantined.items()) or "none"
    click.echo(f"{title}")
    click.echo(f"  rows in          {report.rows_in:>12,}")
    click.echo(f"  contacts         {report.contacts:>12,}")
    click.echo(f"  quarantined      {report.quarantined_total:>12,}  ({q})")
    click.echo(f"  collapsed        {report.collapsed:>12,}  (exact duplicates, older versions)")
    click.echo(f"  window           {report.window[0]} .. {report.window[1]}")
    click.echo(
        f"  intervals        {report.intervals:>12,}  ({report.interval_minutes} min, {report.tz})"
    )
    click.echo(f"  queue x channel  {report.queue_channels:>12,}")
    click.echo(f"  table rows       {report.table_rows:>12,}")
    click.echo(f"  files written    {len(report.files):>12,}")
    for f in report.files:
        click.echo(f"    {f}")
    click.echo(f"  took             {report.seconds:>11.2f}s")


_BUILD_OPTIONS = [
    click.option("--start", help="Window start, ISO 8601 instant (default: first contact)."),
    click.option("--end", help="Window end (exclusive), ISO 8601 instant (default: last contact)."),
    click.option(
        "--interval",
        "interval_minutes",
        type=click.Choice(["15", "30", "60"]),
        help="Interval length in minutes [15].",
    ),
    click.option("--tz", help="IANA reporting time zone the intervals align to [UTC]."),
    click.option(
        "--attribution",
        type=click.Choice(["arrival", "end"]),
        help="Interval a segment counts in: where it was offered, or where it ended [arrival].",
    ),
    click.option(
        "--sl-formula",
        type=click.Choice(SL_FORMULAS),
        help="Service-level formula [exclude_short_abandons].",
    ),
    click.option(
        "--sl-comparator",
        type=click.Choice(["<=", "<"]),
        help="'within' means wait <= T or wait < T [<=].",
    ),
    click.option(
        "--sl-threshold",
        "sl_thresholds",
        multiple=True,
        metavar="TARGET=MS",
        help="SL threshold: CHANNEL=MS, QUEUE=MS or QUEUE/CHANNEL=MS (20s also ok); repeatable.",
    ),
    click.option(
        "--use-vendor-threshold/--no-use-vendor-threshold",
        default=None,
        help="Prefer each record's own SL threshold when it has one [no].",
    ),
    click.option(
        "--short-abandon-ms",
        type=click.IntRange(0, MAX_THRESHOLD_MS),
        help="Abandons with a shorter wait are short abandons [5000].",
    ),
    click.option(
        "--max-duration-hours",
        type=click.IntRange(1, MAX_DURATION_LIMIT_HOURS),
        help="A longer wait, talk, hold or wrap-up is quarantined implausible_duration [168].",
    ),
    click.option(
        "--format",
        "formats",
        multiple=True,
        type=click.Choice(FORMATS),
        help="Outputs to write; repeatable [all].",
    ),
    click.option(
        "--org-id",
        default="wfm-intervals",
        show_default=True,
        help="orgId stamped on the Contact Volume document.",
    ),
    click.option(
        "--duration-unit",
        type=click.Choice(["ms", "s"]),
        default="ms",
        show_default=True,
        help="Durations of the Contact Volume document.",
    ),
]


def build_options(f: Any) -> Any:
    for option in reversed(_BUILD_OPTIONS):
        f = option(f)
    return f


def run_build(
    frame: Any, out: Path, opts: dict[str, Any], title: str, source: str = ""
) -> BuildReport:
    defaults, overrides = _thresholds(opts.pop("sl_thresholds"))
    start, end = instant(opts.pop("start"), "start"), instant(opts.pop("end"), "end")
    if (start is None) != (end is None):
        fail("give both --start and --end, or neither")
    formats: tuple[Format, ...] = opts.pop("formats") or FORMATS
    set_aside = opts.pop("set_aside", None)
    engine = engine_settings(opts.pop("engine", None), opts.pop("ray_address", None))
    org_id: str = opts.pop("org_id")
    if not org_id.strip():  # as [output] org_id: a document's orgId names its organisation
        fail("--org-id: an empty orgId (give the organisation's id)")
    unit: DurationUnit = opts.pop("duration_unit")
    if opts.get("interval_minutes"):
        opts["interval_minutes"] = int(opts["interval_minutes"])
    settings = build_settings(
        **opts, sl_default_ms=defaults or None, sl_overrides=overrides or None
    )
    check_window(settings, start, end, configurable=False)
    window = (start, end) if start and end else None
    try:
        report = pipeline.build_contacts(
            frame,
            settings=settings,
            out_dir=out,
            window=window,
            formats=formats,
            org_id=org_id,
            duration_unit=unit,
            set_aside=set_aside,
            engine=engine,
        )
    except InputSchemaError as exc:
        fail(f"{source or 'input'}: {exc}")
    except NothingValidError as exc:
        fail(f"{source or 'input'}: {exc}", code=exc.exit_code)
    except ValueError as exc:
        fail(str(exc))
    except pl.exceptions.PolarsError as exc:  # the input cannot be read (a torn Parquet file)
        fail(f"{source or 'input'}: {printable(exc)}")
    except OSError as exc:
        fail(f"{exc.strerror or exc}: {location.shown(exc.filename or out)}")
    _print_report(report, title=title)
    return report


#: ``--out`` of ``build`` and ``callbacks``: where it may be.
OUT_HELP = " A local folder, or s3://BUCKET/PREFIX (docs/scale-out.md)."


@contextmanager
def output_dir(out: str, tables: tuple[str, ...] = ()) -> Iterator[Path]:
    """The folder a command writes ``--out`` to: ``out`` itself, or for an object-store prefix
    (``s3://BUCKET/PREFIX``) a local staging folder standing for it, checked first, whose
    other outputs are uploaded when the block ends (:mod:`engine.output.location`). A local
    folder's store ``tables`` (those the command writes whole) whose log cannot be read (torn
    by a crash, or a disk) are set aside first, said on stderr: the command writes them anew,
    where opening them failed it every time (:func:`~engine.pipeline.lock.set_aside_unreadable`).
    """
    if not location.is_url(out):
        folder = Path(out)
        new = not folder.exists()
        with ExitStack() as held:
            try:  # one writer of a folder's store (engine.pipeline.lock)
                held.enter_context(store_lock(folder))
            except StoreLockedError as exc:
                fail(str(exc))
            except OSError as exc:
                fail(f"--out {out}: {exc.strerror or exc}")
            if new:  # a command that wrote nothing leaves no folder (removed under the lock)
                held.callback(_remove_if_bare, folder)
            for line in set_aside_unreadable(folder / "store", tables):
                click.echo(f"wfm-intervals: note: {line}", err=True)
            yield folder
        return
    try:
        with location.staged(out) as staging:
            yield staging
            location.publish(staging)
    except StoreError as exc:
        fail(str(exc))


def _remove_if_bare(folder: Path) -> None:
    """Remove ``folder`` when it holds the lock's file only (the command wrote nothing)."""
    if folder.is_dir() and [p.name for p in folder.iterdir()] == [LOCK_FILE]:
        (folder / LOCK_FILE).unlink(missing_ok=True)
        folder.rmdir()


@click.command()
@click.option(
    "--contacts",
    "contacts_path",
    required=True,
    type=GivenPath(path_type=Path),
    help="Canonical contacts: .parquet, .csv, .ndjson/.jsonl, or a Parquet directory.",
)
@click.option(
    "--out",
    required=True,
    type=GivenPath(file_okay=False),
    help="Output directory (store/, exports/, quarantine/, summary.json)." + OUT_HELP,
)
@build_options
@MAX_QUARANTINE_OPTION
@engine_options
def build(contacts_path: Path, out: str, max_quarantine_fraction: float, **opts: Any) -> None:
    """Build the interval tables from a canonical contacts file."""
    try:
        frame, set_aside = read_input(contacts_path, "contacts")
    except InputFileError as exc:
        fail(f"--contacts: {exc}")
    opts["set_aside"] = set_aside
    title = f"built from {contacts_path}"
    with output_dir(out, ("contacts", "callvolume")) as where:
        report = run_build(frame, where, opts, title=title, source=f"--contacts {contacts_path}")
    exit_on_quarantine(report.quarantined_total, report.rows_in, max_quarantine_fraction)
