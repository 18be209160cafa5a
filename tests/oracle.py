"""A plain-Python oracle of the interval tables, written from SPEC.md §4-§5 (not from engine/).

Deliberately naive: interval boundaries are found by walking every UTC minute and asking
``zoneinfo`` for the local wall clock; segments are bucketed one by one with ``bisect``; metrics
are accumulated in dicts. It is slow and obviously right, which is the point.
"""

from __future__ import annotations

import bisect
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

Row = Mapping[str, Any]

SUM_COLUMNS = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "flow_out",
    "open",
    "completed",
    "answered_within_sl",
    "abandoned_within_sl",
    "wait_answered_ms",
    "wait_abandoned_ms",
    "talk_ms",
    "hold_ms",
    "acw_ms",
    "handle_ms",
    "messages",
    "csat_responses",
    "csat_score",
)
MAX_COLUMNS = ("wait_answered_max_ms", "wait_abandoned_max_ms")
DEFAULT_SL_MS = {"voice": 20_000, "callback": 20_000, "chat": 60_000, "messaging": 60_000,
                 "email": 3_600_000}  # fmt: skip


def boundaries(start: datetime, end: datetime, minutes: int, tz: str) -> list[datetime]:
    """Every UTC instant near [start, end) whose local wall clock is a multiple of ``minutes``
    after local midnight (SPEC §4: intervals align to the local wall clock). For days (1440):
    every instant that is the first whose local date is a later day than any before it (a day
    starts at its first instant, whether or not the clock shows its midnight)."""
    zone = ZoneInfo(tz)
    t = start.replace(second=0, microsecond=0) - timedelta(hours=30)
    stop = end + timedelta(hours=30)
    out = []
    latest = (t - timedelta(minutes=1)).astimezone(zone).date()
    while t < stop:
        local = t.astimezone(zone)
        if minutes == 1440:
            if local.date() > latest:
                out.append(t)
                latest = local.date()
        elif (local.hour * 60 + local.minute) % minutes == 0:
            out.append(t)
        t += timedelta(minutes=1)
    return out


