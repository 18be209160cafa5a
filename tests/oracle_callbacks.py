"""A plain-Python oracle of the callback tables and document, written from docs/callbacks.md.

Independent of engine/: chains are grouped with dicts, every field is computed by a loop over
requests. Times are aware datetimes; durations integer milliseconds (None when absent).
"""

from __future__ import annotations

import bisect
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from tests import oracle

Row = Mapping[str, Any]
FIVE = ("successful", "unavailable", "failure", "canceled", "abandoned")
DOC_OUTCOME = {
    "successful": "totalSuccessful",
    "unavailable": "totalUnavailable",
    "failure": "totalFailure",
    "canceled": "totalCanceled",
    "abandoned": "totalAbandoned",
}


def requests(attempts: Iterable[Row]) -> list[dict[str, Any]]:
    """One dict per chain: first/final attempt, attributes, instant, outcome, retries, attempts."""
    chains: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for a in attempts:
        chains[(a["source"], a["original_id"])].append(a)
    out = []
    for chain in chains.values():
        order = sorted(chain, key=lambda a: (a["retry_attempt"], a["created_at"], a["attempt_id"]))
        first, final = order[0], order[-1]
        out.append(
            {
                "first": first,
                "final": final,
                "instant": first["created_at"],
                "call_target_id": first["call_target_id"],
                "call_target_name": first["call_target_name"],
                "type": first["type"],
                "first_party_called": first["first_party_called"],
                "source_type": first["source_type"],
                "customer_key": first["customer_key"],
                "outcome": final["outcome"],
                "retries": final["retry_attempt"],
                "attempts": len(chain),
            }
        )
    return out


def _selected(
    reqs: Iterable[dict[str, Any]], begin: datetime, end: datetime, filters: Mapping[str, Any]
) -> list[dict[str, Any]]:
    targets = filters.get("call_target_id")
    wanted = set(targets.split(",")) if targets else None
    out = []
    for r in reqs:
        if not begin <= r["instant"] < end:
            continue
        if wanted is not None and r["call_target_id"] not in wanted:
            continue
        if any(filters.get(k) and r[k] != filters[k]
               for k in ("first_party_called", "source_type", "type")):  # fmt: skip
            continue
        out.append(r)
    return out


def _avg(values: list[int]) -> float | int:
    return sum(values) / (len(values) * 1000) if values else 0


def _max(values: list[int]) -> float | int:
    return max(values) / 1000 if values else 0


def _by_outcome(reqs: list[dict[str, Any]]) -> dict[str, int]:
    counts = Counter(r["outcome"] for r in reqs)
    return {DOC_OUTCOME[o]: counts[o] for o in ("abandoned", "canceled", "failure", "successful",
                                                "unavailable")}  # fmt: skip


def document(
    attempts: Iterable[Row], begin: datetime, end: datetime, **filters: Any
) -> dict[str, Any]:
    """The callback metrics document (seed 000 shape) for ``[begin, end)`` and the filters."""
    reqs = _selected(requests(attempts), begin, end, filters)
    finals = [r["final"] for r in reqs]
    firsts = [r["first"] for r in reqs]
    won = [r["final"] for r in reqs if r["outcome"] == "successful"]

    def vals(rows: list[Row], col: str) -> list[int]:
        return [row[col] for row in rows if row[col] is not None]

    waits = vals(won, "customer_wait_ms")
    retries: dict[str, Any] = {}
    for n in range(1, 6):
        retries[f"'{n}'"] = _by_outcome([r for r in reqs if r["retries"] == n])
    retries["over5"] = _by_outcome([r for r in reqs if r["retries"] > 5])
    retries["totalCallbacksWithRetries"] = sum(1 for r in reqs if r["retries"] >= 1)
    retries["totalRetryAttempts"] = sum(r["retries"] for r in reqs)
    keys = Counter(r["customer_key"] for r in reqs if r["customer_key"] is not None)
    outcomes = _by_outcome(reqs)
    return {
        "data": {
            "outcomes": {
                "totalAbandoned": outcomes["totalAbandoned"],
                "totalCallbackASAP": sum(1 for r in reqs if r["type"] == "asap"),
                "totalCallbackScheduled": sum(1 for r in reqs if r["type"] == "scheduled"),
                "totalCanceled": outcomes["totalCanceled"],
                "totalFailure": outcomes["totalFailure"],
                "totalSuccessful": outcomes["totalSuccessful"],
                "totalUnavailable": outcomes["totalUnavailable"],
            },
            "performance": {
                "averageCallbackTime": _avg(vals(finals, "callback_ms")),
                "averageCustomerWaitTime": _avg(waits),
                "averageEstimatedCallbackTime": _avg(vals(firsts, "estimated_callback_ms")),
                "averagePunctuality": _avg(vals(firsts, "punctuality_ms")),
                "averageTalkTime": _avg(vals(won, "talk_ms")),
                "maxCallbackTime": _max(vals(finals, "callback_ms")),
                "maxCustomerWaitTime": _max(waits),
                "maxEstimatedCallbackTime": _max(vals(firsts, "estimated_callback_ms")),
                "maxTalkTime": _max(vals(won, "talk_ms")),
                "rcsl": {
                    "totalAbove60": sum(1 for w in waits if w > 60_000),
                    "totalBelow30": sum(1 for w in waits if w <= 30_000),
                    "totalBetween31_60": sum(1 for w in waits if 30_000 < w <= 60_000),
                },
                "retries": retries,
                "totalRepeatCustomers": sum(1 for n in keys.values() if n >= 2),
                "totalUniqueCustomers": len(keys),
            },
            "totalCallbacks": len(reqs),
        }
    }


