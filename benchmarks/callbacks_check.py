"""Check the DuckDB peer (:mod:`benchmarks.callbacks_duckdb`) against the engine on small frames.

Adversarial attempts: chains that share an ``original_id`` across sources, equal retry numbers
and creation times in one chain (ties broken by ``attempt_id``), gaps, null attributes, names
and customer keys, durations on every RCSL edge, signed punctuality, first attempts on the
window's and the intervals' edges, retries past the window. Both engines must agree exactly on
both tables and the document before the benchmark's times mean anything.

Example:
    >>> check_against_engine(2)
    2
"""

from __future__ import annotations

import random
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["check_against_engine", "duckdb_connection", "fetch_row", "sort_table"]

_EDGES_MS = (0, -1, 1, 899_999, 900_000, 86_399_999, 86_400_000)
_WAITS = (None, 0, 30_000, 30_001, 60_000, 60_001, 3_600_000)


def duckdb_connection(threads: int = 2) -> Any:
    """A DuckDB connection with ``threads`` threads and UTC as its zone."""
    import duckdb

    con = duckdb.connect(config={"threads": threads})
    con.execute("SET TimeZone = 'UTC'")
    return con


def fetch_row(con: Any, sql: str) -> dict[str, Any]:
    """The first row of ``sql`` as a dict."""
    cursor = con.execute(sql)
    return dict(zip([d[0] for d in cursor.description], cursor.fetchone(), strict=True))


def sort_table(table: Any, keys: tuple[str, ...]) -> Any:
    """``table`` (a Polars frame) in one order whatever the key dtypes (Enum or text)."""
    import polars as pl

    return table.sort([pl.col(k).cast(pl.String) for k in keys], nulls_last=True)


def _attempt(r: random.Random, i: int, window: tuple[datetime, datetime]) -> dict[str, Any]:
    offset = r.choice([*_EDGES_MS, r.randint(-3_600_000, 90_000_000)])
    return {
        "source": r.choice(["m", "m", "n"]),
        "attempt_id": f"a{r.randint(0, 99):02d}-{i}",  # unique, not in row order
        "original_id": r.choice(["o1", "o2", "o3", "o4", "o5"]),
        "retry_attempt": r.choice([0, 0, 1, 1, 2, 3, 5, 6, 7]),
        "has_retry": r.random() < 0.5,
        "call_target_id": r.choice(["t1", "t2", None]),
        "call_target_name": r.choice(["A", "B", "", None]),
        "type": r.choice(["asap", "scheduled", None]),
        "first_party_called": r.choice(["agent", "customer", None]),
        "source_type": r.choice(["voice", "digital", None]),
        "created_at": window[0] + timedelta(milliseconds=r.choice([offset, offset, 1_000])),
        "outcome": r.choice(["successful", "unavailable", "failure", "canceled", "abandoned"]),
        "callback_ms": r.choice([None, 0, 5_000, r.randint(0, 10**7)]),
        "estimated_callback_ms": r.choice([None, 0, 240_000]),
        "customer_wait_ms": r.choice(_WAITS),
        "talk_ms": r.choice([None, 0, 300_000]),
        "punctuality_ms": r.choice([None, -60_000, 0, 45_000]),
        "customer_key": r.choice(["k1", "k2", "k3", None]),
    }


def _frame(r: random.Random, window: tuple[datetime, datetime]) -> Any:
    import polars as pl

    from engine.schema import CALLBACK_ATTEMPTS

    rows = [_attempt(r, i, window) for i in range(r.randint(0, 40))]
    return pl.DataFrame(rows, schema=CALLBACK_ATTEMPTS)


def check_against_engine(frames: int, *, seed: int = 0) -> int:
    """Compare the SQL with ``callback_intervals``/``retry_outcomes.build`` and
    ``callback_metrics.document`` on ``frames`` small adversarial frames, and again from the
    frame written as the callback store and read back by its reader
    (:func:`engine.output.store.scan_requests`, which reduces proven chain order from runs).

    Raises:
        AssertionError: on the first disagreement.

    Returns:
        The number of frames compared.
    """
    import polars as pl
    from polars.testing import assert_frame_equal

    from benchmarks.callbacks_duckdb import (
        document_data,
        document_sql,
        intervals_sql,
        requests_sql,
        retries_sql,
    )
    from engine.output.store import scan_requests, write_attempts
    from engine.pipeline.callbacks import callback_tables
    from engine.settings import BuildSettings
    from engine.tables import callback_intervals, callback_metrics, retry_outcomes
    from engine.tables.callback_requests import in_chain_order, requests

    window = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 10, 2, tzinfo=UTC))
    con = duckdb_connection()
    tables = {"intervals": callback_intervals, "retries": retry_outcomes}
    for k in range(frames):
        frame = _frame(random.Random(seed * 1_000_003 + k), window)
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/frame.parquet"
            frame.write_parquet(path)
            lf = pl.scan_parquet(path)
            con.execute(f"CREATE OR REPLACE TEMP TABLE reqs AS {requests_sql(path, window=window)}")
            theirs = {}
            for name, module in tables.items():
                sql = (intervals_sql if name == "intervals" else retries_sql)("reqs", window=window)
                table = pl.DataFrame(con.sql(sql).to_arrow_table()).cast(module.SCHEMA)
                theirs[name] = sort_table(table, module.KEYS)
                ours = module.build(requests(lf), window=window, settings=BuildSettings()).collect()
                assert_frame_equal(theirs[name], sort_table(ours, module.KEYS))
            doc = document_data(fetch_row(con, document_sql(path, window=window)))
            want = callback_metrics.document(requests(lf), begin=window[0], end=window[1])
            assert doc == want, f"frame {k}: document differs\n{doc}\n{want}"
            # The same frame as the store writes it, read back by the store's reader (runs).
            store = write_attempts(in_chain_order(frame.lazy()).collect(), Path(tmp) / "store")
            runs = scan_requests(store)
            both = callback_tables(runs, window=window, settings=BuildSettings())
            for (name, module), ours in zip(tables.items(), pl.collect_all(both), strict=True):
                assert_frame_equal(theirs[name], sort_table(ours, module.KEYS))
            got = callback_metrics.document(runs, begin=window[0], end=window[1])
            assert doc == got, f"frame {k} in chain order: document differs\n{doc}\n{got}"
    return frames
