"""Dixa typed fields, decoded vectorised: landed records -> one row per field with typed values.

A Dixa analytics record is ``{"primaryTimestampField": {...}, "fields": [{"name": n, "field":
{"value": v, "label": l, "_type": t}}, ...]}``. :func:`decode_fields` turns the landed payloads
into a long frame (:data:`FIELD_SCHEMA`): ``text`` is the value as a string (JSON text for
objects and lists), and exactly one typed column is set according to ``_type``:

================  ==============  ==========================================================
``_type``         column          dtype
================  ==============  ==========================================================
LongField         ``long``        ``Int64``
DoubleField       ``double``      ``Float64``
BooleanField      ``boolean``     ``Boolean``
TimestampField    ``timestamp``   ``Datetime("us", "UTC")``
StringField       ``string``      ``String`` (``label`` holds the label)
ListField         ``items``       ``List(String)``
anything else     ``string``      ``String``: kept as text, never fatal
================  ==============  ==========================================================

A value that does not parse as its type leaves the typed column null (``text`` keeps it).

Two decoders, one result: payloads whose fields all have a known ``_type`` and no object or
nested-list value decode in one pass with an explicit dtype (values as ``List(String)``, which
takes scalars and flat lists); the rest (a vendor's new type with an object value) take a slower
path that reads each value's JSON text with ``str.json_path_match``. A scalar-typed field whose
value is a one-element list reads as that element.

Example:
    >>> import json
    >>> rec = {"fields": [{"name": "csid", "field": {"value": 7, "_type": "LongField"}},
    ...                   {"name": "mood", "field": {"value": {"s": 1}, "_type": "MoodField"}}]}
    >>> landed = pl.LazyFrame({"record_id": ["7"], "payload": [json.dumps(rec)]})
    >>> decode_fields(landed).select("name", "long", "string").collect().rows()
    [('csid', 7, None), ('mood', None, '{"s":1}')]
"""

from __future__ import annotations

from typing import Final

import polars as pl

from engine.schema import UTC_TS

__all__ = ["FIELD_SCHEMA", "KNOWN_TYPES", "RECORD_DTYPE", "decode_fields"]

KNOWN_TYPES: Final = (
    "LongField",
    "DoubleField",
    "BooleanField",
    "TimestampField",
    "StringField",
    "ListField",
)
_PRIMARY = pl.Struct({"name": pl.String, "timestamp": pl.String})


def _record(value: pl.DataType | None) -> pl.Struct:
    field = {"_type": pl.String, "label": pl.String} | ({"value": value} if value else {})
    entry = pl.Struct({"name": pl.String, "field": pl.Struct(field)})
    return pl.Struct({"primaryTimestampField": _PRIMARY, "fields": pl.List(entry)})


#: The record shape checked before landing (values are free: their type is in ``_type``).
RECORD_DTYPE: Final = _record(None)
_VALUES: Final = _record(pl.List(pl.String))

#: One row per field of a landed record.
FIELD_SCHEMA: Final[dict[str, pl.DataType]] = {
    "record_id": pl.String(),
    "name": pl.String(),
    "type": pl.String(),
    "label": pl.String(),
    "text": pl.String(),
    "long": pl.Int64(),
    "double": pl.Float64(),
    "boolean": pl.Boolean(),
    "timestamp": UTC_TS,
    "string": pl.String(),
    "items": pl.List(pl.String()),
}
_ANY_TYPE = r'"_type"\s*:\s*"'
_KNOWN_TYPE = rf'"_type"\s*:\s*"(?:{"|".join(KNOWN_TYPES)})"'
_STRUCTURED = r'"value"\s*:\s*(?:\{|\[\s*[\[\{])'
_FLAT_LIST = r'^\[\s*(?:"(?:[^"\\]|\\.)*"|[^\[\]{}"])*\]$'


def _json_list(items: pl.Expr) -> pl.Expr:
    """A list of strings as JSON text (escaped)."""
    encoded = pl.struct(items.alias("v")).struct.json_encode()
    return pl.when(items.is_not_null()).then(encoded.str.slice(5).str.strip_suffix("}"))


