"""Reconciliation: our numbers against a vendor's, field by field (pure functions, no I/O).

Two shapes are compared:

* :func:`compare_callvolume`: two interval volume tables (ours from
  :func:`engine.tables.callvolume.build`,
  theirs e.g. imported from Kore.ai's Contact Volume API), keyed by interval x queue x channel.
* :func:`compare_documents`: two JSON documents (e.g. our callback metrics document and Mindful's),
  nested keys flattened to dotted paths such as ``performance.rcsl.totalBelow30``.

Rules, the same for both:

* Only differences are reported (``diff = ours - theirs``, non-zero); ``within_tolerance`` says
  whether ``abs(diff)`` is at most the field's absolute tolerance. A tolerance is one number for
  every field, or a mapping from field names (or ``fnmatch`` patterns such as ``"*_ms"``) to
  numbers: the exact name wins, then the first matching pattern; unlisted fields get 0.
* A null value means "not supplied" (Kore.ai has no short abandons): it is not compared.
* A row missing on one side counts as zeros for the fields the other side supplies anywhere
  (every field, when it has no row at all), so an interval the vendor leaves out because it is
  empty matches our zero-filled row, and a vendor that sends nothing differs from every row of
  ours that is not empty; each difference says which side has the row (``presence``).
  ``missing_rows="all"`` also reports every one-sided row as a ``_row`` difference, empty or
  not.

Example:
    >>> from datetime import datetime, UTC
    >>> at = datetime(2026, 10, 1, 9, 45, tzinfo=UTC)
    >>> ours = pl.LazyFrame({"interval_start_utc": [at], "queue_id": ["q"], "channel": ["voice"],
    ...                      "offered": [10], "answered": [8]})
    >>> theirs = ours.with_columns(pl.lit(9, pl.Int64).alias("offered"))
    >>> compare_callvolume(ours, theirs, tolerance=0).select("field", "diff").collect().rows()
    [('offered', 1)]
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

import polars as pl

from engine.tables.callvolume import ADDITIVE, KEYS

__all__ = ["DIFFERENCE_COLUMNS", "ROW", "Tolerance", "compare_callvolume", "compare_documents"]

Tolerance = Mapping[str, float] | float
#: The ``field`` of a one-sided row reported by ``missing_rows="all"``.
ROW: Final = "_row"
#: Columns of :func:`compare_callvolume` after the keys.
DIFFERENCE_COLUMNS: Final = ("field", "ours", "theirs", "diff", "within_tolerance", "presence")


def _tolerance_for(tolerance: Tolerance, field: str) -> float:
    """The absolute tolerance of ``field``: exact name, else first matching pattern, else 0."""
    if not isinstance(tolerance, Mapping):
        return float(tolerance)
    if field in tolerance:
        return float(tolerance[field])
    return next((float(v) for k, v in tolerance.items() if fnmatchcase(field, k)), 0.0)


def _long(frame: pl.LazyFrame, fields: list[str], dtype: pl.DataType, side: str) -> pl.LazyFrame:
    keyed = frame.with_columns(pl.col("channel").cast(pl.String)).select(
        *KEYS, *(pl.col(f).cast(dtype) for f in fields)
    )
    return keyed.unpivot(on=fields, index=list(KEYS), variable_name="field", value_name=side)


def compare_callvolume(
    ours: pl.LazyFrame,
    theirs: pl.LazyFrame,
    *,
    tolerance: Tolerance,
    fields: list[str] | None = None,
    missing_rows: Literal["nonzero", "all"] = "nonzero",
) -> pl.LazyFrame:
    """Field-by-field differences of two volume tables per interval x queue x channel.

    Args:
        ours: a volume table (:data:`engine.tables.callvolume.SCHEMA` columns; extra columns
        ignored).
        theirs: another one, e.g. the Kore.ai rows imported by the ``kore`` connector.
        tolerance: absolute tolerance, one number or per field (see the module docstring).
        fields: the measures to compare (default: every additive column both sides have).
        missing_rows: ``"nonzero"`` (default) reports a one-sided row through its non-zero
            fields; ``"all"`` also reports it as a ``_row`` difference.

    Returns:
        ``interval_start_utc``, ``queue_id``, ``channel`` (text), then ``field``, ``ours``,
        ``theirs`` (0 where the row is missing), ``diff`` (ours - theirs), ``within_tolerance``
        and ``presence`` (``both``, ``ours_only``, ``theirs_only``); sorted by key and field.

    Example:
        >>> from datetime import datetime, UTC
        >>> at = datetime(2026, 10, 1, tzinfo=UTC)
        >>> ours = pl.LazyFrame({"interval_start_utc": [at, at], "queue_id": ["a", "b"],
        ...                      "channel": ["voice", "chat"], "offered": [3, 0]})
        >>> theirs = ours.head(1).with_columns(offered=pl.lit(2, pl.Int64))
        >>> out = compare_callvolume(ours, theirs, tolerance={"offered": 1}).collect()
        >>> out.select("queue_id", "diff", "within_tolerance", "presence").rows()
        [('a', 1, True, 'both')]
    """
    ours_schema, theirs_schema = ours.collect_schema(), theirs.collect_schema()
    wanted = fields or [f for f in ADDITIVE if f in ours_schema and f in theirs_schema]
    if missing := [f for f in wanted if f not in ours_schema or f not in theirs_schema]:
        raise ValueError(f"fields missing from a side: {missing}")
    floats = any(s[f].is_float() for s in (ours_schema, theirs_schema) for f in wanted)
    dtype: pl.DataType = pl.Float64() if floats else pl.Int64()
    keys = list(KEYS)
    flagged = []
    for frame, side in ((ours, "ours"), (theirs, "theirs")):
        rows = frame.select(keys).with_columns(pl.col("channel").cast(pl.String)).unique()
        flagged.append(rows.with_columns(pl.lit(value=True).alias(f"_in_{side}")))
    presence_by_row = flagged[0].join(flagged[1], on=keys, how="full", coalesce=True)
    presence_by_row = presence_by_row.with_columns(
        pl.col("_in_ours", "_in_theirs").fill_null(value=False)
    )
    long_ours = _long(ours, wanted, dtype, "ours")
    long_theirs = _long(theirs, wanted, dtype, "theirs")
    # A field is not supplied by a side whose rows all leave it null; a side with no row at all
    # supplies every field as zeros (a vendor that sends nothing is compared, not skipped).
    fields_frame = pl.LazyFrame({"field": wanted}, schema={"field": pl.String})
    supplied = {
        side: pl.concat(
            [
                frame.drop_nulls(side).select("field"),
                fields_frame.join(frame.select(pl.len().alias("_n")), how="cross")
                .filter(pl.col("_n") == 0)
                .select("field"),
            ]
        ).unique()
        for frame, side in ((long_ours, "ours"), (long_theirs, "theirs"))
    }
    both = long_ours.join(long_theirs, on=[*keys, "field"], how="full", coalesce=True).join(
        presence_by_row, on=keys, how="left"
    )
    # One-sided rows: the other side counts as 0 for the fields it supplies somewhere.
    only_ours = (
        both.filter(~pl.col("_in_theirs"))
        .join(supplied["theirs"], on="field", how="semi")
        .with_columns(pl.col("theirs").fill_null(0))
    )
    only_theirs = (
        both.filter(~pl.col("_in_ours"))
        .join(supplied["ours"], on="field", how="semi")
        .with_columns(pl.col("ours").fill_null(0))
    )
    shared = both.filter(pl.col("_in_ours") & pl.col("_in_theirs"))
    values = pl.concat([shared, only_ours, only_theirs]).drop_nulls(["ours", "theirs"])
    presence = (
        pl.when(pl.col("_in_ours") & pl.col("_in_theirs"))
        .then(pl.lit("both"))
        .when(pl.col("_in_ours"))
        .then(pl.lit("ours_only"))
        .otherwise(pl.lit("theirs_only"))
    )
    tol = pl.col("field").replace_strict(
        {f: _tolerance_for(tolerance, f) for f in wanted}, default=0.0, return_dtype=pl.Float64
    )
    diffs = values.with_columns(
        (pl.col("ours") - pl.col("theirs")).alias("diff"), presence.alias("presence")
    ).filter(pl.col("diff") != 0)
    diffs = diffs.with_columns(
        (pl.col("diff").abs().cast(pl.Float64) <= tol).alias("within_tolerance")
    )
    if missing_rows == "all":
        one_sided = presence_by_row.filter(pl.col("_in_ours") != pl.col("_in_theirs")).select(
            *keys,
            pl.lit(ROW).alias("field"),
            pl.col("_in_ours").cast(dtype).alias("ours"),
            pl.col("_in_theirs").cast(dtype).alias("theirs"),
            (pl.col("_in_ours").cast(dtype) - pl.col("_in_theirs").cast(dtype)).alias("diff"),
            pl.lit(value=False).alias("within_tolerance"),
            presence.alias("presence"),
        )
        diffs = pl.concat([diffs.select(*keys, *DIFFERENCE_COLUMNS), one_sided])
    order = {f: i for i, f in enumerate([ROW, *wanted])}
    rank = pl.col("field").replace_strict(order, default=len(order), return_dtype=pl.Int32)
    return diffs.select(*keys, *DIFFERENCE_COLUMNS).sort([*keys, rank], nulls_last=True)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> dict[str, Any]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            _flatten(item, f"{prefix}.{key}" if prefix else str(key), out)
    elif isinstance(value, list) and value:
        for i, item in enumerate(value):
            _flatten(item, f"{prefix}[{i}]", out)
    else:
        out[prefix] = value
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def compare_documents(
    ours: Mapping[str, Any], theirs: Mapping[str, Any], *, tolerance: Tolerance
) -> list[dict[str, Any]]:
    """Differences between two JSON documents, keys flattened to dotted paths.

    Lists are flattened by index (``CallVolumeUpdate[0].offeredContacts``). Numbers differ by
    ``diff = ours - theirs``; any other value that is not equal is a difference with ``diff``
    ``None`` and never within tolerance, and so is a key present on one side only (``None`` on
    the other).

    Returns:
        One dict per differing key, in sorted key order: ``field``, ``ours``, ``theirs``,
        ``diff``, ``within_tolerance``.

    Example:
        >>> ours = {"data": {"performance": {"rcsl": {"totalBelow30": 12}}, "totalCallbacks": 40}}
        >>> theirs = {"data": {"performance": {"rcsl": {"totalBelow30": 11}}, "totalCallbacks": 40}}
        >>> compare_documents(ours, theirs, tolerance={"*.rcsl.*": 1})
        [{'field': 'data.performance.rcsl.totalBelow30', 'ours': 12, 'theirs': 11, 'diff': 1, \
'within_tolerance': True}]
    """
    left, right = _flatten(ours, "", {}), _flatten(theirs, "", {})
    found: list[dict[str, Any]] = []
    for key in sorted(left.keys() | right.keys()):
        a: Any = left.get(key)
        b: Any = right.get(key)
        x, y = _number(a), _number(b)
        diff: Any
        if key in left and key in right and x is not None and y is not None:
            if x == y:
                continue
            diff = a - b
            within = abs(diff) <= _tolerance_for(tolerance, key)
        elif key in left and key in right and type(a) is type(b) and a == b:
            continue
        else:
            diff, within = None, False
        found.append(
            {"field": key, "ours": a, "theirs": b, "diff": diff, "within_tolerance": within}
        )
    return found
