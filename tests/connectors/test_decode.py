"""The page decoder of UJET payloads gives exactly what ``str.json_decode`` gives."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from connectors.decode import decode_pages
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
