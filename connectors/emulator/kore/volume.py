"""The Kore.ai emulator's own aggregate: canonical contacts -> Contact Volume rows (seed 003).

This is the *vendor's* computation, written from the seed and SPEC §5 with numpy and plain Python,
independently of :mod:`engine.tables.callvolume`: reconciliation compares our engine's table
against it,
so it must not share code with the thing it checks. Definitions, per UTC interval of
``interval_minutes`` (default 15) x queue x channel, over **inbound** segments attributed to the
interval of their ``offered_at``:

=============================  ==============================================================
field                          value
=============================  ==============================================================
offeredContacts                segments offered
answeredContacts               outcome ``answered``
abandonedContacts              outcome ``abandoned``
completedContacts              outcome ``answered`` with an ``ended_at``
queueHoldTimeAnswered          sum of ``wait_ms`` of answered segments
maxQueueHoldTimeAnswered       max of ``wait_ms`` of answered segments (0 when none)
queueHoldTimeAbandoned         sum of ``wait_ms`` of abandoned segments
maxqueueHoldTimeAbandoned      max of ``wait_ms`` of abandoned segments (0 when none; sic)
conversationTalkTime           sum of ``talk_ms``
holdDuration                   sum of ``hold_ms``
acwDuration                    sum of ``acw_ms``
conversationHandleTime         talk + hold + acw (the seed's sample: 64094 + 0 + 3949 = 68043)
messageCount                   sum of ``messages``
savedMessageCount              0 (nothing in the canonical contacts says a message was saved)
csatResponses, csatScore       sums of ``csat_responses``, ``csat_score``
=============================  ==============================================================

Only intervals with at least one offered segment have a row (the vendor stores updates, it does not
zero-fill). ``queueName`` is the name on the queue's most recently updated inbound segment (ties:
the greatest name; no name at all: the queue id). Durations are kept in milliseconds here;
:func:`render` converts them to the served unit (seconds: the aggregate rounded half up).

Example:
    >>> at = datetime(2026, 11, 10, 9, 5, tzinfo=UTC)
    >>> contacts = pl.DataFrame({"source": "kore", "contact_id": ["c1", "c2"], "segment_no": 1,
    ...     "channel": "voice", "queue_id": "q1", "offered_at": [at, at],
    ...     "outcome": ["answered", "abandoned"]})
    >>> (row,) = aggregate(contacts)
    >>> row["interval_start"].isoformat(), row["offeredContacts"], row["abandonedContacts"]
    ('2026-11-10T09:00:00+00:00', 2, 1)
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import numpy as np
import numpy.typing as npt
import polars as pl

__all__ = [
    "COUNTS",
    "DURATIONS",
    "MEASURES",
    "VolumeRow",
    "aggregate",
    "iso_ms",
    "render",
    "row_id",
]

DurationUnit = Literal["ms", "s"]
VolumeRow = dict[str, Any]

#: Count fields of a row (served as is).
COUNTS: Final = (
    "offeredContacts",
    "answeredContacts",
    "completedContacts",
    "messageCount",
    "savedMessageCount",
    "csatResponses",
    "csatScore",
    "abandonedContacts",
)
#: Duration fields of a row (milliseconds here; converted by :func:`render`).
DURATIONS: Final = (
    "maxQueueHoldTimeAnswered",
    "queueHoldTimeAnswered",
    "acwDuration",
    "conversationHandleTime",
    "conversationTalkTime",
    "holdDuration",
    "maxqueueHoldTimeAbandoned",
    "queueHoldTimeAbandoned",
)
MEASURES: Final = (*COUNTS, *DURATIONS)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_Ints = npt.NDArray[np.int64]


def iso_ms(ts: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` in UTC, the seed's timestamp form.

    Example:
        >>> iso_ms(datetime(2023, 6, 1, 9, 45, tzinfo=UTC))
        '2023-06-01T09:45:00.000Z'
    """
    return ts.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def _ints(frame: pl.DataFrame, name: str) -> _Ints:
    if name not in frame.columns:
        return np.zeros(frame.height, dtype=np.int64)
    return np.asarray(frame[name].fill_null(0).to_numpy(), dtype=np.int64)


