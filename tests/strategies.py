"""Hypothesis strategies for canonical rows, windows and settings (shared by the test modules)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

#: (zone, local date) pairs with a DST change or an unusual offset on that day.
INTERESTING_DAYS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("UTC", (2026, 10, 1)),
    ("America/New_York", (2026, 3, 8)),
    ("America/New_York", (2026, 11, 1)),
    ("Europe/London", (2026, 3, 29)),
    ("Europe/London", (2026, 10, 25)),
    ("Australia/Lord_Howe", (2026, 4, 5)),
    ("Australia/Lord_Howe", (2026, 10, 4)),
    ("Asia/Kolkata", (2026, 6, 1)),
    ("Asia/Kathmandu", (2026, 6, 1)),
    ("America/Santiago", (2026, 9, 6)),  # the clock skips midnight: 00:00 -> 01:00
    ("America/Havana", (2026, 11, 1)),  # the clock shows midnight twice: 01:00 -> 00:00
)

QUEUES = ("q-sales", "q-support", "q-billing")
CHANNELS = ("voice", "chat", "email", "callback", "messaging")
OUTCOMES = ("answered", "abandoned", "flow_out", "open")


@st.composite
def day_window(draw: st.DrawFn) -> tuple[str, datetime, datetime]:
    """A zone and a window of one local day (sometimes a partial, unaligned window in it)."""
    tz, (y, m, d) = draw(st.sampled_from(INTERESTING_DAYS))
    zone = ZoneInfo(tz)
    start = datetime(y, m, d, tzinfo=zone).astimezone(UTC)
    end = (datetime(y, m, d, tzinfo=zone) + timedelta(days=1)).astimezone(UTC)
    if draw(st.booleans()):
        a = draw(st.integers(0, 20 * 3600)) * 1000
        b = draw(st.integers(a + 1, a + 4 * 3600 * 1000))
        start, end = start + timedelta(milliseconds=a), start + timedelta(milliseconds=b)
    return tz, start, end


# Waits cluster around the interesting thresholds (5 s short abandon, 20 s and 60 s SL).
waits = st.one_of(
    st.sampled_from([0, 4_999, 5_000, 5_001, 19_999, 20_000, 20_001, 60_000, 60_001]),
    st.integers(0, 900_000),
)


@st.composite
def contact_rows(
    draw: st.DrawFn, start: datetime, end: datetime, max_size: int = 40
) -> list[dict[str, Any]]:
    """Valid canonical contact rows offered around ``[start, end)``, unique by identity."""
    span_ms = int((end - start).total_seconds() * 1000)
    n = draw(st.integers(0, max_size))
    rows = []
    for i in range(n):
        offset = draw(st.integers(-3_600_000, span_ms + 3_600_000))
        offered = start + timedelta(milliseconds=offset)
        outcome = draw(st.sampled_from(OUTCOMES))
        wait = draw(waits)
        answered = outcome == "answered"
        talk = draw(st.integers(0, 1_800_000)) if answered else 0
        hold = draw(st.integers(0, 300_000)) if answered else 0
        acw = draw(st.integers(0, 300_000)) if answered else 0
        ended = None
        if outcome != "open" and (not answered or draw(st.booleans())):
            ended = offered + timedelta(milliseconds=wait + talk + hold)
        csat = draw(st.integers(0, 1)) if answered else 0
        updated = offered + timedelta(milliseconds=draw(st.integers(0, 7_200_000)))
        rows.append(
            {
                "source": draw(st.sampled_from(["ujet", "dixa"])),
                "contact_id": f"c{i}",
                "segment_no": draw(st.integers(1, 3)),
                "channel": draw(st.sampled_from(CHANNELS)),
                "direction": draw(st.sampled_from(["inbound"] * 5 + ["outbound"])),
                "queue_id": draw(st.sampled_from(QUEUES)),
                "queue_name": draw(st.sampled_from(["Sales", "Support", "Billing", None])),
                "offered_at": offered,
                "answered_at": offered + timedelta(milliseconds=wait) if answered else None,
                "ended_at": ended,
                "outcome": outcome,
                "wait_ms": wait,
                "talk_ms": talk,
                "hold_ms": hold,
                "acw_ms": acw,
                "sl_threshold_ms": draw(st.sampled_from([None, None, 10_000, 30_000])),
                "messages": draw(st.integers(0, 40)),
                "csat_responses": csat,
                "csat_score": draw(st.integers(1, 5)) if csat else 0,
                "updated_at": draw(st.sampled_from([updated, updated, None])),
            }
        )
    return rows


@st.composite
def build_settings(draw: st.DrawFn, tz: str) -> dict[str, Any]:
    """Keyword arguments for BuildSettings (the oracle reads the same dict)."""
    overrides = draw(
        st.lists(
            st.fixed_dictionaries(
                {
                    "queue_id": st.sampled_from(QUEUES),
                    "channel": st.sampled_from([None, "voice", "chat"]),
                    "threshold_ms": st.sampled_from([5_000, 15_000, 30_000]),
                }
            ),
            max_size=2,
            unique_by=lambda o: (o["queue_id"], o["channel"]),
        )
    )
    return {
        "interval_minutes": draw(st.sampled_from([15, 30, 60])),
        "tz": tz,
        "attribution": draw(st.sampled_from(["arrival", "end"])),
        "sl_comparator": draw(st.sampled_from(["<=", "<"])),
        "short_abandon_ms": draw(st.sampled_from([5_000, 3_000])),
        "sl_overrides": overrides,
        "use_vendor_threshold": draw(st.booleans()),
    }
