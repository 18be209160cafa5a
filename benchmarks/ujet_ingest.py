"""Benchmark of the UJET ingest: normalisation throughput, and the request rate a long sync gets.

1. **Normalise** (``--records``, default 1M): UJET call and chat records rendered by the emulator
   (:class:`connectors.emulator.UjetEmulator` from one seeded synthetic day), PII-scrubbed exactly
   as the sync lands them, then repeated with fresh ids up to ``--records`` and written straight
   into a landing store (no HTTP), as compacted date partitions (:func:`connectors.landing.compact`
   would leave the same). A fresh worker process then times, best of ``--repeat`` after a warm-up:

   - ``rebuild``: :func:`connectors.normalise.rebuild` (scan and de-duplicate the landing store,
     decode, map, :func:`engine.validate.contacts.validate_contacts`), rows and quarantine
     collected;
   - ``normalise``: the same on landed frames already in memory (no scan, no de-duplication);
   - ``decode: str.json_decode``: the payload decode the mapping used before;
   - ``decode: decode_pages``: the payload decode the mapping uses
     (:func:`connectors.decode.decode_pages`: ``pl.read_json`` on 128-record pages);
   - ``decode: read_json per page``: ``pl.read_json`` on each 100-record page (2 threads), for
     comparison.

2. **Request rate** (``--seconds`` at ``--rate`` requests/s, per anchor): the emulator (this
   process) allows ``--rate`` requests/s and holds about ``rate x seconds`` pages of 100 records;
   a worker process syncs them with the connector's limiter set to the same rate. Reported:
   achieved / allowed (from the emulator's own request log) and the emulator's rate-limit 429s,
   with the load average after each run. ``--rate-runs`` repeats each anchor; ``--busy N`` runs
   N CPU-bound processes meanwhile (a shared machine's load, reproducibly); a re-run replaces the
   recorded runs of the same rate, anchor, margin and ``--busy``, and keeps the others.

Usage::

    python -m benchmarks.ujet_ingest --records 1000000 --repeat 3 --seconds 60 --rate 5
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import format_table, loadavg, machine_facts, run_worker, write_json
from engine import clock

MODULE = "benchmarks.ujet_ingest"
HERE = Path(__file__).resolve().parent
START = datetime(2026, 10, 1, tzinfo=UTC)
USER, PASSWORD = "bench-key", "bench-secret"  # the local emulator's fake credential


def _contacts(days: int, scale: float, seed: int) -> Any:
    import polars as pl

    from engine.demo.contacts import generate_contacts

    frame = generate_contacts(seed=seed, start=START, days=days, scale=scale, source="ujet")
    channel, direction = pl.col("channel").cast(pl.String), pl.col("direction").cast(pl.String)
    return frame.filter(
        channel.is_in(["voice", "chat"]) & ~((channel == "chat") & (direction == "outbound"))
    )


# --- workers (each runs in a fresh process) -------------------------------------------------


def _generate(root: Path, records: int, seed: int) -> dict[str, Any]:
    """Render, scrub and tile records into a landing store under ``root``."""
    import polars as pl
    from pydantic import SecretStr

    from connectors.emulator import UjetEmulator
    from connectors.landing import LANDING_SCHEMA, PiiScrubber, decoded_suffix, with_record
    from connectors.vendors.ujet.client import PII_DROP, PII_HASH, RECORD_DTYPE, prepare

    emu = UjetEmulator(
        _contacts(1, 2.0, seed),
        rate_limit_per_s=None,
        seed=seed,
        extra_menu_abandons=300,
        extra_outbound=300,
    )
    scrub = PiiScrubber(drop=PII_DROP, hash_paths=PII_HASH, secret=SecretStr("bench-hmac"))
    sizes = {}
    for stream in ("calls", "chats"):
        base = [json.dumps(scrub(prepare(r)), separators=(",", ":")) for r in emu.records(stream)]
        sizes[stream] = len(base)
        share = round(records * len(base) / (len(emu.records("calls")) + len(emu.records("chats"))))
        frame = pl.DataFrame({"payload": base}).with_row_index("i")
        copies = -(-share // frame.height)
        tiled = pl.concat([frame.with_columns(k=pl.lit(k, pl.Int64)) for k in range(copies)])
        new_id = (
            pl.col("k") * 10_000_000
            + pl.col("payload").str.extract(r'^\{"id":(\d+)').cast(pl.Int64)
        ).cast(pl.String)
        stamp = (
            pl.col("payload")
            .str.extract(r'"updated_at":"([^"]+)"')
            .str.to_datetime("%Y-%m-%dT%H:%M:%S%.3fZ", time_unit="us", time_zone="UTC")
        )
        landed = (
            tiled.head(share)
            .select(
                new_id.alias("record_id"),
                stamp.alias("updated_at"),
                pl.lit(clock.now()).alias("fetched_at"),
                pl.lit("bench").alias("batch_id"),
                (pl.int_range(pl.len()) // 100).cast(pl.Int32).alias("page_no"),
                pl.concat_str(
                    pl.lit('{"id":'), new_id, pl.col("payload").str.replace(r'^\{"id":\d+', "")
                ).alias("payload"),
            )
            .cast(LANDING_SCHEMA)  # type: ignore[arg-type]
        )
        part = root / "raw" / "source=ujet" / f"stream={stream}" / "date=2026-10-02"
        part.mkdir(parents=True, exist_ok=True)
        for n, chunk in enumerate(landed.iter_slices(100_000)):  # decoded, as the sync lands
            decoded = with_record(chunk, RECORD_DTYPE)
            name = f"part-{n:04d}{decoded_suffix(RECORD_DTYPE)}"
            decoded.write_parquet(part / name, compression="zstd")
    payloads = (
        pl.scan_parquet(root / "raw" / "**" / "*.parquet")
        .select(pl.len(), pl.col("payload").str.len_bytes().mean())
        .collect()
    )
    return {
        "records": payloads.item(0, 0),
        "mean_payload_bytes": round(payloads.item(0, 1)),
        "distinct_rendered": sizes,
    }


def _normalise(root: Path, repeat: int) -> dict[str, Any]:
    import dataclasses

    import polars as pl

    from benchmarks.common import best_of, peak_rss_mib
    from connectors.decode import decode_pages
    from connectors.landing import decoded_suffix, scan_landed
    from connectors.normalise import rebuild
    from connectors.vendors.ujet.client import RECORD_DTYPE, UJET, normalise

    suffix = decoded_suffix(RECORD_DTYPE)
    stale = [f.name for f in root.rglob("*.parquet") if not f.name.endswith(suffix)]
    if stale:  # they would be decoded from JSON: the "rebuild" row would time the old path
        raise SystemExit(f"{root}: {len(stale)} files not decoded to RECORD_DTYPE; delete it")
    streams = ("calls", "chats")
    landed = {s: scan_landed(root, "ujet", s, record_dtype=RECORD_DTYPE).collect() for s in streams}
    n = sum(f.height for f in landed.values())
    # The same source reading only the JSON payload: a store landed before records were landed
    # decoded too (its files have no ``record`` column) costs exactly this.
    json_only = dataclasses.replace(
        UJET, streams=tuple(dataclasses.replace(s, land_decoded=False) for s in UJET.streams)
    )

    def full(source: Any = UJET) -> int:
        out = rebuild(source, root)
        return pl.collect_all([out.rows, out.quarantine])[0].height

    def mapped() -> int:
        outs = [normalise(landed[s].lazy(), stream=s) for s in landed]  # type: ignore[arg-type]
        frames = pl.collect_all([o.rows for o in outs] + [o.quarantine for o in outs])
        return sum(f.height for f in frames[: len(outs)])

    def decode_pages_run() -> int:
        return sum(decode_pages(f, "payload", RECORD_DTYPE).height for f in landed.values())

    runs = {}
    for name, fn in [
        ("rebuild", full),
        ("normalise", mapped),
        ("rebuild, JSON payload only", lambda: full(json_only)),
        ("decode: decode_pages (paid when a page lands)", decode_pages_run),
    ]:
        timings, rows = best_of(fn, repeat=repeat, warmup=1)
        runs[name] = {"wall_s": timings.wall_s, "cpu_s": timings.cpu_s, "rows": rows}
        print(
            f"  {name}: best {min(timings.wall_s):.2f} s ({n / min(timings.wall_s):,.0f}/s)",
            flush=True,
        )
    return {"records": n, "runs": runs, "peak_rss_mib": peak_rss_mib()}


def _sync(base_url: str, rate: float, anchor: str, margin: float) -> dict[str, Any]:
    from pydantic import SecretStr

    from connectors.sync import sync_source
    from connectors.vendors.ujet.client import UJET, UjetSettings

    settings = UjetSettings(
        enabled=True,
        base_url=base_url,
        username=USER,
        password=SecretStr(PASSWORD),
        pii_hash_secret=SecretStr("bench-hmac"),
        rate_limit_per_s=rate,
        rate_limit_anchor="request" if anchor == "request" else "response",
        rate_limit_margin_s=0.0 if anchor == "response" else margin,
        per_page=100,
        start=datetime(2026, 9, 1, tzinfo=UTC),
    )
    with tempfile.TemporaryDirectory(prefix="bench-ujet-") as tmp:
        began = time.perf_counter()
        reports = sync_source(
            UJET, settings, landing_root=Path(tmp) / "l", state_root=Path(tmp) / "s"
        )
        wall = time.perf_counter() - began
    return {"wall_s": wall, "reports": [r.to_dict() for r in reports]}


# --- the parent -----------------------------------------------------------------------------


@contextlib.contextmanager
def _busy(n: int) -> Iterator[None]:
    """``n`` processes spinning on the CPU meanwhile: the load other jobs put on a shared box."""
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        time.sleep(5 if n else 0)  # let them get going before the run starts
        yield
    finally:
        for proc in spin:
            proc.kill()
            proc.wait()


def _rate(args: argparse.Namespace, anchor: str) -> dict[str, Any]:
    from connectors.emulator import UjetEmulator

    margin = 0.0 if anchor == "response" else args.request_margin
    scale = args.rate * args.seconds * 100 / 8_300  # about 8,300 records/day at scale 1
    emu = UjetEmulator(
        _contacts(1, scale, args.seed),
        username=USER,
        password=PASSWORD,
        rate_limit_per_s=args.rate,
        seed=args.seed,
    )
    with emu, _busy(args.busy):
        run = run_worker(
            MODULE,
            [
                "--worker",
                "sync",
                "--base-url",
                emu.base_url,
                "--rate",
                str(args.rate),
                "--anchor",
                anchor,
                "--margin",
                str(margin),
            ],
        )
        log, stats = emu.request_log, emu.stats
    span = log[-1].monotonic - log[0].monotonic
    achieved = (len(log) - 1) / span if span > 0 else 0.0
    return {
        "anchor": anchor,
        "margin_s": margin,
        "busy_processes": args.busy,
        "requests": len(log),
        "seconds": round(span, 2),
        "achieved_per_s": round(achieved, 3),
        "allowed_per_s": args.rate,
        "fraction": round(achieved / args.rate, 4),
        "rate_limited_429": stats.rate_limited_429,
        "sync_wall_s": round(run.report["wall_s"], 2),
        "recorded_at": clock.now().isoformat(timespec="seconds"),
        "loadavg_1_5_15": loadavg(),  # at the end of this run: the load it ran under
    }


def _rate_part(
    args: argparse.Namespace, doc: dict[str, Any], facts: dict[str, Any]
) -> list[list[object]]:
    """Run the rate part into ``doc["rate"]`` (runs of other settings are kept); table rows."""
    replaced = {
        (args.rate, a, 0.0 if a == "response" else args.request_margin, args.busy)
        for a in args.anchors
    }
    kept = [
        r
        for r in doc.get("rate", {}).get("runs", [])
        if (r["allowed_per_s"], r["anchor"], r["margin_s"], r.get("busy_processes", 0))
        not in replaced
    ]
    doc["rate"] = {"machine": facts, "runs": kept}
    rows: list[list[object]] = []
    for anchor in [a for _ in range(args.rate_runs) for a in args.anchors]:
        print(f"syncing for about {args.seconds:g} s at {args.rate:g}/s ({anchor}) ...")
        r = _rate(args, anchor)
        doc["rate"]["runs"].append(r)
        rows.append(
            [
                f"sync, windows from {anchor}s, margin {r['margin_s']:g} s",
                f"{r['requests']:,} req",
                f"{r['seconds']:.1f}",
                "",
                f"{r['achieved_per_s']:.3f} req/s",
                f"{r['fraction']:.1%} of {args.rate:g}/s, {r['rate_limited_429']} x 429",
            ]
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog=f"python -m {MODULE}", description=__doc__.split("\n")[0])
    p.add_argument("--records", type=int, default=1_000_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rate", type=float, default=5.0, help="requests/s (emulator and client)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of the rate run")
    p.add_argument("--anchors", nargs="+", default=["response", "request"])
    p.add_argument("--rate-runs", type=int, default=1, help="rate runs per anchor (all recorded)")
    p.add_argument(
        "--request-margin",
        type=float,
        default=0.03,  # as engine/data/defaults.toml advises for anchor = "request"
        help="the limiter's margin (s) when windows count from requests (0 from responses)",
    )
    p.add_argument("--busy", type=int, default=0, help="CPU-bound processes during rate runs")
    p.add_argument("--skip-normalise", action="store_true")
    p.add_argument("--skip-rate", action="store_true")
    p.add_argument("--data-dir", type=Path, default=HERE / "data")
    p.add_argument("--json", type=Path, default=HERE / "results" / "ujet_ingest.json")
    hidden = argparse.SUPPRESS
    p.add_argument("--worker", choices=["generate", "normalise", "sync"], help=hidden)
    p.add_argument("--worker-out", help=hidden)
    p.add_argument("--root", type=Path, help=hidden)
    p.add_argument("--base-url", help=hidden)
    p.add_argument("--anchor", help=hidden)
    p.add_argument("--margin", type=float, help=hidden)
    args = p.parse_args(argv)
    if args.worker:
        workers = {
            "generate": lambda: _generate(args.root, args.records, args.seed),
            "normalise": lambda: _normalise(args.root, args.repeat),
            "sync": lambda: _sync(args.base_url, args.rate, args.anchor, args.margin),
        }
        Path(args.worker_out).write_text(json.dumps(workers[args.worker]()))
        return
    doc: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    facts = machine_facts(("polars", "httpx", "pydantic"))  # per part: parts not re-run are kept
    rows: list[list[object]] = []
    if not args.skip_normalise:
        root = args.data_dir / f"ujet-landed-{args.records}-seed{args.seed}"
        flags = ["--root", str(root), "--records", str(args.records), "--seed", str(args.seed)]
        if not root.exists():
            print(f"generating {args.records:,} landed records in {root} ...", flush=True)
            doc["data"] = run_worker(MODULE, ["--worker", "generate", *flags]).report
        print("timing the normalisation ...", flush=True)
        run = run_worker(MODULE, ["--worker", "normalise", *flags, "--repeat", str(args.repeat)])
        doc["normalise"] = run.report | {"peak_rss_mib": run.peak_rss_mib, "machine": facts}
        n = run.report["records"]
        for name, r in run.report["runs"].items():
            best, cpu = min(r["wall_s"]), min(r["cpu_s"])
            rows.append([name, f"{n:,}", f"{best:.2f}", f"{cpu:.2f}", f"{n / best:,.0f}", ""])
    if not args.skip_rate:
        rows += _rate_part(args, doc, facts)
    print(format_table(["what", "n", "best s", "cpu s", "rate", "note"], rows, "lrrrrl"))
    write_json(args.json, doc)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