def _texts(frame: pl.DataFrame, name: str, default: str | None = None) -> list[str | None]:
    if name not in frame.columns:
        return [default] * frame.height
    return list(frame[name].cast(pl.String).fill_null(pl.lit(default, pl.String)).to_list())


def _queue_names(frame: pl.DataFrame) -> dict[str, str]:
    """Per queue: the name on its latest-updated segment (ties: greatest name; none: the id)."""
    best: dict[str, tuple[bool, datetime, bool, str]] = {}
    has_updates = "updated_at" in frame.columns
    updated = frame["updated_at"].to_list() if has_updates else [None] * frame.height
    names = _texts(frame, "queue_name")
    for queue, upd, name in zip(_texts(frame, "queue_id"), updated, names, strict=True):
        assert queue is not None
        rank = (upd is not None, upd or _EPOCH, name is not None, name or "")
        if queue not in best or rank > best[queue]:
            best[queue] = rank
    return {q: rank[3] if rank[2] else q for q, rank in best.items()}


def _sum(group: _Ints, n: int, values: _Ints, where: npt.NDArray[np.bool_] | None = None) -> _Ints:
    out = np.zeros(n, dtype=np.int64)
    if where is None:
        np.add.at(out, group, values)
    else:
        np.add.at(out, group[where], values[where])
    return out


def _max(group: _Ints, n: int, values: _Ints, where: npt.NDArray[np.bool_]) -> _Ints:
    out = np.zeros(n, dtype=np.int64)
    np.maximum.at(out, group[where], values[where])
    return out


def aggregate(contacts: pl.DataFrame, *, interval_minutes: int = 15) -> list[VolumeRow]:
    """The vendor's rows (durations in ms) from canonical contacts, ordered by interval, queue,
    channel.

    Args:
        contacts: canonical segments (:data:`engine.schema.CONTACTS` columns); nulls in duration
            and count columns count as 0.
        interval_minutes: interval length (UTC-aligned).

    Returns:
        One dict per non-empty interval x queue x channel: ``interval_start``, ``interval_end``
        (aware datetimes), ``queue_id``, ``queue_name``, ``channel`` and every :data:`MEASURES`.
    """
    if interval_minutes <= 0 or 1440 % interval_minutes:
        raise ValueError("interval_minutes must divide a day")
    if contacts.height == 0:
        return []
    direction = np.array(_texts(contacts, "direction", "inbound"), dtype=object)
    inbound = contacts.filter(pl.Series(direction == "inbound", dtype=pl.Boolean))
    inbound = inbound.filter(pl.col("offered_at").is_not_null())
    if inbound.height == 0:
        return []
    step_us = interval_minutes * 60_000_000
    slot = np.asarray(inbound["offered_at"].dt.epoch("us").to_numpy(), dtype=np.int64) // step_us
    queues = np.array(_texts(inbound, "queue_id"), dtype=object)
    channels = np.array(_texts(inbound, "channel"), dtype=object)
    queue_ids, queue_code = np.unique(queues, return_inverse=True)
    channel_ids, channel_code = np.unique(channels, return_inverse=True)
    nq, nc, first = len(queue_ids), len(channel_ids), int(slot.min())
    combined = ((slot - first) * nq + queue_code) * nc + channel_code
    keys, group = np.unique(combined, return_inverse=True)
    group = group.astype(np.int64)
    n = len(keys)

    outcome = np.array(_texts(inbound, "outcome"), dtype=object)
    answered, abandoned = outcome == "answered", outcome == "abandoned"
    ended = inbound["ended_at"].to_list() if "ended_at" in inbound.columns else []
    completed = answered & np.array([e is not None for e in ended] or False, dtype=bool)
    wait = _ints(inbound, "wait_ms")
    talk, hold, acw = (_ints(inbound, c) for c in ("talk_ms", "hold_ms", "acw_ms"))
    ones = np.ones(inbound.height, dtype=np.int64)
    measures = {
        "offeredContacts": _sum(group, n, ones),
        "answeredContacts": _sum(group, n, ones, answered),
        "completedContacts": _sum(group, n, ones, completed),
        "messageCount": _sum(group, n, _ints(inbound, "messages")),
        "savedMessageCount": np.zeros(n, dtype=np.int64),
        "csatResponses": _sum(group, n, _ints(inbound, "csat_responses")),
        "csatScore": _sum(group, n, _ints(inbound, "csat_score")),
        "abandonedContacts": _sum(group, n, ones, abandoned),
        "maxQueueHoldTimeAnswered": _max(group, n, wait, answered),
        "queueHoldTimeAnswered": _sum(group, n, wait, answered),
        "acwDuration": _sum(group, n, acw),
        "conversationHandleTime": _sum(group, n, talk + hold + acw),
        "conversationTalkTime": _sum(group, n, talk),
        "holdDuration": _sum(group, n, hold),
        "maxqueueHoldTimeAbandoned": _max(group, n, wait, abandoned),
        "queueHoldTimeAbandoned": _sum(group, n, wait, abandoned),
    }
    names = _queue_names(inbound)
    step = timedelta(minutes=interval_minutes)
    rows: list[VolumeRow] = []
    for i, key in enumerate(keys.tolist()):
        rest, c = divmod(key, nc)
        s, q = divmod(rest, nq)
        start = _EPOCH + (first + s) * step
        queue = str(queue_ids[q])
        row: VolumeRow = {
            "interval_start": start,
            "interval_end": start + step,
            "queue_id": queue,
            "queue_name": names[queue],
            "channel": str(channel_ids[c]),
        }
        rows.append(row | {name: int(values[i]) for name, values in measures.items()})
    return rows  # keys sort by (slot, queue, channel): that is already the served order