def callback_intervals(
    attempts: Iterable[Row], start: datetime, end: datetime, minutes: int, tz: str
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Non-zero cells of ``callback_intervals``: key (interval start, target, type, first party,
    source type) -> additive columns."""
    grid = oracle.intervals(start, end, minutes, tz)
    starts = [g["interval_start_utc"] for g in grid]
    lo, hi = grid[0]["interval_start_utc"], grid[-1]["interval_end_utc"]
    cells: dict[tuple[Any, ...], dict[str, int]] = {}
    for r in requests(attempts):
        if not lo <= r["instant"] < hi:
            continue
        interval = starts[bisect.bisect_right(starts, r["instant"]) - 1]
        key = (interval, r["call_target_id"], r["type"], r["first_party_called"],
               r["source_type"])  # fmt: skip
        c = cells.setdefault(key, defaultdict(int))
        c["requests"] += 1
        c[r["outcome"]] += 1
        c[r["type"]] += 1
        c["attempts"] += r["attempts"]
        c["retries"] += r["retries"]
        c["requests_with_retries"] += r["retries"] >= 1
        parts = [("callback_ms", r["final"]), ("estimated_callback_ms", r["first"]),
                 ("punctuality_ms", r["first"])]  # fmt: skip
        if r["outcome"] == "successful":
            parts += [("customer_wait_ms", r["final"]), ("talk_ms", r["final"])]
        for col, row in parts:
            if row[col] is not None:
                c[f"{col}_sum"] += row[col]
                c[f"{col}_count"] += 1
                if col != "punctuality_ms":
                    c[f"{col}_max"] = max(c[f"{col}_max"], row[col])
        w = r["final"]["customer_wait_ms"]
        if r["outcome"] == "successful" and w is not None:
            c[
                "rcsl_below30" if w <= 30_000 else "rcsl_31_60" if w <= 60_000 else "rcsl_above60"
            ] += 1
    return {k: dict(v) for k, v in cells.items()}


def retry_outcomes(
    attempts: Iterable[Row], start: datetime, end: datetime, minutes: int, tz: str
) -> dict[tuple[Any, ...], dict[str, int]]:
    """Non-zero cells of ``retry_outcomes``: (interval start, target, bucket) -> counts."""
    grid = oracle.intervals(start, end, minutes, tz)
    starts = [g["interval_start_utc"] for g in grid]
    lo, hi = grid[0]["interval_start_utc"], grid[-1]["interval_end_utc"]
    cells: dict[tuple[Any, ...], dict[str, int]] = {}
    for r in requests(attempts):
        if not lo <= r["instant"] < hi or r["retries"] < 1:
            continue
        interval = starts[bisect.bisect_right(starts, r["instant"]) - 1]
        bucket = str(r["retries"]) if r["retries"] <= 5 else "over5"
        c = cells.setdefault((interval, r["call_target_id"], bucket), defaultdict(int))
        c["requests"] += 1
        c[r["outcome"]] += 1
    return {k: dict(v) for k, v in cells.items()}
