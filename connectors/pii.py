"""PII removal before anything lands: key paths dropped, phone numbers replaced by a keyed hash.

:class:`PiiScrubber` takes dotted key paths (``*`` for any key, ``key[attr=value]`` for the
items of a list whose ``attr`` equals ``value``) and applies them all in one walk of a record;
:func:`pii_hash` is the keyed hash (HMAC-SHA256) that stands in for a phone number (SPEC §8).

Example:
    >>> scrub = PiiScrubber(drop=("email", "agent.name"))
    >>> scrub({"id": 1, "email": "a@b.c", "agent": {"name": "x"}})
    {'id': 1, 'agent': {}}
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from connectors.errors import ConfigError

__all__ = ["PiiScrubber", "pii_hash"]

_SEGMENT = re.compile(r"(\*|[^.\[\]=]+)(?:\[([^.\[\]=]+)=([^\[\]]*)\])?")
_Segment = tuple[str, str | None, str | None]


def pii_hash(value: str, secret: SecretStr) -> str:
    """The keyed hash (HMAC-SHA256, hex) that stands in for a phone number.

    Example:
        >>> pii_hash("13307526714", SecretStr("k"))[:12]
        'ddb15461664a'
    """
    key = secret.get_secret_value().encode()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _parse_path(path: str) -> tuple[_Segment, ...]:
    matches = [_SEGMENT.fullmatch(part) for part in path.split(".")]
    if not path or not all(matches):
        raise ConfigError(f"pii path {path!r}: expected key(.key)* with * or key[attr=value]")
    return tuple((m[1], m[2], m[3]) for m in matches if m)


_Rule = tuple[tuple[_Segment, ...], bool]  # a path (or what is left of one); hash it (or drop)
_Hasher = Callable[[Any], Any]


@functools.lru_cache(maxsize=256)
def _plan(rules: tuple[_Rule, ...]) -> tuple[dict[str, tuple[_Rule, ...]], tuple[_Rule, ...]]:
    """The rules that start at each named key (``*`` rules included, in order), and the ``*``
    rules alone (for the other keys)."""
    star = tuple(r for r in rules if r[0][0][0] == "*")
    names = dict.fromkeys(r[0][0][0] for r in rules if r[0][0][0] != "*")
    return {n: tuple(r for r in rules if r[0][0][0] in ("*", n)) for n in names}, star


def _scrub(node: Any, rules: tuple[_Rule, ...], hasher: _Hasher) -> Any:
    """``node`` with every rule applied, in order, in one walk; shares what no rule touches.

    The same as applying the rules one after the other to the whole record: rules that start at
    different keys touch disjoint subtrees, so each key present takes, in order, the rules that
    start at it (or at ``*``), and consecutive rules that go deeper share one descent.
    """
    if isinstance(node, list):
        return [_scrub(item, rules, hasher) for item in node]
    if not isinstance(node, dict) or not rules:
        return node
    by_name, star = _plan(rules)
    keys = list(node) if star else [n for n in by_name if n in node]
    out = node
    for name in keys:
        mine = by_name.get(name, star)
        if out is node:
            out = dict(node)
        kept, value = _at_key(out[name], mine, hasher)
        if kept:
            out[name] = value
        else:
            del out[name]
    return out


def _at_key(value: Any, rules: tuple[_Rule, ...], hasher: _Hasher) -> tuple[bool, Any]:
    """``(True, value after its key's rules)``, or ``(False, None)`` when a rule drops it."""
    deeper: list[_Rule] = []
    for path, hashed in rules:
        (_, attr, wanted), rest = path[0], path[1:]
        if attr is None and rest:
            deeper.append((rest, hashed))
            continue
        if deeper:
            value, deeper = _scrub(value, tuple(deeper), hasher), []
        if attr is not None:
            value = _select(value, (attr, wanted or ""), (rest, hashed), hasher)
        elif not hashed:
            return False, None
        else:
            value = hasher(value)
    return True, _scrub(value, tuple(deeper), hasher) if deeper else value


def _select(value: Any, selector: tuple[str, str], rule: _Rule, hasher: _Hasher) -> Any:
    """A selector's rule: the items of list ``value`` whose ``attr`` is ``wanted`` get the rest
    of the path applied (none left: they are dropped, or, when hashed, left as they are)."""
    (attr, wanted), (rest, hashed) = selector, rule
    if not isinstance(value, list):
        return value
    hit = [isinstance(i, dict) and str(i.get(attr)) == wanted for i in value]
    if rest:
        pairs = zip(value, hit, strict=True)
        return [_scrub(i, ((rest, hashed),), hasher) if h else i for i, h in pairs]
    if not hashed:
        return [i for i, h in zip(value, hit, strict=True) if not h]
    return value


@dataclass(frozen=True)
class PiiScrubber:
    """Removes PII key paths from a record and replaces phone numbers by a keyed hash.

    Paths are dotted keys, ``*`` for any key, and ``key[attr=value]`` for the items of a list
    whose ``attr`` equals ``value`` (Dixa's ``fields[name=contact_point]``); lists on the way are
    walked item by item. ``hash_paths`` values are reduced to their digits and replaced by
    :func:`pii_hash` (null stays null); a path in both lists is dropped. Never mutates its input.
    All paths are applied in one walk of the record (the hashes first, then the drops).

    Example:
        >>> scrub = PiiScrubber(drop=("agent.email",), hash_paths=("phone",), secret=SecretStr("k"))
        >>> scrub({"agent": {"email": "x@y.z", "id": 1}, "phone": None})
        {'agent': {'id': 1}, 'phone': None}
    """

    drop: tuple[str, ...] = ()
    hash_paths: tuple[str, ...] = ()
    secret: SecretStr | None = None
    _rules: tuple[_Rule, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.hash_paths and not (self.secret and self.secret.get_secret_value()):
            raise ConfigError("pii.hash_secret: required when phone numbers are hashed")
        rules = [(_parse_path(p), True) for p in self.hash_paths]
        rules += [(_parse_path(p), False) for p in self.drop]
        object.__setattr__(self, "_rules", tuple(rules))

    def _hash(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int) or not self.secret:
            return None
        return pii_hash(re.sub(r"\D", "", str(value)) or str(value).strip(), self.secret)

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record without PII."""
        return dict(_scrub(dict(record), self._rules, self._hash))
