"""The vendor's own aggregate: ``GET /v2/callback/historical/metrics`` (seed 000), in plain Python.

Computed over the emulator's Mindful records (vendor field names and spellings) from the
definitions in ``docs/callbacks.md``, deliberately without the engine (no Polars, no
``engine.callback_*``): it stands for the vendor's figures, which the engine's document is
reconciled against. In short: callback records (``type`` ``asap``/``scheduled``) sharing an
``originalId`` form a request; its first attempt is the lowest (``retryAttempt``, ``createdAt``,
``id``), its final attempt the highest; the request's attributes, instant, estimated callback time
and punctuality come from the first, its outcome, retry count, callback time, customer wait and
talk time from the final one. Averages are ``sum / count`` seconds and maxima seconds; an empty
set gives ``0``.

Example:
    >>> doc = metrics_document([], begin=parse_bound("2023-06-08"), end=parse_bound("2023-06-09"))
    >>> doc["data"]["totalCallbacks"], doc["data"]["performance"]["retries"]["'1'"]["totalFailure"]
    (0, 0)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

__all__ = ["FILTERS", "metrics_document", "parse_bound", "source_type"]

_FIVE: Final = {  # vendor outcome (lower case) -> document total
    "success": "totalSuccessful",
    "unavailable": "totalUnavailable",
    "failure": "totalFailure",
    "canceled": "totalCanceled",
    "cancelled": "totalCanceled",
    "abandoned": "totalAbandoned",
}
_TOTALS: Final = sorted(set(_FIVE.values()))
_PARTIES: Final = {
    "agent": "agent",
    "agent_first": "agent",
    "customer": "customer",
    "customer_first": "customer",
}
#: Query parameter -> allowed values (``callTargetId`` takes any id or a comma-separated list).
FILTERS: Final = {
    "firstPartyCalled": ("agent", "customer"),
    "sourceType": ("digital", "voice"),
    "type": ("asap", "scheduled"),
}
Record = Mapping[str, Any]


def parse_bound(text: str) -> datetime:
    """``timeBegin``/``timeEnd``: ``YYYY-MM-DD`` (UTC midnight) or ``YYYY-MM-DDTHH:MM:SSZ``.

    Raises:
        ValueError: any other form.

    Example:
        >>> parse_bound("2023-06-08T12:00:00Z").hour
        12
    """
    for fmt in ("%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ValueError(f"{text!r}: expected YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ")


def source_type(source: object) -> str | None:
    """``digital`` for a widget (``CBWidget:…``), ``voice`` for anything else, ``None`` for null.

    Example:
        >>> source_type("CBWidget:dc4e66dd30d813202f6ccd7c20542525"), source_type("+18555550100")
        ('digital', 'voice')
    """
    if not isinstance(source, str) or not source.strip():
        return None
    return "digital" if source.strip().lower().startswith(("cbwidget", "widget")) else "voice"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _order(r: Record) -> tuple[int, datetime, str]:
    return r["retryAttempt"], _instant(r["createdAt"]), str(r["id"])


def _requests(records: Iterable[Record]) -> list[tuple[Record, Record]]:
    chains: dict[str, list[Record]] = {}
    for r in records:
        if str(r.get("type", "")).lower() in ("asap", "scheduled"):
            chains.setdefault(str(r["originalId"]), []).append(r)
    return [(min(c, key=_order), max(c, key=_order)) for c in chains.values()]


def _selected(first: Record, filters: Mapping[str, str | None]) -> bool:
    targets = filters.get("callTargetId")
    if targets is not None:
        wanted = {t.strip() for t in targets.split(",") if t.strip()}
        if str(first.get("callTargetId")) not in wanted:
            return False
    party = _PARTIES.get(str(first.get("firstPartyCalled")).lower())
    checks = (
        ("firstPartyCalled", party),
        ("sourceType", source_type(first.get("source"))),
        ("type", str(first["type"]).lower()),
    )
    return all(filters.get(k) is None or filters[k] == v for k, v in checks)


def _stats(values: list[int | float]) -> tuple[float | int, float | int]:
    """(average, maximum) of a list of seconds, ``(0, 0)`` when empty."""
    return (sum(values) / len(values), max(values)) if values else (0, 0)


def _numbers(rows: Iterable[Record], field: str) -> list[int | float]:
    return [r[field] for r in rows if r.get(field) is not None]


def metrics_document(
    records: Iterable[Record],
    *,
    begin: datetime,
    end: datetime,
    **filters: str | None,
) -> dict[str, Any]:
    """The seed-000 document for the requests created in ``[begin, end)`` that pass ``filters``.

    Args:
        records: Mindful historical records (any type; non-callbacks are ignored).
        begin: window start (aware, inclusive).
        end: window end (aware, exclusive).
        **filters: ``callTargetId``, ``firstPartyCalled``, ``sourceType``, ``type`` (query
            parameter names; ``None`` means no filter; values already checked against
            :data:`FILTERS`).
    """
    reqs = [
        (first, final)
        for first, final in _requests(records)
        if begin <= _instant(first["createdAt"]) < end and _selected(first, filters)
    ]
    outcome = [_FIVE.get(str(final["outcome"]).lower()) for _, final in reqs]
    success = [final for (_, final), o in zip(reqs, outcome, strict=True) if o == "totalSuccessful"]
    firsts, finals = [f for f, _ in reqs], [f for _, f in reqs]
    cb_avg, cb_max = _stats(_numbers(finals, "actualCallbackTime"))
    est_avg, est_max = _stats(_numbers(firsts, "estimatedCallbackTime"))
    waits = _numbers(success, "customerWaitDuration")
    wait_avg, wait_max = _stats(waits)
    talk_avg, talk_max = _stats(_numbers(success, "talkDuration"))
    punctuality, _ = _stats(_numbers(firsts, "punctuality"))
    counts = Counter(outcome)
    retries = [final["retryAttempt"] for final in finals]
    buckets: dict[str, dict[str, int]] = {
        key: dict.fromkeys(_TOTALS, 0) for key in ("'1'", "'2'", "'3'", "'4'", "'5'", "over5")
    }
    for n, o in zip(retries, outcome, strict=True):
        if n >= 1 and o is not None:
            buckets["over5" if n > 5 else f"'{n}'"][o] += 1
    customers = Counter(f["phoneNumber"] for f in firsts if f.get("phoneNumber") is not None)
    performance = {
        "averageCallbackTime": cb_avg,
        "averageCustomerWaitTime": wait_avg,
        "averageEstimatedCallbackTime": est_avg,
        "averagePunctuality": punctuality,
        "averageTalkTime": talk_avg,
        "maxCallbackTime": cb_max,
        "maxCustomerWaitTime": wait_max,
        "maxEstimatedCallbackTime": est_max,
        "maxTalkTime": talk_max,
        "rcsl": {
            "totalAbove60": sum(w > 60 for w in waits),
            "totalBelow30": sum(w <= 30 for w in waits),
            "totalBetween31_60": sum(30 < w <= 60 for w in waits),
        },
        "retries": {
            **buckets,
            "totalCallbacksWithRetries": sum(n >= 1 for n in retries),
            "totalRetryAttempts": sum(retries),
        },
        "totalRepeatCustomers": sum(n >= 2 for n in customers.values()),
        "totalUniqueCustomers": len(customers),
    }
    kinds = Counter(str(f["type"]).lower() for f in firsts)
    outcomes = {
        "totalAbandoned": counts["totalAbandoned"],
        "totalCallbackASAP": kinds["asap"],
        "totalCallbackScheduled": kinds["scheduled"],
        "totalCanceled": counts["totalCanceled"],
        "totalFailure": counts["totalFailure"],
        "totalSuccessful": counts["totalSuccessful"],
        "totalUnavailable": counts["totalUnavailable"],
    }
    return {"data": {"outcomes": outcomes, "performance": performance, "totalCallbacks": len(reqs)}}
