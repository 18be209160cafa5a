"""Splicing a refresh into a snapshot: the records to redo, closed over shared identities, and
the month shards without their old rows and with their new ones (the package says why).
"""

from __future__ import annotations

import polars as pl

from engine.pipeline.snapshot.parts import Shard, Snapshot, homes_of, sharded

__all__ = [
    "IDENT",
    "REF",
    "ROW_ORDER",
    "SRC",
    "closure",
    "held",
    "identities",
    "spliced",
    "without",
]

#: Columns identifying a row across records, per table (coarser than the canonical key on
#: purpose: more records redone is only slower, fewer would be wrong). An attempt has two: its
#: own and its chain's, so that a chain's attempts are redone together (a chain's request, its
#: first attempt's creation, is the month shard of all its attempts).
_IDENTITY = {
    "contacts": (("source", "contact_id"),),
    "callback_attempts": (("source", "attempt_id"), ("source", "original_id", "chain")),
}
ROW_ORDER = {
    "contacts": ["source", "contact_id", "segment_no"],
    "callback_attempts": ["source", "attempt_id"],
}
SRC, REF, IDENT = "__src", "__ref", "__ident"


def identities(table: str) -> list[pl.Expr]:
    """A row's identity hashes (:data:`_IDENTITY`; ``"chain"``: a constant that keeps a chain's
    identity apart from an attempt's of the same id)."""
    return [
        pl.struct(
            [pl.col(c).cast(pl.String) if c != "chain" else pl.lit(c).alias(c) for c in key]
        ).hash(seed=0)
        for key in _IDENTITY[table]
    ]


def held(frame: pl.DataFrame, records: pl.DataFrame) -> pl.Series:
    """Whether each row of ``frame`` is one of ``records`` (``__src``, ``__ref``), in row order:
    matched among the few rows whose ref is one of theirs, not joined over a row a record."""
    near = frame.select(pl.col(REF).is_in(records[REF].implode()).alias("near"))["near"]
    rows = frame.with_row_index("__row").filter(near)
    found = rows.join(records, on=[SRC, REF], how="semi")["__row"]
    return pl.int_range(frame.height, dtype=pl.UInt32, eager=True).is_in(found.implode())


def without(frame: pl.DataFrame, drop: pl.Series) -> pl.DataFrame:
    """``frame`` without the rows ``drop`` marks; ``frame`` itself when it marks none (the
    groups of a whole redo remove nothing: then no copy of the snapshot's parts a group).

    Example:
        >>> f = pl.DataFrame({"a": [1, 2]})
        >>> without(f, pl.Series([False, False])) is f, without(f, pl.Series([True, False])).rows()
        (True, [(2,)])
    """
    return frame.filter(~drop) if drop.any() else frame


def closure(snap: Snapshot, touched: pl.DataFrame, new_idents: pl.DataFrame | None) -> pl.DataFrame:
    """``touched`` (``__src``, ``__ref``) and every record of the snapshot that shares an
    identity with them (their snapshot rows', and ``new_idents``), transitively."""
    records = touched.select(SRC, REF).unique()
    while True:
        mine = snap.idents.filter(held(snap.idents, records)).select(IDENT)
        if new_idents is not None:
            mine = pl.concat([mine, new_idents.select(IDENT)])
        shared = pl.col(IDENT).is_in(mine[IDENT].unique().implode())
        sharing = snap.idents.filter(shared).select(SRC, REF)
        grown = pl.concat([records, sharing]).unique()
        if grown.height == records.height:
            return records
        records = grown


def spliced(
    table: str, snap: Snapshot, redone: pl.Series, rows: pl.DataFrame
) -> tuple[dict[str, pl.DataFrame | None], dict[str, Shard]]:
    """The snapshot's shards without the rows of the ``redone`` identities and with the new
    ``rows``, and its committed shards that neither touched (the others are written again).
    Only the shards those identities' rows are in (:attr:`Snapshot.homes`) and those the new
    rows reach are read; the others stay as committed, not read. The shards the rows reach
    have them appended, for :func:`~engine.pipeline.snapshot.parts.in_order` to sort."""
    reach = homes_of(table, rows, identities(table))["__shard"]
    held = snap.homes.filter(pl.col(IDENT).is_in(redone))["__shard"]
    touched = snap.read(set(held.to_list()) | set(reach.to_list()))
    shards: dict[str, pl.DataFrame | None] = dict(snap.shards)
    saved = dict(snap.saved)
    gone = pl.any_horizontal([i.is_in(redone) for i in identities(table)])
    for name, frame in touched.items():
        drop = frame.select(gone).to_series()
        if drop.any():
            saved.pop(name, None)
            kept = frame.filter(~drop)
            if kept.height:
                shards[name] = kept
            else:
                del shards[name]
    shards, reached = sharded(table, rows, into=shards)
    return shards, {k: s for k, s in saved.items() if k in shards and k not in reached}
