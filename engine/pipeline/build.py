"""The pipeline edge: read inputs, run the pure builders, collect once, write every output.

Everything else in ``engine`` is a pure ``LazyFrame -> LazyFrame`` function; this module is where
frames are collected and files are written.

Example:
    >>> from pathlib import Path
    >>> from engine.settings import BuildSettings
    >>> from engine.demo.contacts import generate_contacts
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> report = build_contacts(generate_contacts(days=1).lazy(), settings=BuildSettings(),
    ...                         out_dir=out)
    >>> report.quarantined_total
    0
"""

from __future__ import annotations

import codecs
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import polars as pl

from engine.app.sections import EngineSettings
from engine.errors import InputFileError
from engine.interval import Grid, Window
from engine.output import delta, location
from engine.output import files as export
from engine.output.contacts import scan_files, sink_contacts
from engine.output.datafiles import discard
from engine.schema import CONTACTS, QUARANTINE
from engine.settings import BuildSettings
from engine.tables import callvolume
from engine.tables.dense import busy, filled_size

__all__ = [
    "FORMATS",
    "BuildReport",
    "InputFileError",
    "build_contacts",
    "build_report",
    "data_window",
    "iso_utc",
    "quarantine_counts",
    "read_table",
    "volume_table",
]

Format = Literal["parquet", "csv", "ndjson", "kore"]
FORMATS: tuple[Format, ...] = ("parquet", "csv", "ndjson", "kore")


def read_table(path: Path) -> pl.LazyFrame:
    """Scan a Parquet, CSV or NDJSON file, a directory of Parquet files or a table of the store
    (a Delta Lake table, checked against its log first) lazily.

    CSV columns are read as text and parsed at the validation boundary, so a bad value becomes a
    quarantine row instead of a failed read.
    """
    if not path.exists():
        raise InputFileError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if delta.is_table(path):  # a table of the store (or any Delta table)
        found = delta.problems(path)
        if found:
            raise InputFileError(f"{found[0]}: the table is damaged")
        return delta.scan(path)
    if path.is_dir():
        return _scan_directory(path)
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: the file is empty (not even a header)")
    if suffix == ".parquet":
        return pl.scan_parquet(path)
    if suffix == ".csv":
        return pl.scan_csv(path, infer_schema=False)
    if suffix in {".ndjson", ".jsonl"}:
        return pl.scan_ndjson(path, infer_schema_length=None)
    msg = f"{path}: unknown file kind {suffix!r} (expected .parquet, .csv, .ndjson or .jsonl)"
    raise InputFileError(msg)


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    """A column as the text a CSV would hold (instants in ISO 8601 with ``Z``)."""
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
    return pl.col(column).cast(pl.String)


def _scan_directory(path: Path) -> pl.LazyFrame:
    """The Parquet files under ``path`` as one frame. When files disagree on a column's type,
    that column is read as text from every file and parsed at the validation boundary, as a
    CSV's would be (instead of failing the whole directory)."""
    files = sorted(path.rglob("*.parquet"))
    if not files:
        raise InputFileError(f"{path}: no Parquet files in the directory")
    try:
        schemas = [pl.read_parquet_schema(f) for f in files]  # footers only
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputFileError(f"{path}: {str(exc).strip().splitlines()[0]}") from None
    names = {name for schema in schemas for name in schema}
    mixed = {n for n in names if len({s[n] for s in schemas if n in s}) > 1}  # types differ
    if not mixed:
        return pl.scan_parquet(files, hive_partitioning=False)
    parts = [
        pl.scan_parquet(f, hive_partitioning=False).with_columns(
            _as_text(c, schema[c]) for c in mixed if c in schema
        )
        for f, schema in zip(files, schemas, strict=True)
    ]
    return pl.concat(parts, how="diagonal")


