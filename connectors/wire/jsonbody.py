"""A response body's JSON: :func:`parse_json` (re-exported by :mod:`connectors.http`).

``orjson`` parses it (~1.5x cheaper than :mod:`json`); :mod:`json` reads what orjson refuses or
would read wrong: ``NaN`` and ``Infinity``, an integer beyond 64 bits (orjson makes it a float),
and a lone UTF-16 surrogate escape (half an emoji), which becomes U+FFFD (:func:`_whole`).

A body nested deeper than :data:`MAX_DEPTH` levels is refused. JSON sets no limit, but what
reads a record after it recurses (``json.loads`` itself past ~1,000 levels, the PII scrubber,
:mod:`json`'s writer where orjson's refuses): a few hundred levels would end the sync with a
``RecursionError`` traceback. No vendor's record is more than a few levels deep.

Example:
    >>> parse_json(httpx.Response(200, json={"a": 1}))
    {'a': 1}
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import orjson

from connectors.errors import InvalidBodyError, ResponseShapeError

__all__ = ["MAX_DEPTH", "parse_json"]

#: The deepest body read (levels of arrays and objects): orjson writes no deeper, so for a
#: body orjson parsed, an ``orjson.dumps`` of it is the check (~0.2 ms for a 300 kB page of 100
#: UJET calls, against ~1 ms for its parse; a walk in Python would cost more than the parse).
MAX_DEPTH = 254

#: Digits mapped to ``0``: a run of 19 (an integer that may not fit 64 bits) is then a plain
#: substring search (a regex for it costs more than the parse).
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG = b"0" * 19
_ESCAPED_SURROGATE, _SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]"), re.compile("[\ud800-\udfff]")


def _whole(value: Any) -> Any:
    """``value`` with each lone UTF-16 surrogate of its text, which JSON allows (``\\ud83d``
    alone: an emoji cut in half) and UTF-8 cannot hold, replaced by U+FFFD."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_whole(k): _whole(v) for k, v in value.items()}
    return [_whole(v) for v in value] if isinstance(value, list) else value


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether ``value`` nests arrays and objects more than ``limit`` levels deep (level by
    level, without recursion: the value may be deeper than the recursion limit).

    Example:
        >>> _deeper_than([[1], {"a": 2}], 2), _deeper_than([{"a": []}], 2)
        (False, True)
    """
    level = [value] if isinstance(value, dict | list) else []
    for _ in range(limit):
        if not level:
            return False
        level = [
            child
            for node in level
            for child in (node.values() if isinstance(node, dict) else node)
            if isinstance(child, dict | list)
        ]
    return bool(level)


def _too_deep(response: httpx.Response) -> ResponseShapeError:
    return ResponseShapeError(
        f"HTTP {response.status_code}: body nested deeper than {MAX_DEPTH} levels "
        f"({len(response.content)} bytes), far deeper than any record: not read, and not "
        "retried (the same body would come again); ask the vendor what the endpoint sends",
        url=response.request.url,
    )


def parse_json(response: httpx.Response) -> Any:
    """The parsed JSON body of a response from :func:`~connectors.http.send_request` (``None``
    for 204).

    Raises:
        InvalidBodyError: Truncated or otherwise invalid JSON (retriable).
        ResponseShapeError: Nested deeper than :data:`MAX_DEPTH` (fatal: a server sends the
            same body again, so a retry would only spend the retry budget and the rate limit
            before failing all the same; a body cut short is an ``InvalidBodyError``).

    Example:
        >>> parse_json(httpx.Response(200, content=b'[0.5, NaN, 12345678901234567890]'))
        [0.5, nan, 12345678901234567890]
    """
    if response.status_code == 204:
        return None
    body = response.content
    if _LONG not in body.translate(_DIGITS):  # orjson reads integers beyond 64 bits as floats
        try:  # json accepts what orjson refuses (NaN, Infinity, lone surrogates)
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
        else:
            try:
                orjson.dumps(parsed)  # fails for a body deeper than MAX_DEPTH only
            except orjson.JSONEncodeError:
                if _deeper_than(parsed, MAX_DEPTH):
                    raise _too_deep(response) from None
            return parsed
    try:
        parsed = json.loads(body)
    except RecursionError:  # past ~1,000 levels: orjson refused it too (1,024)
        raise _too_deep(response) from None
    except ValueError as exc:
        msg = f"HTTP {response.status_code}: body is not valid JSON ({len(response.content)} bytes)"
        raise InvalidBodyError(msg, url=response.request.url) from exc
    if _deeper_than(parsed, MAX_DEPTH):
        raise _too_deep(response)
    return _whole(parsed) if _ESCAPED_SURROGATE.search(body) else parsed  # orjson refuses them
