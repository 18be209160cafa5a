"""Seeded inputs of the cardinality benchmark: contacts and callback attempts at a real shape.

Two cases, the same window, zone and re-sends; only the number of groups differs:

- ``many-queues``: contacts over 1,000 queues with one channel each (1,000 queue x channel
  pairs, arrival rates falling off like a large contact centre's: a few big queues, many small
  ones), callback attempts over 200 call targets;
- ``seven-pairs``: the demo's 7 queue x channel pairs (``engine.demo.contacts.DEFAULT_QUEUES``)
  and 5 call targets (``engine.demo.callbacks.DEFAULT_TARGETS``), the shape of ``volume`` and
  ``callbacks``.

Window: 30 local days in America/New_York from Thursday 2026-10-15, over the end of daylight
saving time on 2026-11-01 (2,884 quarter-hours). Re-sends: 2 % of the contact rows are sent
again as an update of the same identity (``updated_at`` one hour later, wrap-up 30 s longer, so
the latest version differs from the first), appended at the end as an incremental export would;
2 % of the attempt rows are sent again unchanged (a re-read hour: exact duplicates collapse).

Example:
    >>> frame = contacts("seven-pairs", 2_000, seed=1)
    >>> frame.height > 2_000 and frame["queue_id"].n_unique() == 7
    True
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

import numpy as np
import polars as pl

__all__ = ["CASES", "DAYS", "RESENT_SHARE", "START", "TZ", "WINDOW", "attempts", "contacts"]

CASES: Final = ("many-queues", "seven-pairs")
TZ: Final = "America/New_York"
START: Final = datetime(2026, 10, 15, 4, tzinfo=UTC)  # local midnight (EDT)
DAYS: Final = 30
#: The command's window: 30 local days, from local midnight to local midnight (EST).
WINDOW: Final = (START, datetime(2026, 11, 14, 5, tzinfo=UTC))
RESENT_SHARE: Final = 0.02
_QUEUES: Final = 1_000
_TARGETS: Final = 200
_CHANNEL_MIX: Final = (("voice", 0.5), ("chat", 0.2), ("messaging", 0.12), ("email", 0.1))


def _queues(case: str) -> tuple[object, ...]:
    from engine.demo.contacts import DEFAULT_QUEUES, QueueSpec

    if case == "seven-pairs":
        return DEFAULT_QUEUES
    rng = np.random.default_rng(13)
    out = []
    for i in range(_QUEUES):
        share = i / _QUEUES
        channel, edge = "callback", 0.0
        for name, part in _CHANNEL_MIX:
            edge += part
            if share < edge:
                channel = name
                break
        daily = 4_000.0 / (1 + i % 97) ** 0.8  # a long tail of small queues
        talk, acw = float(rng.uniform(180, 600)), float(rng.uniform(20, 90))
        out.append(QueueSpec(f"q{i:04d}", f"Queue {i:04d}", channel, daily, talk, acw))
    return tuple(out)


def _targets(case: str) -> tuple[object, ...]:
    from engine.demo.callbacks import DEFAULT_TARGETS, CallTarget

    if case == "seven-pairs":
        return DEFAULT_TARGETS
    rng = np.random.default_rng(17)
    return tuple(
        CallTarget(
            str(6000 + i),
            f"Target {i:03d}",
            400.0 / (1 + i % 41) ** 0.7,
            float(rng.uniform(0.5, 0.9)),
            float(rng.uniform(0.3, 0.7)),
            float(rng.uniform(0.1, 0.5)),
        )
        for i in range(_TARGETS)
    )


def _resent(frame: pl.DataFrame, seed: int) -> pl.DataFrame:
    """``RESENT_SHARE`` of the rows, drawn without replacement (a seeded sample)."""
    return frame.sample(fraction=RESENT_SHARE, seed=seed, shuffle=True)


def contacts(case: str, size: int, *, seed: int = 0) -> pl.DataFrame:
    """About ``size`` segments (``engine.demo.contacts.generate_segments``), then the updates.

    An update has the identity of its original, ``updated_at`` one hour after the original's
    (or its offer's when null) and ``acw_ms`` 30 s longer; it is the version the command keeps.
    """
    from engine.demo.contacts import generate_segments

    base = generate_segments(
        size,
        seed=seed,
        start=START,
        days=DAYS,
        queues=_queues(case),
        time_zone=TZ,  # type: ignore[arg-type]
    )
    updates = _resent(base, seed).with_columns(
        pl.coalesce("updated_at", "offered_at").dt.offset_by("1h").alias("updated_at"),
        (pl.col("acw_ms") + 30_000).alias("acw_ms"),
    )
    return pl.concat([base, updates])


def attempts(case: str, size: int, *, seed: int = 0) -> pl.DataFrame:
    """About ``size`` attempts (``engine.demo.callbacks.generate_attempts``, ``scale``
    calibrated on a sample), then the exact re-sends."""
    from engine.demo.callbacks import generate_attempts

    targets = _targets(case)
    common = {"seed": seed, "start": START, "days": DAYS, "targets": targets}
    sample = generate_attempts(scale=1.0, **common).height  # type: ignore[arg-type]
    base = generate_attempts(scale=size / max(sample, 1), **common)  # type: ignore[arg-type]
    return pl.concat([base, _resent(base, seed)])


def window_args() -> list[str]:
    """The command-line window of both commands (``--start``, ``--end``, ``--tz``)."""
    iso = [t.isoformat().replace("+00:00", "Z") for t in WINDOW]
    return ["--start", iso[0], "--end", iso[1], "--tz", TZ]


def grid_rows() -> int:
    """Quarter-hours in :data:`WINDOW` (the UTC grain: every one is a local boundary in TZ)."""
    return (WINDOW[1] - WINDOW[0]) // timedelta(minutes=15)