def _is_utf8(path: Path, chunk: int = 1 << 24) -> bool:
    """Whether the whole file decodes as UTF-8 (read in chunks: memory stays flat)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as fh:
        try:
            while block := fh.read(chunk):
                decoder.decode(block)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False
    return True


def _without_bad_lines(path: Path, *, csv: bool) -> tuple[bytes, pl.DataFrame]:
    """The file with each line that is not UTF-8 blanked (NDJSON) or left out (CSV), and those
    lines (``n``, ``line`` with each bad byte written as ``\\xNN``).

    Raises:
        InputFileError: a CSV whose bad line is its header or lies inside a quoted field (it
            cannot be isolated as one record).
    """
    kept: list[bytes] = []
    numbers: list[int] = []
    texts: list[str] = []
    quoted = False  # a CSV line starts inside a quoted field (an odd number of quotes before)
    for n, raw in enumerate(path.read_bytes().splitlines(keepends=True), 1):
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            if csv and (n == 1 or quoted or raw.count(b'"') % 2):
                where = "the header" if n == 1 else f"line {n}, inside a quoted field,"
                msg = f"{path}: {where} is not UTF-8 (save the file as UTF-8)"
                raise InputFileError(msg) from None
            numbers.append(n)
            texts.append(raw.rstrip(b"\r\n").decode("utf-8", "backslashreplace"))
            if not csv:
                kept.append(b"\n")  # a blank line: the others keep their numbers
            continue
        if csv and raw.count(b'"') % 2:
            quoted = not quoted
        kept.append(raw)
    return b"".join(kept), pl.DataFrame({"n": numbers, "line": texts}, schema=_LINES)


_LINES = {"n": pl.UInt32, "line": pl.String}


def _unparsable(lines: pl.DataFrame, table: str, detail: str) -> pl.DataFrame:
    """Quarantine rows of whole input lines (``record_id`` ``line <n>``, ``raw`` the line)."""
    return lines.select(
        pl.lit(None, pl.String).alias("source"),
        pl.lit(table).alias("table"),
        pl.concat_str(pl.lit("line "), "n").alias("record_id"),
        pl.lit("unparsable_line").alias("reason"),
        pl.lit(detail).alias("detail"),
        pl.col("line").alias("raw"),
    )


def read_input(path: Path, table: str) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """:func:`read_table`, and the lines of a CSV or NDJSON file that cannot be read, set aside.

    One bad line of an NDJSON file (not UTF-8, or not a JSON object) or of a CSV file (not
    UTF-8) is quarantined as that line (reason ``unparsable_line``, ``record_id`` ``line <n>``,
    ``raw`` the line, each byte that is not UTF-8 written as ``\\xNN``) and the others are read;
    Parquet is read whole by :func:`read_table`. Blank NDJSON lines are skipped.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "c.ndjson"
        >>> _ = path.write_bytes(b'{"a": 1}\\n{"a": "\\xff"}\\nnot json\\n')
        >>> frame, set_aside = read_input(path, "contacts")
        >>> frame.collect().height, set_aside["record_id"].to_list(), set_aside["raw"][0]
        (1, ['line 2', 'line 3'], '{"a": "\\\\xff"}')

    Raises:
        InputFileError: as :func:`read_table`; a CSV line that is not UTF-8 and cannot be
            isolated as one record (the header, or inside a quoted field).
    """
    suffix = path.suffix.lower()
    frame = read_table(path)  # the checks: exists, not empty, a kind we read
    nothing = pl.DataFrame(schema=QUARANTINE)
    if path.is_dir() or suffix not in {".ndjson", ".jsonl", ".csv"}:
        return frame, nothing
    utf8 = _is_utf8(path)
    if suffix == ".csv":
        if utf8:
            return frame, nothing
        data, bad_bytes = _without_bad_lines(path, csv=True)
        set_aside = _unparsable(bad_bytes, table, f"{path.name}: not UTF-8")
        return pl.scan_csv(data, infer_schema=False), set_aside.cast(QUARANTINE)  # type: ignore[arg-type]
    source: Path | bytes = path
    bad_bytes = pl.DataFrame(schema=_LINES)
    if not utf8:
        source, bad_bytes = _without_bad_lines(path, csv=False)
    lines = (
        pl.scan_lines(source, row_index_name="n", row_index_offset=1)
        .filter(pl.col("line").str.strip_chars() != "")
        .collect()
    )
    text = pl.col("line")
    is_object = (
        text.str.strip_chars_start().str.starts_with("{")
        & text.str.json_path_match("$").is_not_null()
    )
    good, bad = lines.filter(is_object), lines.filter(~is_object)
    if good.height:
        joined = good.select(text.str.join("\n")).item()
        frame = pl.read_ndjson(joined.encode(), infer_schema_length=None).lazy()
    else:
        frame = pl.LazyFrame()
    set_aside = pl.concat(
        [
            _unparsable(bad_bytes, table, f"{path.name}: not UTF-8"),
            _unparsable(bad.select(*_LINES), table, f"{path.name}: not a JSON object"),
        ]
    ).sort(pl.col("record_id").str.extract(r"(\d+)").cast(pl.Int64))
    return frame, set_aside.cast(QUARANTINE)  # type: ignore[arg-type]


def data_window(contacts: pl.DataFrame | pl.LazyFrame, settings: BuildSettings) -> Grid:
    """The smallest whole-interval grid holding every segment's attribution instant."""
    at = pl.coalesce("ended_at" if settings.attribution == "end" else "offered_at", "offered_at")
    lo, hi = contacts.lazy().select(at.min(), at.max().alias("hi")).collect().row(0)
    if lo is None:
        msg = "no valid contacts to take a window from: give --start and --end"
        raise ValueError(msg)
    return settings.grid((lo, hi + timedelta(microseconds=1)))


