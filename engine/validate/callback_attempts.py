"""Validation of callback attempts (SPEC §3.2, §7; docs/callbacks.md): clean, quarantine, gaps.

Input: attempts with the canonical column names (:data:`engine.schema.CALLBACK_ATTEMPTS`), typed
or as text (CSV). Enumerations may use the vendor's spellings, folded to canonical values by
:mod:`engine.validate.spelling` (which documents every accepted spelling).

A null ``type`` or ``outcome`` is quarantined as unknown; a null ``first_party_called``,
``source_type``, ``call_target_id`` or ``customer_key`` is kept (the attempt has no such
attribute). Known non-callbacks are set aside before any other check (:func:`not_callbacks`).
Every other row that breaks a rule is quarantined with the *first* reason that applies:

=========================  ================================================================
reason                     when
=========================  ================================================================
``missing_id``             ``source``, ``attempt_id`` or ``original_id`` is null, empty or
                           only whitespace
``missing_timestamp``      ``created_at`` is null
``unparsable_timestamp``   a timestamp is text that is not ISO 8601 with an offset or ``Z``
``wrong_type``             a number is not whole (``retry_attempt`` null or beyond ``Int32``
                           too; a duration beyond ``Int64`` is reported by its sign, below), a
                           flag is not ``true``/``false``/``1``/``0``, any column holds an
                           object or a list
``negative_retry_attempt`` ``retry_attempt`` < 0
``negative_duration``      ``callback_ms``, ``estimated_callback_ms``, ``customer_wait_ms`` or
                           ``talk_ms`` < 0 (``punctuality_ms`` is signed)
``implausible_duration``   one of those, or ``punctuality_ms`` either way, is beyond
                           ``max_duration_ms`` (``[build] max_duration_hours``, a week)
``end_before_start``       ``ended_at`` < ``created_at`` (SPEC §7 "end before start")
``unknown_type``           ``type`` is not a callback type nor a known non-callback
``unknown_outcome``        ``outcome`` is no accepted spelling
``unknown_first_party``    ``first_party_called`` is no accepted spelling
``unknown_source_type``    ``source_type`` is no accepted spelling
``conflicting_duplicate``  two different rows share (``source``, ``attempt_id``): both
=========================  ================================================================

Rows equal after normalisation are collapsed (a re-read hour delivers the same attempt again).
Rows from a connector also name the raw record they came from (``record``, the column
:data:`engine.schema.SOURCE_RECORD`): quarantine rows are then filed under that id.

Example:
    >>> raw = pl.LazyFrame({"source": ["m"], "attempt_id": ["a"], "original_id": ["a"],
    ...     "retry_attempt": ["0"], "type": ["ASAP"], "outcome": ["Success"],
    ...     "first_party_called": ["Customer First"], "created_at": ["2026-10-01T09:00:00Z"]})
    >>> clean, bad = validate_callback_attempts(raw)
    >>> clean.select("type", "outcome", "first_party_called").collect().row(0)
    ('asap', 'successful', 'customer')
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.errors import InputSchemaError
from engine.schema import CALLBACK_ATTEMPTS, QUARANTINE
from engine.settings import duration_bound_ms
from engine.validate.contacts import MAX_DURATION_MS, _parse_timestamp
from engine.validate.numbers import MISFIT, blank, misfit, misfits_as_text, parse_integer
from engine.validate.spelling import NOT_CALLBACK_TYPES, SPELLINGS, per_distinct, spelling_key

__all__ = [
    "CHAIN_HASH",
    "DAY",
    "IDENTITY_HASH",
    "KEY",
    "REASONS",
    "REQUIRED",
    "attempt_keys",
    "callback_gaps",
    "chain_hash",
    "conform_attempts",
    "identity_hash",
    "not_callbacks",
    "validate_callback_attempts",
]

REASONS: Final = (
    "missing_id",
    "missing_timestamp",
    "unparsable_timestamp",
    "wrong_type",
    "negative_retry_attempt",
    "negative_duration",
    "implausible_duration",
    "end_before_start",
    "unknown_type",
    "unknown_outcome",
    "unknown_first_party",
    "unknown_source_type",
    "conflicting_duplicate",
)
#: The identity of an attempt.
KEY: Final = ("source", "attempt_id")
#: Columns an input must have (the others default to null).
REQUIRED: Final = ("source", "attempt_id", "original_id", "retry_attempt", "type", "created_at")

_ENUMS: Final = {  # column: (spellings, reason, null is an error)
    "type": (SPELLINGS["type"], "unknown_type", True),
    "outcome": (SPELLINGS["outcome"], "unknown_outcome", True),
    "first_party_called": (SPELLINGS["first_party_called"], "unknown_first_party", False),
    "source_type": (SPELLINGS["source_type"], "unknown_source_type", False),
}
_NON_NEGATIVE: Final = ("callback_ms", "estimated_callback_ms", "customer_wait_ms", "talk_ms")
_ROW, _REASON, _DETAIL, _SHARED = "__row", "__reason", "__detail", "__shared"
#: The columns of :func:`attempt_keys`' plans.
IDENTITY_HASH, CHAIN_HASH, DAY = "__identity", "__chain", "__day"


def _is_not_callback() -> pl.Expr:
    known = per_distinct(
        "type", lambda d: spelling_key(d, "type").is_in(NOT_CALLBACK_TYPES), pl.Boolean()
    )
    return known.fill_null(value=False)


def _check_columns(frame: pl.LazyFrame) -> pl.Schema:
    schema = frame.collect_schema()
    missing = [c for c in REQUIRED if c not in schema]
    if missing:
        msg = f"input has no column {', '.join(map(repr, missing))} (required: {REQUIRED})"
        raise InputSchemaError(msg)
    return schema


def not_callbacks(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The input rows that are known non-callbacks (``type`` ``unknown``, ``hold``, …), as given.

    Not bad input: the pipeline counts them as ``not_callbacks``.

    Example:
        >>> rows = pl.LazyFrame({c: ["x"] for c in REQUIRED}).with_columns(type=pl.lit("Unknown"))
        >>> not_callbacks(rows).collect().height
        1
    """
    _check_columns(frame)
    return frame.filter(_is_not_callback())


