"""The paging invariants against a misbehaving loopback server (issue 12, item 1).

A small UJET-style tail server (``GET /calls``: ``updated_at[from]``, sorted ascending by
``updated_at`` then ``id``, ``page``/``per``, a ``Total`` header) is made to misbehave from a
generated request on, once or for good: pages shuffled, sorted by id or descending, repeated, a
record hidden (gap), ``Total`` lying, a page emptied or cut short. Whatever it does, the UJET
sync over real sockets

* never reports success with fewer records landed than the server holds up to the committed
  cursor;
* never leaves a record the server holds behind the point the next sync resumes from
  (``cursor - lookback``: the lookback is the tail's own 1 ms overlap) without landing it;
* always ends, within a bound of requests set by the data (no loop, no max-pages guard).

The run prints how many examples ran and which invariants stopped them.
"""

from __future__ import annotations

import random
import tempfile
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr

from connectors.emulator.server import EmulatorServer, Request, Response
from connectors.landing import scan_landed
from connectors.state import StateStore, format_utc, parse_utc
from connectors.sync import sync_source
from connectors.vendors.ujet.client import UJET, UjetSettings

T0 = datetime(2026, 10, 1, 8, tzinfo=UTC)
KINDS = ("none", "shuffle", "by_id", "descending", "repeat", "gap", "total", "empty", "short")
Record = dict[str, Any]


class TailServer(EmulatorServer):
    """``GET /calls`` over fixed records, honest unless a misbehaviour is switched on."""

    def __init__(self, records: list[Record]) -> None:
        super().__init__(rate_limit_per_s=None)
        self.truth = records

    def answer(
        self,
        query: Mapping[str, list[str]],
        *,
        order: str = "asc",
        hide: frozenset[int] = frozenset(),
    ) -> tuple[list[Record], int]:
        """The page asked for (``order``: asc, id or desc; ``hide``: ids left out of the
        rows, still counted in the total) and the total the honest server reports."""
        since = parse_utc(query.get("updated_at[from]", [""])[-1])
        page, per = int(query.get("page", ["1"])[-1]), int(query.get("per", ["25"])[-1])
        rows = [r for r in self.truth if since is None or parse_utc(r["updated_at"]) >= since]
        rows.sort(key=lambda r: r["id"] if order == "id" else (r["updated_at"], r["id"]))
        if order == "desc":
            rows.reverse()
        total = len(rows)
        rows = [r for r in rows if r["id"] not in hide]
        return rows[(page - 1) * per : page * per], total

    def route(self, request: Request) -> Response:
        rows, total = self.answer(request.query)
        return Response(200, rows, {"Total": str(total)})


class Misbehaviour:
    """Rewrites the answers to requests ``at`` (once) or ``at`` onwards (``forever``)."""

    def __init__(self, server: TailServer, case: Mapping[str, Any]) -> None:
        self.server, self.kind, self.at = server, case["kind"], case["at"]
        self.forever, self.seed, self.delta = case["forever"], case["seed"], case["delta"]
        ids = [r["id"] for r in server.truth]
        hidden = random.Random(self.seed).sample(ids, min(len(ids), 1 + self.seed % 2))
        self.hide = frozenset(hidden)
        self.sent: dict[int, Response] = {}
        self.altered = False  # an answer differed from the honest one

    def __call__(self, n: int, request: Request, response: Response) -> Response:
        active = self.kind != "none" and (n == self.at or (self.forever and n > self.at))
        if active:
            honest, response = response, self.rewrite(n, request, response)
            self.altered |= (response.payload, response.headers) != (honest.payload, honest.headers)
        self.sent[n] = response
        return response

    def rewrite(self, n: int, request: Request, honest: Response) -> Response:
        rows, headers = list(honest.payload or []), dict(honest.headers)  # type: ignore[call-overload]
        kind = self.kind
        if kind == "repeat":  # the answer to the request before (for good: stuck on it)
            return self.sent.get(self.at - 1 if self.forever else n - 1, honest)
        if kind == "shuffle":
            random.Random(self.seed + n).shuffle(rows)
        elif kind in ("by_id", "descending"):
            rows, _ = self.server.answer(request.query, order="id" if kind == "by_id" else "desc")
        elif kind == "gap":
            rows, _ = self.server.answer(request.query, hide=self.hide)
        elif kind == "total":
            headers["Total"] = str(max(0, int(headers["Total"]) + self.delta))
        elif kind == "empty":
            rows = []
        elif kind == "short":
            rows = rows[:-1]
        return Response(200, rows, headers)