@dataclass
class BuildReport:
    """What a build read, rejected and wrote (printed by the CLI, saved as ``summary.json``)."""

    rows_in: int
    contacts: int
    quarantined: dict[str, int]
    collapsed: int
    window: tuple[str, str]
    interval_minutes: int
    tz: str
    intervals: int
    queue_channels: int
    table_rows: int
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def quarantined_total(self) -> int:
        """Rows quarantined for any reason."""
        return sum(self.quarantined.values())


def _write_table(
    name: str, table: pl.DataFrame, out_dir: Path, formats: tuple[Format, ...], **kore: Any
) -> list[Path]:
    written: list[Path] = []
    if "parquet" in formats:  # the store keeps busy rows (engine.tables.dense)
        store = out_dir / "store" / name
        written.append(export.write_store(table.filter(busy(name)), store, by="interval_start_utc"))
    if "csv" in formats:
        written.append(export.write_csv(table, out_dir / "exports" / f"{name}.csv"))
    if "ndjson" in formats:
        written.append(export.write_ndjson(table, out_dir / "exports" / f"{name}.ndjson"))
    if "kore" in formats and name == "callvolume":
        path = out_dir / "exports" / "callvolume_document.json"
        written.append(export.write_document(table, path, **kore))
    return written


def build_contacts(
    contacts: pl.LazyFrame,
    *,
    settings: BuildSettings,
    out_dir: Path,
    window: Window | None = None,
    formats: tuple[Format, ...] = FORMATS,
    org_id: str = "wfm-intervals",
    duration_unit: export.DurationUnit = "ms",
    set_aside: pl.DataFrame | None = None,
    engine: EngineSettings | None = None,
) -> BuildReport:
    """Validate contacts, build the volume table and write the store and exports.

    Args:
        contacts: contacts in the canonical shape (text columns allowed).
        settings: what to build.
        out_dir: where ``store/``, ``exports/`` and ``summary.json`` go.
        window: ``[start, end)``; default: the whole-interval span of the data.
        formats: which outputs to write besides the quarantine and summary.
        org_id: ``orgId`` of the Contact Volume document.
        duration_unit: durations of the Contact Volume document.
        set_aside: quarantine rows of the input found before (:func:`read_input`).
        engine: where the volume table is built (:func:`volume_table`; default: here).
    """
    began, tag = time.perf_counter(), uuid.uuid4().hex[:12]
    path, ray = out_dir / "store" / "contacts", engine is not None and engine.kind == "ray"
    try:  # the contacts sunk to the store's files as they stream: never held
        sunk = sink_contacts(contacts, path, tag=tag, max_duration_ms=settings.max_duration_ms)
        clean, quarantine = scan_files(path, sunk.files), sunk.quarantine
        if set_aside is not None and set_aside.height:
            quarantine = pl.concat([set_aside.cast(quarantine.schema), quarantine])
        grid = data_window(clean, settings) if window is None else settings.grid(window)
        # Parquet alone is the store, which keeps busy rows: then no zero row is built
        dense = any(f != "parquet" for f in formats)
        if not ray:  # built from the files, then committed: a failure leaves the store as it was
            table = volume_table(clean, window=grid, settings=settings, dense=dense)
        delta.commit_files(path, sunk.files, schema=pl.Schema(CONTACTS), tag=tag)
    except BaseException:
        discard(path, tag)  # files no version names: the store is as it was
        raise
    into = None if dense or not ray else out_dir / "store" / "callvolume"  # the tasks write it
    if ray:  # committed first: the cluster's tasks read the store's partitions themselves
        table = volume_table(clean, window=grid, settings=settings, dense=dense, engine=engine,
                             stored=path, into=into)  # fmt: skip
    rows_in, files = sunk.rows_in + (0 if set_aside is None else set_aside.height), [path]
    kore = {"org_id": org_id, "unit": duration_unit}
    files += [into] if into else _write_table("callvolume", table, out_dir, formats, **kore)
    files.append(export.write_csv(quarantine, out_dir / "quarantine" / "contacts.csv"))
    report = build_report(
        table, rows_in=rows_in, contacts=sunk.contacts, quarantine=quarantine,
        window=grid, settings=settings, busy_only=not dense,
    )  # fmt: skip
    report.files = [location.shown(f) for f in files]
    report.seconds = round(time.perf_counter() - began, 3)
    summary = out_dir / "summary.json"
    export.write_json(asdict(report), summary)
    report.files.append(location.shown(summary))
    return report


