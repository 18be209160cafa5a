"""Whole numbers and identifiers at the validation boundary, shared by contacts and callback
attempts (:mod:`engine.validate.contacts`, :mod:`engine.validate.callback_attempts`).

:func:`parse_integer` reads an integer column from whatever type the input holds it in
(integers of any width, floats, text): a value that is not a whole number is ``wrong_type``. A
whole number beyond the target type's range (a float ``1e20``, a ``UInt64``, an NDJSON
``99999999999999999999``, the same digits in a CSV) is never silently made null, nor does it
fail the whole file: for a column whose range rules catch every value beyond a plausible bound
(a duration or a count: ``negative_duration``, ``implausible_duration``,
``implausible_count``), it saturates to the target's bounds so that those rules report it by
its sign, as they report an in-range huge value; for any other column (``segment_no``,
``retry_attempt``) it is ``wrong_type``.

:func:`blank` flags an identifier that is null, empty or only whitespace (``missing_id``).

Example:
    >>> frame = pl.DataFrame({"talk_ms": [1.0, 1.5, 1e20, -1e20]})
    >>> value, bad = parse_integer("talk_ms", frame.schema["talk_ms"], pl.Int64(), saturate=True)
    >>> frame.select(value, bad.alias("bad")).rows()  # doctest: +NORMALIZE_WHITESPACE
    [(1, False), (None, True), (9223372036854775807, False), (-9223372036854775807, False)]
"""

from __future__ import annotations

import polars as pl

__all__ = ["blank", "parse_integer"]

_LARGEST: dict[type[pl.DataType], int] = {
    pl.Int8: 2**7 - 1,
    pl.Int16: 2**15 - 1,
    pl.Int32: 2**31 - 1,
    pl.Int64: 2**63 - 1,
}


def parse_integer(
    name: str, dtype: pl.DataType, target: pl.DataType, *, saturate: bool = False
) -> tuple[pl.Expr, pl.Expr]:
    """The column ``name`` (of input type ``dtype``) as ``target``, and a flag for 'held a value
    that is not a whole number of ``target``' (``wrong_type``).

    A whole number beyond ``target``'s range is flagged too, or, with ``saturate``, becomes
    ``target``'s largest value of its sign (``±(2**63 - 1)`` for ``Int64``; never the
    minimum, whose absolute value no ``Int64`` holds), for the caller's range rules to flag.
    A null (or an absent, all-null column) is null and not flagged: the caller's default
    applies.
    """
    col = pl.col(name)
    if dtype == pl.Null:  # absent (or all-null) column: the caller's default applies
        return pl.lit(None, target), pl.lit(value=False)
    if dtype.is_integer():
        value = col.cast(target, strict=False)
        bad, beyond, positive = pl.lit(value=False), col.is_not_null() & value.is_null(), col > 0
    elif dtype.is_float():
        whole = col.is_null() | (col.is_finite() & (col == col.floor()))
        value = pl.when(whole).then(col).cast(target, strict=False)
        bad, beyond, positive = ~whole, col.is_not_null() & whole & value.is_null(), col > 0
    else:
        text = col.cast(pl.String).str.strip_chars()
        value = text.cast(target, strict=False)
        digits = text.str.contains(r"^[+-]?[0-9]+$")  # a whole number, whatever its size
        beyond = (digits & value.is_null()).fill_null(value=False)
        bad = col.is_not_null() & value.is_null() & ~beyond
        positive = ~text.str.starts_with("-")
    if not saturate:
        return value, bad | beyond
    largest = _LARGEST[target.base_type()]
    bound = pl.when(positive).then(pl.lit(largest)).otherwise(pl.lit(-largest)).cast(target)
    return pl.when(beyond).then(bound).otherwise(value), bad


def blank(name: str, dtype: pl.DataType) -> pl.Expr:
    """Whether the identifier column ``name`` (of input type ``dtype``) is null, empty or only
    whitespace: an id of ``""`` or ``"  "`` names nothing, as a null does not."""
    col = pl.col(name)
    if isinstance(dtype, pl.String | pl.Categorical | pl.Enum):
        return col.is_null() | (col.cast(pl.String).str.strip_chars() == "")
    return col.is_null()
