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
from engine.output.datafiles import WRITTEN
from engine.schema import CALLBACK_ATTEMPTS, CONTACTS, QUARANTINE
from engine.validate.numbers import MISFIT, misfits_as_text

__all__ = ["InputFileError", "not_a_table_without_its_log", "read_input", "read_table"]


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
        found = delta.problems(path, whole=True)  # a table given as input: read it all
        if found:
            raise InputFileError(f"{found[0]}: the table is damaged")
        return delta.scan(path)
    if path.is_dir():
        not_a_table_without_its_log(path)
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


def not_a_table_without_its_log(path: Path) -> None:
    """Refuse a store table read as a plain Parquet directory: its files hold the rows of
    every version (replaced ones too), and only the log says which are current.

    Raises:
        InputFileError: ``path`` has a log with no version (a first commit that never
            happened: no rows), or holds the store writer's files and no log (lost).
    """
    if (path / "_delta_log").is_dir():
        msg = f"{path}: a store table never committed (its log holds no version): build it again"
        raise InputFileError(msg)
    if any(WRITTEN.fullmatch(f.relative_to(path).as_posix()) for f in path.glob("*/*")):
        msg = (
            f"{path}: a store table without its log (_delta_log): its files hold every version's "
            "rows, replaced ones too; restore _delta_log from a backup, or build it again"
        )
        raise InputFileError(msg)


def _as_text(column: str, dtype: pl.DataType) -> pl.Expr:
    """A column as the text a CSV would hold (instants in ISO 8601 with ``Z``; a whole float or
    decimal as its digits, ``331213`` and not ``331213.0``, which the integer columns' parse
    refuses: read alone, such a file's whole floats are taken).

    Example:
        >>> frame = pl.DataFrame({"w": [331213.0, 2.5, None]})
        >>> frame.select(_as_text("w", pl.Float64()))["w"].to_list()
        ['331213', '2.5', None]
    """
    if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
        return pl.col(column).dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.fZ")
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        whole = pl.col(column).cast(pl.Int64, strict=False)
        text = pl.when(whole.cast(dtype) == pl.col(column)).then(whole.cast(pl.String))
        return text.otherwise(pl.col(column).cast(pl.String)).alias(column)
    return pl.col(column).cast(pl.String)


def _scan_directory(path: Path) -> pl.LazyFrame:
    """The Parquet files under ``path`` as one frame. When files disagree on a column's type,
    that column is read as text from every file and parsed at the validation boundary, as a
    CSV's would be (instead of failing the whole directory).

    A file or folder whose name starts with ``.`` or ``_`` is skipped, as Parquet, Spark and
    Delta writers mean it (``.part-0.parquet`` being written, ``_temporary/``, ``_delta_log/``).

    Raises:
        InputFileError: no Parquet file; one that cannot be read (named).
    """
    files = sorted(
        f
        for f in path.rglob("*.parquet")
        if f.is_file() and not any(p.startswith((".", "_")) for p in f.relative_to(path).parts)
    )
    if not files:
        msg = f"{path}: no Parquet files in the directory (names starting . or _ are skipped)"
        raise InputFileError(msg)
    schemas = []
    for file in files:  # footers only
        try:
            schemas.append(pl.read_parquet_schema(file))
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise InputFileError(f"{file}: {str(exc).strip().splitlines()[0]}") from None
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


def _survey(path: Path, chunk: int = 1 << 24) -> tuple[bool, bool]:
    """Whether the whole file decodes as UTF-8, and whether it has a blank line (a line
    break right after another), read in chunks: memory stays flat."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    blank, tail = False, b""
    with path.open("rb") as fh:
        try:
            while block := fh.read(chunk):
                decoder.decode(block)
                seen = tail + block
                blank = blank or b"\n\n" in seen or b"\n\r\n" in seen
                tail = seen[-2:]
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return False, blank
    return True, blank


def _without_bad_lines(path: Path, *, csv: bool) -> tuple[bytes, pl.DataFrame]:
    """The file with each line that is not UTF-8 blanked (NDJSON) or left out (CSV), and those
    lines (``n``, ``line`` with each bad byte written as ``\\xNN``). A blank CSV line outside a
    quoted field is left out too (it is no record).

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
        if csv and not quoted and not raw.strip(b"\r\n"):
            continue  # a blank line: no record
        kept.append(raw)
    return b"".join(kept), pl.DataFrame({"n": numbers, "line": texts}, schema=_LINES)


_LINES = {"n": pl.UInt32, "line": pl.String}
_ROW = "__row"
#: The canonical columns of each table :func:`read_input` is asked for.
_CANONICAL: dict[str, dict[str, pl.DataType]] = {
    "contacts": CONTACTS,
    "callback_attempts": CALLBACK_ATTEMPTS,
}


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


def _without_blank_records(path: Path) -> pl.LazyFrame:
    """The CSV file ``path``, lazily, without the records that are wholly blank lines (Polars
    reads each as a row of nulls). A line is a record's start unless an odd number of quotes
    came before it (it lies inside a quoted field, where a blank line is part of a value); a
    row is left out only if it is such a blank line *and* all null, so a miscounted quote can
    never drop a row that holds anything."""
    line = pl.col("line")
    quotes = line.str.count_matches('"', literal=True)
    blank = line.str.strip_chars_end("\r") == ""
    # a record starts on a line outside quotes, from the header on (blank lines before the
    # header are no record to Polars either); the header is record -1
    starts = ((quotes.cum_sum() - quotes) % 2 == 0) & ((~blank).cum_sum() > 0)
    record = starts.cast(pl.Int64).cum_sum() - 2
    blanks = pl.scan_lines(path).select(record.filter(starts & blank).alias(_ROW)).collect()
    rows = pl.scan_csv(path, infer_schema=False, row_index_name=_ROW)
    empty = pl.all_horizontal(pl.all().exclude(_ROW).is_null())
    listed = pl.col(_ROW).cast(pl.Int64).is_in(blanks[_ROW].implode())
    return rows.filter(~(listed & empty)).drop(_ROW)