def volume_table(
    contacts: pl.DataFrame | pl.LazyFrame,
    *,
    window: Window | Grid,
    settings: BuildSettings,
    dense: bool = True,
    engine: EngineSettings | None = None,
    stored: Path | None = None,
    into: Path | None = None,
) -> pl.DataFrame:
    """The volume table of ``window`` (with its derived ratios) from validated contacts; with
    ``dense=False`` its busy rows only (:func:`engine.tables.callvolume.busy_rows`). Built here,
    or on the Ray cluster of ``engine`` (:func:`engine.distributed.ray_engine.volume_table`:
    ``into`` as there, ``stored`` its ``contacts``: the committed store table of ``contacts``).

    Raises:
        ClusterError: the ray engine without Ray, or its cluster cannot be joined.
    """
    if engine is not None and engine.kind == "ray":
        from engine.distributed import ray_engine  # noqa: PLC0415 - an optional extra

        grid, rows = settings.grid(window), contacts.lazy().collect() if stored is None else stored
        return ray_engine.volume_table(
            rows, grid=grid, settings=settings, address=engine.address, dense=dense, into=into
        )
    make = callvolume.build if dense else callvolume.busy_rows
    lazy = make(contacts.lazy(), window=window, settings=settings)
    return callvolume.derive(lazy, settings=settings).collect(engine="streaming")


def build_report(
    table: pl.DataFrame,
    *,
    rows_in: int,
    contacts: int,
    quarantine: pl.DataFrame,
    window: Window | Grid,
    settings: BuildSettings,
    busy_only: bool = False,
) -> BuildReport:
    """What a build of ``table`` did: rows in, kept, quarantined and collapsed, and the table's
    shape (``files`` and ``seconds`` are the caller's to fill in). ``busy_only``: ``table`` is
    the busy rows of the window's table; the shape is the whole (zero-filled) table's."""
    grid = settings.grid(window)
    window, pairs = grid.window, table.select("queue_id", "channel").n_unique()
    intervals, table_rows = table["interval_start_utc"].n_unique(), table.height
    if busy_only:
        intervals, table_rows = filled_size(table, "callvolume", grid.frame)
    return BuildReport(
        rows_in=rows_in,
        contacts=contacts,
        quarantined=quarantine_counts(quarantine),
        collapsed=rows_in - contacts - quarantine.height,
        window=(iso_utc(window[0]), iso_utc(window[1])),
        interval_minutes=settings.interval_minutes,
        tz=settings.tz,
        intervals=intervals,
        queue_channels=pairs,
        table_rows=table_rows,
    )


def iso_utc(value: datetime) -> str:
    """An instant as ISO 8601 with ``Z`` (the summaries' format)."""
    return value.isoformat().replace("+00:00", "Z")


def quarantine_counts(quarantine: pl.DataFrame) -> dict[str, int]:
    """Quarantined rows per reason, in reason order."""
    rows = quarantine.group_by("reason").len().sort("reason").iter_rows()
    return {str(reason): int(n) for reason, n in rows}
