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
- tables, as modules with a ``build`` each: :mod:`callvolume` (also ``derive``, ``rollup``,
  ``rollup_window``), :mod:`callback_intervals`, :mod:`retry_outcomes`,
  :mod:`callback_metrics` (the seed-000 document), :mod:`forecast` (``long_format``);
- errors: :class:`WfmError`, the root of every error raised on purpose.

Names are imported on first use, so ``import engine`` stays light.

Example:
    >>> import engine
    >>> engine.BuildSettings(interval_minutes=30, tz="Asia/Kolkata").interval_minutes
    30
    >>> engine.callvolume.KEYS
    ('interval_start_utc', 'queue_id', 'channel')
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import WfmError
    from engine.interval import interval_grid, snap_window
    from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
    from engine.settings import BuildSettings, ThresholdOverride
    from engine.tables import (
        callback_intervals,
        callback_metrics,
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
    "callvolume",
    "forecast",
    "interval_grid",
    "retry_outcomes",
    "snap_window",
    "validate_callback_attempts",
    "validate_contacts",
]

#: Where each public name lives: a module (for a table module) or ``module:attribute``.
_PLACES = {
    "CALLBACK_ATTEMPTS": "engine.schema:CALLBACK_ATTEMPTS",
    "CONTACTS": "engine.schema:CONTACTS",
    "QUARANTINE": "engine.schema:QUARANTINE",
    "BuildSettings": "engine.settings:BuildSettings",
    "ThresholdOverride": "engine.settings:ThresholdOverride",
    "WfmError": "engine.errors:WfmError",
    "callback_intervals": "engine.tables.callback_intervals",
    "callback_metrics": "engine.tables.callback_metrics",
    "callvolume": "engine.tables.callvolume",
    "forecast": "engine.tables.forecast",
    "interval_grid": "engine.interval:interval_grid",
    "retry_outcomes": "engine.tables.retry_outcomes",
    "snap_window": "engine.interval:snap_window",
    "validate_callback_attempts": "engine.validate.callback_attempts:validate_callback_attempts",
    "validate_contacts": "engine.validate.contacts:validate_contacts",
}


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    place = _PLACES.get(name)
    if place is None:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module, _, attribute = place.partition(":")
    value = importlib.import_module(module)
    return getattr(value, attribute) if attribute else value


def __dir__() -> list[str]:
    return sorted(__all__)