def intervals(start: datetime, end: datetime, minutes: int, tz: str) -> list[dict[str, Any]]:
    """The intervals that overlap [start, end): start/end in UTC, local start, offset."""
    b = boundaries(start, end, minutes, tz)
    zone = ZoneInfo(tz)
    rows = []
    for lo, hi in itertools.pairwise(b):
        if hi > start and lo < end:
            local = lo.astimezone(zone)
            offset = local.utcoffset()
            assert offset is not None
            rows.append(
                {
                    "interval_start_utc": lo,
                    "interval_end_utc": hi,
                    "interval_start_local": local.replace(tzinfo=None),
                    "utc_offset_min": int(offset.total_seconds() // 60),
                }
            )
    return rows


def threshold_ms(row: Row, settings: Mapping[str, Any]) -> int:
    """SPEC §5: per queue and channel from config, the record's own when so configured."""
    if settings.get("use_vendor_threshold") and row["sl_threshold_ms"] is not None:
        return int(row["sl_threshold_ms"])
    overrides = settings.get("sl_overrides", [])
    for o in overrides:
        if o["queue_id"] == row["queue_id"] and o.get("channel") == row["channel"]:
            return int(o["threshold_ms"])
    for o in overrides:
        if o["queue_id"] == row["queue_id"] and o.get("channel") is None:
            return int(o["threshold_ms"])
    defaults = {**DEFAULT_SL_MS, **settings.get("sl_default_ms", {})}
    return int(defaults.get(row["channel"], 20_000))


def callvolume(
    contacts: Iterable[Row], start: datetime, end: datetime, settings: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The volume table (additive columns) as a list of dicts, sorted by queue, channel, interval.

    ``settings`` keys: interval_minutes, tz, attribution, sl_comparator, short_abandon_ms,
    sl_default_ms, sl_overrides, use_vendor_threshold.
    """
    minutes = settings.get("interval_minutes", 15)
    tz = settings.get("tz", "UTC")
    grid = intervals(start, end, minutes, tz)
    starts = [g["interval_start_utc"] for g in grid]
    lo, hi = grid[0]["interval_start_utc"], grid[-1]["interval_end_utc"]
    short = settings.get("short_abandon_ms", 5_000)
    strict = settings.get("sl_comparator", "<=") == "<"

    cells: dict[tuple[datetime, str, str], dict[str, int]] = {}
    names: dict[str, tuple[Any, ...]] = {}
    for r in contacts:
        if r["direction"] != "inbound":
            continue  # outbound is never offered to a queue
        at = r["offered_at"]
        if settings.get("attribution", "arrival") == "end" and r["ended_at"] is not None:
            at = r["ended_at"]
        if not lo <= at < hi:
            continue
        interval = starts[bisect.bisect_right(starts, at) - 1]
        key = (interval, r["queue_id"], r["channel"])
        c = cells.setdefault(key, defaultdict(int))
        o, w = r["outcome"], r["wait_ms"]
        t = threshold_ms(r, settings)
        within = w < t if strict else w <= t
        c["offered"] += 1
        c["answered"] += o == "answered"
        c["abandoned"] += o == "abandoned"
        c["short_abandoned"] += o == "abandoned" and w < short
        c["flow_out"] += o == "flow_out"
        c["open"] += o == "open"
        c["completed"] += o == "answered" and r["ended_at"] is not None
        c["answered_within_sl"] += o == "answered" and within
        c["abandoned_within_sl"] += o == "abandoned" and within
        if o == "answered":
            c["wait_answered_ms"] += w
            c["wait_answered_max_ms"] = max(c["wait_answered_max_ms"], w)
        if o == "abandoned":
            c["wait_abandoned_ms"] += w
            c["wait_abandoned_max_ms"] = max(c["wait_abandoned_max_ms"], w)
        for k in ("talk_ms", "hold_ms", "acw_ms", "messages", "csat_responses", "csat_score"):
            c[k] += r[k]
        c["handle_ms"] += r["talk_ms"] + r["hold_ms"] + r["acw_ms"]
        # The queue's name is the one on its most recently updated row (ties: greatest name).
        rank = (r["updated_at"] or datetime.min.replace(tzinfo=UTC),
                r["queue_name"] is not None, r["queue_name"] or "")  # fmt: skip
        if r["queue_id"] not in names or rank > names[r["queue_id"]]:
            names[r["queue_id"]] = rank

    spec_order = ("voice", "chat", "email", "callback", "messaging")  # SPEC §3.1's listing
    pairs = sorted({(q, ch) for (_, q, ch) in cells}, key=lambda p: (p[0], spec_order.index(p[1])))
    out = []
    for q, ch in pairs:
        for g in grid:
            c = cells.get((g["interval_start_utc"], q, ch), {})
            name = names[q][2] if names[q][1] else q
            row = {**g, "queue_id": q, "queue_name": name, "channel": ch}
            row.update({k: c.get(k, 0) for k in (*SUM_COLUMNS, *MAX_COLUMNS)})
            out.append(row)
    return out


def service_level(row: Row, formula: str) -> float | None:
    """SPEC §5's five formulas; None when the denominator is zero."""
    a, ab = row["answered"], row["abandoned"]
    a_t, ab_t, ab_s = row["answered_within_sl"], row["abandoned_within_sl"], row["short_abandoned"]
    num, den = {
        "answered_over_answered_abandoned": (a_t, a + ab),
        "exclude_short_abandons": (a_t, a + ab - ab_s),
        "ignore_abandons_within_t": (a_t, a + ab - ab_t),
        "abandons_within_t_positive": (a_t + ab_t, a + ab),
        "answered_only": (a_t, a),
    }[formula]
    return num / den if den else None
