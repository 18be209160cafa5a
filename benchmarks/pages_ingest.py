"""Benchmark of ingest end to end: page bytes -> landed -> canonical contacts, UJET and Dixa.

The record-level sources' pages, as their emulators serve them (compact JSON, 100 records a page:
UJET ``calls`` and ``chats`` arrays, Dixa ``{"data": [...]}`` of ``conversations``), rendered
from one seeded synthetic day and repeated with fresh ids up to ``--records`` (generation is not
timed). A fresh worker process then times, best of ``--repeat`` after a warm-up, each stage on
the code the sync and the build run (no HTTP, no rate limiter: what the CPU costs):

- ``land``: each page body as the sync lands it (:func:`connectors.http.parse_json` of the body,
  the stream's prepare and shape check, PII scrub, :func:`connectors.landing.land_page`: the
  durable file and its manifest entry), into a fresh landing store;
- ``rebuild``: :func:`connectors.normalise.rebuild` of that store (scan, de-duplicate, decode
  where not landed decoded, map, validate), rows and quarantine collected;
- ``end to end``: the two, records / (land + rebuild);
- ``floor: typed parse``: ``pl.read_json`` of every page body straight to the stream's record
  dtype, nothing else: what a Polars-first landing could not go below.

Usage::

    python -m benchmarks.pages_ingest --records 200000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import format_table, machine_facts, run_worker, write_json

MODULE = "benchmarks.pages_ingest"
HERE = Path(__file__).resolve().parent
START = datetime(2026, 10, 1, tzinfo=UTC)
PER_PAGE = 100
SOURCES = ("ujet", "dixa")


def _source(name: str) -> tuple[Any, Any]:
    """The source (streams bound) and settings the sync would use."""
    from pydantic import SecretStr

    if name == "ujet":
        from connectors.vendors.ujet.client import UJET, UjetSettings

        return UJET, UjetSettings(pii_hash_secret=SecretStr("bench-hmac"))
    from connectors.vendors.dixa.client import DIXA, DixaSettings

    settings = DixaSettings(pii_hash_secret=SecretStr("bench-hmac"))
    return DIXA.configured(settings), settings


def _rendered(name: str, seed: int) -> dict[str, list[dict[str, Any]]]:
    """Raw records per stream, as the emulator serves them."""
    import polars as pl

    from engine.demo.contacts import generate_contacts

    frame = generate_contacts(seed=seed, start=START, days=1, scale=2.0, source=name)
    if name == "ujet":
        from connectors.emulator import UjetEmulator

        channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
        keep = channel.is_in(["voice", "chat"]) & ~((channel == "chat") & (direction == "outbound"))
        emu = UjetEmulator(frame.filter(keep), rate_limit_per_s=None, seed=seed)
        return {s: emu.records(s) for s in ("calls", "chats")}
    from connectors.emulator import DixaEmulator

    return {"conversations": DixaEmulator(frame, rate_limit_per_s=None).records("conversations")}


def _fresh_id(name: str, record: dict[str, Any], k: int) -> dict[str, Any]:
    """A copy of ``record`` under a new id (copy ``k``)."""
    if name == "ujet":
        return {**record, "id": record["id"] + k * 10_000_000}
    fields = [
        {**f, "field": {**f["field"], "value": f["field"]["value"] + k * 10_000_000}}
        if f.get("name") == "csid"
        else f
        for f in record["fields"]
    ]
    return {**record, "fields": fields}


def _generate(name: str, out: Path, records: int, seed: int) -> dict[str, Any]:
    """Page bodies per stream in ``out/<stream>.jsonl`` (one body a line), ``records`` in all."""
    rendered = _rendered(name, seed)
    total = sum(len(v) for v in rendered.values())
    out.mkdir(parents=True, exist_ok=True)
    pages, size = 0, 0
    for stream, base in rendered.items():
        share = round(records * len(base) / total)
        tiled = [_fresh_id(name, base[i % len(base)], i // len(base)) for i in range(share)]
        with (out / f"{stream}.jsonl").open("wb") as fh:
            for i in range(0, len(tiled), PER_PAGE):
                page = tiled[i : i + PER_PAGE]
                body = json.dumps(page if name == "ujet" else {"data": page}, separators=(",", ":"))
                fh.write(body.encode() + b"\n")
                pages, size = pages + 1, size + len(body)
    return {"records": records, "pages": pages, "mean_record_bytes": round(size / records)}


def _bodies(data: Path) -> dict[str, list[bytes]]:
    return {f.stem: f.read_bytes().splitlines() for f in sorted(data.glob("*.jsonl"))}


def _land(name: str, bodies: dict[str, list[bytes]], root: Path) -> int:
    """Land every page as the sync does (see the module docstring); records landed."""
    import httpx

    from connectors.http import parse_json
    from connectors.landing import PiiScrubber, RecordKey, land_page
    from connectors.normalise import screen

    source, settings = _source(name)
    now, landed = START, 0
    for stream_name, pages in bodies.items():
        stream = source.stream(stream_name)
        scrub = PiiScrubber(stream.pii_drop, stream.pii_hash, settings.pii_hash_secret)
        key = stream.record_key or RecordKey(stream.primary_key, stream.cursor_field)
        for page_no, body in enumerate(pages, 1):
            parsed = parse_json(httpx.Response(200, content=body))
            records = parsed if stream.records_path is None else parsed[stream.records_path]
            kept, _ = screen(stream, records, scrub)
            batch = land_page(
                root,
                source.name,
                stream.name,
                kept,
                key=key,
                scrubber=scrub,
                fetched_at=now,
                batch_id="bench",
                page_no=page_no,
                record_dtype=stream.landed_dtype,
            )
            landed += batch.rows
    return landed


def _time(name: str, data: Path, repeat: int) -> dict[str, Any]:
    import polars as pl

    from benchmarks.common import best_of, peak_rss_mib
    from connectors.normalise import rebuild

    source, settings = _source(name)
    bodies = _bodies(data)
    root = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    try:

        def land() -> int:
            shutil.rmtree(root / "raw", ignore_errors=True)
            shutil.rmtree(root / "manifest", ignore_errors=True)
            return _land(name, bodies, root)

        def build() -> int:
            out = rebuild(source, root, settings)
            rows, quarantine = pl.collect_all([out.rows, out.quarantine])
            if quarantine.height:
                raise SystemExit(f"{name}: {quarantine.height} rows quarantined")
            return rows.height

        def floor() -> int:
            n = 0
            for stream_name, pages in bodies.items():
                dtype = source.stream(stream_name).record_dtype
                schema = {f.name: f.dtype for f in dtype.fields}
                cut = 0 if name == "ujet" else len(b'{"data":')  # the records in the envelope
                for body in pages:
                    n += pl.read_json(body[cut : len(body) - (cut > 0)], schema=schema).height
            return n

        runs = {}
        for label, fn in [("land", land), ("rebuild", build), ("floor: typed parse", floor)]:
            timings, out = best_of(fn, repeat=repeat, warmup=1)
            runs[label] = {"wall_s": timings.wall_s, "cpu_s": timings.cpu_s, "rows": out}
            print(f"  {name} {label}: best {min(timings.wall_s):.2f} s", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    records = runs["land"]["rows"]
    return {"records": records, "runs": runs, "peak_rss_mib": peak_rss_mib()}


def _row(label: str, n: int, wall: float, cpu: float) -> list[object]:
    per = f"{cpu / n * 1e6:.1f}"
    return [label, f"{n:,}", f"{wall:.2f}", f"{cpu:.2f}", f"{n / wall:,.0f}", per]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=200_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sources", nargs="+", choices=SOURCES, default=list(SOURCES))
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, default=HERE / "results" / "pages_ingest.json")
    hidden = argparse.SUPPRESS
    p.add_argument("--worker", choices=["generate", "time"], help=hidden)
    p.add_argument("--worker-out", help=hidden)
    p.add_argument("--source", choices=SOURCES, help=hidden)
    p.add_argument("--data", type=Path, help=hidden)
    args = p.parse_args(argv)
    if args.worker == "generate":
        report = _generate(args.source, args.data, args.records, args.seed)
        Path(args.worker_out).write_text(json.dumps(report))
        return
    if args.worker == "time":
        Path(args.worker_out).write_text(json.dumps(_time(args.source, args.data, args.repeat)))
        return
    doc: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    doc["machine"] = machine_facts(("polars", "httpx", "pydantic"))
    rows: list[list[object]] = []
    for name in args.sources:
        data = args.data_dir / f"pages-{name}-{args.records}-seed{args.seed}"
        flags = ["--source", name, "--data", str(data)]
        if not data.exists():
            print(f"generating {args.records:,} {name} records in {data} ...", flush=True)
            gen = ["--worker", "generate", *flags, "--records", str(args.records)]
            made = run_worker(MODULE, [*gen, "--seed", str(args.seed)])
            doc.setdefault(name, {})["data"] = made.report
        print(f"timing {name} ...", flush=True)
        run = run_worker(MODULE, ["--worker", "time", *flags, "--repeat", str(args.repeat)])
        doc.setdefault(name, {})["timing"] = run.report | {"peak_rss_mib": run.peak_rss_mib}
        n, r = run.report["records"], run.report["runs"]
        for label, one in r.items():
            best, cpu = min(one["wall_s"]), min(one["cpu_s"])
            rows.append(_row(f"{name}: {label}", n, best, cpu))
        wall = min(r["land"]["wall_s"]) + min(r["rebuild"]["wall_s"])
        cpu = min(r["land"]["cpu_s"]) + min(r["rebuild"]["cpu_s"])
        rows.append(_row(f"{name}: end to end", n, wall, cpu))
    heads = ["what", "records", "best s", "cpu s", "records/s", "cpu us/rec"]
    print(format_table(heads, rows, "lrrrrr"))
    write_json(args.json, doc)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
