"""``wfm-intervals export``: vendor files, the forecasting format and Contact Volume pages.

All read the volume table of a built store (the ``--out`` directory of ``build``/``demo``).

Example:
    $ wfm-intervals export vendor genesys --store demo-out --out exports/genesys
    $ wfm-intervals export forecast --store demo-out --out forecast.parquet
    $ wfm-intervals export contact-volume --store demo-out --skip 0 --limit 100
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import click
import polars as pl

from engine import clock
from engine.app.config import OutputSettings
from engine.cli.common import (
    CONFIG_OPTION,
    TENANT_OPTION,
    GivenPath,
    fail,
    settings_or_fail,
    store_dir,
)
from engine.errors import ExportError, InputFileError, StoreError, printable
from engine.output import files as outputs
from engine.output.files import DOCUMENT_INPUT
from engine.output.inputs import read_table
from engine.output.read import built_with, covered_span, filled_volume
from engine.output.vendor import builtin_profiles, closed_by, load_profile, render
from engine.tables.callvolume import DERIVED, derive
from engine.tables.forecast import DEFAULT_METRICS, long_format

__all__ = ["MAX_LIMIT", "MAX_SKIP", "export", "volume_table"]

#: The largest ``--skip``: beyond any table's rows, and within what paging can count.
MAX_SKIP = 2**53
#: The largest ``--limit``: a Contact Volume page holds at most 1000 rows, as ``serve`` pages.
MAX_LIMIT = 1000


def _store(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--store`` (default: ``[output] dir`` of the configuration), ``--config`` and
    ``--tenant``."""
    command = CONFIG_OPTION(TENANT_OPTION(command))
    return click.option(
        "--store",
        type=GivenPath(path_type=Path, file_okay=False),
        help="A built output directory (holding store/callvolume) [output.dir of --config].",
    )(command)


def _output(
    store: Path | None, config_path: tuple[Path, ...], tenant: str | None
) -> OutputSettings:
    """The ``[output]`` settings an export command defaults to: the configuration's (a
    tenant's) when it is read (``--config``, ``--tenant``, or no ``--store``: its
    ``output.dir``), else the built-in defaults; exit 2 on an invalid configuration."""
    given = store is None or config_path or tenant
    return settings_or_fail(config_path, tenant=tenant).output if given else OutputSettings()


def _SETTLE(command: Callable[..., Any]) -> Callable[..., Any]:  # noqa: N802 - an option
    """``--settle-minutes``, defaulting to ``[output] settle_minutes`` (:func:`_output`): the
    command is called with the minutes given on the command line, else the configured ones."""

    @functools.wraps(command)
    def settled(*args: Any, settle_minutes: int | None, **kwargs: Any) -> Any:
        if settle_minutes is None:
            where = (kwargs["store"], kwargs["config_path"], kwargs["tenant"])
            settle_minutes = _output(*where).settle_minutes
        return command(*args, settle_minutes=settle_minutes, **kwargs)

    return click.option(
        "--settle-minutes",
        type=click.IntRange(0, 1440),
        help="Closed intervals only: those that ended at least this long ago "
        "[output.settle_minutes; 15].",
    )(settled)


def volume_table(store: Path) -> pl.DataFrame:
    """The committed volume table of ``store``, zero-filled over the store's span in the zone it
    was built with (the store keeps busy rows), with its derived columns (re-derived if absent):
    what every export of the volume table (and ``serve``) renders.

    The span is the busy rows' first start and last end widened by the windows the contacts
    builds recorded and the grids the last run rebuilt (:func:`engine.output.read.covered_span`):
    a quiet first or last hour of a built window is zeros, as in the build's own exports, not
    left out. The callbacks builds' windows are not counted: a day built for callbacks only
    would show zero contacts it never read.

    Raises:
        StoreError: no volume table, or a damaged one (the message names the store).
    """
    try:
        table = read_table(store / "store" / "callvolume").collect()
    except (InputFileError, FileNotFoundError, pl.exceptions.ComputeError) as exc:
        if (store / "store" / "callvolume").exists():
            raise StoreError(f"{store}: {exc}") from None
        msg = f"{store}: no volume table (run `wfm-intervals build` or `demo` first)"
        raise StoreError(msg) from None
    table = table.select(c for c in table.columns if c in DOCUMENT_INPUT)
    settings = built_with(store)
    if not set(DERIVED) <= set(table.columns):
        table = derive(table.lazy(), settings=settings).collect()
    if table.height == 0:
        return table
    span = covered_span(store, "callvolume", table.lazy())
    assert span is not None  # the table has rows
    filled = filled_volume(table.lazy(), settings.grid(span, checked=False).frame)
    return filled.select(table.columns).cast(table.schema).collect()  # the store's types


def _volume(store: Path) -> pl.DataFrame:
    try:
        return volume_table(store)
    except StoreError as exc:
        fail(f"--store {exc}")


@click.group()
def export() -> None:
    """Export the volume table in other shapes."""


def _profile(command: Callable[..., Any]) -> Callable[..., Any]:
    """The optional ``PROFILE`` argument of ``export vendor``: the command is called with a
    built-in profile's name or with ``--profile-file`` (``profile_name`` None), exactly one;
    neither or both exit 2 in one line (a name given beside a file was once ignored)."""

    @functools.wraps(command)
    def one_profile(*args: Any, profile_name: str | None, **kwargs: Any) -> Any:
        if (profile_name is None) == (kwargs["profile_file"] is None):
            if profile_name is not None:
                fail(f"PROFILE {profile_name!r} and --profile-file: give one or the other")
            fail(f"give a PROFILE ({', '.join(sorted(builtin_profiles()))}) or --profile-file")
        return command(*args, profile_name=profile_name, **kwargs)

    return click.argument("profile_name", metavar="[PROFILE]", required=False)(one_profile)


