"""The DuckDB peer of the volume benchmark: SPEC §5's ``callvolume`` table as one SQL query.

The same definitions as :mod:`engine.tables.callvolume`, written independently from the SPEC so
that the
benchmark compares equal work and checks the answer: outbound excluded; arrival attribution;
intervals of the UTC wall clock (``epoch // length``); thresholds per channel from
:class:`engine.settings.BuildSettings` (``wait_ms <= T`` is within); zero-fill of every interval of
the window for every (queue, channel) seen in it, in SQL; the queue name of the most recently
updated row (ties: the greatest name; a null time is the oldest, a null name the smallest).

Only what the benchmark runs is supported: UTC, arrival attribution, no per-queue overrides, no
vendor thresholds. This module does not import Polars, so the DuckDB worker's memory is DuckDB's.

Example:
    >>> from datetime import datetime, UTC
    >>> from engine.settings import BuildSettings
    >>> w = datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC)
    >>> "GROUP BY" in volume_sql("x.parquet", window=w, settings=BuildSettings())
    True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.settings import BuildSettings

__all__ = ["COLUMNS", "check_against_engine", "volume_relation_sql", "volume_sql"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_COUNTS = {
    "offered": "TRUE",
    "answered": "outcome = 'answered'",
    "abandoned": "outcome = 'abandoned'",
    "short_abandoned": "outcome = 'abandoned' AND wait_ms < {short}",
    "flow_out": "outcome = 'flow_out'",
    "open": "outcome = 'open'",
    "completed": "outcome = 'answered' AND ended_at IS NOT NULL",
    "answered_within_sl": "outcome = 'answered' AND wait_ms {cmp} {t}",
    "abandoned_within_sl": "outcome = 'abandoned' AND wait_ms {cmp} {t}",
}
_SUMS = {
    "wait_answered_ms": "sum(wait_ms) FILTER (WHERE outcome = 'answered')",
    "wait_abandoned_ms": "sum(wait_ms) FILTER (WHERE outcome = 'abandoned')",
    "talk_ms": "sum(talk_ms)",
    "hold_ms": "sum(hold_ms)",
    "acw_ms": "sum(acw_ms)",
    "handle_ms": "sum(talk_ms + hold_ms + acw_ms)",
    "messages": "sum(messages)",
    "csat_responses": "sum(csat_responses)",
    "csat_score": "sum(csat_score)",
    "wait_answered_max_ms": "max(wait_ms) FILTER (WHERE outcome = 'answered')",
    "wait_abandoned_max_ms": "max(wait_ms) FILTER (WHERE outcome = 'abandoned')",
}
_KEYS = (
    "interval_start_utc",
    "interval_end_utc",
    "interval_start_local",
    "utc_offset_min",
    "queue_id",
    "queue_name",
    "channel",
)
#: The columns of the result, in the order of ``engine.tables.callvolume.SCHEMA`` (checked by the
#: caller).
COLUMNS = (*_KEYS, *_COUNTS, *_SUMS)


def _literal(value: datetime) -> str:
    return f"TIMESTAMPTZ '{value.isoformat()}'"


def _threshold(settings: BuildSettings) -> str:
    whens = " ".join(f"WHEN '{c}' THEN {ms}" for c, ms in settings.sl_default_ms.items())
    return f"(CASE channel {whens} ELSE {settings.sl_default_ms['voice']} END)"


def volume_sql(path: str, *, window: tuple[datetime, datetime], settings: BuildSettings) -> str:
    """The query: one row per interval x (queue, channel) seen, zero-filled, sorted."""
    if settings.tz != "UTC":
        raise NotImplementedError("the DuckDB peer does not implement ['tz']")
    source = path.replace("'", "''")
    return volume_relation_sql(f"read_parquet('{source}')", window=window, settings=settings)


def volume_relation_sql(
    relation: str, *, window: tuple[datetime, datetime], settings: BuildSettings
) -> str:
    """:func:`volume_sql` over any relation with the contacts' columns (a table, a subquery),
    in ``settings.tz`` too when its offsets are whole multiples of the interval length (every
    UTC boundary is then a local one: America/New_York at 15 minutes; local columns from
    DuckDB's ``timezone``)."""
    unsupported = {
        "attribution": settings.attribution != "arrival",
        "sl_overrides": bool(settings.sl_overrides),
        "use_vendor_threshold": settings.use_vendor_threshold,
    }
    if any(unsupported.values()):
        msg = f"the DuckDB peer does not implement {[k for k, v in unsupported.items() if v]}"
        raise NotImplementedError(msg)
    grain = settings.interval_minutes * 60_000_000  # microseconds
    lo, hi = window
    lo_us, hi_us = ((t - _EPOCH) // timedelta(microseconds=1) for t in window)
    if lo_us % grain or hi_us % grain:
        raise ValueError(
            f"window {window} is not on whole {settings.interval_minutes}-min intervals"
        )
    fill = {"short": settings.short_abandon_ms, "cmp": settings.sl_comparator}
    fill["t"] = _threshold(settings)
    counts = [f"count(*) FILTER (WHERE {c.format(**fill)}) AS {n}" for n, c in _COUNTS.items()]
    sums = [f"{e}::BIGINT AS {n}" for n, e in _SUMS.items()]
    measures = [*_COUNTS, *_SUMS]
    start = f"make_timestamptz(grid.g * {grain})"
    local, offset = f"make_timestamp(grid.g * {grain})", "0::INTEGER"
    if settings.tz != "UTC":
        local = f"timezone('{settings.tz}', {start})"
        offset = f"((epoch_us({local}) - grid.g * {grain}) // 60000000)::INTEGER"
    return f"""
WITH inbound AS (
    SELECT * FROM {relation}
    WHERE direction = 'inbound' AND offered_at >= {_literal(lo)} AND offered_at < {_literal(hi)}
),
agg AS (
    SELECT queue_id, channel, epoch_us(offered_at) // {grain} AS g,
        {", ".join(counts + sums)}
    FROM inbound
    GROUP BY queue_id, channel, g
),
names AS (  -- latest update per (queue, name) first: far fewer rows for arg_max's struct key
    SELECT queue_id, coalesce(arg_max_null(queue_name, struct_pack(
        u := latest, has := queue_name IS NOT NULL, n := coalesce(queue_name, '')
    )), queue_id) AS queue_name
    FROM (
        SELECT queue_id, queue_name, max(coalesce(updated_at, '-infinity'::TIMESTAMPTZ)) AS latest
        FROM inbound
        GROUP BY queue_id, queue_name
    )
    GROUP BY queue_id
),
pairs AS (SELECT DISTINCT queue_id, channel FROM agg),
grid AS (SELECT range AS g FROM range({lo_us // grain}, {hi_us // grain}))
SELECT
    {start} AS interval_start_utc,
    make_timestamptz((grid.g + 1) * {grain}) AS interval_end_utc,
    {local} AS interval_start_local,
    {offset} AS utc_offset_min,
    pairs.queue_id,
    names.queue_name,
    pairs.channel,
    {", ".join(f"coalesce(agg.{m}, 0)::BIGINT AS {m}" for m in measures)}
FROM pairs
CROSS JOIN grid
LEFT JOIN agg ON agg.queue_id = pairs.queue_id AND agg.channel = pairs.channel AND agg.g = grid.g
LEFT JOIN names ON names.queue_id = pairs.queue_id
ORDER BY pairs.queue_id, pairs.channel, grid.g
"""


def check_against_engine(frames: int, *, seed: int = 0) -> int:
    """Compare the query with ``engine.tables.callvolume.build`` on small adversarial frames.

    Null names and update times, renamed queues, ties, waits on every threshold, offers on the
    window's and the intervals' edges, outbound rows: the peer must agree exactly before its times
    mean anything. Raises ``AssertionError`` on the first disagreement.

    Returns:
        The number of frames compared.
    """
    import random
    import tempfile

    import duckdb
    import polars as pl
    from polars.testing import assert_frame_equal

    from engine.schema import CONTACTS
    from engine.tables.callvolume import SCHEMA, build

    window = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET TimeZone = 'UTC'")
    order = [pl.col("queue_id"), pl.col("channel").cast(pl.String), pl.col("interval_start_utc")]
    edges_ms = [0, -1, 1, 899_999, 900_000, 86_399_999, 86_400_000]
    waits = [0, 4_999, 5_000, 20_000, 20_001, 60_000, 60_001, 3_600_000, 3_600_001]
    for k in range(frames):
        r = random.Random(seed * 1_000_003 + k)
        rows = []
        for i in range(r.randint(1, 60)):
            offset = r.choice([*edges_ms, r.randint(-3_600_000, 90_000_000)])
            offered = window[0] + timedelta(milliseconds=offset)
            rows.append(
                {
                    "source": "s",
                    "contact_id": f"c{i}",
                    "segment_no": 1,
                    "channel": r.choice(["voice", "chat", "email", "callback", "messaging"]),
                    "direction": r.choice(["inbound", "inbound", "outbound"]),
                    "queue_id": r.choice(["q1", "q2", "q3"]),
                    "queue_name": r.choice(["A", "B", None, ""]),
                    "offered_at": offered,
                    "ended_at": r.choice([None, offered + timedelta(seconds=5)]),
                    "outcome": r.choice(["answered", "abandoned", "flow_out", "open"]),
                    "wait_ms": r.choice([*waits, r.randint(0, 10**7)]),
                    **{c: r.randint(0, 9) for c in ("talk_ms", "hold_ms", "acw_ms", "messages")},
                    "csat_responses": r.randint(0, 1),
                    "csat_score": r.randint(0, 5),
                    "updated_at": r.choice([None, offered, offered + timedelta(seconds=2)]),
                }
            )
        frame = pl.DataFrame(rows, schema=CONTACTS)
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/frame.parquet"
            frame.write_parquet(path)
            settings = BuildSettings()
            ours = build(pl.scan_parquet(path), window=window, settings=settings).collect()
            sql = volume_sql(path, window=window, settings=settings)
            theirs = pl.DataFrame(con.sql(sql).to_arrow_table())
        got, want = (t.cast(SCHEMA).sort(order) for t in (theirs, ours))  # type: ignore[arg-type]
        assert_frame_equal(got, want)
    return frames
