"""A canonical snapshot on disk: bookkeeping and rows in monthly pieces, one file commits it.

Under ``<store.state>/snapshot/<table>/``:

* ``index-<piece>-<tag>.parquet`` (the record ids of each landed file, by the month of the
  file's fetch date), ``idents-<piece>-<tag>.parquet`` (each record's row identities, by the
  first shard of its identity's rows), ``homes-<piece>-<tag>.parquet`` (the shards each
  identity's rows are in, by shard) and ``quarantine-all-<tag>.parquet``: a few bytes a record,
  of which a run rewrites the pieces its changes reach (:attr:`Snapshot.dirty`);
* ``rows-<month>-<tag>.parquet``: the validated rows whose day (:data:`SHARD_BY`: a contact's
  offer, an attempt's creation, UTC) falls in that month, in row order. A run rewrites only the
  months whose rows changed, so the cost of keeping the rows follows what landed, not all
  history. Each shard of contacts also keeps the digest of each of its store partition days
  (:func:`day_digests`), so the run's plan hashes only the rows of the months that changed. A
  shard is read only when a run needs its rows (its records are redone, or a consumer asks for
  its months: :meth:`Snapshot.rows`);
* ``meta.json``, written last and atomically: the snapshot's key, the landed files it was made
  from and the files (sizes, row counts, digests of their bytes: :mod:`.sums`) of its parts. It
  is the commit: parts it does not name are left-overs of a killed run, removed by the next
  save; the temporary file of a write killed before its rename (``.<name>.tmp-<hex>``) by the
  next run's sweep, under the store's lock (:func:`engine.pipeline.lock.clean_leftovers`).

A snapshot missing, torn, or of another key or layout loads as ``None`` (redone whole).
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from engine import killpoint
from engine.durable import atomic_write_bytes, fsync_dir
from engine.output.delta import PARTITION, days_of
from engine.output.store import request_dates
from engine.pipeline.snapshot.sums import Digests, day_digests, file_sum
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
from engine.tables.callback_requests import CHAIN_ORDER, ORDER, in_chain_order
from engine.validate.callback_attempts import callback_gaps

__all__ = [
    "FILE_PIECE",
    "FORMAT",
    "HOMES",
    "SHARD_BY",
    "Snapshot",
    "homes_of",
    "in_order",
    "load",
    "months_near",
    "parted",
    "pieces_of",
    "save",
    "scan_part",
    "sharded",
]

#: The snapshot layout's version, and of the rules its rows were made by (another one is rebuilt
#: whole). 5: a landed version without ``updated_at`` is as new as its fetch
#: (:func:`connectors.landing.latest_records`). 6: ``meta.json`` keeps each file's digest.
FORMAT = 6
#: The column whose UTC month shards a table's rows.
SHARD_BY = {"contacts": "offered_at", "callback_attempts": "created_at"}
#: Tables whose store partition is a row's own day (their digests are kept per shard).
_DIGESTED = {"contacts": "offered_at", "callback_attempts": "created_at"}
_SCHEMAS = {"contacts": CONTACTS, "callback_attempts": CALLBACK_ATTEMPTS}
_SHARD = "__shard"
_NO_DAY = "none"  #: the shard of rows without a day (sorts after every month)
_WHOLE_PARTS = ("index", "idents", "homes", "quarantine")
_PIECE = "__part"
#: The column that splits each bookkeeping part into the pieces written apart.
_PIECE_OF = {"index": _PIECE, "idents": _PIECE, "homes": _SHARD, "quarantine": None}
_STRING = pl.String()
_PART_SCHEMAS = {
    "index": pl.Schema(dict.fromkeys(("__src", "stream", "file", "record_id", _PIECE), _STRING)),
    "idents": pl.Schema(
        {"__src": _STRING, "__ref": _STRING, "__ident": pl.UInt64(), _PIECE: _STRING}
    ),
    "homes": pl.Schema({"__ident": pl.UInt64(), _SHARD: _STRING}),
    "quarantine": pl.Schema(QUARANTINE),
}
#: A landed file's piece of the index: the month of its fetch date (``.../date=YYYY-MM-DD/...``).
FILE_PIECE = pl.col("file").str.extract(r"date=(\d{4}-\d{2})-", 1).fill_null("other").alias(_PIECE)
_DAY = timedelta(days=1)
_ROW_GROUP = 16_384  #: rows a row group of a written part (see :func:`_write`)
_GAPS = callback_gaps(pl.LazyFrame(schema=CALLBACK_ATTEMPTS)).collect_schema()
#: The schema of :attr:`Snapshot.homes`.
HOMES = {"__ident": pl.UInt64(), _SHARD: pl.String()}


@dataclass
class Shard:
    """A shard as committed: its file (and size), its row count, its digests per partition
    day, and of callback attempts its chains and their gaps (a chain is in one shard)."""

    file: str
    digests: Digests
    rows: int = 0
    size: int = 0
    chains: int = 0
    gaps: list[list[Any]] = field(default_factory=list)  #: ``[source, original_id, missing]``


@dataclass
class Snapshot:
    """A snapshot in memory. ``shards`` names every month it holds: the rows of those read or
    changed, ``None`` for one committed and not read (:meth:`read` reads it); ``saved`` holds
    the shards as on disk (a shard missing from it changed and is written by :func:`save`)."""

    files: dict[str, int]  #: "<source>/<stream>/<file>" -> size
    index: pl.DataFrame  #: __src, stream, file, record_id: the record ids of each landed file
    idents: pl.DataFrame  #: each record's row identities
    shards: dict[str, pl.DataFrame | None]  #: month -> validated rows, in row order
    quarantine: pl.DataFrame  #: the mappings' and the validation's
    #: ``__ident``, ``__shard``: the shards the rows of each identity are in
    homes: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=HOMES))
    records: int = 0  #: distinct records landed
    redone: int = 0  #: records mapped and validated again to make it
    saved: dict[str, Shard] = field(default_factory=dict)
    folder: Path | None = None  #: where the shards not read yet are
    #: per bookkeeping part, the file of each of its pieces as committed
    pieces: dict[str, dict[str, str]] = field(default_factory=dict)
    #: per bookkeeping part, the pieces changed since committed (``None``: every piece)
    dirty: dict[str, set[str]] | None = None
    sums: dict[str, str] = field(default_factory=dict)  #: committed file -> its digest

    def read(self, names: Iterable[str]) -> dict[str, pl.DataFrame]:
        """The rows of the named shards it holds, read from disk (in parallel) if not yet."""
        todo = sorted(n for n in set(names) if n in self.shards and self.shards[n] is None)
        if todo:
            assert self.folder is not None
            scans = [pl.scan_parquet(self.folder / self.saved[n].file) for n in todo]
            self.shards.update(zip(todo, pl.collect_all(scans), strict=True))
        return {n: f for n in sorted(set(names)) if (f := self.shards.get(n)) is not None}

    def forget(self) -> None:
        """Let go of the committed shards read back (:meth:`read` reads them again)."""
        self.shards.update((n, None) for n in self.shards if n in self.saved)

    def rows(self, table: str, months: Iterable[str] | None = None) -> pl.DataFrame:
        """The rows of ``table`` in the shards of ``months`` (``None``: every shard), in month
        order (rows without a day last): every row of those months, in the order of all rows."""
        frames = list(self.read(self.shards if months is None else months).values())
        return pl.concat(frames) if frames else pl.DataFrame(schema=_SCHEMAS[table])

    @property
    def height(self) -> int:
        """How many rows it holds (the shards not read: their committed count)."""
        return sum(self.saved[n].rows if f is None else f.height for n, f in self.shards.items())

    def digests(self, table: str) -> Digests | None:
        """The digest of each store partition day (``None``: not kept for ``table``); call
        after :func:`save`, or on a snapshot loaded unchanged."""
        if table not in _DIGESTED:
            return None
        found: Digests = {}
        for shard in self._facts(table):
            found.update(shard.digests)
        return found

    def chains(self, table: str) -> tuple[int, pl.DataFrame]:
        """Of callback attempts: how many chains, and their gaps
        (:func:`engine.validate.callback_attempts.callback_gaps`, in its order)."""
        facts = self._facts(table)
        gaps = pl.DataFrame([g for f in facts for g in f.gaps], schema=_GAPS, orient="row")
        return sum(f.chains for f in facts), gaps.sort("source", "original_id")

    def released(self) -> Snapshot:
        """This snapshot holding no rows and no bookkeeping in memory: a shard is read again
        when asked for (:meth:`read`), and a run needs only rows, digests and chains once its
        snapshot is refreshed. Only of a snapshot as committed (every shard saved)."""
        assert self.folder is not None
        assert set(self.shards) <= set(self.saved)
        return replace(
            self,
            index=self.index.clear(),
            idents=self.idents.clear(),
            homes=self.homes.clear(),
            shards=dict.fromkeys(self.shards),
        )

    def _facts(self, table: str) -> list[Shard]:
        """What each shard keeps besides its rows: as committed, or of its rows."""
        found = []
        for name, frame in self.shards.items():
            if (shard := self.saved.get(name)) is None:
                assert frame is not None
                shard = _shard(frame, table, "")
            found.append(shard)
        return found


def months_near(windows: Iterable[tuple[datetime, datetime]]) -> set[str]:
    """The shards (UTC months) of every day from a day before each window's start to a day
    after its end, and the shard of rows without a day."""
    found = {_NO_DAY}
    for lo, hi in windows:
        day, last = (lo - _DAY).date(), (hi + _DAY).date()
        while day <= last:
            found.add(day.strftime("%Y-%m"))
            day = (day.replace(day=1) + timedelta(days=32)).replace(day=1)
    return found


def _shard_of(table: str) -> pl.Expr:
    """A row's shard: the UTC month of its :data:`SHARD_BY` instant (an attempt's: its chain's
    first attempt's, in chain order: the chain's request, which the store partitions it by)."""
    at = pl.col(SHARD_BY[table])
    if table == "callback_attempts":
        at = at.sort_by(list(ORDER)).first().over(CHAIN_ORDER[:2])
    return at.dt.strftime("%Y-%m").fill_null(_NO_DAY).alias(_SHARD)


def sharded(
    table: str, rows: pl.DataFrame, into: dict[str, pl.DataFrame | None] | None = None
) -> tuple[dict[str, pl.DataFrame | None], set[str]]:
    """``rows`` appended to the month shards ``into`` (none: new shards; a shard they reach
    must have been read), and the shards they reached; :func:`in_order` sorts them (once for
    many appends: a stable sort of the rows appended in turn gives what sorting after each
    append gives)."""
    out, reached = dict(into or {}), set[str]()
    if not rows.height:
        return out, reached
    keyed = rows.with_columns(_shard_of(table))
    for (key,), found in keyed.partition_by(_SHARD, as_dict=True).items():
        name, part = str(key), found.drop(_SHARD)
        had = out.get(name)
        assert name not in out or had is not None, f"shard {name} not read"
        whole = part if had is None else pl.concat([had, part], how="vertical_relaxed")
        out[name] = whole
        reached.add(name)
    return out, reached


def in_order(
    shards: dict[str, pl.DataFrame | None], order: list[str], names: Iterable[str] | None = None
) -> None:
    """Sort the ``shards`` held in memory (those ``names``, or all) in ``order``, in place, a
    shard at a time."""
    for name in list(shards) if names is None else names:
        if (frame := shards.get(name)) is not None:
            shards[name] = frame.sort(order, nulls_last=True, maintain_order=True)


def homes_of(table: str, rows: pl.DataFrame, identities: list[pl.Expr]) -> pl.DataFrame:
    """Each identity of ``rows`` (``identities``: their hashes) with the shards its rows are in."""
    found = [rows.select(i.alias("__ident"), _shard_of(table)) for i in identities]
    return pl.concat(found).unique() if found else pl.DataFrame(schema=HOMES)


def _shard(rows: pl.DataFrame, table: str, file: str, size: int = 0) -> Shard:
    """A shard of ``rows`` in ``file``: the digests of its partition days (an attempt's: its
    request's), and of callback attempts its chains and gaps."""
    if table == "contacts":
        days = rows.select(days_of(_DIGESTED[table]))[PARTITION]
        return Shard(file, day_digests(rows, days), rows.height, size)
    ordered = in_chain_order(rows.lazy()).collect()
    digests = day_digests(ordered, request_dates(ordered))
    chains = ordered.select(pl.struct(CHAIN_ORDER[:2]).n_unique()).item()
    gaps = [list(g) for g in callback_gaps(ordered.lazy()).collect().iter_rows()]
    return Shard(file, digests, rows.height, size, chains, gaps)


def load(folder: Path, key: str, files: dict[str, int] | None = None) -> Snapshot | None:
    """The committed snapshot, or ``None`` (none, another key or layout, unreadable, or a
    shard's file missing or of another size). Its shards are read when asked for. Made from
    exactly the landed ``files``, it needs no index, identities or homes (nothing to redo):
    those are not read, only their files' footers (empty; :func:`scan_part` reads one)."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("key") != key or meta.get("format") != FORMAT:
            return None
        saved = {str(k): Shard(**v) for k, v in meta["shards"].items()}
        if any((folder / s.file).stat().st_size != s.size for s in saved.values()):
            return None
        pieces = {n: {str(k): str(v) for k, v in meta["parts"][n].items()} for n in _WHOLE_PARTS}
        same = files is not None and {str(k): int(v) for k, v in meta["files"].items()} == files
        wanted = ("quarantine",) if same else _WHOLE_PARTS
        for name in set(_WHOLE_PARTS) - set(wanted):  # a lost or torn one: unusable, as when read
            for file in pieces[name].values():
                pl.read_parquet_schema(folder / file)
        names = [(n, f) for n in wanted for f in pieces[n].values()]
        read = pl.collect_all([pl.scan_parquet(folder / f) for _, f in names])  # in parallel
        parts = {n: [r for (m, _), r in zip(names, read, strict=True) if m == n] for n in pieces}
        whole = {
            n: pl.concat(p) if p else pl.DataFrame(schema=_PART_SCHEMAS[n])
            for n, p in parts.items()
        }
        return Snapshot(
            {str(k): int(v) for k, v in meta["files"].items()},
            whole["index"],
            whole["idents"],
            dict.fromkeys(saved),
            whole["quarantine"],
            homes=whole["homes"],
            records=int(meta["records"]),
            saved=saved,
            folder=folder,
            pieces=pieces,
            dirty={},
            sums={str(k): str(v) for k, v in meta["sums"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError, pl.exceptions.PolarsError):
        return None


def scan_part(snap: Snapshot, name: str) -> pl.LazyFrame:
    """The bookkeeping part ``name`` of the committed ``snap`` as committed, read lazily."""
    assert snap.folder is not None
    found = [pl.scan_parquet(snap.folder / f) for f in snap.pieces[name].values()]
    return pl.concat(found) if found else pl.LazyFrame(schema=_PART_SCHEMAS[name])


def _write(
    folder: Path, name: str, frame: pl.DataFrame, sums: dict[str, str], *, whole: bool = False
) -> int:
    """One part, atomically. Nothing reads a part's statistics (a part is read whole), so none
    are written; the whole parts, rewritten by every run that changes the snapshot, are
    compressed with Snappy (at a year, ~30 % less time than zstd for ~1 MB more on disk).
    Row groups of :data:`_ROW_GROUP` rows: the writer holds one encoded (a million-row index
    written as one group held ~23 MiB more while written, in groups of 65,536 ~12; the 263K
    rows of a 272-day first run's index ~13 in groups of 65,536, ~7 in groups of 16,384)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="snappy" if whole else "zstd",
                        compression_level=None if whole else 1, statistics=False,
                        row_group_size=_ROW_GROUP)  # fmt: skip
    atomic_write_bytes(folder / name, data := buffer.getvalue())
    sums[name] = file_sum(data)
    return len(data)


def _pieces(
    folder: Path, name: str, snap: Snapshot, tag: str, sums: dict[str, str]
) -> dict[str, str]:
    """Write the changed pieces of the bookkeeping part ``name``: its piece files after."""
    frame, column = getattr(snap, name), _PIECE_OF[name]
    if column is None:  # small: one piece, written whole
        _write(folder, f"{name}-all-{tag}.parquet", frame, sums, whole=True)
        return {"all": f"{name}-all-{tag}.parquet"}
    dirty = None if snap.dirty is None else snap.dirty.get(name, set())
    found = {} if dirty is None else dict(snap.pieces.get(name, {}))
    changed = pieces_of(frame, column) if dirty is None else dirty
    for piece in sorted(changed, key=str):  # a piece's rows at a time, not a copy of the part
        rows, key = frame.filter(pl.col(column).eq_missing(piece)), str(piece)
        found.pop(key, None)
        if rows.height:
            found[key] = f"{name}-{key}-{tag}.parquet"
            _write(folder, found[key], rows, sums, whole=True)
    return found


def pieces_of(frame: pl.DataFrame, column: str = _PIECE) -> set[str]:
    """The pieces ``frame``'s rows are in (by ``column``)."""
    return set(frame[column].unique().to_list())


def parted(idents: pl.DataFrame, homes: pl.DataFrame) -> pl.DataFrame:
    """``idents`` with their piece: the first shard of their identity's rows in ``homes``
    (none: the shard of rows without a day)."""
    first = homes.group_by("__ident").agg(pl.col(_SHARD).min().alias(_PIECE))
    found = idents.drop(_PIECE, strict=False).join(first, on="__ident", how="left")
    return found.with_columns(pl.col(_PIECE).fill_null(_NO_DAY))


def save(folder: Path, key: str, snap: Snapshot, table: str) -> None:
    """Write the whole parts and the changed shards, then commit them with ``meta.json``
    (atomic); drop the files it does not name (not dotfiles: temporary files are the sweep's)."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    sums = dict(snap.sums)
    parts = {name: _pieces(folder, name, snap, tag, sums) for name in _WHOLE_PARTS}
    saved = {k: s for k, s in snap.saved.items() if k in snap.shards}
    for name, rows in snap.shards.items():
        if name not in saved:
            assert rows is not None
            file = f"rows-{name}-{tag}.parquet"
            saved[name] = _shard(rows, table, file, _write(folder, file, rows, sums))
    killpoint.reached("snapshot.parts_written")
    keep = {*(f for p in parts.values() for f in p.values()), *(s.file for s in saved.values())}
    meta = {
        "format": FORMAT,
        "key": key,
        "parts": parts,
        "shards": {k: asdict(s) for k, s in sorted(saved.items())},
        "files": snap.files,
        "records": snap.records,
        "sums": {f: sums[f] for f in sorted(keep)},
    }
    atomic_write_bytes(folder / "meta.json", json.dumps(meta, sort_keys=True).encode())
    snap.saved, snap.folder, snap.pieces, snap.dirty = saved, folder, parts, {}
    snap.sums = meta["sums"]  # type: ignore[assignment]
    keep.add("meta.json")
    for old in folder.iterdir():
        if old.name not in keep and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    fsync_dir(folder)