def _parse_boolean(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    col = pl.col(name)
    if dtype in (pl.Boolean(), pl.Null()):
        return col.cast(pl.Boolean), pl.lit(value=False)
    text = col.cast(pl.String).str.strip_chars().str.to_lowercase()
    value = text.replace_strict(
        {"true": True, "1": True, "false": False, "0": False}, default=None, return_dtype=pl.Boolean
    )
    return value, text.is_not_null() & value.is_null()


def _parse_enum(name: str, target: pl.Enum) -> tuple[pl.Expr, pl.Expr]:
    spellings, _, required = _ENUMS[name]

    def fold(distinct: pl.Expr) -> pl.Expr:  # the canonical spelling, on distinct values only
        key = spelling_key(distinct, name)
        return key.replace_strict(spellings, default=None, return_dtype=pl.String)

    value = per_distinct(name, fold, pl.String())
    bad = value.is_null() if required else pl.col(name).is_not_null() & value.is_null()
    return value.cast(target), bad


def _first_reason(flags: list[tuple[str, str, pl.Expr]]) -> tuple[pl.Expr, pl.Expr]:
    """The reason and column of the first failing rule, in the order of :data:`REASONS`."""
    order = {r: i for i, r in enumerate(REASONS)}
    reason, detail = pl.lit(None, pl.String), pl.lit(None, pl.String)
    for r, c, flag in sorted(flags, key=lambda f: order[f[0]], reverse=True):
        hit = flag.fill_null(value=False)
        reason = pl.when(hit).then(pl.lit(r)).otherwise(reason)
        detail = pl.when(hit).then(pl.lit(c)).otherwise(detail)
    return reason, detail


def conform_attempts(
    frame: pl.LazyFrame, *, max_duration_ms: int = MAX_DURATION_MS
) -> pl.LazyFrame:
    """Parse the callback rows of ``frame`` to the canonical schema, adding ``__reason``,
    ``__detail`` (the column at fault) and ``__row`` (the row's index in ``frame``); known
    non-callbacks are dropped. A duration beyond ``max_duration_ms`` (either way for
    ``punctuality_ms``) is ``implausible_duration``.

    Raises:
        InputSchemaError: a required column is missing or a timestamp column is naive.
    """
    schema = _check_columns(frame)
    absent = [pl.lit(None).alias(c) for c in CALLBACK_ATTEMPTS if c not in schema]
    exprs: list[pl.Expr] = [pl.col(_ROW)]
    checks: list[tuple[str, str, pl.Expr]] = []
    for name, target in CALLBACK_ATTEMPTS.items():
        dtype = schema.get(name, pl.Null())
        if isinstance(target, pl.Datetime):
            value, bad = _parse_timestamp(name, dtype)
            checks.append(("unparsable_timestamp", name, bad))
        elif target.is_integer():
            # beyond its range: a duration saturates, for its range rules to flag
            ranged = name in (*_NON_NEGATIVE, "punctuality_ms")
            value, bad = parse_integer(name, dtype, target, saturate=ranged)
            checks.append(("wrong_type", name, bad))
        elif target == pl.Boolean():
            value, bad = _parse_boolean(name, dtype)
            checks.append(("wrong_type", name, bad))
        elif isinstance(target, pl.Enum):
            value, bad = _parse_enum(name, target)
            checks.append((_ENUMS[name][1], name, bad))
        else:
            value = pl.col(name).cast(pl.String)
        exprs.append(value.alias(name))
    ids = ("source", *KEY[1:], "original_id")
    checks += [("missing_id", c, blank(c, schema[c])) for c in ids]
    checks += [("missing_timestamp", "created_at", pl.col("created_at").is_null())]
    checks += [("wrong_type", "retry_attempt", pl.col("retry_attempt").is_null())]
    if MISFIT in schema:
        checks += [("wrong_type", c, misfit(c, schema)) for c in CALLBACK_ATTEMPTS if c in schema]
    flagged = (
        frame.with_row_index(_ROW)
        .filter(~_is_not_callback())
        .with_columns(absent)
        .select(*exprs, *(f.alias(f"__f{i}") for i, (_, _, f) in enumerate(checks)))
    )
    flags = [(r, c, pl.col(f"__f{i}")) for i, (r, c, _) in enumerate(checks)]
    flags += [
        ("negative_retry_attempt", "retry_attempt", pl.col("retry_attempt") < 0),
        *(("negative_duration", c, pl.col(c) < 0) for c in _NON_NEGATIVE),
        *(("implausible_duration", c, pl.col(c) > max_duration_ms) for c in _NON_NEGATIVE),
        (
            "implausible_duration",
            "punctuality_ms",
            pl.col("punctuality_ms").abs() > max_duration_ms,
        ),
        ("end_before_start", "ended_at", pl.col("ended_at") < pl.col("created_at")),
    ]
    reason, detail = _first_reason(flags)
    return flagged.with_columns(reason.alias(_REASON), detail.alias(_DETAIL)).select(
        *CALLBACK_ATTEMPTS, _REASON, _DETAIL, _ROW
    )


def _quarantine_rows(
    frame: pl.LazyFrame, failed: pl.LazyFrame, record: str | None = None
) -> pl.LazyFrame:
    """Quarantine rows for ``failed`` (``__row``, ``__reason``, ``__detail``): the raw payload is
    taken from ``frame`` as given, and only for the (few) failed rows; each is named by the
    ``record`` column, else by its ``attempt_id``."""
    known = [c for c in frame.collect_schema() if c in CALLBACK_ATTEMPTS]
    return (
        failed.join(frame.with_row_index(_ROW), on=_ROW, how="left")
        .select(
            pl.col("source").cast(pl.String),
            pl.lit("callback_attempts").alias("table"),
            pl.col(record or "attempt_id").cast(pl.String).fill_null("?").alias("record_id"),
            pl.col(_REASON).alias("reason"),
            pl.col(_DETAIL).alias("detail"),
            pl.struct(known).struct.json_encode().alias("raw"),
        )
        .cast(QUARANTINE)  # type: ignore[arg-type]
    )


def validate_callback_attempts(
    frame: pl.LazyFrame,
    *,
    record: str | None = None,
    max_duration_ms: int = MAX_DURATION_MS,
    alone: bool = False,
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split the callback rows of ``frame`` into canonical attempts and quarantine rows.

    Known non-callbacks are in neither (see :func:`not_callbacks`).

    Args:
        frame: attempts with the canonical column names, typed or as text.
        record: the column naming the raw record each row came from (a connector's rows,
            :data:`engine.schema.SOURCE_RECORD`): quarantine rows take their ``record_id`` from
            it; ``None``: from ``attempt_id``.
        max_duration_ms: the plausibility bound of a duration
            (:attr:`engine.settings.BuildSettings.max_duration_ms`; default a week, at most 8
            days: a larger one is a ``ValueError``).
        alone: the caller knows every row to be alone in its identity (no other row of the
            input shares its hash, :func:`attempt_keys`): no row is compared with another.

    Returns:
        ``(clean, quarantine)``: ``clean`` has exactly the
        :data:`~engine.schema.CALLBACK_ATTEMPTS` schema and a unique (``source``,
        ``attempt_id``); ``quarantine`` has the :data:`~engine.schema.QUARANTINE` schema.

    Example:
        >>> rows = pl.LazyFrame({"source": "m", "attempt_id": ["a", "b"], "original_id": "a",
        ...     "retry_attempt": [0, -1], "type": "asap", "outcome": "Unavailable",
        ...     "created_at": "2026-10-01T09:00:00Z"})
        >>> clean, bad = validate_callback_attempts(rows)
        >>> clean.collect().height, bad.collect()["reason"].to_list()
        (1, ['negative_retry_attempt'])
    """
    duration_bound_ms(max_duration_ms)
    frame = misfits_as_text(frame, CALLBACK_ATTEMPTS)
    # One conformed frame, marked with whether its identity occurs more than once and cached,
    # so that every output below parses each row once (without the mark Polars pushes their
    # different filters through the cache and conforms the input once per branch). Rows are
    # compared whole only where their identity repeats (re-sent records): the others are unique
    # as they are. Counting all rows, not only valid ones, sends a few extra rows that way; the
    # rules then keep them exactly as if they had passed straight through.
    if alone:
        conformed = conform_attempts(frame, max_duration_ms=max_duration_ms).cache()
        bad = conformed.filter(pl.col(_REASON).is_not_null()).select(_ROW, _REASON, _DETAIL)
        clean = conformed.filter(pl.col(_REASON).is_null()).select(list(CALLBACK_ATTEMPTS))
        return clean, _quarantine_rows(frame, bad, record)
    clashes = pl.len().over(KEY) > 1
    marked = (
        conform_attempts(frame, max_duration_ms=max_duration_ms)
        .with_columns(clashes.alias(_SHARED))
        .cache()
    )
    failed = marked.filter(pl.col(_REASON).is_not_null())
    passed = marked.filter(pl.col(_REASON).is_null())
    repeated = passed.filter(pl.col(_SHARED))
    distinct = repeated.select(list(CALLBACK_ATTEMPTS)).unique()
    clashing = distinct.filter(clashes).select(KEY).unique()
    conflicts = (  # one row per distinct content of a clashing identity
        repeated.join(clashing, on=KEY, how="semi")
        .unique(subset=list(CALLBACK_ATTEMPTS), keep="any")
        .with_columns(
            pl.lit("conflicting_duplicate").alias(_REASON), pl.lit("attempt_id").alias(_DETAIL)
        )
    )
    bad = pl.concat([f.select(_ROW, _REASON, _DETAIL) for f in (failed, conflicts)])
    once = passed.filter(~pl.col(_SHARED)).select(list(CALLBACK_ATTEMPTS))
    clean = pl.concat([once, distinct.filter(~clashes)])
    return clean, _quarantine_rows(frame, bad, record)


def _key_hash(columns: tuple[str, ...], alias: str) -> pl.Expr:
    """A 64-bit hash of ``columns`` as text: the same on the input's rows and on the conformed
    ones (which hold them as text)."""
    return pl.struct(pl.col(c).cast(pl.String) for c in columns).hash().alias(alias)


def identity_hash() -> pl.Expr:
    """The 64-bit hash of a row's identity (:data:`KEY`), input or conformed."""
    return _key_hash(KEY, IDENTITY_HASH)


def chain_hash() -> pl.Expr:
    """The 64-bit hash of a row's chain (``source``, ``original_id``), input or conformed."""
    return _key_hash(("source", "original_id"), CHAIN_HASH)


def attempt_keys(frame: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Two plans over every row of ``frame`` (any type, valid or not), for a build that streams:

    - the hashes (:data:`IDENTITY_HASH`) of the identities that occur more than once: only
      their rows need the de-duplication rules (a shared hash only sends a row alone in its
      identity through them, which keep it as it is);
    - the chains whose rows' ``created_at`` fall on more than one UTC date, by hash
      (:data:`CHAIN_HASH`), with the earliest (:data:`DAY`): a chain's day is that one, else
      the date of any of its rows, the same for all of them (chains sharing a hash share it).

    Raises:
        InputSchemaError: a required column is missing or ``created_at`` is naive.
    """
    schema = _check_columns(frame)
    h = pl.col(IDENTITY_HASH)
    repeated = (
        frame.select(identity_hash())
        .sort(IDENTITY_HASH)
        .filter((h == h.shift(1)) | (h == h.shift(-1)))
        .unique()
    )
    created, _ = _parse_timestamp("created_at", schema["created_at"])
    day = pl.col(DAY)
    straddling = (
        frame.select(chain_hash(), created.dt.date().alias(DAY))
        .group_by(CHAIN_HASH)
        .agg(day.min(), day.max().alias("__last"))
        .filter(day != pl.col("__last"))
        .select(CHAIN_HASH, DAY)
    )
    return repeated, straddling


GAPS_SHOWN: Final = 1000  #: the most missing retry numbers listed for one chain


def callback_gaps(clean: pl.LazyFrame) -> pl.LazyFrame:
    """Chains with missing retry numbers (a chain's run from 0 to its highest ``retry_attempt``):
    ``source``, ``original_id``, ``missing`` (sorted; the first :data:`GAPS_SHOWN`: a retry
    2147483647 made a 2-billion-number list, or none at all).

    Example:
        >>> rows = pl.LazyFrame({"source": ["m", "m"], "original_id": ["a", "a"],
        ...                      "retry_attempt": [0, 3]})
        >>> callback_gaps(rows).collect()["missing"].to_list()
        [[1, 2]]
    """
    retry, chain = pl.col("retry_attempt"), ["source", "original_id"]
    # 0..max are all there iff a chain has max + 1 distinct: lists only for chains short of it
    holed = (
        clean.group_by(chain)
        .agg(retry.n_unique().alias("_n"), retry.max().cast(pl.Int64).alias("_max"))
        .filter(pl.col("_n") != pl.col("_max") + 1)
        .select(chain)
    )
    return (
        clean.join(holed, on=chain, how="semi", nulls_equal=True)
        .group_by(chain)
        .agg(retry.unique().cast(pl.Int64).alias("_have"), retry.max().cast(pl.Int64).alias("_max"))
        .select(
            "source",
            "original_id",
            pl.int_ranges(
                0, pl.min_horizontal(pl.col("_max") + 1, pl.col("_have").list.len() + GAPS_SHOWN)
            )
            .list.set_difference("_have")
            .list.sort()
            .list.head(GAPS_SHOWN)
            .cast(pl.List(pl.Int32))
            .alias("missing"),
        )
        .filter(pl.col("missing").list.len() > 0)
        .sort("source", "original_id")
    )
