"""Reconciliation: seeded discrepancies are caught, identical inputs agree, tolerances hold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.demo.contacts import generate_contacts
from engine.settings import BuildSettings
from engine.tables.callvolume import ADDITIVE, build
from engine.tables.compare import DIFFERENCE_COLUMNS, ROW, compare_callvolume, compare_documents

START = datetime(2026, 10, 1, tzinfo=UTC)
WINDOW = (START, START + timedelta(days=1))


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    contacts = generate_contacts(start=START, days=1, scale=0.05, seed=3).lazy()
    return build(contacts, window=WINDOW, settings=BuildSettings()).collect()


def busy_row(table: pl.DataFrame, n: int = 0) -> dict[str, Any]:
    return table.filter(pl.col("answered") > 1).row(n, named=True)


def at_row(row: dict[str, Any]) -> pl.Expr:
    return (
        (pl.col("interval_start_utc") == row["interval_start_utc"])
        & (pl.col("queue_id") == row["queue_id"])
        & (pl.col("channel") == row["channel"])
    )


def test_identical_inputs_give_no_differences(table: pl.DataFrame) -> None:
    out = compare_callvolume(table.lazy(), table.lazy(), tolerance=0).collect()
    assert out.height == 0
    assert out.columns == ["interval_start_utc", "queue_id", "channel", *DIFFERENCE_COLUMNS]
    shuffled = table.sample(fraction=1.0, shuffle=True, seed=1).lazy()
    assert compare_callvolume(table.lazy(), shuffled, tolerance=0).collect().height == 0


def test_a_seeded_discrepancy_is_caught(table: pl.DataFrame) -> None:
    row = busy_row(table)
    theirs = table.with_columns(
        pl.when(at_row(row)).then(pl.col("answered") - 1).otherwise("answered").alias("answered"),
        pl.when(at_row(row)).then(pl.col("talk_ms") + 700).otherwise("talk_ms").alias("talk_ms"),
    )
    out = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=0).collect()
    assert out.select("queue_id", "field", "ours", "theirs", "diff").rows() == [
        (row["queue_id"], "answered", row["answered"], row["answered"] - 1, 1),
        (row["queue_id"], "talk_ms", row["talk_ms"], row["talk_ms"] + 700, -700),
    ]
    assert out["interval_start_utc"].to_list() == [row["interval_start_utc"]] * 2
    assert out["channel"].to_list() == [str(row["channel"])] * 2
    assert out["presence"].to_list() == ["both", "both"]
    assert not out["within_tolerance"].any()


def test_tolerance_is_respected(table: pl.DataFrame) -> None:
    row = busy_row(table)
    theirs = table.with_columns(
        pl.when(at_row(row)).then(pl.col("talk_ms") + 400).otherwise("talk_ms").alias("talk_ms"),
        pl.when(at_row(row)).then(pl.col("offered") + 2).otherwise("offered").alias("offered"),
    )

    def within(tolerance: Any) -> dict[str, bool]:
        out = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=tolerance).collect()
        return dict(zip(out["field"], out["within_tolerance"], strict=True))

    assert within(0) == {"offered": False, "talk_ms": False}
    assert within(500.0) == {"offered": True, "talk_ms": True}
    assert within({"*_ms": 500}) == {"offered": False, "talk_ms": True}
    assert within({"*_ms": 100, "talk_ms": 400, "offered": 1}) == {
        "offered": False,
        "talk_ms": True,
    }  # the exact name beats a pattern; the bound is inclusive


def test_missing_rows_on_either_side(table: pl.DataFrame) -> None:
    busy = busy_row(table)
    empty = table.filter(pl.col("offered") == 0).row(0, named=True)
    theirs = table.filter(~at_row(busy) & ~at_row(empty))
    out = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=0).collect()
    assert set(out["presence"]) == {"ours_only"}
    assert set(out["queue_id"]) == {busy["queue_id"]}
    offered = out.filter(pl.col("field") == "offered").row(0, named=True)
    assert (offered["ours"], offered["theirs"]) == (busy["offered"], 0)
    reverse = compare_callvolume(theirs.lazy(), table.lazy(), tolerance=0).collect()
    assert set(reverse["presence"]) == {"theirs_only"}
    assert reverse["diff"].to_list() == [-d for d in out["diff"]]
    every = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=0, missing_rows="all")
    rows = every.collect().filter(pl.col("field") == ROW)
    assert rows.height == 2  # the empty row too
    assert rows.select("ours", "theirs", "within_tolerance").unique().rows() == [(1, 0, False)]


def test_a_side_with_no_row_differs_from_every_row_that_is_not_empty(table: pl.DataFrame) -> None:
    """A vendor that sends nothing (or whose every row was quarantined) once reconciled as 'ok':
    no field was 'supplied somewhere', so nothing was compared. An empty side is all zeros."""
    nothing = table.clear()
    out = compare_callvolume(table.lazy(), nothing.lazy(), tolerance=0).collect()
    busy = table.filter(pl.col("offered") > 0)
    assert out.height > 0
    assert set(out["presence"]) == {"ours_only"}
    offered = out.filter(pl.col("field") == "offered")
    assert offered.height == busy.height
    assert offered["ours"].sum() == busy["offered"].sum()
    assert (offered["theirs"] == 0).all()
    reverse = compare_callvolume(nothing.lazy(), table.lazy(), tolerance=0).collect()
    assert reverse["diff"].sort().to_list() == (-out["diff"]).sort().to_list()


def test_fields_a_side_does_not_supply_are_not_compared(table: pl.DataFrame) -> None:
    unsupplied = ("short_abandoned", "flow_out", "open", "answered_within_sl")
    theirs = table.with_columns(pl.lit(None, pl.Int64).alias(c) for c in unsupplied)
    busy = busy_row(table)
    theirs = theirs.filter(~at_row(busy))  # a missing row is zeros only for supplied fields
    out = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=0).collect()
    assert not set(out["field"]) & set(unsupplied)
    assert "offered" in set(out["field"])
    only = compare_callvolume(table.lazy(), theirs.lazy(), tolerance=0, fields=["offered"])
    assert set(only.collect()["field"]) == {"offered"}
    with pytest.raises(ValueError, match="missing"):
        compare_callvolume(
            table.lazy(), theirs.drop("hold_ms").lazy(), tolerance=0, fields=["hold_ms"]
        )
    default = compare_callvolume(table.lazy(), theirs.drop("hold_ms").lazy(), tolerance=0)
    assert "hold_ms" not in set(default.collect()["field"])


@given(
    cells=st.lists(
        st.tuples(st.integers(0, 10**6), st.sampled_from(ADDITIVE), st.integers(-5, 5)),
        max_size=6,
    )
)
def test_exactly_the_perturbed_cells_are_reported(
    table: pl.DataFrame, cells: list[tuple[int, str, int]]
) -> None:
    theirs = table.with_row_index("_i")
    expected: dict[tuple[int, str], int] = {}
    for index, name, delta in cells:
        i = index % table.height
        expected[(i, name)] = expected.get((i, name), 0) + delta
    for (i, name), delta in expected.items():
        theirs = theirs.with_columns(
            pl.when(pl.col("_i") == i).then(pl.col(name) + delta).otherwise(name).alias(name)
        )
    out = compare_callvolume(table.lazy(), theirs.drop("_i").lazy(), tolerance=0).collect()
    keys = table.select("interval_start_utc", "queue_id", pl.col("channel").cast(pl.String))
    want = {(*keys.row(i), name, -d) for (i, name), d in expected.items() if d}
    got = set(out.select("interval_start_utc", "queue_id", "channel", "field", "diff").rows())
    assert got == want


SEED_000_LIKE = {
    "data": {
        "outcomes": {"totalSuccessful": 40, "totalUnavailable": 2},
        "performance": {
            "averageCallbackTime": 61.5,
            "rcsl": {"totalBelow30": 12, "totalBetween31_60": 3, "totalAbove60": 1},
            "retries": {"'1'": {"totalSuccessful": 4}, "over5": {"totalSuccessful": 0}},
        },
        "totalCallbacks": 42,
    }
}


def test_compare_documents_flattens_and_reports() -> None:
    assert compare_documents(SEED_000_LIKE, SEED_000_LIKE, tolerance=0) == []
    theirs = {
        "data": {
            "outcomes": {"totalSuccessful": 39, "totalUnavailable": 2, "totalNew": 1},
            "performance": {
                "averageCallbackTime": 61.0,
                "rcsl": {"totalBelow30": 11, "totalBetween31_60": 3, "totalAbove60": 1},
                "retries": {"'1'": {"totalSuccessful": "4"}, "over5": {"totalSuccessful": 0}},
            },
            "totalCallbacks": 42,
        }
    }
    out = compare_documents(SEED_000_LIKE, theirs, tolerance={"*.average*": 1, "*.rcsl.*": 0})
    assert [(d["field"], d["diff"], d["within_tolerance"]) for d in out] == [
        ("data.outcomes.totalNew", None, False),
        ("data.outcomes.totalSuccessful", 1, False),
        ("data.performance.averageCallbackTime", 0.5, True),
        ("data.performance.rcsl.totalBelow30", 1, False),
        ("data.performance.retries.'1'.totalSuccessful", None, False),
    ]
    assert out[0]["ours"] is None
    assert out[0]["theirs"] == 1
    assert compare_documents(SEED_000_LIKE, theirs, tolerance=1)[1]["within_tolerance"]


def test_compare_documents_walks_lists_and_scalars() -> None:
    ours = {"CallVolumeUpdate": [{"offeredContacts": 3}, {"offeredContacts": 1}], "hasMore": False}
    theirs = {"CallVolumeUpdate": [{"offeredContacts": 3}], "hasMore": 0}
    out = compare_documents(ours, theirs, tolerance=5)
    assert [(d["field"], d["ours"], d["theirs"]) for d in out] == [
        ("CallVolumeUpdate[1].offeredContacts", 1, None),
        ("hasMore", False, 0),  # a boolean is not a number
    ]
