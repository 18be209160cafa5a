"""PII removal before anything lands: key paths dropped, phone numbers replaced by a keyed hash.

:class:`PiiScrubber` takes dotted key paths (``*`` for any key, ``key[attr=value]`` for the
items of a list whose ``attr`` equals ``value``) and applies them all in one walk of a record;
:func:`pii_hash` is the keyed hash (HMAC-SHA256) that stands in for a phone number (SPEC §8).
The paths' keys match in any case (``End_User`` as ``end_user``), and a key named as PII
wherever it is (:data:`PII_NAMES`: ``email``, ``phone_number``, ``firstName``, ...) is dropped
at any depth, except where a hash path keeps it hashed. Free text (a note, a subject, a
transcript) is kept as it is: a name or number written inside a value cannot be told apart.

Example:
    >>> scrub = PiiScrubber(drop=("email", "agent.name"))
    >>> scrub({"id": 1, "email": "a@b.c", "agent": {"name": "x"}})
    {'id': 1, 'agent': {}}
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import SecretStr

from connectors.errors import ConfigError

__all__ = ["PII_NAMES", "PiiScrubber", "pii_hash"]

#: Keys dropped at any depth, compared lower-cased without ``_`` and ``-`` (``first_name``,
#: ``firstName``, ``First-Name``): what seed 002 marks "may be considered PII" under a name that
#: means nothing else, and SPEC §8's emails, phone numbers, ANIs and end users. Names that mean
#: other things elsewhere (``name``, ``id``, ``identifier``, ``url``, ``user_id``) are dropped by
#: the vendors' paths only.
PII_NAMES: frozenset[str] = frozenset(
    (
        *("email", "emailaddress", "phone", "phonenumber", "mobile", "mobilenumber"),
        *("firstname", "middlename", "lastname", "fullname", "ani", "ipaddress"),
        *("enduser", "enduserid", "outcontactid", "avatarurl"),
    )
)

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
_Walk = Callable[[Any], Any]
_DROPPED = object()  # what a key's rules give when they drop it


class _Compiler:
    """The one walk of a scrubber's rules, compiled once into nested closures (as
    :func:`connectors.decode.fits` compiles a dtype): a record then costs a visit of the keys the
    rules name, with no rule matched at run time (half the cost of interpreting them: UJET
    calls 17 -> 8, Dixa conversations 28 -> 15 µs a record).

    The walk is the same as applying the rules one after the other to the whole record: rules
    that start at different keys touch disjoint subtrees, so each key present takes, in order,
    the rules that start at it (or at ``*``), and consecutive rules that go deeper share one
    descent. What no rule touches is shared, never copied.
    """

    def __init__(self, hasher: _Hasher, *, fold: bool = False) -> None:
        self.hasher, self.fold = hasher, fold  # fold: rules lower-cased, keys matched in any case
        self.walks: dict[tuple[_Rule, ...], _Walk] = {}

    def walk(self, rules: tuple[_Rule, ...]) -> _Walk:
        """A node with ``rules`` applied (a list: each of its items)."""
        if rules not in self.walks:
            self.walks[rules] = self._walk(rules)
        return self.walks[rules]

    def _walk(self, rules: tuple[_Rule, ...]) -> _Walk:
        star = tuple(r for r in rules if r[0][0][0] == "*")
        names = dict.fromkeys(r[0][0][0] for r in rules if r[0][0][0] != "*")
        named = {n: self._key(tuple(r for r in rules if r[0][0][0] in ("*", n))) for n in names}
        other = self._key(star) if star else None
        fold = self.fold

        def walk(node: Any) -> Any:
            if isinstance(node, list):
                return [walk(item) for item in node]
            if not isinstance(node, dict):
                return node
            out = node
            if other:
                keys = list(node)
            elif fold:
                keys = [k for k in node if isinstance(k, str) and k.lower() in named]
            else:
                keys = [n for n in named if n in node]
            for name in keys:
                if out is node:
                    out = dict(node)
                rule = named.get(name.lower() if fold and isinstance(name, str) else name, other)
                value = rule(out[name])  # type: ignore[misc]
                if value is _DROPPED:
                    del out[name]
                else:
                    out[name] = value
            return out

        return walk

    def _key(self, rules: tuple[_Rule, ...]) -> _Walk:
        """A key's value after its ``rules``, in order (:data:`_DROPPED`: a rule drops it)."""
        steps: list[_Walk] = []
        deeper: list[_Rule] = []
        picks: list[tuple[str, tuple[_Segment, ...], bool]] = []
        for i, (path, hashed) in enumerate(rules):
            (_, attr, wanted), rest = path[0], path[1:]
            if attr is None and rest:
                deeper.append((rest, hashed))
                continue
            if deeper:
                steps.append(self.walk(tuple(deeper)))
                deeper = []
            if attr is not None:
                picks.append((wanted or "", rest, hashed))
                if len(rules) > i + 1 and rules[i + 1][0][0][1] == attr:
                    continue  # the next rule selects by the same attribute: one pass for both
                steps.append(self._select(attr, tuple(picks)))
                picks = []
            elif not hashed:
                return lambda _: _DROPPED  # the rules before a drop change nothing kept
            else:
                steps.append(self.hasher)
        if deeper:
            steps.append(self.walk(tuple(deeper)))
        if len(steps) == 1:
            return steps[0]

        def apply(value: Any) -> Any:
            for step in steps:
                value = step(value)
            return value

        return apply

    def _select(
        self, attr: str, picks: tuple[tuple[str, tuple[_Segment, ...], bool], ...]
    ) -> _Walk:
        """Consecutive selector rules on one attribute, in one pass over a list: the items
        whose ``attr`` is a rule's ``wanted`` get the rest of its path applied (none left: they
        are dropped, or, when hashed, left as they are), rule after rule."""
        rules = [
            (wanted, self.walk(((rest, hashed),)) if rest else None, hashed)
            for wanted, rest, hashed in picks
        ]

        def label(item: Any) -> str | None:
            return str(item.get(attr)) if isinstance(item, dict) else None

        def select(value: Any) -> Any:
            if not isinstance(value, list):
                return value
            items, at = list(value), defaultdict(list)  # each label's positions
            for position, item in enumerate(value):  # label(), inlined: a call an item costs
                at[str(item.get(attr)) if isinstance(item, dict) else None].append(position)
            gone: set[int] = set()
            for wanted, inner, hashed in rules:
                positions = [p for p in at.get(wanted, ()) if p not in gone]
                if inner is not None:
                    for p in positions:
                        items[p] = inner(items[p])
                        now = label(items[p])
                        if now != wanted:  # the rest of the path changed its attribute
                            at[wanted].remove(p)
                            at[now].append(p)
                            at[now].sort()
                elif not hashed:
                    gone.update(positions)
            return [i for p, i in enumerate(items) if p not in gone] if gone else items

        return select


