"""Bounds of the settings that become durations, windows and counts, and the digits a text layer
gives a setting that is one of a few numbers.

A value no deployment would use (a lookback of 10^15 minutes, a window of a ten-millionth of an
hour) would pass its model and stop a run later: a date past year 9999, a walk of windows that
never ends. :data:`BOUNDS` refuses them when the settings are loaded, naming the setting; the
``[run]`` and ``[output]`` models state their own. docs/operations.md lists them.

The environment, ``.env`` and the secrets directory give text: :func:`literal_digits` reads the
digits of a ``Literal[15, 30, 60]`` setting (``WFM_BUILD__INTERVAL_MINUTES=30``) as the number,
and leaves anything else for the model to refuse with its own message.

Example:
    >>> out_of_bounds({"sources": {"dixa": {"window_hours": 0.0000001}}})[0]["loc"]
    ('sources', 'dixa', 'window_hours')
    >>> from engine.settings import BuildSettings
    >>> literal_digits(BuildSettings, {"interval_minutes": "30", "tz": "UTC"})
    {'interval_minutes': 30, 'tz': 'UTC'}
"""

from __future__ import annotations

import re
import types
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic_core import InitErrorDetails

__all__ = [
    "BOUNDS",
    "MAX_DAYS",
    "MAX_LOOKBACK_MINUTES",
    "literal_digits",
    "out_of_bounds",
    "unfit_profiles",
]

#: The furthest back anything reaches: 10 years, in days and in minutes.
MAX_DAYS: Final = 3_653
MAX_LOOKBACK_MINUTES: Final = MAX_DAYS * 24 * 60

_DAY_S: Final = 86_400
#: Setting (``*``: any one key, e.g. every source) -> (lowest, highest, in words); ``None``: the
#: model's own bound holds. Settings of models defined outside ``engine.app`` (the ``[run]`` and
#: ``[output]`` models state theirs).
BOUNDS: Final[dict[str, tuple[float | None, float | None, str | None]]] = {
    "serve.token_lifetime_s": (None, 30 * _DAY_S, "30 days"),
    "serve.max_body_bytes": (None, 16 * 2**20, "16 MiB"),
    "sources.*.lookback_minutes": (None, MAX_LOOKBACK_MINUTES, "10 years"),
    "sources.*.initial_days": (None, MAX_DAYS, "10 years"),
    "sources.*.available_within_days": (None, MAX_DAYS, "10 years"),
    "sources.*.window_hours": (1 / 60, None, "a minute"),
    "sources.*.timeouts.*": (None, 3_600, "an hour"),
    "sources.*.retry_base_s": (None, _DAY_S, "a day"),
    "sources.*.retry_max_s": (None, _DAY_S, "a day"),
    "sources.*.retry_after_max_s": (None, _DAY_S, "a day"),
    "sources.*.rate_limit_margin_s": (None, _DAY_S, "a day"),
    "sources.*.rate_limit_period_s": (None, _DAY_S, "a day"),
    "sources.*.token_refresh_margin_s": (None, _DAY_S, "a day"),
    "sources.*.rate_limit_per_s": (0.0001, None, "a request every 10000 s"),
    "sources.*.metrics_rate_limit_per_s": (0.0001, None, "a request every 10000 s"),
    "sources.*.max_retries": (None, 100, None),
    "sources.*.per_page": (None, 10_000, None),
    "sources.*.max_pages": (None, 100_000_000, None),
    "sources.*.max_page_bytes": (None, 2**30, "1 GiB"),
}

_DIGITS = re.compile(r"[+-]?[0-9]+")


def _shown(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else f"{number:.6g}"


def _matches(path: tuple[str, ...], pattern: str) -> bool:
    keys = pattern.split(".")
    return len(keys) == len(path) and all(k in ("*", p) for k, p in zip(keys, path, strict=True))


def _leaves(data: Mapping[str, Any], at: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    found: list[tuple[tuple[str, ...], Any]] = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            found += _leaves(value, (*at, str(key)))
        else:
            found.append(((*at, str(key)), value))
    return found


def out_of_bounds(data: Mapping[str, Any]) -> list[InitErrorDetails]:
    """The settings of ``data`` (nested, as dumped) outside :data:`BOUNDS`, as errors for a
    ``ValidationError`` at each setting's location (never their values in the message)."""
    errors: list[InitErrorDetails] = []
    for path, value in _leaves(data):
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        for pattern, (low, high, words) in BOUNDS.items():
            if not _matches(path, pattern):
                continue
            if low is not None and not value >= low:
                message = f"Input should be greater than or equal to {_shown(low)}"
            elif high is not None and not value <= high:
                message = f"Input should be less than or equal to {_shown(high)}"
            else:
                continue
            message += f" ({words})" if words else ""
            # a value error, as a model's validator raises (a tenant's is located again by type)
            ctx = {"error": ValueError(message)}
            errors.append(InitErrorDetails(type="value_error", loc=path, input=value, ctx=ctx))
    return errors


def unfit_profiles(data: Mapping[str, Any], minutes: Mapping[str, int]) -> list[InitErrorDetails]:
    """The ``output.vendor_profiles`` of ``data`` (settings, as dumped) whose interval length
    (``minutes``: a profile's, by name) is not ``build.interval_minutes``: every run would
    commit its tables, then fail at that export (exit 2 after the commit), every night.

    Example:
        >>> data = {"build": {"interval_minutes": 30}, "output": {"vendor_profiles": ["g"]}}
        >>> unfit_profiles(data, {"g": 15})[0]["loc"]
        ('output', 'vendor_profiles')
    """
    have = data["build"]["interval_minutes"]
    errors: list[InitErrorDetails] = []
    for name in data["output"]["vendor_profiles"]:
        if name in minutes and minutes[name] != have:
            message = (
                f"profile {name!r} needs {minutes[name]}-minute intervals, and "
                f"build.interval_minutes is {have}"
            )
            ctx = {"error": ValueError(message)}
            loc = ("output", "vendor_profiles")
            errors.append(InitErrorDetails(type="value_error", loc=loc, input=name, ctx=ctx))
    return errors


def _digits(annotation: Any, value: Any) -> Any:
    """``value`` for ``annotation``: a number for the digits of a ``Literal`` of ints."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _digits(args[0], value)
    if origin in (Union, types.UnionType):
        return next((found for a in args if (found := _digits(a, value)) is not value), value)
    if origin is Literal:
        numbers = all(type(a) is int for a in args)
        digits = isinstance(value, str) and _DIGITS.fullmatch(value.strip()) is not None
        return int(value) if numbers and digits else value
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return literal_digits(annotation, value)
    return _contained(origin, args, value)


def _contained(origin: Any, args: tuple[Any, ...], value: Any) -> Any:
    """``value`` for a list, set, tuple (of one type) or dict of ``args``."""
    alike = origin in (list, set, frozenset) or (origin is tuple and args[-1:] == (Ellipsis,))
    if alike and args and isinstance(value, list | tuple):
        return [_digits(args[0], v) for v in value]
    if origin is dict and len(args) == 2 and isinstance(value, Mapping):
        return {k: _digits(args[1], v) for k, v in value.items()}
    return value


def literal_digits(model: type[BaseModel], data: Any) -> Any:
    """``data`` for ``model`` with the digits given to each ``Literal`` of ints (nested models
    too) as the number; anything else as it is (the model says what is wrong with it)."""
    if not isinstance(data, Mapping):
        return data
    fields = model.model_fields
    return {k: _digits(fields[k].annotation, v) if k in fields else v for k, v in data.items()}
