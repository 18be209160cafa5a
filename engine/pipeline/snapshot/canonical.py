"""What the rebuild step gives the rest of a run: the canonical rows, whole or by month.

:class:`Canonical` holds each canonical table as given (``(rows, quarantine)``) or as its
snapshot (:class:`engine.pipeline.snapshot.Refreshed`); then a consumer reads only the months
it needs (:meth:`Canonical.contacts_near`, :meth:`Canonical.attempts_near`) and the counts,
digests, chains and gaps the snapshot keeps, so that a nightly run does not read all history.

Example:
    ``canon = Canonical.refreshed(settings, names, None, emit, whole=False, write=True)``
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import polars as pl

from engine.app.config import AppSettings
from engine.interval import Window
from engine.pipeline.kore import KoreImport
from engine.pipeline.snapshot.redo import Refreshed, refresh
from engine.pipeline.snapshot.sums import Digests
from engine.tables.callback_requests import CHAIN_ORDER, in_chain_order
from engine.validate.callback_attempts import callback_gaps

__all__ = ["Canonical", "Found"]

Found = Refreshed | tuple[pl.DataFrame, pl.DataFrame] | None


@dataclass(frozen=True)
class Canonical:
    """What the rebuild step produced: ``(rows, quarantine)`` per canonical table (``None``
    when no enabled source feeds it) and the Kore.ai import; attempts' rows are given in chain
    order (:func:`engine.tables.callback_requests.in_chain_order`). A table may be kept as its
    snapshot (:class:`engine.pipeline.snapshot.Refreshed`): then a consumer reads the months
    it needs (:meth:`contacts_near`, :meth:`attempts_near`), not all history."""

    contacts_found: Found
    attempts_found: Found
    kore: KoreImport | None
    #: per table, the digests of its rows' partition days when the snapshot kept them
    digests: Mapping[str, Digests] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        contacts: Found,
        attempts: Found,
        kore: KoreImport | None,
        digests: Mapping[str, Digests] | None = None,
    ) -> Canonical:
        """Put given attempts in chain order (the store's order) once, here."""
        if isinstance(attempts, tuple):
            attempts = (_chained(attempts[0]), attempts[1])
        return cls(contacts, attempts, kore, dict(digests or {}))

    @classmethod
    def refreshed(
        cls,
        settings: AppSettings,
        names: Sequence[str],
        kore: KoreImport | None,
        emit: Callable[[str, dict[str, Any]], None],
        *,
        whole: bool,
        write: bool,
    ) -> Canonical:
        """Both canonical tables from the landing store through their snapshots
        (:func:`engine.pipeline.snapshot.refresh`), each reported as a ``rebuild.table`` event
        and kept as its snapshot (read by month when asked for)."""
        found, digests = {}, {}
        for table in ("contacts", "callback_attempts"):
            got = refresh(settings, names, table, whole=whole, write=write)
            if got is not None:
                emit("rebuild.table", {"table": table, **got.describe()})
                if got.digests is not None:
                    digests[table] = got.digests
                found[table] = got
        return cls.of(found.get("contacts"), found.get("callback_attempts"), kore, digests)

    @property
    def repaired(self) -> list[str]:
        """The snapshot files found damaged on disk (each snapshot redone whole), a line each."""
        found = (self.contacts_found, self.attempts_found)
        return [line for f in found if isinstance(f, Refreshed) for line in f.repaired]

    @property
    def contacts(self) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """``(rows, quarantine)`` of the contacts (every row read)."""
        rows, quarantine = self.contact_rows, self.contact_quarantine
        return None if rows is None or quarantine is None else (rows, quarantine)

    @cached_property
    def contact_rows(self) -> pl.DataFrame | None:
        """The canonical contacts (``None`` when no source feeds them): every row."""
        return _rows(self.contacts_found)

    @property
    def contact_quarantine(self) -> pl.DataFrame | None:
        """What was set aside for the contacts (``None`` when no source feeds them)."""
        return _set_aside(self.contacts_found)

    @property
    def contact_count(self) -> int | None:
        """How many canonical contacts there are (none read for it)."""
        return _count(self.contacts_found)

    def contacts_near(self, windows: Iterable[Window]) -> pl.DataFrame | None:
        """A superset of the contacts offered in ``windows``, in the order of
        :attr:`contact_rows`: the months they fall in (and a day either side), read alone when
        the contacts are kept as their snapshot (``None``: no source feeds them)."""
        if isinstance(self.contacts_found, Refreshed) and "contact_rows" not in self.__dict__:
            return self.contacts_found.near(list(windows))
        return self.contact_rows

    def let_go_of_contact_rows(self) -> None:
        """Forget the contacts read whole (:attr:`contact_rows`) when they are kept as their
        snapshot: a later reader reads back the months it needs (:meth:`contacts_near`), so a
        run holds no whole history past the volume build. Given rows are kept (nothing to read
        them back from)."""
        if isinstance(self.contacts_found, Refreshed):
            self.__dict__.pop("contact_rows", None)
            self.contacts_found.snap.forget()

    @property
    def attempts(self) -> tuple[pl.DataFrame, pl.DataFrame] | None:
        """``(rows, quarantine)`` of the callback attempts, rows in chain order (all read)."""
        rows, quarantine = self.attempt_rows, self.attempt_quarantine
        return None if rows is None or quarantine is None else (rows, quarantine)

    @cached_property
    def attempt_rows(self) -> pl.DataFrame | None:
        """The canonical callback attempts, in chain order (``None``: no callback source)."""
        if isinstance(self.attempts_found, Refreshed):
            return _chained(self.attempts_found.rows)
        return self.attempts_found[0] if self.attempts_found else None

    @property
    def attempt_quarantine(self) -> pl.DataFrame | None:
        """What was set aside for the attempts (``None``: no callback source)."""
        return _set_aside(self.attempts_found)

    @property
    def attempt_count(self) -> int | None:
        """How many canonical attempts there are (none read for it)."""
        return _count(self.attempts_found)

    def attempts_near(self, windows: Iterable[Window]) -> pl.DataFrame | None:
        """In chain order, a superset of the attempts of the chains requested in ``windows``:
        the months they fall in (and a day either side), read alone when the attempts are kept
        as their snapshot (``None``: no callback source)."""
        if isinstance(self.attempts_found, Refreshed) and "attempt_rows" not in self.__dict__:
            return _chained(self.attempts_found.near(list(windows)))
        return self.attempt_rows

    def chains(self) -> tuple[int, pl.DataFrame] | None:
        """How many callback chains there are and their gaps
        (:func:`engine.validate.callback_attempts.callback_gaps`): as the snapshot kept them,
        or of every attempt (``None``: no callback source)."""
        if isinstance(self.attempts_found, Refreshed):
            return self.attempts_found.chains
        if (rows := self.attempt_rows) is None:
            return None
        n = rows.select(pl.struct(CHAIN_ORDER[:2]).n_unique()).item()
        return n, callback_gaps(rows.lazy()).collect()


def _chained(rows: pl.DataFrame) -> pl.DataFrame:
    return in_chain_order(rows.lazy()).collect()


def _rows(found: Found) -> pl.DataFrame | None:
    if isinstance(found, Refreshed):
        return found.rows
    return found[0] if found else None


def _set_aside(found: Found) -> pl.DataFrame | None:
    if isinstance(found, Refreshed):
        return found.quarantine
    return found[1] if found else None


def _count(found: Found) -> int | None:
    if isinstance(found, Refreshed):
        return found.height
    return found[0].height if found else None
