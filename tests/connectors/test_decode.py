"""The page decoder of UJET payloads gives exactly what ``str.json_decode`` gives; the compiled
shape check answers as ``shape_error``."""

from __future__ import annotations

import json

import httpx
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from connectors.decode import decode_pages, fits
from connectors.http import parse_json
from connectors.landing import _dump
from connectors.source import shape_error
from connectors.vendors.ujet.mapping import RECORD_DTYPE

_ODD = [
    '{"status":5,"rating":4.0,"call_type":true}',  # scalars into strings, whole float into int
    '{"call_type":"\\u00e9\\n\\"x","extra":{"a":[1,2]}}',
    '{"queue_durations":[{"queue_duration":3,"started_at":"2026-01-01T00:00:00Z"}]}',
    '{"participants":null,"selected_menu":{"id":7,"name":null}}',
    "{}",
    "null",
    None,
    '  {"rating": 3 } ',
]


def _reference(payloads: list[str | None]) -> pl.DataFrame:
    frame = pl.DataFrame({"payload": payloads}, schema={"payload": pl.String})
    return frame.select(pl.col("payload").str.json_decode(RECORD_DTYPE)).unnest("payload")


@pytest.mark.parametrize("page_rows", [1, 3, 128])
def test_same_as_json_decode(page_rows: int) -> None:
    payloads = _ODD * 20
    frame = pl.DataFrame({"payload": payloads}, schema={"payload": pl.String})
    got = decode_pages(frame, "payload", RECORD_DTYPE, page_rows=page_rows)
    assert_frame_equal(got, _reference(payloads))


def test_empty() -> None:
    frame = pl.DataFrame(schema={"payload": pl.String})
    assert_frame_equal(decode_pages(frame, "payload", RECORD_DTYPE), _reference([]))


def test_a_value_that_does_not_fit_fails_as_before() -> None:
    frame = pl.DataFrame({"payload": ["{}", '{"rating":"x"}']})
    with pytest.raises(pl.exceptions.ComputeError):
        _reference(frame["payload"].to_list())
    with pytest.raises(pl.exceptions.ComputeError):
        decode_pages(frame, "payload", RECORD_DTYPE)


# --- fits: the compiled shape check agrees with shape_error, the rule it compiles -----------

_DTYPE = pl.Struct(
    {
        "n": pl.Int64,
        "f": pl.Float64,
        "b": pl.Boolean,
        "s": pl.String,
        "q": pl.List(pl.Struct({"i": pl.Int32, "t": pl.String})),
        "o": pl.Struct({"i": pl.Int32}),  # structs of one, two and more fields compile apart
    }
)
_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["n", "f", "b", "s", "q", "o", "i", "t", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
)


@given(_JSON)
def test_fits_agrees_with_shape_error(value: object) -> None:
    assert fits(_DTYPE)(value) == (shape_error(value, _DTYPE) is None)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({"n": 2.0, "f": 1, "b": False, "s": 5, "q": [{"i": 1, "t": 2}], "new": {}}, True),
        ({"n": 2.5}, False),  # not a whole number
        ({"n": True}, False),  # a boolean is not a number
        ({"n": 2**63}, False),  # beyond Int64
        ({"f": float("nan")}, False),
        ({"b": 1}, False),
        ({"s": {"a": 1}}, False),  # a string field takes scalars only
        ({"q": {"i": 1}}, False),  # a list must be an array
        ({"q": [None, {"i": None}]}, True),  # null fits anything
        ({"o": {"i": 1.5}}, False),
        ({"o": [{"i": 1}]}, False),
        ({"o": {"i": 1, "t": {}}}, True),
        (None, True),
        ([], False),
    ],
)
def test_fits_by_hand(value: object, expected: bool) -> None:
    assert fits(_DTYPE)(value) is expected


# --- the landed payload text and the parsed body: orjson, with json where orjson refuses -----

_PARSED = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**80), max_value=2**80),  # beyond 64 bits: the json fallback
        st.text(),  # lone surrogates included: the json fallback
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=10,
)


@given(_PARSED)
def test_landed_text_is_what_json_dumps_writes(value: object) -> None:
    expected = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    assert _dump(value) == expected


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_landed_floats_read_back_the_same(value: float) -> None:
    assert json.loads(_dump({"x": value})) == {"x": value}


@pytest.mark.parametrize(
    "body",
    [b'{"a":[1,2.5,"\\u00e9"],"b":null}', b'{"big":123456789012345678901234}', b"[NaN]"],
)
def test_parse_json_reads_what_json_reads(body: bytes) -> None:
    got = parse_json(httpx.Response(200, content=body))
    assert json.dumps(got) == json.dumps(json.loads(body))
