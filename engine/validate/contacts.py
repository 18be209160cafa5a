"""Validation at the boundary: canonical contacts in, clean rows and quarantine rows out (SPEC §7).

Any input frame (Parquet with proper types, or CSV/NDJSON where everything may be text) is
conformed to :data:`engine.schema.CONTACTS`. A row that breaks a rule goes to the quarantine
frame with the *first* reason that applies, in this order:

=========================  ================================================================
reason                     when
=========================  ================================================================
``missing_id``             ``source``, ``contact_id``, ``segment_no`` or ``queue_id`` is null,
                           empty or only whitespace
``missing_timestamp``      ``offered_at`` is null
``unparsable_timestamp``   a timestamp is text that is not ISO 8601 with a UTC offset or ``Z``
``wrong_type``             a number column holds something that is not a whole number (or,
                           ``segment_no``, one beyond ``Int32``; a duration or count beyond
                           ``Int64`` is reported by its sign, below); any column holds an
                           object or a list (:func:`~engine.validate.numbers.misfit`)
``unknown_channel``        ``channel`` is not one of the canonical channels
``unknown_direction``      ``direction`` is not ``inbound``/``outbound``
``unknown_outcome``        ``outcome`` is not ``answered``/``abandoned``/``flow_out``/``open``
``end_before_offer``       ``ended_at`` is before ``offered_at``
``answer_before_offer``    ``answered_at`` is before ``offered_at``
``negative_duration``      a ``*_ms`` column or a count is negative
``implausible_duration``   a ``*_ms`` column (or the wait the timestamps give) is above
                           ``max_duration_ms`` (``[build] max_duration_hours``; default
                           :data:`MAX_DURATION_MS`, a week): no sum of a table can overflow
``implausible_count``      ``messages``, ``csat_responses`` or ``csat_score`` is above
                           :data:`MAX_COUNT`
``conflicting_duplicate``  two different rows share an identity *and* its latest ``updated_at``
=========================  ================================================================

Exact duplicate rows are collapsed and, for one identity, the row with the latest ``updated_at``
wins (a null ``updated_at`` is older than any other); those are updates, not bad input.

Rows from a connector also name the raw record they came from (``record``, the column
:data:`engine.schema.SOURCE_RECORD`): a record is then quarantined whole, once, under that id,
with the reason of its first failing row in segment order, and none of its rows stays clean.

Example:
    >>> import polars as pl
    >>> from engine.demo.contacts import generate_contacts
    >>> clean, bad = validate_contacts(generate_contacts(days=1).lazy()); bad.collect().height
    0
"""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from engine.errors import InputSchemaError
from engine.schema import CONTACTS, CONTACTS_KEY, CONTACTS_REQUIRED, QUARANTINE, UTC_TS
from engine.settings import duration_bound_ms
from engine.validate.numbers import MISFIT, blank, misfit, misfits_as_text, parse_integer

__all__ = [
    "MAX_COUNT",
    "MAX_DURATION_MS",
    "REASONS",
    "InputSchemaError",
    "conform_contacts",
    "mark_contacts",
    "repeated_identities",
    "resolve_contacts",
    "split_contacts",
    "validate_contacts",
]

#: The longest plausible duration of one segment's wait, talk, hold or wrap-up by default: a week
#: (``[build] max_duration_hours``; :data:`engine.settings.MAX_DURATION_LIMIT_HOURS` says why no
#: bound allowed lets a table's sums leave 64 bits).
MAX_DURATION_MS = 7 * 24 * 3_600_000
#: The largest plausible count (messages, CSAT responses or score) of one segment.
MAX_COUNT = 1_000_000

REASONS: tuple[str, ...] = (
    "missing_id",
    "missing_timestamp",
    "unparsable_timestamp",
    "wrong_type",
    "unknown_channel",
    "unknown_direction",
    "unknown_outcome",
    "end_before_offer",
    "answer_before_offer",
    "negative_duration",
    "implausible_duration",
    "implausible_count",
    "conflicting_duplicate",
)

