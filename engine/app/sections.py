"""Settings of ``wfm-intervals run`` (``[run]``), the reconciliation (``[reconcile]``), the
engine the tables are built on (``[engine]``) and the landing store and sync state (``[store]``).

Plain, validated, immutable values; :mod:`engine.app.config` layers them from TOML, ``WFM_``
variables and ``.env`` like every other section. :func:`parse_tolerance` reads the command
line's ``FIELD=X`` form.

Example:
    >>> RunSettings().max_quarantine_fraction, ReconcileSettings().tolerance
    (0.05, {})
    >>> EngineSettings(kind="ray", address="ray://head:10001").address
    'ray://head:10001'
    >>> parse_tolerance("*_ms=500")
    ('*_ms', 500.0)
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from engine.app.limits import MAX_DAYS, MAX_LOOKBACK_MINUTES

__all__ = [
    "EngineSettings",
    "ReconcileSettings",
    "RunSettings",
    "StoreSettings",
    "parse_tolerance",
]

#: A Ray address: ``auto``, ``ray://HOST:PORT`` (Ray Client) or ``HOST:PORT`` (a head node).
_RAY_ADDRESS: Final = re.compile(r"auto|(ray://)?[A-Za-z0-9._\-]+:[0-9]{1,5}")


class RunSettings(BaseModel):
    """``[run]``: what makes a run fail with data problems, and how far back it rebuilds.

    Attributes:
        max_quarantine_fraction: a table whose quarantined share of the rows read is above this
            makes the run exit 1 (0 = any quarantined row does).
        lookback_minutes: each run rebuilds the tables from ``previous window end - lookback``;
            ``None``: the largest ``lookback_minutes`` of the enabled sources (at most 10
            years).
        report: write ``report.html`` into the output directory after every run.
        report_days: the run's report covers the store's last ``report_days`` days (ending at
            its last interval end), so its cost does not grow with the history kept;
            ``wfm-intervals report`` still shows the whole store by default (at most 10 years).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_quarantine_fraction: float = Field(default=0.05, ge=0, le=1)
    lookback_minutes: float | None = Field(default=None, ge=0, le=MAX_LOOKBACK_MINUTES)
    report: bool = True
    report_days: int = Field(default=35, ge=1, le=MAX_DAYS)


class EngineSettings(BaseModel):
    """``[engine]``: where the interval tables are built (the same tables either way).

    Attributes:
        kind: ``local``: in this process; ``ray``: by Ray Data tasks over UTC days on a Ray
            cluster (the optional extra ``wfm-intervals[ray]``; docs/scale-out.md).
        address: the Ray cluster of ``kind = "ray"``: ``auto`` (the one running on this
            machine), ``ray://HOST:PORT`` (a remote one, through Ray Client) or ``HOST:PORT``
            (a head node); unset: start a local cluster with one worker per CPU.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["local", "ray"] = "local"
    address: str | None = None

    @field_validator("address")
    @classmethod
    def _ray_address(cls, value: str | None) -> str | None:
        if value is not None and not _RAY_ADDRESS.fullmatch(value):
            raise ValueError("not a Ray address: give auto, ray://HOST:PORT or HOST:PORT")
        return value


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


def _given(value: object) -> object:
    """A folder setting's value, refused when it is empty: Path("") is the working directory
    (a blank ``WFM_STORE__LANDING=`` line in an EnvironmentFile ran in ``/``)."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("empty: give a folder (or leave the setting out for its default)")
    return value


#: A folder setting: a path, never empty.
Folder = Annotated[Path, BeforeValidator(_given)]


class StoreSettings(BaseModel):
    """``[store]``: the raw landing store and the incremental sync state."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    landing: Folder = Path("data/landing")
    state: Folder = Path("data/state")
