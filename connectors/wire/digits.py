"""Whole numbers read from a response (a header's digits, a JSON number), at most 19 digits.

One rule for every count a vendor sends: a ``Content-Length``, a ``Total``, a ``Per-Page``, a
``totalCount`` string. Python refuses ``int()`` of over 4,300 digits with a ``ValueError`` (a
traceback), and 20 digits are no count of bytes or records either.
"""

from __future__ import annotations

import httpx

from connectors.errors import ResponseShapeError

__all__ = ["MAX_DIGITS", "as_int"]

#: The most digits a count may have (a signed 64-bit integer's 19).
MAX_DIGITS = 19


def as_int(
    value: object,
    *,
    what: str = "a number",
    url: httpx.URL | str | None = None,
    strict: bool = True,
) -> int | None:
    """A whole number from a JSON number or a header's digits, else ``None``; digits past
    :data:`MAX_DIGITS` are a :class:`~connectors.errors.ResponseShapeError` naming ``what``
    (a count no server holds: not to be believed, nor silently dropped), or ``None`` when not
    ``strict`` (a hint that must never be fatal, such as a progress total).

    Example:
        >>> as_int("42"), as_int(True), as_int("4.2"), as_int("9" * 20, strict=False)
        (42, None, None, None)
        >>> as_int("9" * 5000)
        Traceback (most recent call last):
        ...
        connectors.errors.ResponseShapeError: a number of 5000 digits where a count belongs
    """
    if isinstance(value, str):
        if not (digits := value.strip()).isdecimal():
            return None
        if len(digits) <= MAX_DIGITS:
            return int(digits)
        if not strict:
            return None
        raise ResponseShapeError(f"{what} of {len(digits)} digits where a count belongs", url=url)
    return value if isinstance(value, int) and not isinstance(value, bool) else None
