"""``serve`` under a WFM client's paging: requests per second and latency percentiles of the
Contact Volume endpoint over a month of 1,000 queue x channel pairs, paged 100 at a time.

The store is a synthetic volume table (31 days x 96 intervals x 1,000 pairs = 2,976,000 rows,
committed like a build's). The server is ``wfm-intervals serve``'s own app on uvicorn, in its own
process; the clients are other processes. Two runs:

* ``sequential``: one client walks the month page by page (``skip`` 0, 100, 200, ...) for
  ``--pages`` pages; the first request (which renders the window) is reported apart;
* ``concurrent``: ``--clients`` clients each walk their own stretch of the same window at once.

Results go to ``benchmarks/results/serve.json``; the table is in ``benchmarks/README.md``.

Example:
    $ python -m benchmarks.serve --pages 2000 --clients 4
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import numpy as np
import polars as pl

from benchmarks.common import machine_facts, write_json
from engine.output import files as outputs
from engine.schema import CALLVOLUME

mp = multiprocessing.get_context("spawn")  # the store library (tokio) does not survive fork

SECRET = "b" * 40
APP = "bench-app"
START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS, PAIRS, PAGE = 31, 1000, 100
PATH = "/agentassist/api/public/analytics/account/bench/callvolume"
BODY = {
    "orgId": "wfm-intervals",
    "fromTimeStamp": "2026-10-01T00:00:00Z",
    "toTimeStamp": "2026-11-01T00:00:00Z",
}
RESULTS = Path(__file__).parent / "results" / "serve.json"


def make_store(root: Path) -> int:
    """Write the synthetic month; its row count."""
    starts = pl.datetime_range(
        START, START + timedelta(days=DAYS), "15m", closed="left", time_zone="UTC", eager=True
    )
    pairs = pl.DataFrame({"pair": range(PAIRS)}).with_columns(
        queue_id=pl.concat_str(pl.lit("q"), pl.col("pair") // 2),
        channel=pl.when(pl.col("pair") % 2 == 0).then(pl.lit("voice")).otherwise(pl.lit("chat")),
    )
    grid = starts.to_frame("interval_start_utc").join(pairs, how="cross")
    rng = np.random.default_rng(7)
    n = grid.height
    offered = rng.poisson(6, n)
    answered = np.minimum(offered, rng.poisson(5, n))
    counts: dict[str, Any] = {
        c: np.zeros(n, np.int64) for c, t in CALLVOLUME.items() if t == pl.Int64
    }
    counts |= {
        "offered": offered,
        "answered": answered,
        "abandoned": offered - answered,
        "completed": answered,
        "answered_within_sl": answered // 2,
        "wait_answered_ms": answered * 20_000,
        "talk_ms": answered * 240_000,
        "handle_ms": answered * 300_000,
        "wait_answered_max_ms": (answered > 0) * 60_000,
    }
    table = grid.with_columns(
        interval_end_utc=pl.col("interval_start_utc") + pl.duration(minutes=15),
        interval_start_local=pl.col("interval_start_utc").dt.replace_time_zone(None),
        utc_offset_min=pl.lit(0, pl.Int32),
        queue_name=pl.col("queue_id"),
        **{c: pl.Series(v) for c, v in counts.items()},
    ).select(pl.col(c).cast(t) for c, t in CALLVOLUME.items())
    outputs.write_store(table, root / "store" / "callvolume", by="interval_start_utc")
    return table.height


def _server(root: str, port: int, ready: Any) -> None:
    import uvicorn

    from engine.serve.app import create_app
    from engine.serve.documents import StoreDocuments
    from engine.serve.guard import Guard
    from engine.serve.settings import ServeSettings

    settings = ServeSettings.model_validate(
        {"kore_apps": {APP: SECRET}, "rate_limit_per_minute": 1_000_000}
    )
    app = create_app(StoreDocuments(Path(root), org_id="wfm-intervals"), Guard(settings))
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    threading.Thread(target=lambda: (time.sleep(0.5), ready.set()), daemon=True).start()
    server.run()


def _walk(url: str, skips: list[int], out: Any) -> None:
    import httpx

    token = jwt.encode({"appId": APP}, SECRET, algorithm="HS256")
    times: list[float] = []
    with httpx.Client(headers={"auth": token}, timeout=120) as client:
        for skip in skips:
            t = time.perf_counter()
            r = client.post(url, json=BODY | {"skip": skip, "limit": PAGE})
            times.append(time.perf_counter() - t)
            assert r.status_code == 200, r.status_code
            assert len(r.json()["CallVolumeUpdate"]) == PAGE
    out.put(times)


def _stats(times: list[float], wall: float) -> dict[str, float]:
    ms = sorted(t * 1000 for t in times)
    ms = ms * 2 if len(ms) == 1 else ms  # one request (the first): its own percentiles
    q = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "requests": len(times),
        "rps": round(len(ms) / wall, 1),
        "p50_ms": round(q[49], 2),
        "p90_ms": round(q[89], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(ms[-1], 2),
    }


def _run(url: str, stretches: list[list[int]]) -> dict[str, float]:
    out: Any = mp.Queue()
    procs = [mp.Process(target=_walk, args=(url, s, out)) for s in stretches]
    t = time.perf_counter()
    for p in procs:
        p.start()
    times = [x for _ in procs for x in out.get()]
    wall = time.perf_counter() - t
    for p in procs:
        p.join()
    return _stats(times, wall)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--port", type=int, default=18_944)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = make_store(Path(tmp))
        ready = mp.Event()
        server = mp.Process(target=_server, args=(tmp, args.port, ready), daemon=True)
        server.start()
        ready.wait(60)
        url = f"http://127.0.0.1:{args.port}{PATH}"
        first = _run(url, [[0]])  # renders the month once (then kept for this version)
        sequential = _run(url, [[i * PAGE for i in range(1, args.pages + 1)]])
        per = args.pages // args.clients
        last = rows - PAGE
        stretches = [
            [min(last, (c * per + i) * PAGE) for i in range(per)] for c in range(args.clients)
        ]
        concurrent = _run(url, stretches)
        server.terminate()
        server.join()
    result = {
        "benchmark": "serve",
        "machine": machine_facts(("polars", "fastapi", "uvicorn", "httpx")),
        "setup": {
            "rows": rows,
            "pairs": PAIRS,
            "days": DAYS,
            "page": PAGE,
            "clients": args.clients,
            "pages": args.pages,
        },
        "first_request_ms": first["max_ms"],
        "sequential": sequential,
        "concurrent": concurrent,
    }
    write_json(RESULTS, result)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