_HASHED = re.compile(r"[0-9a-f]{64}")
#: How many clean key names a scrubber remembers (a vendor's records use a few hundred).
_CLEAN_MAX = 4096


@dataclass(frozen=True)
class _Finder:
    """Whether a record the paths' walk has scrubbed may still hold PII: a key of
    :data:`PII_NAMES` at any depth with a value other than ``null`` or a hash (what a hash
    path leaves), or a key of a path in another case than its own (``End_User``).

    One walk of every dict of the record, but each dict's keys are checked by one set
    operation in C against the key names already found clean; only a name not seen before is
    looked at in Python (a vendor's records use a few hundred names).
    """

    keys: frozenset[str]  # the paths' keys, as given
    folded: frozenset[str]  # the same, lower-cased
    clean: set[str] = field(default_factory=set)

    def __call__(self, record: dict[Any, Any]) -> bool:
        clean, todo = self.clean, [record]
        while todo:
            node = todo.pop()
            if not clean.issuperset(node) and self._unclean(node):
                return True
            for value in node.values():
                kind = type(value)
                if kind is dict:
                    todo.append(value)
                elif kind is list:
                    todo += [item for item in value if type(item) is dict]
        return False

    def _unclean(self, node: dict[Any, Any]) -> bool:
        for key, value in node.items():
            if key in self.clean or not isinstance(key, str):
                continue
            if _bare(key) in PII_NAMES:
                if value is not None and not (isinstance(value, str) and _HASHED.fullmatch(value)):
                    return True
            elif key.lower() in self.folded and key not in self.keys:
                return True
            elif len(self.clean) < _CLEAN_MAX:
                self.clean.add(key)
        return False


