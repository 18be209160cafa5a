"""The file names of the vendor files (:mod:`engine.output.vendor`): a profile's template filled
with a split's values, told apart by a digest when two splits make one name, and refused when
it is not a plain file name or a file of the render already has it; and the lines of a file,
refused when two cannot be told apart (:func:`lines_apart`)."""

from __future__ import annotations

import hashlib
import json
from typing import Final

import polars as pl

from engine.errors import ExportError
from engine.schema import GRID

__all__ = [
    "IDENTITY",
    "MAX_NAME_BYTES",
    "NOT_NAMES",
    "file_stem",
    "lines_apart",
    "new_name",
    "told_apart",
]

#: Names that are not the name of a file in the output folder.
NOT_NAMES = frozenset({"", ".", ".."})
#: The volume table's columns that say which line it is: its interval, queue and channel.
IDENTITY: Final = frozenset({*GRID, "queue_id", "queue_name", "queue_key", "channel"})
#: The longest file name most file systems take, in bytes.
MAX_NAME_BYTES = 255


def file_stem(template: str, values: dict[str, object]) -> str:
    """``template`` with ``values``, each made of letters, digits, ``-``, ``_`` and ``.`` only
    (any other character becomes ``_``)."""
    safe = {k: "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(v))
            for k, v in values.items()}  # fmt: skip
    return template.format(**safe)


def told_apart(name: str, values: dict[str, object]) -> str:
    """``name`` with a digest of the split's own ``values`` before its extension: two queues
    whose names differ only in characters a file name cannot hold (``Sales EU``, ``Sales/EU``),
    or in letter case, get a file each, the later in sorted order this one, every night alike;
    so do two queues of one name (``values`` then hold the queue's id).

    Example:
        >>> told_apart("genesys_Sales_EU_voice.csv", {"queue_name": "Sales/EU"})
        'genesys_Sales_EU_voice-97713b9d.csv'
    """
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[
        :8
    ]
    stem, dot, extension = name.rpartition(".")
    return f"{stem}-{digest}{dot}{extension}" if dot else f"{name}-{digest}"


def new_name(
    name: str, values: dict[str, object], seen: dict[str, dict[str, object]], profile: str
) -> None:
    """Refuse a file name that is not a plain one or that a file of this render already has
    (letter case aside: some file systems ignore it); else record it in ``seen``.

    Raises:
        ExportError: one line, naming ``profile`` (its name).
    """
    if name in NOT_NAMES or "/" in name or "\\" in name:
        msg = f"profile {profile!r}: {name!r} is not a file name"
    elif len(name.encode()) > MAX_NAME_BYTES:
        msg = f"profile {profile!r}: file name {name!r} is over {MAX_NAME_BYTES} bytes"
    elif name.casefold() in seen:
        both = " and ".join(
            ", ".join(f"{k} {value!r}" for k, value in split.items()) or "another"
            for split in (seen[name.casefold()], values)
        )
        msg = f"profile {profile!r}: {both} make one file name, {name!r}"
    else:
        seen[name.casefold()] = values
        return
    raise ExportError(msg)


def lines_apart(lines: pl.DataFrame, profile: str, headers: list[str]) -> None:
    """Every line of a file is told apart from the others by the columns that say which interval,
    queue and channel it is (``lines``: the file's split keys and ``_id``, those columns as
    written, a format and a map applied, each after the delimiter), so an importer never takes
    two for one and keeps either.

    Raises:
        ExportError: two lines of one file alike in those columns, naming them and one example.
    """
    twice = lines.filter(lines.is_duplicated())
    if twice.height:
        named = f"columns {', '.join(map(repr, headers))}" if headers else "no column naming one"
        example = twice["_id"][0][1:]
        msg = (
            f"profile {profile!r}: {twice.height} lines of one file share their interval, "
            f"queue and channel as written ({named}; e.g. {example!r}); write what tells them "
            "apart: the interval's date and time, and queue_key or queue_id"
        )
        raise ExportError(msg)
