"""The one-time move of a table of the Parquet-directory store (the layout before the Delta
Lake store) into a Delta table, in place (:func:`migrate`; ``run`` calls it through
:func:`engine.pipeline.lock.housekeeping`).

Example:
    >>> import tempfile
    >>> from datetime import UTC, datetime
    >>> old = Path(tempfile.mkdtemp()) / "t"
    >>> at = datetime(2026, 10, 1, 9, tzinfo=UTC)
    >>> pl.DataFrame({"at": [at], "n": [1]}).write_parquet(old / "date=2026-10-01" / "0.parquet",
    ...                                                    mkdir=True)
    >>> migrate(old, by="at"), delta.is_table(old), delta.scan(old).collect()["n"].to_list()
    (True, True, [1])
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from engine.errors import StoreError
from engine.output import delta

__all__ = ["migrate"]


def migrate(path: Path, *, by: str | pl.Expr) -> bool:
    """Make a table of the Parquet-directory store a Delta table, in place; ``True`` when
    there was one to migrate.

    Its rows are committed as the table's first written version, then the old files are
    deleted: a crash before that commit leaves the old files the table, to migrate again (the
    log folder a first commit makes, with no version, or the empty version 0 an earlier release
    created before its rows, is no migration done: taken for one, the old rows were ignored,
    then deleted as stale); after it, only old files that no version names, deleted again next
    time. The old store's files are those not named as the Delta writer names its own
    (``part-…``: those of a killed first commit are orphans, swept as any).

    Raises:
        StoreError: the old files cannot be read, or the commit fails.
    """
    path = Path(path)
    log = "_delta_log"
    found = (
        sorted(f for f in path.rglob("*.parquet") if log not in f.parts) if path.is_dir() else []
    )
    old = [f for f in found if not f.name.startswith("part-")]
    if delta.is_table(path) and not delta.unwritten(path):
        current = delta.current_files(path)
        stale = [f for f in old if f.relative_to(path).as_posix() not in current]
        for file in stale:  # what a migration killed after its commit left behind
            file.unlink()
        return False
    if not old:
        return False
    try:
        rows = pl.read_parquet(old, hive_partitioning=False).drop(delta.PARTITION, strict=False)
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        msg = f"{path}: cannot read the old store to migrate it ({first})"
        raise StoreError(msg) from None
    delta.commit(path, rows, by=by, tag="migrated")
    for file in old:
        file.unlink()
    for extra in path.glob("_chain_order.json"):
        extra.unlink()
    return True
