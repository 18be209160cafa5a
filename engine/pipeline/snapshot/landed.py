"""The landed files a snapshot is made from, and the index of the record ids each one holds.

:func:`file_index` reads each landed file's record ids (a row per record and file);
:func:`records_of` turns index rows into the records to redo, named by their quarantine refs
(``Stream.ref``), and :func:`id_of` reads a ref back to its id. :func:`landed_index` asks a
committed snapshot which of a stream's landed files hold some ids (the sync's repair);
:func:`rejected_rows` gives the quarantine rows of the records set aside at landing.

Example:
    ``index = file_index(root, sorted(landed_files(root, feeds)))``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from connectors.landing import scan_files
from connectors.landing.manifest import landed_path, landed_sizes, record_ids
from connectors.normalise import VERSION, scan_rejected, set_aside
from connectors.source import Source, Stream
from engine.pipeline.snapshot.parts import FILE_PIECE, FORMAT
from engine.pipeline.snapshot.splice import REF, SRC
from engine.schema import QUARANTINE

__all__ = [
    "absent",
    "file_index",
    "id_of",
    "landed_files",
    "landed_index",
    "of_stream",
    "records_of",
    "rejected_rows",
]

_SRC, _REF = SRC, REF
_RECORDS = {_SRC: pl.String(), "stream": pl.String(), "record_id": pl.String(), _REF: pl.String()}


def of_stream(frame: pl.LazyFrame, source: str, stream: str) -> pl.LazyFrame:
    return frame.filter((pl.col(_SRC) == source) & (pl.col("stream") == stream))


def landed_files(root: Path, feeds: Sequence[Source]) -> dict[str, int]:
    sizes = (landed_sizes(root, f.name, s.name) for f in feeds for s in f.streams)
    return {k: n for found in sizes for k, n in found.items()}


def file_index(root: Path, keys: Sequence[str]) -> pl.DataFrame:
    return record_ids(root, keys).rename({"source": _SRC}).with_columns(FILE_PIECE)


def records_of(
    index: pl.DataFrame, feeds: Sequence[Source], named: pl.DataFrame | None = None
) -> pl.DataFrame:
    """``(__src, stream, record_id, __ref)`` of the index's records (``__ref``: the
    quarantine id, see ``Stream.ref``); with ``named`` (``__src``, ``__ref``), only the records
    it names: each stream's ids are read back from those refs (:func:`id_of`), so only the
    index rows holding them are formatted, not every landed record."""
    parts = []
    for feed in feeds:
        for stream in feed.streams:
            mine = of_stream(index.lazy(), feed.name, stream.name)
            if named is not None:
                ids = named.lazy().filter(pl.col(_SRC) == feed.name)
                ids = ids.select(id_of(stream, pl.col(_REF)).alias("__id")).drop_nulls()
                key = pl.col("record_id").fill_null("?")  # Stream.ref's id of a null key
                mine = mine.join(ids, left_on=key, right_on="__id", how="semi")
            ref = stream.ref(pl.col("record_id")).alias(_REF)
            parts.append(mine.select(_SRC, "stream", "record_id", ref).unique())
    return pl.concat(pl.collect_all(parts)) if parts else pl.DataFrame(schema=_RECORDS)


def id_of(stream: Stream, ref: pl.Expr) -> pl.Expr:
    """``Stream.ref`` read back: the id in a ref of ``stream`` (its prefix, the id, its suffix),
    null for a ref of another shape."""
    head, _, tail = stream.record_ref.partition("{id}")
    length = ref.str.len_chars()
    fits = ref.str.starts_with(head) & ref.str.ends_with(tail)
    fits &= length >= len(head) + len(tail)
    return pl.when(fits).then(ref.str.slice(len(head), length - len(head) - len(tail)))


def absent(part: pl.DataFrame, among: pl.DataFrame) -> int:
    """How many distinct records of ``part`` (index rows) ``among`` does not hold."""
    keys = [_SRC, "stream", "record_id"]
    mine = part.select(keys).unique()
    ids = mine["record_id"].drop_nulls().implode()
    near = among.filter(pl.col("record_id").is_in(ids) | pl.col("record_id").is_null())
    held = near.select(keys).unique()
    return mine.join(held, on=keys, how="anti", nulls_equal=True).height


def landed_index(
    folder: Path, source: str, stream: str, ids: pl.Series
) -> tuple[dict[str, int], set[str]] | None:
    """What the committed snapshot in ``folder`` (of any key) knows of the landed files of
    ``source``/``stream``: those it was made from (key -> size) and, among them, those holding
    any of ``ids``; ``None`` when there is no snapshot of this layout to ask."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("format") != FORMAT:
            return None
        prefix = f"{source}/{stream}/"
        files = {str(k): int(v) for k, v in meta["files"].items() if str(k).startswith(prefix)}
        mine = (pl.col("__src") == source) & (pl.col("stream") == stream)
        wanted = mine & pl.col("record_id").is_in(ids.cast(pl.String).implode())
        scans = [
            pl.scan_parquet(folder / f).filter(wanted).select("file")
            for f in meta["parts"]["index"].values()
        ]
        found = pl.collect_all(scans) if scans else []
        return files, {str(f) for frame in found for f in frame["file"].unique().to_list()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pl.exceptions.PolarsError):
        return None


def rejected_rows(root: Path, feeds: Sequence[Source], index: pl.LazyFrame) -> pl.DataFrame:
    """Records set aside at landing with no version as new landed (as a full rebuild gives
    them). Only the index rows of those ids, and the landed versions of those files, are looked
    at (most nights there are none: then the index, a row per landed record, is not read)."""
    parts = []
    for feed in feeds:
        for stream in feed.streams:
            ids = scan_rejected(root, feed.name, stream.name).select("record_id").collect()
            if ids.height:
                near = pl.col("record_id").is_in(ids["record_id"].drop_nulls().implode())
                held = of_stream(index, feed.name, stream.name).filter(near).collect()
                files = [landed_path(root, k) for k in sorted(set(held["file"]))]
                landed = scan_files(files, None).filter(near).select(*VERSION)
                parts.append(set_aside(feed, stream, root, landed))
    return pl.concat(pl.collect_all(parts)) if parts else pl.DataFrame(schema=QUARANTINE)