_TIMESTAMPS = ("offered_at", "answered_at", "ended_at", "updated_at")
_ENUMS = {
    "channel": "unknown_channel",
    "direction": "unknown_direction",
    "outcome": "unknown_outcome",
}
_INTEGERS = tuple(c for c, t in CONTACTS.items() if t.is_integer())
_TEXT = tuple(c for c, t in CONTACTS.items() if t == pl.String())
_ZERO_DEFAULT = ("talk_ms", "hold_ms", "acw_ms", "messages", "csat_responses", "csat_score")
_OLDEST = datetime(1, 1, 1, tzinfo=UTC)
_RAW = "__raw"
_REASON = "__reason"
_DETAIL = "__detail"
_SHARED = "__shared"
_IDENTITY = "__identity"
_ORDER = "__order"
_RECORD = "__record"
_PARSED = "__parsed_"
_SHORT = "%Y-%m-%dT%H:%M%#z"  # no seconds


def _parse_timestamp(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """The parsed column and a flag for 'had a value that did not parse'.

    Self-contained (both formats on every value); :func:`conform_contacts` parses text columns
    a cheaper way (:func:`_parse_texts`), with the same result.
    """
    col = pl.col(name)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is None:
            msg = f"column {name!r} holds naive datetimes; canonical instants must be UTC-aware"
            raise InputSchemaError(msg)
        return col.dt.convert_time_zone("UTC").cast(UTC_TS), pl.lit(value=False)
    if dtype == pl.Null:
        return pl.lit(None, UTC_TS), pl.lit(value=False)
    text = col.cast(pl.String)
    parsed = pl.coalesce(  # RFC 3339 / ISO 8601 with seconds, or without them (09:01Z)
        _instant(text, fmt) for fmt in ("%+", _SHORT)
    )
    return parsed, text.is_not_null() & parsed.is_null()


def _conform_timestamp(name: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """:func:`_parse_timestamp` for :func:`conform_contacts`: a text column was parsed one step
    earlier (:func:`_parse_texts`) into a column of its own."""
    if isinstance(dtype, pl.Datetime | pl.Null):
        return _parse_timestamp(name, dtype)
    parsed = pl.col(_PARSED + name)
    return parsed, pl.col(name).is_not_null() & parsed.is_null()


def _instant(text: pl.Expr, fmt: str) -> pl.Expr:
    return text.str.to_datetime(fmt, time_unit="us", time_zone="UTC", strict=False)


def _parse_texts(frame: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
    """``frame`` with each text timestamp column parsed into ``__parsed_<name>``.

    RFC 3339 / ISO 8601 with seconds, or else without them (``09:01Z``): the second format only
    sees the values the first one refused (the others are masked to null), because parsing is
    nearly all of the conform's cost and a failing parse costs as much as a successful one. Two
    steps of their own: inside one expression Polars' common subexpression elimination
    evaluated the first parse twice, and the whole parse once for the value and once more for
    its flag.
    """
    names = [
        n for n in _TIMESTAMPS if n in schema and not isinstance(schema[n], pl.Datetime | pl.Null)
    ]
    if not names:
        return frame
    text = {n: pl.col(n).cast(pl.String) for n in names}
    first = [_instant(text[n], "%+").alias(_PARSED + n) for n in names]
    second = [
        pl.coalesce(  # the second format sees null where the first one parsed
            pl.col(_PARSED + n),
            _instant(pl.when(pl.col(_PARSED + n).is_null()).then(text[n]), _SHORT),
        ).alias(_PARSED + n)
        for n in names
    ]
    return frame.with_columns(first).with_columns(second)


def conform_contacts(
    frame: pl.LazyFrame, *, keep: tuple[str, ...] = (), max_duration_ms: int = MAX_DURATION_MS
) -> pl.LazyFrame:
    """Parse ``frame`` to the canonical schema, adding ``__reason``, ``__detail`` and ``__raw``
    (and the columns ``keep`` as given, after the canonical ones). A duration above
    ``max_duration_ms`` is ``implausible_duration``.

    Raises:
        InputSchemaError: a required column is missing or a timestamp column is naive.
    """
    frame = misfits_as_text(frame, CONTACTS)
    schema = frame.collect_schema()
    missing = [c for c in CONTACTS_REQUIRED if c not in schema]
    if missing:
        msg = f"input has no column {', '.join(map(repr, missing))} (required: {CONTACTS_REQUIRED})"
        raise InputSchemaError(msg)
    known = [c for c in schema if c in CONTACTS]
    exprs: list[pl.Expr] = [pl.struct(known).alias(_RAW)]
    checks: list[tuple[str, str, pl.Expr]] = []  # (reason, column, flag)

    for name, target in CONTACTS.items():
        dtype = schema.get(name, pl.Null())
        if name in _TIMESTAMPS:
            value, bad = _conform_timestamp(name, dtype)
            checks.append(("unparsable_timestamp", name, bad))
        elif name in _INTEGERS:
            # beyond its range: a duration or count saturates, for its range rules to flag
            value, bad = parse_integer(name, dtype, target, saturate=name != "segment_no")
            checks.append(("wrong_type", name, bad))
            if name in _ZERO_DEFAULT:
                value = value.fill_null(0)
        elif name in _ENUMS:
            assert isinstance(target, pl.Enum)
            text = pl.col(name).cast(pl.String) if name in schema else pl.lit("inbound")
            if name == "direction":
                text = text.fill_null("inbound")
            ok = text.is_in(target.categories.to_list())
            checks.append((_ENUMS[name], name, ~ok.fill_null(value=False)))
            value = pl.when(ok).then(text).cast(target)
        else:
            value = pl.col(name).cast(pl.String) if name in schema else pl.lit(None, pl.String)
        exprs.append(value.alias(name))

    # Nullness of the value as given: an unparsable value is not a missing one.
    checks += [("wrong_type", c, misfit(c, schema)) for c in known if MISFIT in schema]
    checks.append(("missing_timestamp", "offered_at", pl.col("offered_at").is_null()))
    checks += [("missing_id", c, blank(c, schema[c])) for c in (*CONTACTS_KEY, "queue_id")]
    conformed = _parse_texts(frame, schema).select(
        *exprs, *keep, *(f.alias(f"__f{i}") for i, (_, _, f) in enumerate(checks))
    )
    flags = [(r, c, pl.col(f"__f{i}")) for i, (r, c, _) in enumerate(checks)]
    offered = pl.col("offered_at")
    flags += [
        ("end_before_offer", "ended_at", pl.col("ended_at") < offered),
        ("answer_before_offer", "answered_at", pl.col("answered_at") < offered),
    ]
    flags += [("negative_duration", c, pl.col(c) < 0) for c in _INTEGERS if c != "segment_no"]
    durations = [c for c in _INTEGERS if c.endswith("_ms")]
    flags += [("implausible_duration", c, pl.col(c) > max_duration_ms) for c in durations]
    flags += [("implausible_duration", "wait_ms", _filled_wait() > max_duration_ms)]
    counts = [c for c in _INTEGERS if c != "segment_no" and not c.endswith("_ms")]
    flags += [("implausible_count", c, pl.col(c) > MAX_COUNT) for c in counts]
    order = {r: i for i, r in enumerate(REASONS)}
    flags.sort(key=lambda f: order[f[0]])
    reason = pl.lit(None, pl.String)
    detail = pl.lit(None, pl.String)
    for r, c, flag in reversed(flags):  # the first failing rule wins
        reason = pl.when(flag.fill_null(value=False)).then(pl.lit(r)).otherwise(reason)
        detail = pl.when(flag.fill_null(value=False)).then(pl.lit(c)).otherwise(detail)
    wait = _filled_wait()
    return conformed.with_columns(
        reason.alias(_REASON), detail.alias(_DETAIL), wait.alias("wait_ms")
    ).select(*CONTACTS, *keep, _REASON, _DETAIL, _RAW)


def _filled_wait() -> pl.Expr:
    """``wait_ms`` when given, else what the timestamps say, else 0 (SPEC §3.1)."""
    offered = pl.col("offered_at")
    until = (
        pl.when(pl.col("outcome") == "answered")
        .then(pl.col("answered_at"))
        .otherwise(pl.col("ended_at"))
    )
    derived = (until - offered).dt.total_milliseconds()
    return pl.coalesce(pl.col("wait_ms"), derived, pl.lit(0, pl.Int64))


def _quarantine_rows(frame: pl.LazyFrame, record: str | None = None) -> pl.LazyFrame:
    """Quarantine rows (named by ``record``, else ``<contact_id>:<segment_no>``); with
    ``record``, also the rows' ``segment_no`` (``__order``) for picking a record's first one."""
    segment = pl.concat_str(
        pl.col("contact_id").fill_null("?"),
        pl.col("segment_no").cast(pl.String).fill_null("?"),
        separator=":",
    )
    order = [] if record is None else [pl.col("segment_no").alias(_ORDER)]
    return frame.select(
        pl.col("source"),
        pl.lit("contacts").alias("table"),
        (segment if record is None else pl.col(record).cast(pl.String)).alias("record_id"),
        pl.col(_REASON).alias("reason"),
        pl.col(_DETAIL).alias("detail"),
        pl.col(_RAW).struct.json_encode().alias("raw"),
        *order,
    ).cast(QUARANTINE)  # type: ignore[arg-type]


def _latest(rows: pl.LazyFrame, columns: list[str]) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``(kept, conflicts)`` of valid rows (``columns``) whose identities may repeat: exact
    copies collapsed, the latest ``updated_at`` of an identity kept, and two different latest
    versions both set aside as ``conflicting_duplicate`` rows (with ``__reason``, ``__detail``
    and ``__raw``: both parsed cleanly, so their canonical form is their payload)."""
    key = list(CONTACTS_KEY)
    # ``unique`` over the canonical columns: a record name is not part of a row's content
    versions = rows.unique(list(CONTACTS))
    stamp = pl.col("updated_at").fill_null(_OLDEST)
    latest = versions.filter(stamp == stamp.max().over(key))
    clashes = pl.len().over(key) > 1
    conflicts = latest.filter(clashes).with_columns(
        pl.lit("conflicting_duplicate").alias(_REASON),
        pl.lit("updated_at").alias(_DETAIL),
        pl.struct(list(CONTACTS)).alias(_RAW),
    )
    return latest.filter(~clashes).select(columns), conflicts


def repeated_identities(frame: pl.LazyFrame) -> pl.LazyFrame:
    """The 64-bit hashes (column ``__identity``) of the identities that occur more than once
    among ``frame``'s rows, conformed (a row of an invalid value counts too, as in
    :func:`validate_contacts`): one sort of 8 bytes a row instead of a count per identity. Two
    identities sharing a hash only send their rows through the de-duplication rules, which keep
    a row alone in its identity as it is."""
    h = pl.col(_IDENTITY)
    hashes = conform_contacts(frame).select(_identity_hash()).sort(_IDENTITY)
    return hashes.filter((h == h.shift(1)) | (h == h.shift(-1))).unique()


def _identity_hash() -> pl.Expr:
    return pl.struct(list(CONTACTS_KEY)).hash().alias(_IDENTITY)


PART, REPEATED, INVALID = "__part", "repeated", "invalid"  #: mark_contacts' column, labels


def mark_contacts(
    frame: pl.LazyFrame, repeated: pl.Series, *, max_duration_ms: int = MAX_DURATION_MS
) -> pl.LazyFrame:
    """:func:`split_contacts` as one stream: :data:`PART` null (single), repeated or invalid."""
    invalid, shared = pl.col(_REASON).is_not_null(), _identity_hash().is_in(repeated.implode())
    part = pl.when(invalid).then(pl.lit(INVALID)).when(shared).then(pl.lit(REPEATED)).alias(PART)
    return conform_contacts(frame, max_duration_ms=max_duration_ms).select(*CONTACTS, part)


def split_contacts(
    frame: pl.LazyFrame, repeated: pl.Series, *, max_duration_ms: int = MAX_DURATION_MS
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """:func:`validate_contacts` in two parts, for a build that streams: ``(single, others)``.

    ``single``: the valid rows whose identity's hash is not in ``repeated``
    (:func:`repeated_identities`), canonical contacts as they are (a plan that streams: no row
    waits for another). ``others``: every other row, conformed with ``__reason``, ``__detail``
    and ``__raw`` (few: the invalid rows and the repeated identities'), for
    :func:`resolve_contacts`.
    """
    marked = conform_contacts(frame, max_duration_ms=max_duration_ms).with_columns(
        _identity_hash().is_in(repeated.implode()).alias(_SHARED)
    )
    valid, shared = pl.col(_REASON).is_null(), pl.col(_SHARED)
    return marked.filter(valid & ~shared).select(list(CONTACTS)), marked.filter(
        ~valid | shared
    ).drop(_SHARED)


def resolve_contacts(others: pl.LazyFrame) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """``(clean, quarantine)`` of the rows :func:`split_contacts` set aside: with its
    ``single`` rows, exactly :func:`validate_contacts`' two outputs."""
    valid = pl.col(_REASON).is_null()
    kept, conflicts = _latest(others.filter(valid).select(list(CONTACTS)), list(CONTACTS))
    return kept, pl.concat([_quarantine_rows(others.filter(~valid)), _quarantine_rows(conflicts)])


def validate_contacts(
    frame: pl.LazyFrame, *, record: str | None = None, max_duration_ms: int = MAX_DURATION_MS
) -> tuple[pl.LazyFrame, pl.LazyFrame]:
    """Split ``frame`` into canonical contacts and quarantine rows.

    Both outputs come from one conformed frame, marked once with whether its identity occurs
    more than once (a window count) and cached: collected together, the two outputs parse and
    group each row once. (Without the mark the cache would not hold: Polars pushes the outputs'
    different filters through it and conforms the input once per branch, seven times in all.)
    Only rows whose identity is shared go through the de-duplication rules; every other valid
    row passes straight through. Counting all rows, not only valid ones, sends a few extra rows
    that way (a valid row sharing its identity only with invalid ones); the rules then keep it,
    exactly as if it had passed straight through.

    Args:
        frame: contacts in the canonical shape, possibly as text columns.
        record: the column naming the raw record each row came from (a connector's rows,
            :data:`engine.schema.SOURCE_RECORD`), or ``None``: each row is its own record, named
            ``<contact_id>:<segment_no>``. A record with a failing row is quarantined whole and
            once (the first failing row in segment order gives the reason).
        max_duration_ms: the plausibility bound of a duration
            (:attr:`engine.settings.BuildSettings.max_duration_ms`; default a week, at most 8
            days: a larger one is a ``ValueError``).

    Returns:
        ``(clean, quarantine)``: ``clean`` has exactly the :data:`~engine.schema.CONTACTS`
        schema and a unique identity; ``quarantine`` has the :data:`~engine.schema.QUARANTINE`
        schema.

    Example:
        >>> rows = pl.LazyFrame({"source": "u", "contact_id": "c", "segment_no": [1, 2],
        ...     "channel": "voice", "queue_id": "q", "outcome": "answered", "record_id": "r",
        ...     "offered_at": ["2026-10-01T09:00:00Z", "yesterday"]})
        >>> clean, bad = validate_contacts(rows, record="record_id")
        >>> clean.collect().height, bad.select("record_id", "reason").collect().rows()
        (0, [('r', 'unparsable_timestamp')])
    """
    duration_bound_ms(max_duration_ms)
    key, keep = list(CONTACTS_KEY), (record,) if record else ()
    columns = [*CONTACTS, *keep]
    marked = (
        conform_contacts(frame, keep=keep, max_duration_ms=max_duration_ms)
        .with_columns((pl.len().over(key) > 1).alias(_SHARED))
        .cache()
    )
    valid = pl.col(_REASON).is_null()
    failed = marked.filter(~valid)
    single = marked.filter(valid & ~pl.col(_SHARED)).select(columns)
    kept, conflicts = _latest(marked.filter(valid & pl.col(_SHARED)).select(columns), columns)
    clean = pl.concat([single, kept])
    if record is None:
        return clean, pl.concat([_quarantine_rows(failed), _quarantine_rows(conflicts)])
    rows = pl.concat([_quarantine_rows(failed, record), _quarantine_rows(conflicts, record)])
    first = (
        rows.sort("record_id", _ORDER, nulls_last=True, maintain_order=True)
        .unique("record_id", keep="first", maintain_order=True)
        .drop(_ORDER)
    )
    records = rows.select(pl.col("record_id").alias(_RECORD))
    clean = clean.with_columns(pl.col(record).cast(pl.String).alias(_RECORD)).join(
        records, on=_RECORD, how="anti", nulls_equal=True
    )
    return clean.select(list(CONTACTS)), first
