"""The HTML report: its numbers against direct computations, the CLI, and a real headless browser.

The browser tests run Debian's ``chromium`` (found with ``shutil.which``); they skip when it is
missing, unless ``WFM_REQUIRE_BROWSER=1`` (CI) makes that a failure. Chromium runs with every
host name mapped to nothing, and its network log is checked for requests made by the page; a
control page that does load remote resources and throws proves the checks can fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from engine.demo.callbacks import generate_attempts, make_dirty_attempts
from engine.demo.contacts import generate_contacts, make_dirty
from engine.errors import StoreError
from engine.pipeline import build as pipeline
from engine.pipeline.callbacks import build_callbacks
from engine.report import interactive
from engine.report.build import SECTIONS, render, write_report
from engine.report.data import MAX_POINTS, compute, open_store
from engine.settings import BuildSettings
from tests.calendar import run_process

START = datetime(2026, 10, 1, tzinfo=UTC)
DAYS = 3
TZ = "America/New_York"
GENERATED = datetime(2026, 10, 4, 12, tzinfo=UTC)
CHARTS = ("chart-volume", "chart-heatmap", "chart-service", "chart-retries")
#: The only URLs a report may contain: XML namespace names, never fetched.
NAMESPACES = {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo-like store: 3 days of contacts and callbacks, with dirty rows, in New York."""
    out = tmp_path_factory.mktemp("store")
    settings = BuildSettings(tz=TZ)
    window = (START, START + timedelta(days=DAYS))
    contacts, _ = make_dirty(generate_contacts(seed=11, start=START, days=DAYS, time_zone=TZ))
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=out, window=window)
    attempts, _ = make_dirty_attempts(generate_attempts(seed=11, start=START, days=DAYS))
    build_callbacks(attempts.lazy(), settings=settings, out_dir=out, window=window)
    return out


@pytest.fixture(scope="module")
def page(store: Path) -> Path:
    """The report of :func:`store`, written once."""
    path = store / "report.html"
    write_report(store, path, generated_at=GENERATED)
    return path


@pytest.fixture(scope="module")
def stored(store: Path) -> pl.DataFrame:
    return pl.read_delta(str(store / "store" / "callvolume"))


def test_heatmap_cells_are_local_weekday_hour_sums_and_add_up_to_offered(
    store: Path, stored: pl.DataFrame
) -> None:
    data = compute(open_store(store))
    expected: dict[tuple[int, int], int] = defaultdict(int)
    for at, offered in stored.select("interval_start_utc", "offered").iter_rows():
        local = at.astimezone(ZoneInfo(TZ))
        expected[local.isoweekday(), local.hour] += offered
    cells = {(w, h): n for w, h, n, _ in data.heatmap.iter_rows()}
    assert data.heatmap.height == 7 * 24
    assert cells == {k: expected.get(k, 0) for k in cells}
    total = int(stored["offered"].sum())
    assert data.heatmap["offered"].sum() == data.queues["offered"].sum() == total
    assert data.totals["offered"] == total == data.volume["offered"].sum()


