"""The report's table sections: callback outcomes and retries, data quality, the SL formula.

Callback numbers are sums of the additive columns of ``callback_intervals`` and
``retry_outcomes`` over the report window; rates and averages are divided once, from those sums
(docs/callbacks.md). Data-quality counts come from the quarantine CSVs a build writes (or, when a
CSV is missing, from the run summaries) and cover the whole build, not only the report window.
The service-level settings a store was built with (its formula, thresholds and targets) are those
its build recorded in ``summary.json`` (``sl_settings``); a store built before builds recorded
them has its formula recognised from its stored ``service_level`` column, which is derived, so
the report's own ratios agree with it.

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.tables import callback_intervals
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.callbacks import generate_attempts
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> from engine.tables.callback_requests import requests
    >>> reqs = requests(generate_attempts(days=1, scale=0.2).lazy())
    >>> ci = callback_intervals.build(reqs, window=w, settings=BuildSettings())
    >>> numbers = callback_numbers(ci, None)
    >>> int(numbers.targets["requests"][-1]) == int(ci.collect()["requests"].sum())
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import polars as pl

from engine.settings import SL_FORMULAS, SL_SETTINGS, BuildSettings, SlFormula
from engine.tables import callvolume
from engine.tables.callback_requests import ADDITIVE, MAXIMA, OUTCOMES

__all__ = [
    "COUNTS",
    "QUARANTINE_FILES",
    "CallbackNumbers",
    "callback_numbers",
    "quality_frames",
    "recorded_settings",
    "service_level_formula",
]

#: The per-request counts shown per call target.
COUNTS: Final = ("requests", *OUTCOMES, "asap", "scheduled", "attempts", "retries")
#: Quarantine file of each kind of input, under ``quarantine/``.
QUARANTINE_FILES: Final = {"contacts": "contacts.csv", "callbacks": "callback_attempts.csv"}
_INTAKE: Final = (  # label, key in summary.json, key in callbacks_summary.json
    ("rows read", "rows_in", "rows_in"),
    ("accepted (contacts / attempts)", "contacts", "attempts"),
    ("callback requests", None, "requests"),
    ("set aside: not callbacks", None, "not_callbacks"),
    ("quarantined", "quarantined", "quarantined"),
    ("collapsed (duplicates, older versions)", "collapsed", "collapsed"),
    ("callback chains with gaps", None, "gaps"),
)


@dataclass(frozen=True)
class CallbackNumbers:
    """Callback outcomes per call target, outcomes by retry count, and performance averages."""

    targets: pl.DataFrame  #: one row per call target, then an ``All call targets`` row
    retries: pl.DataFrame | None  #: ``retries`` 0, 1 … 5, over 5: requests by final outcome
    performance: dict[str, float | None]  #: seconds, shares


def _ratio(num: Any, den: Any, scale: float = 1.0) -> float | None:
    return None if not den else float(num) / (float(den) * scale)


def _performance(total: dict[str, Any]) -> dict[str, float | None]:
    def avg(stat: str) -> float | None:
        return _ratio(total[f"{stat}_sum"], total[f"{stat}_count"], 1000)

    rcsl = total["rcsl_below30"] + total["rcsl_31_60"] + total["rcsl_above60"]
    return {
        "success_rate": _ratio(total["successful"], total["requests"]),
        "avg_callback_s": avg("callback_ms"),
        "avg_estimated_callback_s": avg("estimated_callback_ms"),
        "avg_punctuality_s": avg("punctuality_ms"),
        "avg_customer_wait_s": avg("customer_wait_ms"),
        "max_customer_wait_s": (total["customer_wait_ms_max"] or 0) / 1000,
        "avg_talk_s": avg("talk_ms"),
        "rcsl_within_30s": _ratio(total["rcsl_below30"], rcsl),
    }


def callback_numbers(
    intervals: pl.LazyFrame, retry_outcomes: pl.LazyFrame | None
) -> CallbackNumbers:
    """Sum the callback tables over their rows (already cut to the report window).

    Args:
        intervals: ``callback_intervals`` rows of the window.
        retry_outcomes: ``retry_outcomes`` rows of the window, if the store has the table.
    """
    sums = [pl.col(c).sum() for c in ADDITIVE if c not in MAXIMA]
    every = [*sums, *(pl.col(c).max() for c in MAXIMA)]
    success = pl.when(pl.col("requests") > 0).then(pl.col("successful") / pl.col("requests"))
    frames = [
        intervals.group_by("call_target_id")
        .agg(pl.col("call_target_name").first(), *sums)
        .sort("requests", "call_target_id", descending=[True, False]),
        intervals.select(every),
    ]
    if retry_outcomes is not None:
        frames.append(
            retry_outcomes.group_by("retry_bucket")
            .agg(pl.col("requests", *OUTCOMES).sum())
            .sort("retry_bucket")
        )
    targets, total, *buckets = pl.collect_all(frames)
    total_row = total.with_columns(
        pl.lit("All call targets").alias("call_target_name"),
        pl.lit(None, pl.String).alias("call_target_id"),
    )
    table = pl.concat([targets, total_row.select(targets.columns)]).with_columns(
        success.alias("success_rate")
    )
    retries = None
    if buckets:
        by_bucket = buckets[0].with_columns(pl.col("retry_bucket").cast(pl.String))
        none = total.select(
            pl.lit("0").alias("retry_bucket"),
            *(pl.col(c) - by_bucket[c].sum() for c in ("requests", *OUTCOMES)),
        )
        retries = (
            pl.concat([none, by_bucket])
            .with_columns(pl.col("retry_bucket").replace("over5", "over 5").alias("retries"))
            .select("retries", "requests", *OUTCOMES)
            .with_columns(success.alias("success_rate"))
        )
    return CallbackNumbers(table, retries, _performance(total.row(0, named=True)))


def _built_formula(table: pl.LazyFrame) -> SlFormula | None:
    """The service-level formula that reproduces the stored ``service_level`` on every row."""
    if "service_level" not in table.collect_schema().names():
        return None
    stored = table.rename({"service_level": "_stored"})
    mismatches = pl.collect_all(
        [
            callvolume.derive(stored, settings=BuildSettings(sl_formula=f)).select(
                (
                    ((pl.col("service_level") - pl.col("_stored")).abs() > 1e-12)
                    | (pl.col("service_level").is_null() != pl.col("_stored").is_null())
                ).sum()
            )
            for f in SL_FORMULAS
        ]
    )
    matching = [f for f, m in zip(SL_FORMULAS, mismatches, strict=True) if m.item() == 0]
    default: SlFormula = "exclude_short_abandons"
    return default if default in matching else next(iter(matching), None)


def recorded_settings(record: Any) -> BuildSettings | None:
    """The service-level settings a build recorded in its summary (``sl_settings``, from
    :meth:`BuildSettings.sl_record`; keys it does not know are passed over), or ``None`` when it
    recorded none (a store built before builds did) or what it holds is not such a record.

    Example:
        >>> recorded_settings({"sl_formula": "answered_only"}).sl_formula
        'answered_only'
        >>> recorded_settings(None) is None, recorded_settings({"sl_formula": "?"}) is None
        (True, True)
    """
    if not isinstance(record, dict) or "sl_formula" not in record:
        return None
    try:
        return BuildSettings(**{k: v for k, v in record.items() if k in SL_SETTINGS})
    except ValueError:
        return None


def service_level_formula(
    table: pl.LazyFrame | None, given: SlFormula | None, recorded: SlFormula | None = None
) -> tuple[SlFormula, str]:
    """The service-level formula to report with, and why: given, as built (``recorded`` by the
    build; else the one that reproduces the stored ``service_level`` column), or the default.

    Example:
        >>> service_level_formula(None, "answered_only")
        ('answered_only', 'given with --sl-formula')
        >>> service_level_formula(None, None, "answered_only")
        ('answered_only', 'as built (recorded by the build)')
    """
    if given is not None:
        return given, "given with --sl-formula"
    if recorded is not None:
        return recorded, "as built (recorded by the build)"
    built = _built_formula(table) if table is not None else None
    if built is None:
        return "exclude_short_abandons", "the default (the store does not tell which one it used)"
    return built, "as built (it reproduces the stored service_level column)"


def _reasons(root: Path, summaries: dict[str, dict[str, Any]]) -> dict[str, pl.DataFrame]:
    found: dict[str, pl.DataFrame] = {}
    for kind, name in QUARANTINE_FILES.items():
        path = root / "quarantine" / name
        if path.is_file() and path.stat().st_size:
            found[kind] = (
                pl.scan_csv(path, infer_schema=False).group_by("reason").len(kind).collect()
            )
        elif kind in summaries:
            counts = summaries[kind].get("quarantined", {})
            found[kind] = pl.DataFrame(
                {"reason": list(counts), kind: list(counts.values())},
                schema={"reason": pl.String, kind: pl.UInt32},
            )
    return found


def quality_frames(
    root: Path, summaries: dict[str, dict[str, Any]]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Quarantine counts by reason, and what each build read, for the kinds that were built.

    Args:
        root: the build's output directory (holding ``quarantine/``).
        summaries: ``contacts`` (``summary.json``) and ``callbacks`` (``callbacks_summary.json``).

    Returns:
        ``(quarantine, intake)``: ``reason`` plus one count column per kind, sorted by reason;
        ``measure`` plus one column per summary.

    Example:
        >>> q, intake = quality_frames(Path("/nonexistent"), {"contacts": {"rows_in": 3}})
        >>> q.columns, intake.row(0)
        (['reason', 'contacts'], ('rows read', 3))
    """
    reasons = _reasons(root, summaries)
    quarantine = pl.DataFrame({"reason": []}, schema={"reason": pl.String})
    for frame in reasons.values():
        quarantine = quarantine.join(frame, on="reason", how="full", coalesce=True)
    quarantine = quarantine.with_columns(pl.exclude("reason").fill_null(0).cast(pl.Int64))
    kinds = [k for k in QUARANTINE_FILES if k in summaries]
    columns: dict[str, list[Any]] = {"measure": [], **{k: [] for k in kinds}}
    for label, *keys in _INTAKE:
        wanted = {k: key for k, key in zip(QUARANTINE_FILES, keys, strict=True) if k in kinds}
        if not any(wanted.values()):
            continue
        columns["measure"].append(label)
        for kind, key in wanted.items():
            value = summaries[kind].get(key) if key else None
            columns[kind].append(sum(value.values()) if isinstance(value, dict) else value)
    schema = {"measure": pl.String, **dict.fromkeys(kinds, pl.Int64)}
    return quarantine.sort("reason"), pl.DataFrame(columns, schema=schema)
