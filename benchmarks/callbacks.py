"""Benchmark of the callback tables and document: our engine against DuckDB on one Parquet file.

Per size: seeded synthetic attempts (:func:`engine.demo.callbacks.generate_attempts`, the
whole of October 2026, ``scale`` calibrated to reach the size) are written once to Parquet and
cached in ``--data-dir``. Then each engine and task runs in its own fresh worker process (so that
its peak memory is its own), warms up once and is timed ``--repeat`` times:

- ``tables``: ``engine.pipeline.callbacks.callback_tables`` for the month (15-minute UTC
  intervals; both tables from one requests frame, collected together), as the pipeline does.
  The requests are the one plan (``requests``: sort into chain order, reduce the runs) for a
  file, and the store's reader (``scan_requests``: runs once its layout file and an order
  pass, inside the timed run, prove the order) for a store; DuckDB: the requests of the window
  into a temporary table, then both tables;
- ``document``: ``callback_metrics.document`` for the month over the same requests; DuckDB:
  one query.

The SQL (:mod:`benchmarks.callbacks_duckdb`) implements docs/callbacks.md independently, runs
with 2 threads, and is first checked against the engine on small adversarial frames
(:mod:`benchmarks.callbacks_check`). Both engines' tables and documents must be equal before any
time is reported.

Usage::

    python -m benchmarks.callbacks --sizes 1000000 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.callbacks_report import RUNS, render, summarise
from benchmarks.common import (
    WorkerRun,
    add_worker_arguments,
    best_of,
    check_peer,
    loadavg,
    machine_facts,
    peak_rss_mib,
    run_worker,
    write_json,
)

MODULE = "benchmarks.callbacks"
HERE = Path(__file__).resolve().parent
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 31
WINDOW = (START, START + timedelta(days=DAYS))


def data_path(data_dir: Path, size: int, seed: int, compression: str, layout: str) -> Path:
    if layout == "store":  # a directory, the store's own codec
        return data_dir / f"callbacks-{size}-seed{seed}-store"
    suffix = "-chain" if layout == "chain" else ""
    return data_dir / f"callbacks-{size}-seed{seed}-{compression}{suffix}.parquet"


def scan_source(path: Path) -> str:
    """What DuckDB's ``read_parquet`` and a plain Polars scan read: the file, or the store's."""
    return str(path / "**" / "*.parquet") if path.is_dir() else str(path)


# --- workers (each runs in a fresh process) -------------------------------------------------


def _generate(size: int, seed: int, path: Path, compression: str, layout: str) -> dict[str, Any]:
    from engine.demo.callbacks import generate_attempts
    from engine.output.store import write_attempts
    from engine.tables.callback_requests import in_chain_order

    # Calibrate on a sample large enough for the Poisson noise to be ~0.2 %.
    scale = 10 * size / generate_attempts(seed=seed, start=START, days=DAYS, scale=10.0).height
    frame = generate_attempts(seed=seed, start=START, days=DAYS, scale=scale)
    if layout in ("chain", "store"):  # the store's row order (engine.output.store)
        frame = in_chain_order(frame.lazy()).collect(engine="streaming")
    path.parent.mkdir(parents=True, exist_ok=True)
    if layout == "store":  # as build_callbacks writes store/callback_attempts
        write_attempts(frame, path)
        return {"rows": frame.height, "scale": scale, "peak_rss_mib": peak_rss_mib()}
    partial = path.with_suffix(".partial")
    frame.write_parquet(partial, compression=compression)  # type: ignore[arg-type]
    partial.replace(path)
    return {"rows": frame.height, "scale": scale, "peak_rss_mib": peak_rss_mib()}


def _timed(fn: Any, repeat: int, imported: float) -> tuple[dict[str, Any], Any]:
    before = loadavg()
    timings, value = best_of(fn, repeat=repeat)
    report = {
        "wall_s": timings.wall_s,
        "cpu_s": timings.cpu_s,
        "rss_after_imports_mib": imported,
        "peak_rss_mib": peak_rss_mib(),
        "loadavg_before_after": [before, loadavg()],
    }
    return report, value


def _polars(task: str, path: Path, repeat: int, out: Path) -> dict[str, Any]:
    """The tasks on one Parquet file: the one requests plan (sort into chain order, reduce the
    runs), exact whatever the file's order."""
    import polars as pl

    from engine.pipeline.callbacks import callback_tables
    from engine.settings import BuildSettings
    from engine.tables import callback_metrics
    from engine.tables.callback_requests import requests

    imported = peak_rss_mib()
    settings = BuildSettings()

    if path.is_dir():  # the store, read as `callback-metrics --store` reads it
        return _polars_store(task, path, repeat, out)

    def tables() -> list[pl.DataFrame]:
        reqs = requests(pl.scan_parquet(path))
        return pl.collect_all(callback_tables(reqs, window=WINDOW, settings=settings))

    def document() -> dict[str, Any]:
        reqs = requests(pl.scan_parquet(path))
        return callback_metrics.document(reqs, begin=WINDOW[0], end=WINDOW[1])

    return _run_polars(task, tables, document, repeat=repeat, imported=imported, out=out)


