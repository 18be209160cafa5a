"""Settings of ``wfm-intervals run`` (``[run]``) and of the reconciliation (``[reconcile]``).

Plain, validated, immutable values; :mod:`engine.app.config` layers them from TOML, ``WFM_``
variables and ``.env`` like every other section. :func:`parse_tolerance` reads the command
line's ``FIELD=X`` form.

Example:
    >>> RunSettings().max_quarantine_fraction, ReconcileSettings().tolerance
    (0.05, {})
    >>> parse_tolerance("*_ms=500")
    ('*_ms', 500.0)
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ReconcileSettings", "RunSettings", "parse_tolerance"]


class RunSettings(BaseModel):
    """``[run]``: what makes a run fail with data problems, and how far back it rebuilds.

    Attributes:
        max_quarantine_fraction: a table whose quarantined share of the rows read is above this
            makes the run exit 1 (0 = any quarantined row does).
        lookback_minutes: each run rebuilds the tables from ``previous window end - lookback``;
            ``None``: the largest ``lookback_minutes`` of the enabled sources.
        report: write ``report.html`` into the output directory after every run.
        report_days: the run's report covers the store's last ``report_days`` days (ending at
            its last interval end), so its cost does not grow with the history kept;
            ``wfm-intervals report`` still shows the whole store by default.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_quarantine_fraction: float = Field(default=0.05, ge=0, le=1)
    lookback_minutes: float | None = Field(default=None, ge=0)
    report: bool = True
    report_days: int = Field(default=35, ge=1)


class ReconcileSettings(BaseModel):
    """``[reconcile]``: absolute tolerances of the reconciliation (unlisted fields: exact).

    Keys are field names (``offered``, ``data.totalCallbacks``) or ``fnmatch`` patterns
    (``*_ms``, ``data.performance.average*``): the exact name wins, then the first matching
    pattern (see :mod:`engine.tables.compare`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    tolerance: dict[str, float] = Field(default_factory=dict)

    @field_validator("tolerance")
    @classmethod
    def _non_negative(cls, value: dict[str, float]) -> dict[str, float]:
        if bad := [k for k, v in value.items() if not math.isfinite(v) or v < 0]:
            raise ValueError(f"tolerance of {bad[0]!r} must be a finite number >= 0")
        return value


def parse_tolerance(spec: str) -> tuple[str, float]:
    """``FIELD=X`` (a field name or pattern, and an absolute tolerance >= 0).

    Raises:
        ValueError: anything else (the message shows the expected form).

    Example:
        >>> parse_tolerance("offered=2")
        ('offered', 2.0)
    """
    field, sep, raw = spec.partition("=")
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not sep or not field.strip() or not math.isfinite(value) or value < 0:
        raise ValueError(f"{spec!r}: expected FIELD=NUMBER (a number >= 0, e.g. offered=1)")
    return field.strip(), value
