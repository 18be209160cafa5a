"""The exports of one ``wfm-intervals run``, written from the merged interval tables.

What ``[output]`` asks for, under ``<output.dir>/exports/``:

* ``formats``: ``csv`` and ``ndjson`` of every interval table as the store holds it (busy rows:
  :mod:`engine.tables.dense`), ``kore`` the Contact Volume document (seed 003) of the volume
  table, zero-filled (``parquet`` is the store, always written);
* ``vendor_profiles``: the files of each WFM vendor profile, in ``vendor/<profile>/``, of the
  closed intervals only (ended ``settle_minutes`` before the run);
* ``forecast``: ``forecast.parquet``, the long ``unique_id, ds, y`` format of
  ``forecast_metrics``, closed intervals only, ``ds`` in UTC or local (``forecast_time``).

``tables`` are zero-filled (every queue seen in the window, every interval): the vendor files,
the document and the forecasting format need the full grid; the CSV and NDJSON dumps do not.

Example:
    ``files = export_tables(Path("out"), settings.output, built.tables)``
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import polars as pl

from engine import clock
from engine.app.config import OutputSettings
from engine.errors import ExportError
from engine.output import files as export
from engine.output.vendor import builtin_profiles, closed_by, render
from engine.tables.dense import busy
from engine.tables.forecast import long_format

__all__ = ["export_tables"]


def _vendor(
    out: Path, name: str, table: pl.DataFrame, closed: datetime, now: datetime
) -> list[Path]:
    profile = builtin_profiles()[name]
    try:
        files = render(table, profile, closed=closed, run_at=now)
    except ExportError as exc:
        raise ExportError(f"output.vendor_profiles: {name}: {exc}") from None
    folder = out / "exports" / "vendor" / name
    shutil.rmtree(folder, ignore_errors=True)  # no file of an earlier run's split stays behind
    folder.mkdir(parents=True)
    written = []
    for file_name, text in files:
        (folder / file_name).write_text(text, encoding="utf-8")
        written.append(folder / file_name)
    return written


def export_tables(
    out: Path,
    output: OutputSettings,
    tables: Mapping[str, pl.DataFrame],
    *,
    now: datetime | None = None,
) -> list[Path]:
    """Write the exports ``output`` asks for from ``tables`` (name -> merged table).

    The vendor files and the forecasting format hold the intervals closed at ``now`` (default:
    the clock's now): ended at least ``output.settle_minutes`` before it.

    Raises:
        ExportError: a vendor profile does not fit the table (the message names the setting).

    Example:
        >>> import tempfile
        >>> export_tables(Path(tempfile.mkdtemp()), OutputSettings(), {})
        []
    """
    files: list[Path] = []
    exports = out / "exports"
    for name, table in tables.items():
        rows = table.filter(busy(name))  # the table as the store holds it: busy rows
        if "csv" in output.formats:
            files.append(export.write_csv(rows, exports / f"{name}.csv"))
        if "ndjson" in output.formats:
            files.append(export.write_ndjson(rows, exports / f"{name}.ndjson"))
    volume = tables.get("callvolume")
    if volume is None:
        return files
    if "kore" in output.formats:
        path = exports / "callvolume_document.json"
        unit = output.duration_unit
        files.append(export.write_document(volume, path, org_id=output.org_id, unit=unit))
    at = now or clock.now()
    closed = closed_by(at, output.settle_minutes)
    for name in output.vendor_profiles:
        files += _vendor(out, name, volume, closed, at)
    if output.forecast:
        ended = volume.lazy().filter(pl.col("interval_end_utc") <= closed)
        frame = long_format(
            ended, metrics=output.forecast_metrics, time=output.forecast_time
        ).collect()
        path = exports / "forecast.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.write_parquet(path)
        files.append(path)
    return files