def _run_polars(
    task: str, tables: Any, document: Any, *, repeat: int, imported: float, out: Path
) -> dict[str, Any]:
    """Time ``tables`` or ``document`` and leave the result in ``out`` for the verify worker."""
    if task == "tables":
        report, (intervals, retries) = _timed(tables, repeat, imported)
        intervals.write_parquet(out / "polars-intervals.parquet")
        retries.write_parquet(out / "polars-retries.parquet")
    else:
        report, doc = _timed(document, repeat, imported)
        (out / "polars-document.json").write_text(json.dumps(doc))
    return report


def _polars_store(task: str, path: Path, repeat: int, out: Path) -> dict[str, Any]:
    """The tasks on a store directory: :func:`engine.output.store.scan_requests` (its layout
    file and the order check) inside the timed run, then runs or the general plan."""
    import polars as pl

    from engine.output.store import is_chain_ordered, scan_requests
    from engine.pipeline.callbacks import callback_tables
    from engine.settings import BuildSettings
    from engine.tables import callback_metrics

    imported = peak_rss_mib()
    settings = BuildSettings()

    def tables() -> list[pl.DataFrame]:
        both = callback_tables(scan_requests(path), window=WINDOW, settings=settings)
        return pl.collect_all(both)

    def document() -> dict[str, Any]:
        return callback_metrics.document(scan_requests(path), begin=WINDOW[0], end=WINDOW[1])

    report = _run_polars(task, tables, document, repeat=repeat, imported=imported, out=out)
    report["chain_ordered"] = is_chain_ordered(path)
    return report


def _duckdb(task: str, path: Path, repeat: int, out: Path) -> dict[str, Any]:
    import pyarrow.parquet as pq

    from benchmarks.callbacks_check import duckdb_connection, fetch_row
    from benchmarks.callbacks_duckdb import (
        document_data,
        document_sql,
        intervals_sql,
        requests_sql,
        retries_sql,
    )

    imported = peak_rss_mib()
    con = duckdb_connection(threads=2)
    reqs = f"CREATE OR REPLACE TEMP TABLE reqs AS {requests_sql(scan_source(path), window=WINDOW)}"
    queries = [intervals_sql("reqs", window=WINDOW), retries_sql("reqs", window=WINDOW)]

    def tables() -> list[Any]:
        con.execute(reqs)
        got = [con.sql(q).to_arrow_table() for q in queries]
        con.execute("DROP TABLE reqs")
        return got

    def document() -> dict[str, Any]:
        return document_data(fetch_row(con, document_sql(scan_source(path), window=WINDOW)))

    if task == "tables":
        report, (intervals, retries) = _timed(tables, repeat, imported)
        pq.write_table(intervals, out / "duckdb-intervals.parquet")
        pq.write_table(retries, out / "duckdb-retries.parquet")
    else:
        report, doc = _timed(document, repeat, imported)
        (out / "duckdb-document.json").write_text(json.dumps(doc))
    return report


