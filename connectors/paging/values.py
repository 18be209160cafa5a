"""The values paging reads from a response: whole numbers, ``Link`` headers, dotted paths.

Each is read defensively (a response is an adversary's), and :func:`json_type` names what a
JSON value is for an error line without quoting it (it may be long or secret).
"""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import ResponseShapeError

__all__ = ["MAX_DIGITS", "as_int", "dotted", "json_type", "parse_link_header"]

_LINK = re.compile(r"""<([^>]*)>[^<]*?;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.I)


#: The most digits a count may have (a signed 64-bit integer's 19). Python refuses ``int()`` of
#: over 4,300 digits with a ``ValueError``; a header of 20 digits is no count of records either.
MAX_DIGITS = 19


def as_int(value: object) -> int | None:
    """A whole number from a JSON number or a header's digits, else ``None``; digits past
    :data:`MAX_DIGITS` are a :class:`~connectors.errors.ResponseShapeError` (a count no server
    holds: its ``Total`` or ``Per-Page`` is not to be believed, nor silently dropped).

    Example:
        >>> as_int("42"), as_int(True), as_int("4.2")
        (42, None, None)
        >>> as_int("9" * 5000)
        Traceback (most recent call last):
        ...
        connectors.errors.ResponseShapeError: a number of 5000 digits where a count belongs
    """
    if isinstance(value, str):
        if not (digits := value.strip()).isdecimal():
            return None
        if len(digits) > MAX_DIGITS:
            raise ResponseShapeError(f"a number of {len(digits)} digits where a count belongs")
        return int(digits)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def dotted(body: Any, path: str) -> Any:
    """The value at a dotted path of ``body`` (``None``: a key on the way is missing)."""
    for key in path.split(".") if path else ():
        body = body.get(key) if isinstance(body, dict) else None
    return body


def json_type(value: object) -> str:
    """What a JSON value is, for an error line (never the value: it may be long or secret)."""
    kinds = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}
    return f"a JSON {kinds.get(type(value), 'object')}"


def parse_link_header(value: str | None) -> dict[str, str]:
    """Map each ``rel`` of an RFC 8288 ``Link`` header to its URL.

    Example:
        >>> parse_link_header('<https://x.test/c?page=2>; rel="next", <…?page=9>; rel="last"')
        {'next': 'https://x.test/c?page=2', 'last': '…?page=9'}
    """
    links: dict[str, str] = {}
    for match in _LINK.finditer(value or ""):
        for rel in (match.group(2) or match.group(3)).lower().split():
            links.setdefault(rel, match.group(1).strip())
    return links