def _bare(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def _deep(node: Any, kept: tuple[tuple[str, ...], ...]) -> Any:
    """``node`` without the keys of :data:`PII_NAMES`, at any depth, but for what is left of the
    hash paths (``kept``: their keys lower-cased), whose values are hashes by now."""
    if isinstance(node, list):
        return [_deep(item, kept) for item in node]
    if not isinstance(node, dict):
        return node
    out = {}
    for key, value in node.items():
        name = key.lower() if isinstance(key, str) else key
        inner = tuple(path[1:] for path in kept if path[0] in ("*", name))
        if () in inner:  # a hash path's value: hashed
            out[key] = value
        elif inner or not isinstance(key, str) or _bare(key) not in PII_NAMES:
            out[key] = _deep(value, inner)  # (on the way to a hash path: kept, and walked)
    return out


@dataclass(frozen=True)
class PiiScrubber:
    """Removes PII key paths from a record and replaces phone numbers by a keyed hash.

    Paths are dotted keys, ``*`` for any key, and ``key[attr=value]`` for the items of a list
    whose ``attr`` equals ``value`` (Dixa's ``fields[name=contact_point]``); lists on the way are
    walked item by item. ``hash_paths`` values are reduced to their digits and replaced by
    :func:`pii_hash` (null stays null); a path in both lists is dropped. Never mutates its input.
    All paths are applied in one walk of the record (the hashes first, then the drops). What
    that walk leaves is then checked (:class:`_Finder`) for a key of :data:`PII_NAMES` or a
    path's key in another case (``End_User``); only then is the record scrubbed again, the
    paths matched in any case and those keys dropped at any depth.

    Example:
        >>> scrub = PiiScrubber(drop=("agent.email",), hash_paths=("phone",), secret=SecretStr("k"))
        >>> scrub({"agent": {"email": "x@y.z", "id": 1}, "phone": None})
        {'agent': {'id': 1}, 'phone': None}
    """

    drop: tuple[str, ...] = ()
    hash_paths: tuple[str, ...] = ()
    secret: SecretStr | None = None
    _rules: tuple[_Rule, ...] = field(init=False, repr=False)
    _walk: _Walk = field(init=False, repr=False, compare=False)
    _folded: _Walk = field(init=False, repr=False, compare=False)
    _found: _Finder = field(init=False, repr=False, compare=False)
    _kept: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hash_paths and not (self.secret and self.secret.get_secret_value()):
            raise ConfigError("pii.hash_secret: required when phone numbers are hashed")
        rules = [(_parse_path(p), True) for p in self.hash_paths]
        rules += [(_parse_path(p), False) for p in self.drop]
        object.__setattr__(self, "_rules", tuple(rules))
        object.__setattr__(self, "_walk", _Compiler(self._hash).walk(tuple(rules)))
        folded = tuple((tuple((k.lower(), a, v) for k, a, v in p), h) for p, h in rules)
        object.__setattr__(self, "_folded", _Compiler(self._hash, fold=True).walk(folded))
        keys = frozenset(k for path, _ in rules for k, _, _ in path if k != "*")
        object.__setattr__(self, "_found", _Finder(keys, frozenset(k.lower() for k in keys)))
        kept = tuple(tuple(k for k, _, _ in p) for p, hashed in folded if hashed)
        object.__setattr__(self, "_kept", kept)

    def _hash(self, value: Any) -> str | None:
        if isinstance(value, bool) or not isinstance(value, str | int) or not self.secret:
            return None
        return pii_hash(re.sub(r"\D", "", str(value)) or str(value).strip(), self.secret)

    def __call__(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The record without PII."""
        record = record if isinstance(record, dict) else dict(record)
        out = self._walk(record)
        if self._found(out):
            out = _deep(self._folded(record), self._kept)
        return dict(out) if out is record else out  # a walk copies the dicts it changes
