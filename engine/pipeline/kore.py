"""Kore.ai interval rows into the store, and their reconciliation with our own volume table.

Orchestration (it knows both sides): :func:`import_kore` rebuilds the ``kore`` source's landed
rows (:func:`connectors.normalise.rebuild`, mapping bound to the configured duration unit and
channel map) and writes them as ``<out>/store/callvolume_kore/`` (Parquet partitioned by UTC
date, replaced atomically) with their quarantine as ``<out>/quarantine/callvolume_kore.csv``.
:func:`reconcile_kore` compares a volume table of ours with those rows
(:func:`engine.tables.compare.compare_callvolume`) and writes the differences as
``<out>/reconcile/callvolume_kore.csv``.

Example:
    ``imported = import_kore(settings.source("kore"), landing_root=Path("data/landing"),
    out_dir=Path("out"))`` then ``reconcile_kore(our_table, imported.rows, out_dir=Path("out"))``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from connectors.normalise import rebuild
from connectors.vendors.kore.client import KORE, KoreSettings
from engine.output import files as export
from engine.tables.compare import Tolerance, compare_callvolume

__all__ = ["KoreImport", "import_kore", "reconcile_kore"]

TABLE = KORE.table


@dataclass(frozen=True)
class KoreImport:
    """The imported rows, the quarantined ones, and the files written."""

    rows: pl.DataFrame
    quarantine: pl.DataFrame
    files: tuple[Path, ...]


def import_kore(settings: KoreSettings, *, landing_root: Path, out_dir: Path) -> KoreImport:
    """Rebuild the landed Kore.ai rows and write ``store/callvolume_kore/`` (and the quarantine).

    Args:
        settings: ``[sources.kore]`` (duration unit, channel map, interval length).
        landing_root: the landing store the ``kore`` source was synced into.
        out_dir: where ``store/``, ``quarantine/`` go.
    """
    normalised = rebuild(KORE, landing_root, settings)
    rows, quarantine = pl.collect_all([normalised.rows, normalised.quarantine])
    files = [export.write_store(rows, out_dir / "store" / TABLE, by="interval_start_utc")]
    if quarantine.height:
        files.append(export.write_csv(quarantine, out_dir / "quarantine" / f"{TABLE}.csv"))
    return KoreImport(rows, quarantine, tuple(files))


def reconcile_kore(
    ours: pl.LazyFrame | pl.DataFrame,
    theirs: pl.LazyFrame | pl.DataFrame,
    *,
    out_dir: Path | None = None,
    tolerance: Tolerance = 0,
) -> pl.DataFrame:
    """Differences between our volume table and the Kore.ai rows (written when ``out_dir``).

    An interval Kore.ai does not serve counts as empty, so our zero-filled rows match it; give
    ``ours`` for the window that was synced, or our rows beyond it are reported as
    ``ours_only`` (see :func:`engine.tables.compare.compare_callvolume`).
    """
    found = compare_callvolume(ours.lazy(), theirs.lazy(), tolerance=tolerance).collect()
    if out_dir is not None:
        export.write_csv(found, out_dir / "reconcile" / f"{TABLE}.csv")
    return found