@export.command("vendor")
@_profile
@_store
@click.option("--out", required=True, type=GivenPath(path_type=Path, file_okay=False),
              help="Directory for the vendor files.")  # fmt: skip
@click.option("--profile-file", type=GivenPath(path_type=Path, dir_okay=False, exists=True),
              help="A TOML profile of your own instead of a built-in PROFILE.")  # fmt: skip
@_SETTLE
def vendor(  # noqa: PLR0917 - the command's options
    profile_name: str | None,
    store: Path | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    out: Path,
    profile_file: Path | None,
    settle_minutes: int,
) -> None:
    """Write the files of a WFM vendor PROFILE (genesys, calabrio, eleveo, or --profile-file):
    the intervals closed now (ended at least --settle-minutes ago)."""
    source = "" if profile_file is None else f"--profile-file {profile_file}: "
    if profile_file is not None:
        try:
            profile = load_profile(profile_file)
        except ExportError as exc:
            fail(f"{source}{exc}")
    else:
        profiles = builtin_profiles()
        if profile_name not in profiles:
            fail(f"unknown profile {profile_name!r} (built in: {', '.join(sorted(profiles))})")
        profile = profiles[profile_name]
    now = clock.now()
    try:
        table = _volume(store_dir(store, config_path, tenant))
        files = render(table, profile, closed=closed_by(now, settle_minutes), run_at=now)
    except ExportError as exc:
        fail(f"{source}{exc}")
    written: set[Path] = set()
    for name, text in files:
        path = out / name
        if path.parent != out or path in written:  # render gives each file a name of its own
            fail(f"{source}profile {profile.name!r}: {name!r} is not a new file name in --out")
        written.add(path)
        try:
            outputs.write_text(text, path)
        except OSError as exc:
            fail(f"--out {out}: {exc.strerror or printable(exc)}: {name}")
    from engine.pipeline.export import remove_stale  # noqa: PLC0415 - run's own clean-up

    try:  # what an earlier export of this profile left in --out (its files only), as `run`
        remove_stale(out, profile, written)
    except OSError as exc:
        fail(f"--out {out}: {exc.strerror or printable(exc)}: {exc.filename}")
    click.echo(f"wrote {len(files)} {profile.name} file(s) to {out}")


@export.command("forecast")
@_store
@click.option("--out", required=True, type=GivenPath(path_type=Path, dir_okay=False),
              help="Output file: .parquet or .csv.")  # fmt: skip
@click.option("--metric", "metrics", multiple=True,
              help="Additive column to turn into series; repeatable "
              f"[output.forecast_metrics; {' '.join(DEFAULT_METRICS)}].")  # fmt: skip
@_SETTLE
@click.option("--time", type=click.Choice(["utc", "local"]),
              help="ds in UTC, or on the wall clock of the zone it was built in "
              "[output.forecast_time; utc].")  # fmt: skip
def forecast(  # noqa: PLR0917 - the command's options
    store: Path | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    out: Path,
    metrics: tuple[str, ...],
    settle_minutes: int,
    time: str | None,
) -> None:
    """Write the long unique_id, ds, y format for forecasting libraries (closed intervals);
    an option not given is the configuration's [output] setting when one is read."""
    closed = closed_by(clock.now(), settle_minutes)
    output = _output(store, config_path, tenant)
    metrics = metrics or output.forecast_metrics
    stamps: Literal["utc", "local"] = (
        "local" if (time or output.forecast_time) == "local" else "utc"
    )
    built = store_dir(store, config_path, tenant)
    try:
        frame = long_format(
            _volume(built).lazy(),
            metrics=metrics,
            time=stamps,
            closed=closed,
            tz=built_with(built).tz,
        ).collect()
    except ValueError as exc:
        fail(f"--metric: {exc}")
    if out.suffix == ".parquet":
        outputs.write_parquet(frame, out)
    elif out.suffix == ".csv":
        outputs.write_csv(frame, out)
    else:
        fail(f"--out {out}: expected a .parquet or .csv file")
    click.echo(f"wrote {frame['unique_id'].n_unique()} series, {frame.height} rows to {out}")


@export.command("contact-volume")
@_store
@click.option("--skip", default=0, show_default=True, type=click.IntRange(0, MAX_SKIP))
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, MAX_LIMIT))
@click.option("--org-id", help="orgId stamped on it [output.org_id; wfm-intervals].")
@click.option("--duration-unit", type=click.Choice(["ms", "s"]), help="[output.duration_unit; ms]")
def contact_volume(  # noqa: PLR0917 - the command's options
    store: Path | None,
    config_path: tuple[Path, ...],
    tenant: str | None,
    skip: int,
    limit: int,
    org_id: str | None,
    duration_unit: str | None,
) -> None:
    """Print one page of the Contact Volume document (Kore.ai shape) as JSON."""
    # the configuration's (a tenant's) document, as its runs and `serve` write it
    given = store is None or config_path or tenant
    output = settings_or_fail(config_path, tenant=tenant).output if given else None
    if org_id is not None and not org_id.strip():  # once silently the default
        fail("--org-id: an empty orgId (give the organisation's id)")
    org_id = org_id or (output.org_id if output else "wfm-intervals")
    unit = duration_unit or (output.duration_unit if output else "ms")
    doc = outputs.callvolume_document(
        _volume(store_dir(store, config_path, tenant)), org_id=org_id, skip=skip, limit=limit,
        unit="s" if unit == "s" else "ms",
    )  # fmt: skip
    click.echo(json.dumps(doc, indent=1))
