"""Where the time goes inside ``build`` and ``callbacks``: the pipelines' steps, timed one by one.

Runs the steps of ``engine.pipeline.build.build_contacts`` and
``engine.pipeline.callbacks.build_callbacks`` in this process, in the pipelines' order and on the
cardinality benchmark's input file and window (:mod:`benchmarks.cardinality_data`), Parquet
outputs only (``--format parquet``). Per step: wall seconds, CPU seconds (all threads) and the
peak resident memory *of that step* (``VmHWM``, reset before each step by writing 5 to
``/proc/self/clear_refs``; Linux). ``build``: the streaming passes of
``engine.output.contacts.sink_contacts`` apart, then the volume table read back from the
files written. ``callbacks``: the aggregation is split where the table modules allow it from
outside: the group-by (everything up to the aggregated frame, collected) and the zero-fill,
names and sort on it. ``decode alone`` (a plain scan of the file, collected and
dropped) is measured first and is not a pipeline step: validation includes the read.

Usage::

    python -m benchmarks.cardinality_profile build --case many-queues --size 10000000
    python -m benchmarks.cardinality_profile callbacks --case many-queues --size 10000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from benchmarks import cardinality_data as data
from benchmarks.cardinality import HERE, data_path
from benchmarks.common import format_table, peak_rss_mib, write_json

T = TypeVar("T")


class Steps:
    """Timed steps, in order."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def __call__(self, name: str, fn: Callable[[], T]) -> T:
        Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        cpu, began = os.times(), time.perf_counter()
        value = fn()
        wall, after = time.perf_counter() - began, os.times()
        self.rows.append(
            {
                "step": name,
                "wall_s": round(wall, 3),
                "cpu_s": round(after.user + after.system - cpu.user - cpu.system, 3),
                "peak_rss_mib": round(peak_rss_mib()),
            }
        )
        print(f"  {name}: {wall:.2f} s", flush=True)
        return value


def _build(path: Path, out: Path, step: Steps) -> None:
    """The steps of ``build --format parquet`` (``engine.output.contacts.sink_contacts``, then
    ``build_contacts``), one by one."""
    from engine.output import datafiles, delta
    from engine.output import files as export
    from engine.output.contacts import MORSEL_ROWS, scan_files
    from engine.output.inputs import read_input
    from engine.pipeline.build import volume_table
    from engine.schema import CONTACTS
    from engine.settings import BuildSettings
    from engine.tables.dense import busy
    from engine.validate.contacts import (
        INVALID,
        PART,
        REPEATED,
        mark_contacts,
        repeated_identities,
        resolve_contacts,
        split_contacts,
        validate_contacts,
    )

    settings = BuildSettings(tz=data.TZ)
    frame, _ = read_input(path, "contacts")
    store = out / "contacts"
    with pl.Config(streaming_chunk_size=MORSEL_ROWS):
        repeated = step(
            "repeated identities (hashes of the key, sorted; read included)",
            lambda: repeated_identities(frame).collect(engine="streaming").to_series(),
        )
        marked = mark_contacts(frame, repeated)
        sink = datafiles.sink_partitions(marked, store, by="offered_at", tag="p", apart=PART)
        step("every row validated and sunk, some set apart (read included)",
             lambda: sink.collect(engine="streaming"))  # fmt: skip

        def invalid() -> pl.DataFrame | None:
            if not datafiles.set_apart(store, "p", INVALID):
                return None
            _, rows = split_contacts(frame, repeated.clear())
            return resolve_contacts(rows.collect(engine="streaming").lazy())[1].collect()

        step("invalid rows' own pass (only when the sink set some apart)", invalid)

    def resolved() -> pl.DataFrame:
        rows = scan_files(store, datafiles.set_apart(store, "p", REPEATED))
        kept, quarantine = pl.collect_all(validate_contacts(rows))
        datafiles.write_partitions(store, kept.with_columns(datafiles.days_of("offered_at")), "p")
        datafiles.drop_apart(store, "p")
        return quarantine

    quarantine = step("de-duplicate the versions set apart, write the latest", resolved)
    files = step("describe the files (fsync, footers)", lambda: datafiles.added(store, "p"))
    grid = settings.grid(data.WINDOW)
    table = step(
        "volume table, busy rows (read back from the files, group-by)",
        lambda: volume_table(scan_files(store, files), window=grid, settings=settings, dense=False),
    )
    schema = pl.Schema(CONTACTS)
    step("commit contacts", lambda: delta.commit_files(store, files, schema=schema, tag="p"))
    step(
        "write callvolume (store)",
        lambda: export.write_store(
            table.filter(busy("callvolume")), out / "v", by="interval_start_utc"
        ),
    )
    step("write quarantine CSV", lambda: export.write_csv(quarantine, out / "q.csv"))