def _read_objects(lines: pl.DataFrame, table: str, path: Path) -> pl.LazyFrame:
    """The JSON objects of ``lines`` (column ``line``) as one frame, each key a column of the
    type its values share.

    Where some key's values share no type (a number in most lines but an object, a list or
    ``true`` in one), or a canonical column holds objects or lists, the table's canonical
    columns are read as text instead, each value as its JSON (the other keys are left out:
    validation reads only the canonical ones), and an integer column is typed back as the
    numbers it holds when every value is one: a value that does not fit its column is then
    quarantined by validation (``wrong_type``, with the row) as a CSV's would be, and the other
    rows are built.

    Raises:
        InputFileError: the lines cannot be read and ``table`` has no canonical columns.
    """
    text = pl.col("line")
    data = lines.select(text.str.join("\n")).item().encode()
    canonical = _CANONICAL.get(table, {})
    marks = _nested_marks(data, lines, list(canonical))
    try:
        typed = pl.read_ndjson(data, infer_schema_length=None)
    except pl.exceptions.PolarsError as exc:
        if not canonical:
            raise InputFileError(f"{path}: {str(exc).strip().splitlines()[0]}") from None
    else:  # a canonical column of objects or lists in every line is read as text too
        if not any(typed.schema[n].is_nested() for n in canonical if n in typed.schema):
            return typed.hstack(marks).lazy()
    # A key is there if some line names it, at the start of an object or after a comma.
    found = lines.select(
        text.str.contains(rf'[{{,]\s*"{name}"\s*:').any().alias(name) for name in canonical
    ).row(0, named=True)
    present = [name for name in canonical if found[name]]
    frame = pl.read_ndjson(data, schema=dict.fromkeys(present, pl.String()))
    numbers = [n for n in present if canonical[n].is_integer()]
    for dtype in (pl.Int64(), pl.Int128(), pl.Float64()):  # the narrowest type that holds all
        if not numbers:  # (a select of no column has no row)
            break
        fits = frame.select(
            (pl.col(n).is_null() | pl.col(n).cast(dtype, strict=False).is_not_null()).all()
            for n in numbers
        ).row(0, named=True)
        held = [n for n in numbers if fits[n]]
        frame = frame.with_columns(pl.col(n).cast(dtype) for n in held)
        numbers = [n for n in numbers if n not in held]
    return frame.hstack(marks).lazy()


def _nested_marks(data: bytes, lines: pl.DataFrame, names: list[str]) -> list[pl.Series]:
    """The :data:`~engine.validate.numbers.MISFIT` column of the NDJSON ``data`` (its lines
    ``lines``): per line, the columns of ``names`` whose value is an object or a list, which
    Polars would read into a text column as their JSON (``wrong_type`` in validation). Empty
    (no column) when no line gives one of ``names`` such a value."""
    if not names:
        return []
    keys = "|".join(names)  # a top-level key opening a value with '[' or '{', or a nested one
    opens = pl.col("line").str.contains(rf'[{{,]\s*"({keys})"\s*:\s*[\[{{]')
    if not lines.select(opens.any()).item():
        return []
    found = [  # a line's value that is not a list (or not an object) reads as null
        pl.read_ndjson(data, schema=dict.fromkeys(names, kind), ignore_errors=True)
        for kind in (pl.List(pl.Null()), pl.Struct({}))
    ]
    deep = pl.DataFrame([found[0][n].is_not_null() | found[1][n].is_not_null() for n in names])
    marks = pl.concat_list([pl.when(pl.col(n)).then(pl.lit(n)) for n in names])
    return [deep.select(marks.list.drop_nulls().alias(MISFIT)).to_series()]


def read_input(path: Path, table: str) -> tuple[pl.LazyFrame, pl.DataFrame]:
    """:func:`read_table`, and the lines of a CSV or NDJSON file that cannot be read, set aside.

    One bad line of an NDJSON file (not UTF-8, or not a JSON object) or of a CSV file (not
    UTF-8) is quarantined as that line (reason ``unparsable_line``, ``record_id`` ``line <n>``,
    ``raw`` the line, each byte that is not UTF-8 written as ``\\xNN``) and the others are read;
    Parquet is read whole by :func:`read_table`. Blank lines are skipped (of a CSV file, those
    outside a quoted field): they are no record. An NDJSON key whose values share no type is
    read as :func:`_read_objects` says (``table`` names the canonical columns:
    ``"contacts"`` or ``"callback_attempts"``).

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
        try:  # lists and structs as their JSON text
            return misfits_as_text(frame, _CANONICAL.get(table, {})), nothing
        except pl.exceptions.PolarsError:  # unreadable: named where the rows are read
            return frame, nothing
    utf8, blank = _survey(path)
    if suffix == ".csv":
        if utf8:
            return (_without_blank_records(path) if blank else frame), nothing
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
    frame = _read_objects(good, table, path) if good.height else pl.LazyFrame()
    set_aside = pl.concat(
        [
            _unparsable(bad_bytes, table, f"{path.name}: not UTF-8"),
            _unparsable(bad.select(*_LINES), table, f"{path.name}: not a JSON object"),
        ]
    ).sort(pl.col("record_id").str.extract(r"(\d+)").cast(pl.Int64))
    return frame, set_aside.cast(QUARANTINE)  # type: ignore[arg-type]
