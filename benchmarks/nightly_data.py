"""The data side of :mod:`benchmarks.nightly`: seeded traffic, the emulators serving it, the run's
configuration, and the check of what a run stored.

One case is ``history`` whole UTC days ending at :data:`HISTORY_END`, plus one new day. The
traffic of all of them is generated at once (:func:`generate`), with the project's seeded
generators: UJET voice and chat contacts (:func:`engine.demo.contacts.generate_contacts`) and
Mindful callback attempts (:func:`engine.demo.callbacks.generate_attempts`). What the vendors
serve grows run by run as a real API's would: before a run at instant ``T``, the UJET emulator
serves the contacts last updated by ``T`` that the previous runs have not been served, and the
Mindful emulator the attempts created before ``T`` (from a day before the previous run: its hour
files are read again behind the cursor, and Mindful's own metrics for the reconciliation's window
need them). Each slice is served by a fresh pair of emulators (:func:`serve`), so the parent holds
one slice at a time, not the whole history (the UJET emulator keeps ~12 KB per contact).

The served records keep their ids from slice to slice: contacts are named ``call-<n>`` and
``chat-<n>`` (the UJET emulator keeps such ids as the record ids) and queues have numeric ids
(kept as menu ids), so that what one emulator serves never collides with what an earlier one did.

Example:
    ``traffic = generate(history=7, contacts_per_day=2000, callbacks_per_day=200, seed=7)``
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from connectors.emulator import MindfulEmulator, UjetEmulator
from engine.demo.callbacks import DEFAULT_TARGETS, generate_attempts
from engine.demo.contacts import QueueSpec, generate_segments
from engine.demo.stack import write_toml
from engine.pipeline.tables import read_store

__all__ = [
    "DAY",
    "HISTORY_END",
    "QUEUES",
    "Served",
    "Traffic",
    "generate",
    "serve",
    "verify_store",
    "write_config",
    "write_secrets",
]

#: The end of every case's history (exclusive): the new day is the UTC day that starts here.
HISTORY_END = datetime(2026, 11, 4, tzinfo=UTC)  # the new day: Wednesday 4 November 2026
DAY = timedelta(days=1)
#: UJET's queues: voice and chat only (what UJET serves), numeric ids (kept as menu ids).
QUEUES = (
    QueueSpec("101", "Sales", "voice", 1800.0, 300.0, 45.0, 20),
    QueueSpec("102", "Support", "voice", 3200.0, 420.0, 60.0),
    QueueSpec("103", "Billing", "voice", 1400.0, 360.0, 50.0, 30),
    QueueSpec("201", "Chat Support", "chat", 1600.0, 600.0, 30.0, 60),
)
_USERNAME, _CLIENT_ID = "bench-key", "bench-client"
_SECRET_NAMES = (
    "WFM_SOURCES__UJET__PASSWORD",
    "WFM_SOURCES__UJET__PII_HASH_SECRET",
    "WFM_SOURCES__MINDFUL__CLIENT_SECRET",
    "WFM_SOURCES__MINDFUL__PII_HASH_SECRET",
)
#: The connectors' limits and back-off set for speed: the emulators enforce no rate limit, and
#: what is measured is the engine, not a vendor's requests per second.
_FAST = {"rate_limit_per_s": 1000.0, "retry_base_s": 0.001, "retry_max_s": 0.01, "max_retries": 3}


@dataclass(frozen=True)
class Traffic:
    """Everything the vendors will have served by the end of a case, with the instant it is
    served from: ``served_at`` (contacts: the latest ``updated_at`` of the contact's segments)
    and ``created_at`` (attempts)."""

    start: datetime  #: the first instant of the history
    contacts: pl.DataFrame  #: canonical segments, renamed (``call-<n>``/``chat-<n>``)
    attempts: pl.DataFrame  #: canonical callback attempts

    def contacts_served(self, after: datetime | None, until: datetime) -> pl.DataFrame:
        """The segments of the contacts last updated in ``(after, until]``."""
        served = pl.col("updated_at").max().over("contact_id")
        keep = served <= until if after is None else (served > after) & (served <= until)
        return self.contacts.filter(keep)

    def attempts_served(self, after: datetime | None, until: datetime) -> pl.DataFrame:
        """The attempts created in ``[after - 1 day, until)`` (all before ``until`` at first)."""
        created = pl.col("created_at")
        keep = created < until if after is None else (created >= after - DAY) & (created < until)
        return self.attempts.filter(keep)


def generate(*, history: int, contacts_per_day: int, callbacks_per_day: int, seed: int) -> Traffic:
    """The seeded traffic of ``history`` days before :data:`HISTORY_END` and of the new day.

    ``contacts_per_day`` is the mean number of canonical contact rows (queue segments, inbound
    and outbound) per day; ``callbacks_per_day`` the mean number of callback requests per weekday
    (each a chain of one or more attempts).
    """
    start, days = HISTORY_END - history * DAY, history + 1
    contacts = generate_segments(
        contacts_per_day * days, seed=seed, start=start, days=days, queues=QUEUES, source="ujet"
    )
    number = pl.col("contact_id").str.strip_prefix("c").cast(pl.Int64) + 1
    kind = pl.when(pl.col("channel") == "voice").then(pl.lit("call")).otherwise(pl.lit("chat"))
    contacts = contacts.with_columns(pl.concat_str(kind, pl.lit("-"), number).alias("contact_id"))
    scale = callbacks_per_day / sum(t.daily_requests for t in DEFAULT_TARGETS)
    attempts = generate_attempts(seed=seed, start=start, days=days, scale=scale)
    return Traffic(start=start, contacts=contacts, attempts=attempts)


@dataclass
class Served:
    """What the emulators have served so far, for the check: inbound segments offered per UTC
    day, and the ids of the attempts."""

    offered: dict[str, int] = field(default_factory=dict)  #: ISO date -> inbound segments
    attempt_ids: set[str] = field(default_factory=set)

    def add(self, ujet: UjetEmulator, mindful: MindfulEmulator) -> None:
        """Count what ``ujet`` and ``mindful`` serve (as a correct connector rebuilds it)."""
        contacts = ujet.expected_contacts().filter(pl.col("direction") == "inbound")
        per_day = contacts.group_by(pl.col("offered_at").dt.date().alias("day")).len()
        for day, rows in per_day.iter_rows():
            self.offered[day.isoformat()] = self.offered.get(day.isoformat(), 0) + rows
        self.attempt_ids.update(r["id"] for r in mindful.records())


@dataclass(frozen=True)
class Emulators:
    """A started UJET and Mindful emulator on 127.0.0.1."""

    ujet: UjetEmulator
    mindful: MindfulEmulator


@contextmanager
def serve(
    contacts: pl.DataFrame, attempts: pl.DataFrame, keys: dict[str, str]
) -> Iterator[Emulators]:
    """UJET serving ``contacts`` and Mindful serving ``attempts``, with the credentials of
    ``keys`` (:func:`write_secrets`) and no rate limits. Both index everything up front."""
    with ExitStack() as stack:
        ujet = stack.enter_context(
            UjetEmulator(
                contacts,
                username=_USERNAME,
                password=keys["WFM_SOURCES__UJET__PASSWORD"],
                rate_limit_per_s=None,
            )
        )
        mindful = stack.enter_context(
            MindfulEmulator(
                attempts,
                client_id=_CLIENT_ID,
                client_secret=keys["WFM_SOURCES__MINDFUL__CLIENT_SECRET"],
                rate_limit_per_s=None,
                metrics_rate_limit_per_s=None,
            )
        )
        yield Emulators(ujet, mindful)


def write_secrets(root: Path) -> dict[str, str]:
    """Fresh throwaway credentials in ``root/.env`` (the run reads ``.env`` in its working
    directory, so no secret is on a command line); returns them by variable name."""
    keys = {name: secrets.token_urlsafe(18) for name in _SECRET_NAMES}
    path = root / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in keys.items()), encoding="utf-8")
    path.chmod(0o600)
    return keys


def write_config(root: Path, emulators: Emulators, *, start: datetime) -> Path:
    """``root/wfm.toml``: UJET and Mindful at ``emulators`` from ``start``, stores under ``root``;
    everything else is the built-in default (what a tenant's nightly run does)."""
    tables: dict[str, dict[str, object]] = {
        "sources.ujet": {
            "enabled": True,
            "base_url": emulators.ujet.base_url,
            "username": _USERNAME,
            "start": start,
            **_FAST,
        },
        "sources.mindful": {
            "enabled": True,
            "base_url": emulators.mindful.base_url,
            "token_url": emulators.mindful.token_url,
            "client_id": _CLIENT_ID,
            "start": start,
            **_FAST,
            "metrics_rate_limit_per_s": 1000.0,
        },
        "store": {"landing": root / "landing", "state": root / "state"},
        "output": {"dir": root / "out"},
    }
    return write_toml(root / "wfm.toml", tables)


def verify_store(out: Path, served: Served, *, new_day: datetime) -> dict[str, object]:
    """Check the stored tables against what was served; the facts, with ``problems`` (empty when
    the store is right).

    Read through the engine's own reader of the store (:func:`engine.pipeline.tables.read_store`):
    the sum of ``offered`` of ``callvolume`` per UTC day equals the inbound segments served
    offered that day, on every day (the new day is reported on its own), and
    ``callback_attempts`` holds each served attempt once.
    """
    problems: list[str] = []
    volume = read_store(out, "callvolume")
    attempts = read_store(out, "callback_attempts")
    if volume is None or attempts is None:
        return {"problems": ["the store has no callvolume or callback_attempts table"]}
    per_day = volume.group_by(pl.col("interval_start_utc").dt.date().alias("day")).agg(
        pl.col("offered").sum()
    )
    stored = {d.isoformat(): int(n) for d, n in per_day.iter_rows() if n}
    expected = {d: n for d, n in served.offered.items() if n}
    wrong = sorted(d for d in stored.keys() | expected.keys() if stored.get(d) != expected.get(d))
    problems += [
        f"offered on {d}: stored {stored.get(d, 0)}, served {expected.get(d, 0)}" for d in wrong[:5]
    ]
    day = new_day.date().isoformat()
    stored_ids = attempts.get_column("attempt_id")
    if stored_ids.n_unique() != attempts.height or set(stored_ids) != served.attempt_ids:
        problems.append(
            f"callback_attempts: {attempts.height} rows stored, {len(served.attempt_ids)} served"
        )
    return {
        "new_day": day,
        "new_day_offered_stored": stored.get(day, 0),
        "new_day_offered_served": expected.get(day, 0),
        "days_checked": len(stored.keys() | expected.keys()),
        "offered_total": sum(stored.values()),
        "attempts_stored": attempts.height,
        "problems": problems,
    }


def schedule(history: int, *, chunk_days: int, run_at: timedelta) -> Sequence[datetime]:
    """The instants of the untimed runs that build ``history`` days: every ``chunk_days`` days,
    then the day before the last (so that the timed run follows a one-day run, as every night
    does, and compacts one day of landed pages, not a chunk's)."""
    days = sorted({*range(chunk_days, history - 1, chunk_days), history - 1, history} - {0})
    start = HISTORY_END - history * DAY
    return [start + d * DAY + run_at for d in days]
