"""The cardinality benchmark's check: both engines wrote the same tables, value for value.

Ours are read back from the store (Delta Lake tables under ``<out>/store/<table>``, through
``engine.output.delta.scan``), DuckDB's from its Parquet directories; each pair is sorted by
the table's key and compared with ``assert_frame_equal`` after casting both to the table's
schema (ours must have its columns in its order; the store keeps enums as text). Any difference
raises ``SystemExit`` with FAIL: no time of that run is reported.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

__all__ = ["verify"]


def _tables(command: str) -> dict[str, tuple[dict[str, Any], tuple[str, ...]]]:
    """Per table: our schema and the key it is sorted by."""
    import polars as pl

    from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, CONTACTS_KEY
    from engine.tables import callback_intervals, callvolume, retry_outcomes

    if command == "build":
        ratios = ("aht_ms", "asa_ms", "abandon_rate", "service_level")
        volume = dict(callvolume.SCHEMA) | dict.fromkeys(ratios, pl.Float64())
        return {
            "contacts": (CONTACTS, CONTACTS_KEY),
            "callvolume": (volume, callvolume.KEYS),
        }
    return {
        "callback_attempts": (CALLBACK_ATTEMPTS, ("source", "attempt_id")),
        "callback_intervals": (callback_intervals.SCHEMA, callback_intervals.KEYS),
        "retry_outcomes": (retry_outcomes.SCHEMA, retry_outcomes.KEYS),
    }


def verify(command: str, work: Path) -> dict[str, Any]:
    """Compare ``work/wfm-intervals/store/<t>`` with ``work/duckdb/<t>`` for every table ``t``
    of ``command``; exit with FAIL on the first difference.

    Returns:
        Rows per table, the input's rows (``rows_in``, from our summary) and what our summary
        says it collapsed and quarantined.
    """
    import json

    import polars as pl
    from polars.testing import assert_frame_equal

    from engine.output import delta

    counts: dict[str, Any] = {}
    for name, (schema, key) in _tables(command).items():
        stored = delta.scan(work / "wfm-intervals" / "store" / name)
        if stored.collect_schema().names() != list(schema):
            sys.exit(f"FAIL: {name}: we stored columns {stored.collect_schema().names()}")
        ours = stored.cast(schema).collect()  # type: ignore[arg-type]  # the store: enums as text
        files = str(work / "duckdb" / name / "**" / "*.parquet")
        theirs = pl.read_parquet(files, hive_partitioning=False)
        if sorted(theirs.columns) != sorted(schema):
            sys.exit(f"FAIL: {name}: DuckDB wrote columns {theirs.columns}")
        order = [pl.col(k).cast(pl.String) for k in key]
        theirs = theirs.select(list(schema)).cast(schema)  # type: ignore[arg-type]
        try:
            assert_frame_equal(ours.sort(order), theirs.sort(order))
        except AssertionError as exc:
            sys.exit(
                f"FAIL: {name}: wfm-intervals and duckdb disagree; no time is reported.\n{exc}"
            )
        counts[f"{name}_rows"] = ours.height
    summary = "summary.json" if command == "build" else "callbacks_summary.json"
    report = json.loads((work / "wfm-intervals" / summary).read_text())
    counts |= {k: report[k] for k in ("rows_in", "collapsed", "quarantined")}
    print(
        f"verified {command}: "
        + ", ".join(f"{k} {v:,}" for k, v in counts.items() if isinstance(v, int))
    )
    return counts
