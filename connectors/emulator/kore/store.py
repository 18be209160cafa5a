"""The Kore.ai emulator's data: contacts in, rendered rows out, and the switches that change them.

:class:`VolumeStore` is mixed into :class:`~connectors.emulator.kore.app.KoreEmulator`. It keeps the
canonical contacts, recomputes the vendor's rows with
:func:`~connectors.emulator.kore.volume.aggregate` whenever they change (a changed row bumps its
``__v``), applies seeded discrepancies (:meth:`VolumeStore.perturb`, :meth:`VolumeStore.override`)
and says what a correct connector imports (:meth:`VolumeStore.expected_callvolume`).

Example:
    >>> store = VolumeStore()
    >>> store.init_store(None, org_id="o-1", unit="ms", interval_minutes=15)
    >>> store.rows(), store.expected_callvolume().height
    ([], 0)
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from typing import Any

import polars as pl

from connectors.emulator.kore.volume import (
    MEASURES,
    DurationUnit,
    VolumeRow,
    aggregate,
    render,
    row_id,
)

__all__ = ["CANONICAL", "RowKey", "VolumeStore"]

_KEY = ("source", "contact_id", "segment_no")
#: canonical volume column <- vendor field (durations: ms; the inverse the connector applies)
CANONICAL = {
    "offered": "offeredContacts",
    "answered": "answeredContacts",
    "abandoned": "abandonedContacts",
    "completed": "completedContacts",
    "wait_answered_ms": "queueHoldTimeAnswered",
    "wait_answered_max_ms": "maxQueueHoldTimeAnswered",
    "wait_abandoned_ms": "queueHoldTimeAbandoned",
    "wait_abandoned_max_ms": "maxqueueHoldTimeAbandoned",
    "talk_ms": "conversationTalkTime",
    "hold_ms": "holdDuration",
    "acw_ms": "acwDuration",
    "handle_ms": "conversationHandleTime",
    "messages": "messageCount",
    "csat_responses": "csatResponses",
    "csat_score": "csatScore",
}
RowKey = tuple[datetime, str, str]


class VolumeStore:
    """Contacts, the rows computed from them, and the discrepancies seeded on top."""

    org_id: str
    iid: str
    unit: DurationUnit
    interval_minutes: int

    def init_store(
        self,
        contacts: pl.DataFrame | None,
        *,
        org_id: str,
        unit: DurationUnit,
        interval_minutes: int,
    ) -> None:
        """Set up the store (called from the emulator's ``__init__``)."""
        self.org_id, self.unit, self.interval_minutes = org_id, unit, interval_minutes
        self.iid = f"st-{uuid.uuid5(uuid.NAMESPACE_URL, f'kore-emulator:{org_id}')}"
        self._store = threading.RLock()
        self._contacts = pl.DataFrame() if contacts is None else contacts
        self._rows: dict[RowKey, VolumeRow] = {}
        self._versions: dict[RowKey, int] = {}
        self._deltas: dict[RowKey, dict[str, int]] = {}
        self._dropped: set[RowKey] = set()
        self._overrides: dict[RowKey, dict[str, Any]] = {}
        self._served: list[tuple[RowKey, dict[str, Any]]] = []
        self._recompute()

    def upsert_contacts(self, contacts: pl.DataFrame) -> None:
        """Add segments, replacing those with the same identity; rows that change bump ``__v``."""
        with self._store:
            merged = pl.concat([self._contacts, contacts], how="diagonal_relaxed")
            self._contacts = merged.unique(subset=list(_KEY), keep="last", maintain_order=True)
            self._recompute()

    def perturb(
        self,
        interval_start: datetime,
        queue_id: str,
        channel: str,
        *,
        drop: bool = False,
        **add: int,
    ) -> str:
        """Seed a discrepancy: add ``add`` to vendor fields of one row (ms for durations), or
        ``drop`` the row from the responses. Returns the row's ``_id``.

        Example:
            ``emu.perturb(t, "voice-sales", "voice", offeredContacts=1, holdDuration=-500)``
        """
        if bad := set(add) - set(MEASURES):
            raise ValueError(f"not a measure field: {sorted(bad)}")
        key = (interval_start.astimezone(UTC), queue_id, channel)
        with self._store:
            if key not in self._rows:
                raise KeyError(f"no row for {key}")
            if drop:
                self._dropped.add(key)
            delta = self._deltas.setdefault(key, {})
            for name, value in add.items():
                delta[name] = delta.get(name, 0) + value
            self._recompute()
            return row_id(self.org_id, self._rows[key])

    def override(
        self, interval_start: datetime, queue_id: str, channel: str, **fields: Any
    ) -> None:
        """Serve one row with ``fields`` replaced verbatim (any JSON: a bad type, ``"rtm"``).

        The row leaves :meth:`expected_callvolume`: a connector should quarantine it.
        """
        key = (interval_start.astimezone(UTC), queue_id, channel)
        with self._store:
            if key not in self._rows:
                raise KeyError(f"no row for {key}")
            self._overrides[key] = self._overrides.get(key, {}) | fields
            self._recompute()

    def clear_perturbations(self) -> None:
        """Undo every :meth:`perturb` and :meth:`override`."""
        with self._store:
            self._deltas.clear()
            self._dropped.clear()
            self._overrides.clear()
            self._recompute()

    def rows(self) -> list[dict[str, Any]]:
        """Every served row, in served order (do not modify them)."""
        with self._store:
            return [doc for _, doc in self._served]

    def expected_callvolume(self) -> pl.DataFrame:
        """What a correct connector imports from every served row: canonical volume columns.

        Durations in ms as the connector rebuilds them (served seconds times 1000); rows changed
        by :meth:`override` are left out (they are for quarantine).
        """
        factor = 1 if self.unit == "ms" else 1000
        with self._store:
            data = [
                {
                    "interval_start_utc": key[0],
                    "interval_end_utc": self._rows[key]["interval_end"],
                    "queue_id": doc["queueId"],
                    "queue_name": doc["queueName"],
                    "channel": doc["source"],
                    **{
                        ours: doc[theirs] * (factor if ours.endswith("_ms") else 1)
                        for ours, theirs in CANONICAL.items()
                    },
                }
                for key, doc in self._served
                if key not in self._overrides
            ]
        schema: dict[str, pl.DataType] = {
            "interval_start_utc": pl.Datetime("us", "UTC"),
            "interval_end_utc": pl.Datetime("us", "UTC"),
            **dict.fromkeys(("queue_id", "queue_name", "channel"), pl.String()),
            **dict.fromkeys(CANONICAL, pl.Int64()),
        }
        return pl.DataFrame(data, schema=schema)

    def _recompute(self) -> None:
        with self._store:
            rows = aggregate(self._contacts, interval_minutes=self.interval_minutes)
            fresh = {(r["interval_start"], r["queue_id"], r["channel"]): r for r in rows}
            for key, delta in self._deltas.items():
                if key in fresh:
                    fresh[key] = fresh[key] | {k: fresh[key][k] + v for k, v in delta.items()}
            for key, row in fresh.items():
                old = self._rows.get(key)
                if old is None:
                    self._versions.setdefault(key, 0)
                elif old != row:
                    self._versions[key] += 1
            self._rows = fresh
            self._served = [
                (key, render(row, **self._render_args(key)) | self._overrides.get(key, {}))
                for key, row in fresh.items()
                if key not in self._dropped
            ]

    def _render_args(self, key: RowKey) -> dict[str, Any]:
        return {"org_id": self.org_id, "iid": self.iid, "version": self._versions[key]} | {
            "unit": self.unit
        }
