"""wfm-intervals' Python API: contact-centre records to exact interval tables, on your LazyFrames.

Everything here is a pure function from a Polars ``LazyFrame`` to a ``LazyFrame`` (or a plain
value): you collect, you write. docs/api.md walks through it on a few hand-made rows.

- settings: :class:`BuildSettings` (interval length, zone, service-level rules),
  :class:`ThresholdOverride`;
- schemas (the canonical contract): :data:`CONTACTS`, :data:`CALLBACK_ATTEMPTS`,
  :data:`QUARANTINE`;
- validation: :func:`validate_contacts`, :func:`validate_callback_attempts` (clean rows and
  quarantine rows, SPEC §7);
- intervals: :func:`interval_grid`, :func:`snap_window`;
- a built store: :func:`read_table` (a table as stored, busy rows only, or ``dense=True``: the
  zero-filled grid of a window inside what the store's builds covered);
- tables, as modules: :mod:`callvolume` (``build``, ``derive`` for the ratios, ``rollup`` to
  coarser intervals, ``rollup_window`` for window totals), :mod:`callback_requests`
  (``requests``: attempts reduced to one row per callback request), :mod:`callback_intervals`
  and :mod:`retry_outcomes` (``build``, ``rollup``), :mod:`callback_metrics` (``document``,
  ``document_intervals``: Mindful's callback metrics document, same keys and spelling),
  :mod:`forecast` (``long_format``: ``unique_id, ds, y``);
- errors: :class:`WfmError`, the root of every error raised on purpose.

Names are imported on first use: ``import engine`` (and so ``import engine.clock`` or any other
submodule) loads neither Polars nor a table module until a name is used.

Example:
    >>> import engine
    >>> engine.BuildSettings(interval_minutes=30, tz="Asia/Kolkata").interval_minutes
    30
    >>> engine.callvolume.KEYS
    ('interval_start_utc', 'queue_id', 'channel')
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import WfmError
    from engine.interval import interval_grid, snap_window
    from engine.output.read import read_table
    from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
    from engine.settings import BuildSettings, ThresholdOverride
    from engine.tables import (
        callback_intervals,
        callback_metrics,
        callback_requests,
        callvolume,
        forecast,
        retry_outcomes,
    )
    from engine.validate.callback_attempts import validate_callback_attempts
    from engine.validate.contacts import validate_contacts

__all__ = [
    "CALLBACK_ATTEMPTS",
    "CONTACTS",
    "QUARANTINE",
    "BuildSettings",
    "ThresholdOverride",
    "WfmError",
    "callback_intervals",
    "callback_metrics",
    "callback_requests",
    "callvolume",
    "forecast",
    "interval_grid",
    "read_table",
    "retry_outcomes",
    "snap_window",
    "validate_callback_attempts",
    "validate_contacts",
]

#: How to load each public name (every import written out, so the import rules see it).
_LOADERS: dict[str, Callable[[], Any]] = {
    "BuildSettings": lambda: importlib.import_module("engine.settings").BuildSettings,
    "ThresholdOverride": lambda: importlib.import_module("engine.settings").ThresholdOverride,
    "CALLBACK_ATTEMPTS": lambda: importlib.import_module("engine.schema").CALLBACK_ATTEMPTS,
    "CONTACTS": lambda: importlib.import_module("engine.schema").CONTACTS,
    "QUARANTINE": lambda: importlib.import_module("engine.schema").QUARANTINE,
    "interval_grid": lambda: importlib.import_module("engine.interval").interval_grid,
    "read_table": lambda: importlib.import_module("engine.output.read").read_table,
    "snap_window": lambda: importlib.import_module("engine.interval").snap_window,
    "validate_contacts": lambda: (
        importlib.import_module("engine.validate.contacts").validate_contacts
    ),
    "validate_callback_attempts": lambda: (
        importlib.import_module("engine.validate.callback_attempts").validate_callback_attempts
    ),
    "WfmError": lambda: importlib.import_module("engine.errors").WfmError,
    "callback_intervals": lambda: importlib.import_module("engine.tables.callback_intervals"),
    "callback_metrics": lambda: importlib.import_module("engine.tables.callback_metrics"),
    "callback_requests": lambda: importlib.import_module("engine.tables.callback_requests"),
    "callvolume": lambda: importlib.import_module("engine.tables.callvolume"),
    "forecast": lambda: importlib.import_module("engine.tables.forecast"),
    "retry_outcomes": lambda: importlib.import_module("engine.tables.retry_outcomes"),
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    load = _LOADERS.get(name)
    if load is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return load()


def __dir__() -> list[str]:
    return sorted(__all__)