def _fast(landed: pl.LazyFrame) -> pl.LazyFrame:
    """Known types and scalar or flat-list values: one explicit-dtype decode."""
    f = pl.col("__f").struct.field
    items = pl.col("__items")
    return (
        landed.select(
            "record_id",
            pl.col("payload").str.json_decode(_VALUES).struct.field("fields").alias("__f"),
        )
        .explode("__f")
        .filter(pl.col("__f").is_not_null())
        .select(
            "record_id",
            f("name").alias("name"),
            f("field").struct.field("_type").alias("type"),
            f("field").struct.field("label").alias("label"),
            f("field").struct.field("value").alias("__items"),
        )
        .with_columns(
            pl.when((pl.col("type") != "ListField") & (items.list.len() == 1))
            .then(items.list.first())
            .otherwise(_json_list(items))
            .alias("text"),
            pl.when(pl.col("type") == "ListField").then(items).alias("items"),
        )
        .drop("__items")
    )


def _slow(landed: pl.LazyFrame) -> pl.LazyFrame:
    """Anything else: each value's JSON text by its index (robust, but one parse per field)."""
    meta = pl.col("payload").str.json_decode(RECORD_DTYPE).struct.field("fields")
    f = pl.col("__f").struct.field
    text = pl.col("text")
    flat = (pl.col("type") == "ListField") & text.str.contains(_FLAT_LIST)
    return (
        landed.select("record_id", "payload", meta.alias("__f"))
        .with_columns(pl.int_ranges(0, pl.col("__f").list.len().fill_null(0)).alias("__i"))
        .explode("__f", "__i")
        .filter(pl.col("__f").is_not_null())
        .select(
            "record_id",
            f("name").alias("name"),
            f("field").struct.field("_type").alias("type"),
            f("field").struct.field("label").alias("label"),
            pl.col("payload")
            .str.json_path_match(pl.concat_str(pl.lit("$.fields["), "__i", pl.lit("].field.value")))
            .alias("text"),
        )
        .with_columns(
            pl.when(flat).then(text).str.json_decode(pl.List(pl.String)).alias("items"),
        )
    )


def decode_fields(landed: pl.LazyFrame) -> pl.LazyFrame:
    """Landed Dixa records (``record_id``, ``payload``) -> one row per field (:data:`FIELD_SCHEMA`).

    Records whose ``fields`` is null or empty give no rows. See the module docstring.
    """
    payload = pl.col("payload")
    odd = payload.str.contains(_STRUCTURED) | (
        payload.str.count_matches(_ANY_TYPE) != payload.str.count_matches(_KNOWN_TYPE)
    )
    base = landed.select("record_id", "payload").with_columns(
        odd.fill_null(value=False).alias("__odd")
    )
    columns = ["record_id", "name", "type", "label", "text", "items"]
    rows = pl.concat(
        [
            _fast(base.filter(~pl.col("__odd"))).select(columns),
            _slow(base.filter(pl.col("__odd"))).select(columns),
        ]
    )
    kind, text = pl.col("type"), pl.col("text")
    return rows.select(
        "record_id",
        "name",
        "type",
        "label",
        "text",
        pl.when(kind == "LongField").then(text.cast(pl.Int64, strict=False)).alias("long"),
        pl.when(kind == "DoubleField").then(text.cast(pl.Float64, strict=False)).alias("double"),
        pl.when(kind == "BooleanField")
        .then(
            text.replace_strict(
                {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
            )
        )
        .alias("boolean"),
        pl.when(kind == "TimestampField")
        .then(text.str.to_datetime("%+", time_unit="us", time_zone="UTC", strict=False))
        .alias("timestamp"),
        pl.when(kind.is_in(KNOWN_TYPES).not_() | (kind == "StringField"))
        .then(text)
        .alias("string"),
        "items",
    ).cast(FIELD_SCHEMA)  # type: ignore[arg-type]