def _verify(path: Path, results: Path) -> dict[str, Any]:
    """Exit non-zero unless both engines' tables and documents in ``results`` are equal."""
    import polars as pl
    from polars.testing import assert_frame_equal

    from benchmarks.callbacks_check import sort_table
    from engine.tables import callback_intervals, retry_outcomes

    counts: dict[str, Any] = {}
    for name, module in (("intervals", callback_intervals), ("retries", retry_outcomes)):
        ours = pl.read_parquet(results / f"polars-{name}.parquet")
        theirs = pl.read_parquet(results / f"duckdb-{name}.parquet")
        if ours.schema != pl.Schema(module.SCHEMA) or theirs.columns != list(module.SCHEMA):
            sys.exit(f"FAIL: {name}: columns or dtypes differ from SCHEMA; no time is reported")
        try:
            assert_frame_equal(
                sort_table(ours, module.KEYS),
                sort_table(theirs.cast(module.SCHEMA), module.KEYS),
            )
        except AssertionError as exc:
            sys.exit(f"FAIL: {name}: polars and duckdb disagree; no time is reported.\n{exc}")
        counts[f"{name}_rows"] = ours.height
        counts[f"{name}_requests"] = int(ours["requests"].sum())
    docs = [json.loads((results / f"{e}-document.json").read_text()) for e in ("polars", "duckdb")]
    if docs[0] != docs[1]:
        sys.exit(f"FAIL: the documents differ; no time is reported.\n{docs[0]}\n{docs[1]}")
    requests = docs[0]["data"]["totalCallbacks"]
    if counts["intervals_requests"] != requests:
        sys.exit(f"FAIL: the table has {counts['intervals_requests']} requests, the document "
                 f"{requests}")  # fmt: skip
    rows = pl.scan_parquet(scan_source(path)).select(pl.len()).collect().item()
    print(
        f"verified: same tables ({counts['intervals_rows']:,} + {counts['retries_rows']:,} rows) "
        f"and document ({requests:,} requests) from {rows:,} attempts"
    )
    return {"rows": rows, "requests": requests, **counts}


def _worker(args: argparse.Namespace) -> None:
    if args.worker == "generate":
        report = _generate(args.size, args.seed, args.data_path, args.compression, args.layout)
    elif args.worker == "check-peer":
        from benchmarks.callbacks_check import check_against_engine

        report = {"frames": check_against_engine(args.size, seed=args.seed)}
    elif args.worker == "verify":
        report = _verify(args.data_path, args.result)
    else:
        engine, task = args.worker.split("-")
        run = _polars if engine == "polars" else _duckdb
        report = run(task, args.data_path, args.repeat, args.result)
    Path(args.worker_out).write_text(json.dumps(report))


# --- the parent: stdlib only, so that it stays small (see benchmarks.common) ---------------


def _measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    path = data_path(args.data_dir, size, args.seed, args.compression, args.layout)
    common = ["--data-path", str(path), "--seed", str(args.seed), "--size", str(size)]
    common += ["--compression", args.compression, "--layout", args.layout]
    limits = {"timeout_s": args.timeout, "max_rss_mib": args.max_rss_mib}
    if not path.exists():
        print(f"[{size:,}] generating {path} ...", flush=True)
        gen = run_worker(MODULE, ["--worker", "generate", *common], **limits)
        print(f"[{size:,}] generated in {gen.wall_s:.1f} s, peak {gen.peak_rss_mib:,.0f} MiB")
    runs: dict[str, WorkerRun] = {}
    with tempfile.TemporaryDirectory(prefix="bench-callbacks-") as tmp:
        for name in RUNS:
            flags = ["--worker", name, "--repeat", str(args.repeat), "--result", tmp]
            print(f"[{size:,}] {name} ...", flush=True)
            try:
                runs[name] = run_worker(MODULE, [*flags, *common], **limits)
            except RuntimeError as exc:
                sys.exit(f"FAIL: {name} at {size:,}: {exc}; nothing is verified")
        try:
            check = run_worker(MODULE, ["--worker", "verify", "--result", tmp, *common], **limits)
        except RuntimeError:
            sys.exit(f"FAIL: the engines disagree at {size:,} (see above); no time is reported")
    return {"size": size, "path": str(path), "runs": runs, **check.report}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.callbacks", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per engine (best is kept)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, default=HERE / "results" / "callbacks.json")
    p.add_argument(
        "--layout",
        choices=["store", "chain", "generated"],
        default="store",
        help="the data: store (a store/callback_attempts directory as build_callbacks writes "
        "it, engine.output.store; default), chain (one file in chain order) or generated "
        "(one file by creation time, as generated)",
    )
    add_worker_arguments(p, workers=RUNS, check_peer=200, max_rss_mib=14_336.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    if args.worker:
        _worker(args)
        return
    check_peer(MODULE, args)
    machine = machine_facts()
    measured = [_measure(size, args) for size in args.sizes]
    machine["loadavg_1_5_15_at_end"] = loadavg()
    doc = summarise(measured, machine=machine, window=WINDOW, args=vars(args))
    print(render(doc))
    write_json(args.json, doc)
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