def row_id(org_id: str, row: VolumeRow) -> str:
    """A 24-hex-digit id, stable per org, queue, channel and interval (like a Mongo ObjectId)."""
    text = f"{org_id}|{row['queue_id']}|{row['channel']}|{iso_ms(row['interval_start'])}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def render(
    row: VolumeRow, *, org_id: str, iid: str, version: int, unit: DurationUnit = "ms"
) -> dict[str, Any]:
    """One ``CallVolumeUpdate`` item, key for key in the seed's order.

    Example:
        >>> start = datetime(2023, 6, 1, 9, 45, tzinfo=UTC)
        >>> row = {"interval_start": start, "interval_end": start + timedelta(minutes=15),
        ...        "queue_id": "qu-1", "queue_name": "Q", "channel": "voice",
        ...        **dict.fromkeys(MEASURES, 0), "holdDuration": 1500}
        >>> doc = render(row, org_id="o-1", iid="st-1", version=0, unit="s")
        >>> doc["intervalEndTimeStamp"], doc["holdDuration"]
        ('2023-06-01T10:00:00.000Z', 2)
    """

    def duration(name: str) -> int:
        value = int(row[name])
        return value if unit == "ms" else (value + 500) // 1000

    return {
        "_id": row_id(org_id, row),
        "intervalStartTimeStamp": iso_ms(row["interval_start"]),
        "orgId": org_id,
        "queueId": row["queue_id"],
        "source": row["channel"],
        "__v": version,
        "intervalEndTimeStamp": iso_ms(row["interval_end"]),
        "offeredContacts": row["offeredContacts"],
        "answeredContacts": row["answeredContacts"],
        "maxQueueHoldTimeAnswered": duration("maxQueueHoldTimeAnswered"),
        "queueHoldTimeAnswered": duration("queueHoldTimeAnswered"),
        "acwDuration": duration("acwDuration"),
        "completedContacts": row["completedContacts"],
        "conversationHandleTime": duration("conversationHandleTime"),
        "conversationTalkTime": duration("conversationTalkTime"),
        "holdDuration": duration("holdDuration"),
        "messageCount": row["messageCount"],
        "savedMessageCount": row["savedMessageCount"],
        "csatResponses": row["csatResponses"],
        "csatScore": row["csatScore"],
        "abandonedContacts": row["abandonedContacts"],
        "maxqueueHoldTimeAbandoned": duration("maxqueueHoldTimeAbandoned"),
        "queueHoldTimeAbandoned": duration("queueHoldTimeAbandoned"),
        "iId": iid,
        "queueName": row["queue_name"],
    }
