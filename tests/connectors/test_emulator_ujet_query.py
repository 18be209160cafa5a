"""The UJET emulator's indexed query path answers exactly what scanning every record answers."""

from __future__ import annotations

import doctest
import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import connectors.emulator.ujet.query
from connectors.emulator import UjetEmulator
from connectors.emulator.ujet.query import (
    BadRequestError,
    SortedView,
    answer,
    parse_filters,
    scan,
    sort_column,
)
from tests.connectors.test_emulator_ujet import FAST, T0, frame, many, seg

STAMPS = [f"2024-05-01T09:00:0{s}.{ms:03d}Z" for s in range(4) for ms in (0, 500)]
INSTANTS = [
    "2024-05-01T09:00:01Z",
    "2024-05-01T09:00:01.5Z",
    "2024-05-01T09:00:01.4999",  # rounds up to .500 as a lower bound
    "2024-05-01 11:00:02+02:00",
    "2024-05-01T09:00:09Z",
]
NUMBERS = ["1", "2.5", "-1", "0", "30", "nan", "inf"]
BAD = ["yesterday", "ten"]
COLUMNS = ["id", "updated_at", "n", "s", "obj", "opt", "flag", "nope"]


@st.composite
def records(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Records with unique ids and columns of every kind the rules distinguish."""
    ids = draw(st.lists(st.integers(1, 60), unique=True, max_size=25))
    numbers = st.one_of(st.none(), st.integers(-3, 3), st.floats(-3, 3), st.booleans())
    out = []
    for i in ids:
        r: dict[str, Any] = {
            "id": i,
            "updated_at": draw(st.sampled_from(STAMPS)),
            "n": draw(numbers if draw(st.booleans()) else st.one_of(st.none(), st.integers(0, 3))),
            "s": draw(st.one_of(st.none(), st.sampled_from(["a", "b", "B", "c"]))),
            "obj": draw(st.one_of(st.none(), st.just({"k": 1}))),
            "flag": draw(st.booleans()),
            "lang": draw(st.sampled_from(["en", "fr"])),
            "status": draw(st.sampled_from(["finished", "failed"])),
        }
        if draw(st.integers(0, 9)):  # usually present, sometimes missing
            r["opt"] = draw(st.one_of(st.none(), st.sampled_from(STAMPS)))
        out.append(r)
    return out


@st.composite
def queries(draw: st.DrawFn) -> dict[str, list[str]]:
    """A query string as the server parses it: filters, sort and direction in any order.

    Range filters are mostly on the sort column (the indexed case), sometimes on another.
    """
    column = draw(st.sampled_from([*COLUMNS, ""]))
    pairs = [("sort_column", column)] if column != "id" or draw(st.booleans()) else []
    for _ in range(draw(st.integers(0, 3))):
        fields = ["updated_at", "n", "s", "id", "opt", "flag"]
        field = draw(st.sampled_from([column or "id"] * 3 + fields))
        side = draw(st.sampled_from(["from", "to"]))
        good = INSTANTS if field.endswith("_at") or field == "opt" else NUMBERS
        bounds = st.sampled_from(good) if draw(st.integers(0, 9)) else st.sampled_from(BAD)
        pairs.append((f"{field}[{side}]", draw(bounds)))
    if draw(st.integers(0, 3)) == 0:
        pairs.append(("lang[]", draw(st.sampled_from(["en", "FR", "de"]))))
    if draw(st.booleans()):
        pairs.append(("sort_direction", draw(st.sampled_from(["ASC", "DESC", "desc", "", "up"]))))
    query: dict[str, list[str]] = {}
    for key, value in draw(st.permutations(pairs)):
        query.setdefault(key, []).append(value)
    return query


def compact(rows: list[dict[str, Any]]) -> bytes:
    return json.dumps(rows, separators=(",", ":")).encode()


def by_scanning(
    rows: list[dict[str, Any]], query: dict[str, list[str]], page: int, per: int
) -> tuple[list[int], int] | str:
    try:
        kept = scan(rows, query)
    except (BadRequestError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return [r["id"] for r in kept[(page - 1) * per : page * per]], len(kept)


def by_view(
    rows: list[dict[str, Any]], query: dict[str, list[str]], page: int, per: int
) -> tuple[list[int], int] | str:
    view = SortedView.build(rows, sort_column(query))
    try:
        got, total = answer(rows, view, query, page, per)
    except (BadRequestError, TypeError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return [r["id"] for r in got], total


@settings(max_examples=600, deadline=None)
@given(records(), queries(), st.integers(1, 5), st.integers(1, 6))
def test_indexed_answer_equals_scanning(
    rows: list[dict[str, Any]], query: dict[str, list[str]], page: int, per: int
) -> None:
    assert by_view(rows, query, page, per) == by_scanning(rows, query, page, per)


def test_views_exist_only_where_the_premises_hold() -> None:
    rows = [
        {"id": 1, "t": "x", "n": 1, "b": True, "o": None, "m": 1},
        {"id": 2, "t": None, "n": 2.5, "b": False, "o": {"k": 1}},
    ]
    assert SortedView.build(rows, "t").kind == (str,)  # type: ignore[union-attr]
    assert SortedView.build(rows, "n").kind == (int, float)  # type: ignore[union-attr]
    assert SortedView.build(rows, "b").kind == ()  # type: ignore[union-attr]  # sorts, no search
    assert SortedView.build(rows, "o") is None  # objects cannot be sorted by
    assert SortedView.build(rows, "m") is None  # a record lacks it
    assert SortedView.build([{"id": 1, "x": "a"}, {"id": 2, "x": 3}], "x") is None
    assert SortedView.build([{"id": 1, "x": "a"}, {"id": 1, "x": "b"}], "x") is None  # dup id


def test_a_tail_query_is_a_binary_search_not_a_scan() -> None:
    rows = [{"id": i, "updated_at": STAMPS[i % len(STAMPS)]} for i in range(40)]
    view = SortedView.build(rows, "updated_at")
    assert view is not None
    query = {"updated_at[from]": ["2024-05-01T09:00:02Z"], "sort_column": ["updated_at"]}
    selected, lo, hi = view.select(parse_filters(query))
    assert selected is view.records  # no filter left to apply record by record
    assert [r["updated_at"] >= "2024-05-01T09:00:02.000Z" for r in selected] == [
        lo <= k < hi for k in range(len(selected))
    ]


def test_served_pages_equal_scanning_and_follow_changes() -> None:
    clock = [T0 + timedelta(days=1)]
    with UjetEmulator(many(120), rate_limit_per_s=FAST, clock=lambda: clock[0]) as emu:
        client = httpx.Client(timeout=5, auth=emu.auth)

        def check(**params: Any) -> None:
            response = client.get(f"{emu.base_url}/calls", params=params)
            query = parse_qs(response.request.url.query.decode(), keep_blank_values=True)
            kept = scan(emu.records("calls"), query)
            page, per = int(params.get("page", 1)), int(params.get("per", 25))
            assert response.json() == kept[(page - 1) * per : page * per]
            assert response.content == compact(kept[(page - 1) * per : page * per])
            assert response.headers["Total"] == str(len(kept))

        tail = {"sort_column": "updated_at", "per": 7, "updated_at[from]": T0.isoformat()}
        with client:
            for page in (1, 3, 18):
                check(page=page, **tail)
                check(page=page, sort_direction="DESC", **tail)
            check(**{"sort_column": "updated_at", "updated_at[to]": "2024-05-01T09:01:00Z"})
            emu.update_records(["call-5", "call-77"], talk_ms=1_000)  # now the newest two
            check(page=1, **tail | {"updated_at[from]": clock[0].isoformat()})
            emu.add_contacts(frame([seg("call-900", 1)]))
            check(page=18, **tail)
            check(page=2, sort_column="hold_duration", sort_direction="DESC", per=50)


def test_a_record_replaced_after_its_page_was_selected_is_sent_as_selected() -> None:
    with UjetEmulator(many(3), rate_limit_per_s=FAST) as emu:
        before = emu.records("calls")
        emu.update_records(["call-2"], talk_ms=1_000)
        after = emu.records("calls")
        assert before[1] != after[1]
        assert emu._body("calls", before) == compact(before)  # the stored encoding is not used
        assert emu._body("calls", after) == compact(after)


def test_bad_requests_are_the_same_errors() -> None:
    with UjetEmulator(many(5), rate_limit_per_s=FAST) as emu, httpx.Client(auth=emu.auth) as c:
        url = f"{emu.base_url}/calls"
        cases = [
            ({"sort_column": "transfers"}, "cannot sort by 'transfers'"),
            ({"sort_column": "updated_at", "sort_direction": "up"}, "sort_direction must be"),
            ({"sort_direction": "up", "updated_at[from]": "x"}, "not an ISO 8601 time: 'x'"),
            ({"sort_column": "updated_at", "id[from]": "one"}, "id[from] must be a number"),
            ({"sort_column": "transfers", "updated_at[from]": "2030-01-01"}, None),  # none kept
        ]
        for params, message in cases:
            response = c.get(url, params=params)
            if message is None:
                assert (response.status_code, response.json()) == (200, [])
            else:
                assert response.status_code == 400
                assert response.json()["message"].startswith(message)


def test_doctests() -> None:
    assert doctest.testmod(connectors.emulator.ujet.query).failed == 0


@pytest.mark.parametrize("per", [1, 100])
def test_pages_past_the_end_are_empty(per: int) -> None:
    rows = [{"id": i, "updated_at": STAMPS[i % len(STAMPS)]} for i in range(10)]
    view = SortedView.build(rows, "id")
    for desc in ("ASC", "DESC"):
        query = {"sort_direction": [desc]}
        assert answer(rows, view, query, 11, per)[0] == []
        assert answer(rows, view, query, 2, per) == (scan(rows, query)[per : 2 * per], 10)