def records(offsets: list[int]) -> list[Record]:
    """Records ``1..n`` updated at ``T0 + offset`` ms (small offsets: many ties)."""
    return [
        {"id": i, "updated_at": format_utc(T0 + timedelta(milliseconds=o)), "queue_durations": []}
        for i, o in enumerate(offsets, start=1)
    ]


def ujet_settings(server: TailServer, per: int) -> UjetSettings:
    return UjetSettings(
        enabled=True,
        base_url=server.origin,
        username="u",
        password=SecretStr("p"),
        pii_hash_secret=SecretStr("k"),
        rate_limit_per_s=10_000.0,
        per_page=per,
        start=T0 - timedelta(seconds=1),
        lookback_minutes=1 / 60_000,  # 1 ms: the tail's own overlap
        max_retries=0,
        timeouts={"connect": 5.0, "read": 5.0, "write": 5.0, "pool": 5.0},
    )


CASES = st.fixed_dictionaries(
    {
        "offsets": st.lists(st.integers(0, 30), min_size=6, max_size=28),
        "per": st.integers(2, 5),
        "kind": st.sampled_from(KINDS),
        "at": st.integers(1, 4),
        "forever": st.booleans(),
        "seed": st.integers(0, 2**16),
        "delta": st.sampled_from([-3, -1, 1, 2]),
    }
)


Outcome = tuple[str | None, set[str], datetime | None, int, bool]


def run_case(case: Mapping[str, Any], root: Path) -> Outcome:
    """Sync the calls of a misbehaving server: error, ids landed, cursor, requests, altered."""
    with TailServer(records(case["offsets"])) as server:
        misbehaviour = Misbehaviour(server, case)
        server.add_rewrite(misbehaviour)
        settings = ujet_settings(server, case["per"])
        (report,) = sync_source(
            UJET,
            settings,
            landing_root=root / "landing",
            state_root=root / "state",
            streams=["calls"],
            sleep=lambda _: None,
        )
        requests = server.stats.requests
    landed = scan_landed(root / "landing", "ujet", "calls").select("record_id").collect()
    state = StateStore(root / "state").get("ujet", "calls")
    cursor = None if state is None else state.cursor
    return report.error, set(landed["record_id"]), cursor, requests, misbehaviour.altered


def test_a_misbehaving_server_never_loses_records_silently(
    capsys: pytest.CaptureFixture[str],
) -> None:
    tally: Counter[str] = Counter()

    @settings(deadline=None)
    @given(case=CASES)
    def check(case: dict[str, Any]) -> None:
        truth = records(case["offsets"])
        with tempfile.TemporaryDirectory() as tmp:
            error, landed, cursor, requests, altered = run_case(case, Path(tmp))
        tally["examples"] += 1
        tally["misbehaved"] += altered
        outcome = "ok" if error is None else error.partition(" violated")[0].split()[-1]
        tally[f"{case['kind']}{'' if altered else ' (no effect)'}: {outcome}"] += 1
        lookback = timedelta(milliseconds=1)
        behind = [
            r
            for r in truth
            if cursor is not None and parse_utc(r["updated_at"]) < cursor - lookback
        ]
        assert {str(r["id"]) for r in behind} <= landed, "a record behind the resume point"
        if error is None:
            upto = [r for r in truth if cursor is not None and parse_utc(r["updated_at"]) <= cursor]
            assert {str(r["id"]) for r in upto} <= landed, "exit 0 with records missing"
            assert landed == {str(r["id"]) for r in truth}, "exit 0 short of what was served"
        else:
            tally["violations"] += "paging invariant" in error
            assert "\n" not in error
        assert requests <= 2 * len(truth) + 4  # bounded by the data: never a loop
        if case["kind"] == "none":
            assert error is None
            assert landed == {str(r["id"]) for r in truth}

    check()
    with capsys.disabled():
        print(
            f"\npaging invariants: {tally['examples']} examples, {tally['misbehaved']} with a "
            f"server that misbehaved, {tally['violations']} stopped by a named invariant"
        )
        for key, count in sorted(tally.items()):
            if ":" in key:
                print(f"  {key}: {count}")
    assert tally["violations"] > 0  # the misbehaviour was caught, not only survived