def test_daily_service_level_and_aht_equal_direct_sums(store: Path, stored: pl.DataFrame) -> None:
    data = compute(open_store(store))
    assert data.sl_formula == "exclude_short_abandons"
    sums: dict[tuple[Any, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    columns = ("answered_within_sl", "answered", "abandoned", "short_abandoned", "handle_ms")
    for row in stored.iter_rows(named=True):
        day = row["interval_start_utc"].astimezone(ZoneInfo(TZ)).date()
        for c in columns:
            sums[day, row["queue_id"]][c] += row[c]
    assert data.daily.height == len(sums)
    for row in data.daily.iter_rows(named=True):
        s = sums[row["day"], row["queue_id"]]
        den = s["answered"] + s["abandoned"] - s["short_abandoned"]
        assert row["service_level"] == (s["answered_within_sl"] / den if den else None)
        assert row["aht_ms"] == (s["handle_ms"] / s["answered"] if s["answered"] else None)
    # the window starts at 20:00 local: the first and last local days are partial
    assert data.daily.filter("partial")["day"].unique().len() == 2


def test_a_long_window_is_rolled_up_hourly_and_keeps_every_contact(
    store: Path, stored: pl.DataFrame
) -> None:
    data = compute(open_store(store), start=START, end=START + timedelta(days=20))
    assert data.volume_minutes == 60
    assert data.volume["interval_start_utc"].n_unique() <= MAX_POINTS
    assert data.volume["offered"].sum() == stored["offered"].sum()
    assert data.volume.group_by("channel").len()["len"].min() == 20 * 24  # zero-filled hours


def test_a_window_cuts_every_section_and_another_zone_moves_the_hours(store: Path) -> None:
    whole = compute(open_store(store))
    start, end = START + timedelta(days=1), START + timedelta(days=2)
    day = compute(open_store(store), start=start, end=end, tz="Asia/Kolkata")
    assert day.window == (start, end)
    assert 0 < day.totals["offered"] < whole.totals["offered"]
    assert day.heatmap["offered"].sum() == day.totals["offered"]
    assert day.callbacks is not None
    assert whole.callbacks is not None
    requests = day.callbacks.targets["requests"][-1]
    assert 0 < requests < whole.callbacks.targets["requests"][-1]
    assert day.callbacks.retries is not None
    assert day.callbacks.retries["requests"].sum() == requests


def _figures(html: str) -> dict[str, Any]:
    start = html.split('<script type="application/json" id="figures">')[1]
    block = start.split("</script>", maxsplit=1)[0]
    return dict(json.loads(block.replace("<\\/", "</")))


def test_the_charts_figures_add_up_to_the_store(
    store: Path, page: Path, stored: pl.DataFrame
) -> None:
    """What Plotly is given to draw: per channel, the volume chart's offered points sum to the
    stored offered; the heatmap's cells to the window's offered; the retry bars to requests."""
    figs = _figures(page.read_text())
    volume = figs["chart-volume"]["data"]
    drawn = {
        t["hovertemplate"].split("<br>")[0]: sum(t["y"]) for t in volume if t["name"] == "offered"
    }
    per_channel = stored.group_by(pl.col("channel").cast(pl.String)).agg(pl.col("offered").sum())
    assert drawn == dict(per_channel.iter_rows())
    cells = figs["chart-heatmap"]["data"][0]["z"]
    assert sum(map(sum, cells)) == stored["offered"].sum()
    assert len(cells) == 7
    assert {len(r) for r in cells} == {24}
    bars = figs["chart-retries"]["data"]
    data = compute(open_store(store))
    assert data.callbacks is not None
    assert data.callbacks.retries is not None
    assert sum(sum(t["x"]) for t in bars) == data.callbacks.retries["requests"].sum()


def test_a_dst_fall_back_breaks_the_line_instead_of_doubling_back() -> None:
    """New York, 2026-11-01: 01:00-01:59 local happens twice (EDT, then EST). The points keep
    every interval, in time order, with one null between the two passes."""
    from engine.report.charts import volume_figure

    at = [datetime(2026, 11, 1, 4, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(16)]
    frame = pl.DataFrame(
        {"interval_start_utc": at, "channel": ["voice"] * 16, "offered": list(range(1, 17))}
    ).with_columns(answered=pl.col("offered"), abandoned=pl.lit(0))
    fig = volume_figure(frame, minutes=15, interval=15, tz="America/New_York")
    offered = next(t for t in fig["data"] if t["name"] == "offered")
    assert offered["x"][:4] == ["2026-11-01 00:00", "2026-11-01 00:15", "2026-11-01 00:30",
                                "2026-11-01 00:45"]  # fmt: skip
    assert offered["x"][7:10] == ["2026-11-01 01:45", "2026-11-01 01:00", "2026-11-01 01:00"]
    assert offered["y"][8] is None  # the break, then the repeated hour from its start
    assert [y for y in offered["y"] if y is not None] == list(range(1, 17))
    assert offered["x"][-1] == "2026-11-01 02:45"


def test_callback_tables_add_up_to_the_store(store: Path) -> None:
    data = compute(open_store(store))
    ci = pl.read_delta(str(store / "store" / "callback_intervals"))
    assert data.callbacks is not None
    assert data.callbacks.retries is not None
    targets, retries = data.callbacks.targets, data.callbacks.retries
    total = targets.row(-1, named=True)
    assert total["requests"] == ci["requests"].sum() == targets["requests"][:-1].sum()
    assert total["success_rate"] == ci["successful"].sum() / ci["requests"].sum()
    assert retries["retries"].to_list() == ["0", "1", "2", "3", "4", "5", "over 5"]
    assert retries["requests"].sum() == total["requests"]
    with_retries = retries.filter(pl.col("retries") != "0")["requests"].sum()
    assert with_retries == ci["requests_with_retries"].sum()
    for outcome in ("successful", "failure", "other"):
        assert retries[outcome].sum() == total[outcome]


def test_quality_counts_match_the_summaries(store: Path) -> None:
    data = compute(open_store(store))
    summary = json.loads((store / "summary.json").read_text())
    callbacks = json.loads((store / "callbacks_summary.json").read_text())
    q = {r["reason"]: r for r in data.quarantine.iter_rows(named=True)}
    for reason, n in summary["quarantined"].items():
        assert q[reason]["contacts"] == n
    for reason, n in callbacks["quarantined"].items():
        assert q[reason]["callbacks"] == n
    intake = {r["measure"]: r for r in data.intake.iter_rows(named=True)}
    assert intake["rows read"] == {
        "measure": "rows read",
        "contacts": summary["rows_in"],
        "callbacks": callbacks["rows_in"],
    }


def test_a_contacts_only_store_with_another_formula_and_a_reconciliation(tmp_path: Path) -> None:
    settings = BuildSettings(sl_formula="answered_only")
    pipeline.build_contacts(
        generate_contacts(seed=2, start=START, days=1, scale=0.2).lazy(),
        settings=settings,
        out_dir=tmp_path,
    )
    checks = [{"field": "offered", "ours": 10, "theirs": 9, "within_tolerance": False}]
    (tmp_path / "reconcile.json").write_text(json.dumps({"source": "kore", "differences": checks}))
    data = write_report(tmp_path, tmp_path / "r.html", generated_at=GENERATED)
    assert data.sl_formula == "answered_only"
    assert data.callbacks is None
    page = (tmp_path / "r.html").read_text()
    assert "No callback tables in this store." in page
    assert '<div id="reconcile">' in page
    assert "<td>kore</td>" in page
    assert "✗ no" in page
    assert "not run" not in page


def _voice(cid: str, offered: str, outcome: str, wait_ms: int) -> dict[str, Any]:
    """One voice segment offered at ``offered`` (a UTC time of 2026-06-01), text-typed."""
    return {
        "source": "t", "contact_id": cid, "segment_no": 1, "channel": "voice",
        "direction": "inbound", "queue_id": "q", "queue_name": "Q",
        "offered_at": f"2026-06-01T{offered}:00Z", "answered_at": None, "ended_at": None,
        "outcome": outcome, "wait_ms": wait_ms, "talk_ms": 60_000 * (outcome == "answered"),
        "hold_ms": 0, "acw_ms": 0, "sl_threshold_ms": None, "messages": 0,
        "csat_responses": 0, "csat_score": 0, "updated_at": "2026-06-02T00:00:00Z",
    }  # fmt: skip


def test_the_report_derives_with_the_formula_the_build_recorded(tmp_path: Path) -> None:
    """Answered outside T (10:05), abandoned after the short-abandon limit (10:06), answered
    within T (10:20): every stored row's service level is the same under the default formula
    and ``answered_only`` (0/2 against 0/1, 1/1 against 1/1), the window's is not (1/3 against
    1/2). The report used to guess the formula from the stored column, so it showed the
    default's 33.3 % for a store built ``answered_only``; it takes the one the build recorded.
    A store built before builds recorded it still has it recognised from the column, as said."""
    rows = [_voice("a", "10:05", "answered", 30_000), _voice("b", "10:06", "abandoned", 10_000),
            _voice("c", "10:20", "answered", 5_000)]  # fmt: skip
    settings = BuildSettings(sl_formula="answered_only")
    pipeline.build_contacts(pl.DataFrame(rows).lazy(), settings=settings, out_dir=tmp_path)
    data = write_report(tmp_path, tmp_path / "r.html", generated_at=GENERATED)
    assert (data.sl_formula, data.totals["service_level"]) == ("answered_only", 0.5)
    assert data.sl_formula_note == "as built (recorded by the build)"
    assert "answered_only (as built (recorded by the build))" in (tmp_path / "r.html").read_text()
    assert compute(open_store(tmp_path), sl_formula="exclude_short_abandons").sl_formula_note == (
        "given with --sl-formula"
    )
    summary = tmp_path / "summary.json"  # as a build before this one wrote it: no record
    older = {k: v for k, v in json.loads(summary.read_text()).items() if k != "sl_settings"}
    summary.write_text(json.dumps(older))
    data = compute(open_store(tmp_path))
    assert data.sl_formula_note == "as built (it reproduces the stored service_level column)"
    assert data.sl_formula == "exclude_short_abandons"  # the ambiguity a record removes


def test_the_page_is_deterministic_and_offline(store: Path, page: Path) -> None:
    html = page.read_text()
    assert html == render(compute(open_store(store)), generated_at=GENERATED)
    assert "Reconciliation: not run." in html
    for section in SECTIONS:
        assert f'id="{section}"' in html
    for chart in CHARTS:
        assert html.count(f'<div id="{chart}" class="plot">') == 1
    figures = json.loads(html.split('id="figures">')[1].split("</script>")[0].replace("<\\/", "</"))
    assert set(CHARTS) <= set(figures)
    assert_offline(html)


class _Attributes(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found += [(tag, k, v or "") for k, v in attrs]


def assert_offline(page: str) -> None:
    """Nothing in the page can load anything: no URLs, no external references, one script of
    ours (and its figures' JSON). Plotly.js, inlined whole, is set aside first after checking it
    is the library exactly as the ``plotly`` package ships it: its text names map-tile servers
    it would only reach for a map, which the report never draws; the browser test below holds
    the whole page to zero requests."""
    lib = f'<script id="plotly-js">{interactive.library()}</script>'
    assert page.count('<script id="plotly-js">') == page.count(lib) <= 1
    page = page.replace(lib, "")
    assert set(re.findall(r"https?://[^\s\"'<>)]+", page)) <= NAMESPACES
    assert not re.search(r"//[a-z0-9.-]+\.[a-z]{2,}/", page.replace("http://www.w3.org/", ""))
    parser = _Attributes()
    parser.feed(page)
    tags = {tag for tag, _, _ in parser.found}
    assert not tags & {"link", "img", "iframe", "object", "embed", "video", "audio", "source"}
    for _, name, value in parser.found:
        if name in {"src", "href", "xlink:href", "action", "srcset", "poster", "data"}:
            assert value.startswith("#"), (name, value)
    assert re.findall(r"url\(([^)]*)\)", page) == [
        u for u in re.findall(r"url\(([^)]*)\)", page) if u.startswith("#")
    ]
    assert "@import" not in page
    assert page.count("<script") - page.count('<script type="application/json"') == 1
    script = page.split("<script>", maxsplit=1)[1].split("</script>", maxsplit=1)[0]
    assert not re.search(r"fetch|XMLHttpRequest|import|WebSocket|Image\(|sendBeacon", script)


def test_cli_writes_the_report_and_fails_in_one_line(store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--store", str(store), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    assert out.stat().st_size > 10_000
    for args, message in [
        (["--store", str(tmp_path / "none")], "no store/ with callvolume"),
        (["--store", str(store), "--tz", "Mars/Base"], "--tz 'Mars/Base'"),
        (["--store", str(store), "--start", "2026-10-03", "--end", "2026-10-02"], "not after"),
        (["--store", str(store), "--start", "yesterday"], "--start 'yesterday'"),
    ]:
        result = CliRunner().invoke(cli, ["report", *args, "--out", str(out)])
        assert result.exit_code == 2, args
        assert message in result.stderr
        assert result.stderr.count("\n") == 1


def test_a_zone_the_stores_hours_do_not_nest_in_is_refused_naming_tz(tmp_path: Path) -> None:
    """A 60-minute UTC store reported in Asia/Kolkata (hours at hh:30 UTC) drew each UTC hour
    in one Kolkata hour and exited 0; now exit 2, one line naming ``--tz``. Kathmandu's
    hours do not nest either; a whole-hour zone (New York) still reports."""
    window = (START, START + timedelta(days=1))
    contacts = generate_contacts(seed=3, start=START, days=1, time_zone="UTC")
    settings = BuildSettings(tz="UTC", interval_minutes=60)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path, window=window)
    out = tmp_path / "report.html"
    for zone, code in (("Asia/Kolkata", 2), ("Asia/Kathmandu", 2), ("America/New_York", 0)):
        args = ["report", "--store", str(tmp_path), "--out", str(out), "--tz", zone]
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == code, (zone, result.stderr)
        if code:
            assert result.stderr.startswith(f"wfm-intervals: error: --tz {zone}: roll-up"), zone
            assert result.stderr.count("\n") == 1


def test_a_store_recording_no_zone_is_not_said_to_be_given_tz(tmp_path: Path) -> None:
    """A 60-minute Kolkata store whose ``summary.json`` is gone (the store copied alone) is
    read in UTC, where its hours do not nest: the refusal named ``--tz UTC``, which nobody
    typed; it says the zone was assumed and what to give."""
    window = (START, START + timedelta(days=1))
    contacts = generate_contacts(seed=3, start=START, days=1, time_zone="Asia/Kolkata")
    settings = BuildSettings(tz="Asia/Kolkata", interval_minutes=60)
    pipeline.build_contacts(contacts.lazy(), settings=settings, out_dir=tmp_path, window=window)
    (tmp_path / "summary.json").unlink()
    args = ["report", "--store", str(tmp_path), "--out", str(tmp_path / "r.html")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith(
        "wfm-intervals: error: UTC (the store records no zone: give --tz): roll-up"
    )
    given = CliRunner().invoke(cli, [*args, "--tz", "Asia/Kolkata"])
    assert given.exit_code == 0, given.stderr


def test_the_total_row_blends_no_service_level_across_channels(store: Path, page: Path) -> None:
    """The queues' total row showed one service level and ASA over voice, chat and e-mail
    (15:52 where voice answers in seconds), as the channel tiles never do: dashes now, and
    the counts still the sums."""
    html = page.read_text()
    grid = html[html.index('id="queue-totals"') :]
    grid = grid[: grid.index("</table>")]
    last = re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", grid.split("<tr")[-1])
    assert last[0] == "All queues"
    assert last[5:] == ["\u2013"] * 3  # dashes
    stored = pl.read_delta(str(store / "store" / "callvolume"))
    assert stored["channel"].n_unique() > 1
    assert last[1].replace(",", "") == str(stored["offered"].sum())


def test_open_store_accepts_the_store_directory_itself(store: Path) -> None:
    opened = open_store(store / "store")
    assert opened.root == store
    assert set(opened.tables) == {"callvolume", "callback_intervals", "retry_outcomes"}
    with pytest.raises(StoreError, match="no store/"):
        open_store(store / "quarantine")


# --- the real browser ---------------------------------------------------------------------------


def chromium() -> str:
    """Debian's chromium; a skip without it, or a failure when ``WFM_REQUIRE_BROWSER=1``."""
    found = shutil.which("chromium")
    if found is None:
        if os.environ.get("WFM_REQUIRE_BROWSER") == "1":
            pytest.fail(
                "WFM_REQUIRE_BROWSER=1 but chromium is not installed (apt-get install chromium)"
            )
        pytest.skip("chromium is not installed (set WFM_REQUIRE_BROWSER=1 to fail instead)")
    return found


def test_a_missing_browser_skips_or_fails_when_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda _: None)
    monkeypatch.delenv("WFM_REQUIRE_BROWSER", raising=False)
    with pytest.raises(pytest.skip.Exception):
        chromium()
    monkeypatch.setenv("WFM_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="not installed"):
        chromium()


@dataclass(frozen=True)
class Visit:
    """What chromium saw of a page: the DOM after scripts ran, its log, the page's requests."""

    dom: str
    log: str
    requests: list[str]
    screenshot: Path


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page asked for (Chromium's own background requests have no file:// site)."""
    text = net_log.read_text()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short at exit lacks its closing brackets
        log = json.loads(text.rstrip().rstrip(",") + "]}")
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        e["params"]["url"]
        for e in log["events"]
        if e["type"] == start_job
        and (
            "file://" in e["params"].get("site_for_cookies", "")
            or e["params"].get("initiator") == "null"
        )
    ]


def visit(page: Path, work: Path, fragment: str = "") -> Visit:
    """Open ``page`` (and its ``#fragment``) in headless chromium with no network; dump the DOM
    and a screenshot."""
    shot, net = work / "shot.png", work / "net.json"
    args = [
        chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={work / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--host-resolver-rules=MAP * ~NOTFOUND", f"--log-net-log={net}", "--hide-scrollbars",
        f"--screenshot={shot}", "--window-size=1400,3000", "--dump-dom",
        page.resolve().as_uri() + (f"#{fragment}" if fragment else ""),
    ]  # fmt: skip
    # A date run (README, "Development") preloads libfaketime, under which chromium hangs; the
    # browser needs no faked date (the page's scripts read no clock), so it starts without it.
    env = {k: v for k, v in os.environ.items() if not (k == "LD_PRELOAD" and "faketime" in v)}
    result = run_process(args, timeout=120, text=True, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    return Visit(result.stdout, result.stderr, _page_requests(net), shot)


def _console(log: str) -> list[str]:
    return [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_the_checks_catch_a_page_that_errors_and_goes_online(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://example.com/p.png">'
        '<link rel="stylesheet" href="https://cdn.example.org/x.css">'
        '<script>throw new Error("boom")</script></body></html>'
    )
    seen = visit(page, tmp_path)
    assert any("Uncaught Error: boom" in line for line in _console(seen.log))
    assert set(seen.requests) == {"http://example.com/p.png", "https://cdn.example.org/x.css"}
    with pytest.raises(AssertionError):
        assert_offline(page.read_text())


def test_the_report_renders_in_a_real_browser(page: Path, tmp_path: Path) -> None:
    seen = visit(page, tmp_path)
    body = re.search(r"<body[^>]*>", seen.dom)
    assert body is not None
    assert 'data-ready="1"' in body.group(0)  # the inline script ran
    assert f'data-plots="{len(CHARTS) + 3}"' in body.group(0)  # and the three intraday ones
    for section in SECTIONS:
        assert f'<section id="{section}"' in seen.dom
    for chart in CHARTS:  # Plotly drew into each element
        assert re.search(rf'<div id="{chart}" class="plot[^"]*js-plotly-plot', seen.dom)
    assert _console(seen.log) == []
    assert seen.requests == []
    png = seen.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert (int.from_bytes(png[16:20]), int.from_bytes(png[20:24])) == (1400, 3000)


def test_the_interactive_charts_draw_and_their_controls_respond(page: Path, tmp_path: Path) -> None:
    """Plotly draws every figure; the day and queue chosen in the address are applied by the
    same code as the controls' change events (a relayout and a restyle), as the body reports."""
    html = page.read_text()
    days = re.findall(r'<option value="(\d{4}-\d{2}-\d{2})">', html)
    queues = re.findall(r'<option value="([^"]+)">', html.split('id="queue-filter">')[1])[1:]
    assert days
    assert len(queues) >= 2
    plain = visit(page, tmp_path / "plain")
    body = re.search(r"<body[^>]*>", plain.dom)
    assert body is not None
    n = html.count('class="plot"')
    assert n == 3 + len(CHARTS)
    assert f'data-plots="{n}"' in body.group(0)
    assert f'data-day="{days[-1]}"' in body.group(0)  # the last day by default
    assert 'data-queue="all"' in body.group(0)
    every = int(re.findall(r'data-visible-traces="(\d+)"', body.group(0))[0])
    assert every >= len(queues)
    assert plain.dom.count('class="main-svg"') >= n
    chosen = visit(page, tmp_path / "chosen", f"day={days[0]}&queue={queues[1]}")
    body = re.search(r"<body[^>]*>", chosen.dom)
    assert body is not None
    assert f'data-day="{days[0]}"' in body.group(0)
    assert f'data-queue="{queues[1]}"' in body.group(0)
    one = int(re.findall(r'data-visible-traces="(\d+)"', body.group(0))[0])
    assert 1 <= one < every
    assert _console(plain.log) == _console(chosen.log) == []
    assert plain.requests == chosen.requests == []