def _callbacks(path: Path, out: Path, step: Steps) -> None:
    from engine.output import files as export
    from engine.output import store
    from engine.output.inputs import read_input
    from engine.settings import BuildSettings
    from engine.tables import callback_intervals, callback_metrics, retry_outcomes
    from engine.tables.callback_requests import in_chain_order
    from engine.validate.callback_attempts import (
        callback_gaps,
        not_callbacks,
        validate_callback_attempts,
    )

    settings = BuildSettings(tz=data.TZ)
    frame, _ = read_input(path, "callback_attempts")
    clean_lf, quarantine_lf = validate_callback_attempts(frame)
    _, clean, quarantine, _ = step(
        "validate + de-duplicate + chain order (read included)",
        lambda: pl.collect_all(
            [
                frame.select(pl.len()),
                in_chain_order(clean_lf),
                quarantine_lf,
                not_callbacks(frame).select(pl.len()),
            ]
        ),
    )
    grid = step("grid", lambda: settings.grid(data.WINDOW))
    reqs = store.requests_of(clean)  # its order check runs here (one streaming pass)
    tables = step(
        "requests + both tables (group-by, zero-fill) + gaps",
        lambda: pl.collect_all(
            [
                callback_intervals.build(reqs, window=grid, settings=settings),
                retry_outcomes.build(reqs, window=grid, settings=settings),
                callback_gaps(clean.lazy()),
                reqs.select(pl.len()),
            ]
        ),
    )
    step(
        "metrics document",
        lambda: callback_metrics.document(reqs, begin=grid.start, end=grid.end),
    )
    step("write callback_attempts (store)", lambda: store.write_attempts(clean, out / "a"))
    step(
        "write both tables (store)",
        lambda: [
            export.write_store(t, out / n, by="interval_start_utc")
            for t, n in zip(tables[:2], ("i", "r"), strict=True)
        ],
    )
    step(
        "write gaps, quarantine",
        lambda: (
            export.write_ndjson(tables[2], out / "g.ndjson"),
            export.write_csv(quarantine, out / "q.csv"),
        ),
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.cardinality_profile")
    p.add_argument("command", choices=["build", "callbacks"])
    p.add_argument("--case", choices=data.CASES, default="many-queues")
    p.add_argument("--size", type=int, default=10_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, help="also write the steps here")
    args = p.parse_args(argv)
    path = data_path(args.data_dir, args.command, args.case, args.size, args.seed)
    if not path.exists():
        raise SystemExit(f"{path}: run python -m benchmarks.cardinality at this size first")
    step = Steps()
    step("decode alone (not a step)", lambda: pl.scan_parquet(path).collect().height)
    out = Path(tempfile.mkdtemp(prefix="profile-"))
    try:
        (_build if args.command == "build" else _callbacks)(path, out, step)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    rows = [[r["step"], r["wall_s"], r["cpu_s"], f"{r['peak_rss_mib']:,}"] for r in step.rows]
    print(format_table(["step", "wall s", "CPU s", "peak MiB"], rows, "lrrr"))
    if args.json:
        doc = {"command": args.command, "case": args.case, "size": args.size, "steps": step.rows}
        write_json(args.json, doc)


if __name__ == "__main__":
    main()
