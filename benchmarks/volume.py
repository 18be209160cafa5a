"""Benchmark of the volume table (SPEC §5): our engine against DuckDB on the same Parquet file.

Per size: seeded synthetic segments (:func:`engine.demo.contacts.generate_segments`, the whole of
October 2026) are written once to Parquet and cached in ``--data-dir``. Then each engine runs in
its own fresh worker process (so that its peak memory is its own), warms up once (first touch of
fresh memory is expensive, see PERF-NOTES) and is timed ``--repeat`` times:

- ``polars``: ``callvolume.build(pl.scan_parquet(path), ...)`` collected by the streaming engine;
- ``polars+validate``: the pipeline's boundary first (``quarantine.validate_contacts``, clean and
  quarantine collected together), then the build on the clean frame;
- ``duckdb``: the same definitions as SQL (:mod:`benchmarks.volume_duckdb`), 2 threads.

Every engine's table must equal the others' before any time is reported: a benchmark of a wrong
answer is worthless.

Usage::

    python -m benchmarks.volume --sizes 1000000 10000000 --repeat 3
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks.common import (
    Timings,
    WorkerRun,
    add_worker_arguments,
    best_of,
    check_peer,
    loadavg,
    machine_facts,
    merge_runs,
    peak_rss_mib,
    run_worker,
    write_json,
)
from benchmarks.volume_report import ENGINES, render, summarise

MODULE = "benchmarks.volume"
HERE = Path(__file__).resolve().parent
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 31
WINDOW = (START, START + timedelta(days=DAYS))


def data_path(data_dir: Path, size: int, seed: int, compression: str) -> Path:
    return data_dir / f"contacts-{size}-seed{seed}-{compression}.parquet"


# --- workers (each runs in a fresh process) -------------------------------------------------


def _report(timings: Timings, after_imports_mib: float) -> dict[str, Any]:
    return {
        "wall_s": timings.wall_s,
        "cpu_s": timings.cpu_s,
        "rss_after_imports_mib": after_imports_mib,
        "peak_rss_mib": peak_rss_mib(),
    }


def _generate(size: int, seed: int, path: Path, compression: str) -> dict[str, Any]:
    from engine.demo.contacts import generate_segments

    frame = generate_segments(size, seed=seed, start=START, days=DAYS)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    frame.write_parquet(partial, compression=compression)  # type: ignore[arg-type]
    partial.replace(path)
    return {"rows": frame.height, "peak_rss_mib": peak_rss_mib()}


def _polars(path: Path, repeat: int, result: Path) -> dict[str, Any]:
    import polars as pl

    from engine.settings import BuildSettings
    from engine.tables import callvolume

    imported = peak_rss_mib()

    def run() -> pl.DataFrame:
        lf = callvolume.build(pl.scan_parquet(path), window=WINDOW, settings=BuildSettings())
        return lf.collect(engine="streaming")

    timings, table = best_of(run, repeat=repeat)
    table.write_parquet(result)
    return _report(timings, imported)


def _polars_validated(path: Path, repeat: int, result: Path) -> dict[str, Any]:
    import polars as pl

    from engine.settings import BuildSettings
    from engine.tables import callvolume
    from engine.validate.contacts import validate_contacts

    imported = peak_rss_mib()

    def run() -> tuple[pl.DataFrame, int]:
        clean_lf, quarantine_lf = validate_contacts(pl.scan_parquet(path))
        clean, quarantine = pl.collect_all([clean_lf, quarantine_lf], engine="streaming")
        lf = callvolume.build(clean.lazy(), window=WINDOW, settings=BuildSettings())
        return lf.collect(engine="streaming"), quarantine.height

    timings, (table, quarantined) = best_of(run, repeat=repeat)
    table.write_parquet(result)
    return _report(timings, imported) | {"quarantined": quarantined}


def _duckdb(path: Path, repeat: int, result: Path) -> dict[str, Any]:
    import duckdb
    import pyarrow.parquet as pq

    from benchmarks.volume_duckdb import volume_sql
    from engine.settings import BuildSettings

    imported = peak_rss_mib()
    con = duckdb.connect(config={"threads": 2})
    con.execute("SET TimeZone = 'UTC'")
    sql = volume_sql(str(path), window=WINDOW, settings=BuildSettings())
    timings, table = best_of(lambda: con.sql(sql).to_arrow_table(), repeat=repeat)
    pq.write_table(table, result)
    return _report(timings, imported)


def _verify(path: Path, results: Path) -> dict[str, Any]:
    """Exit non-zero unless every engine's table in ``results`` equals DuckDB's.

    Returns:
        The input's row count and, per Polars engine, the columns whose dtype differs from
        ``callvolume.SCHEMA`` (values are compared after casting to it; SQL has no Enum, so
        DuckDB's dtypes are not checked).
    """
    import polars as pl
    from polars.testing import assert_frame_equal

    from benchmarks.volume_duckdb import COLUMNS
    from engine.tables.callvolume import SCHEMA

    if tuple(SCHEMA) != COLUMNS:
        sys.exit(f"FAIL: the DuckDB query's columns {COLUMNS} are not SCHEMA's {tuple(SCHEMA)}")
    key = [pl.col("queue_id"), pl.col("channel").cast(pl.String), pl.col("interval_start_utc")]
    tables = {p.stem: pl.read_parquet(p) for p in sorted(results.glob("*.parquet"))}
    reference = tables["duckdb"].cast(SCHEMA).sort(key)  # type: ignore[arg-type]
    dtype_diff: dict[str, list[str] | None] = {"duckdb": None}
    for name, table in tables.items():
        if table.columns != list(SCHEMA):
            sys.exit(f"FAIL: {name} has columns {table.columns}, SCHEMA has {list(SCHEMA)}")
        if name != "duckdb":
            dtype_diff[name] = [
                f"{c}: {table.schema[c]}" for c in SCHEMA if table.schema[c] != SCHEMA[c]
            ]
        try:
            assert_frame_equal(table.cast(SCHEMA).sort(key), reference)  # type: ignore[arg-type]
        except AssertionError as exc:
            sys.exit(f"FAIL: {name} and duckdb disagree; no time is reported.\n{exc}")
    rows = pl.scan_parquet(path).select(pl.len()).collect().item()
    print(f"verified: {', '.join(tables)} give the same {reference.height:,} rows")
    return {"rows": rows, "table_rows": reference.height, "dtype_diff": dtype_diff}


_WORKERS = {"polars": _polars, "polars+validate": _polars_validated, "duckdb": _duckdb}


def _worker(args: argparse.Namespace) -> None:
    import json

    if args.worker == "generate":
        report = _generate(args.size, args.seed, args.data_path, args.compression)
    elif args.worker == "check-peer":
        from benchmarks.volume_duckdb import check_against_engine

        report = {"frames": check_against_engine(args.size, seed=args.seed)}
    elif args.worker == "verify":
        report = _verify(args.data_path, args.result)
    else:
        report = _WORKERS[args.worker](args.data_path, args.repeat, args.result)
    Path(args.worker_out).write_text(json.dumps(report))


# --- the parent: stdlib only, so that it stays small (see benchmarks.common) ---------------


def _measure(size: int, args: argparse.Namespace) -> dict[str, Any]:
    path = data_path(args.data_dir, size, args.seed, args.compression)
    common = ["--data-path", str(path), "--seed", str(args.seed), "--size", str(size)]
    common += ["--compression", args.compression]
    limits = {"timeout_s": args.timeout, "max_rss_mib": args.max_rss_mib}
    if not path.exists():
        print(f"[{size:,}] generating {path} ...", flush=True)
        gen = run_worker(MODULE, ["--worker", "generate", *common], **limits)
        print(f"[{size:,}] generated in {gen.wall_s:.1f} s, peak {gen.peak_rss_mib:,.0f} MiB")
    done: dict[str, list[WorkerRun]] = {e: [] for e in args.engines}
    failed: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-volume-") as tmp:
        for round_no in range(1, args.rounds + 1):
            for engine in (e for e in args.engines if e not in failed):
                result = Path(tmp) / f"{engine}.parquet"
                flags = ["--worker", engine, "--repeat", str(args.repeat), "--result", str(result)]
                print(f"[{size:,}] {engine} (round {round_no}/{args.rounds}) ...", flush=True)
                try:
                    done[engine].append(run_worker(MODULE, [*flags, *common], **limits))
                except RuntimeError as exc:  # e.g. killed over the memory cap: report, go on
                    print(f"[{size:,}] {engine}: {exc}", file=sys.stderr)
                    failed[engine] = str(exc).split(" (")[0]
                    result.unlink(missing_ok=True)
        runs: dict[str, WorkerRun | str] = {e: failed.get(e) or merge_runs(done[e]) for e in done}
        if isinstance(runs["duckdb"], str):
            sys.exit(f"FAIL: the DuckDB reference did not run at {size:,}; nothing is verified")
        try:
            check = run_worker(MODULE, ["--worker", "verify", "--result", tmp, *common], **limits)
        except RuntimeError:
            sys.exit(f"FAIL: the engines disagree at {size:,} (see above); no time is reported")
    return {"size": size, "path": str(path), "runs": runs, **check.report}


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.volume", description=__doc__.split("\n")[0]
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--repeat", type=int, default=3, help="timed runs per worker (best is kept)")
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="run the engines' workers in turn this many times (shares out background noise)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--engines",
        nargs="+",
        choices=ENGINES,
        default=list(ENGINES),
        help="which engines to run (duckdb, the reference, always runs)",
    )
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, default=HERE / "results" / "volume.json")
    add_worker_arguments(p, workers=ENGINES, check_peer=100, max_rss_mib=12_288.0)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    args.engines = [e for e in ENGINES if e in args.engines or e == "duckdb"]
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
