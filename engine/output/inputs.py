"""The user's input files, read lazily: a Parquet, CSV or NDJSON file, a directory of Parquet
files, or a table of the store; the lines of a CSV or NDJSON file that cannot be read are set
aside as quarantine rows (:func:`read_input`), never a failed read.

Example:
    ``frame, set_aside = read_input(Path("contacts.csv"), "contacts")``
"""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl

from engine.errors import InputFileError
from engine.output import delta
from engine.schema import QUARANTINE

__all__ = ["InputFileError", "read_input", "read_table"]


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
