"""The values paging reads from a response: whole numbers (:func:`as_int`, the one rule of
:mod:`connectors.wire.digits`), ``Link`` headers, dotted paths.

Each is read defensively (a response is an adversary's), and :func:`json_type` names what a
JSON value is for an error line without quoting it (it may be long or secret);
:func:`extract_records` finds a page's records (a missing key or a non-list is an error).
"""

from __future__ import annotations

import re
from typing import Any

from connectors.errors import ResponseShapeError
from connectors.wire.digits import as_int

__all__ = ["as_int", "dotted", "extract_records", "json_type", "parse_link_header"]

_LINK = re.compile(r"""<([^>]*)>[^<]*?;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))""", re.I)


def dotted(body: Any, path: str) -> Any:
    """The value at a dotted path of ``body`` (``None``: a key on the way is missing)."""
    for key in path.split(".") if path else ():
        body = body.get(key) if isinstance(body, dict) else None
    return body


def extract_records(body: Any, path: str | None) -> list[Any]:
    """The records of a page at a dotted path (``None`` or ``""``: the body is the list).

    Example:
        >>> extract_records({"data": [{"id": 1}]}, "data")
        [{'id': 1}]
    """
    value = body
    for key in path.split(".") if path else ():
        if not isinstance(value, dict) or key not in value:
            raise ResponseShapeError(f"response has no records at {path!r}")
        value = value[key]
    if value is not None and not isinstance(value, list):
        raise ResponseShapeError(f"records at {path or 'top level'!r} are not a list")
    return value or []


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
