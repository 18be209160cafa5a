"""The callback commands: build, the printed document (seed 000's keys), filters, error exits."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner

from engine.cli.main import cli
from engine.demo.callbacks import generate_attempts, make_dirty_attempts
from engine.schema import CALLBACK_ATTEMPTS

START = datetime(2026, 10, 1, tzinfo=UTC)
#: The response example of Mindful's metrics API (seed 000), kept as a fixture.
SEED_000 = Path(__file__).resolve().parents[1] / "fixtures" / "seed_000_metrics_response.json"
WINDOW = ("--begin", "2026-10-01", "--end", "2026-10-03")


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def keys_of(doc: Any) -> set[str]:
    if isinstance(doc, list):
        return set().union(*(keys_of(d) for d in doc)) if doc else set()
    if not isinstance(doc, dict):
        return set()
    return set(doc) | {k for v in doc.values() for k in keys_of(v)}


@pytest.fixture(scope="module")
def seed_keys() -> set[str]:
    """Every key of the response example in seed 000."""
    return keys_of(json.loads(SEED_000.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def attempts() -> pl.DataFrame:
    return generate_attempts(seed=21, start=START, days=2, scale=0.5)


@pytest.fixture(scope="module")
def attempts_csv(attempts: pl.DataFrame, tmp_path_factory: pytest.TempPathFactory) -> Path:
    dirty, _ = make_dirty_attempts(attempts, seed=2, fraction=0.01)
    path = tmp_path_factory.mktemp("cb") / "attempts.csv"
    dirty.write_csv(path)
    return path


@pytest.fixture(scope="module")
def built(attempts_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out")
    code, stdout, stderr = invoke(
        "callbacks", "--attempts", str(attempts_csv), "--out", str(out), "--tz", "Europe/London",
        "--start", "2026-10-01T00:00:00Z", "--end", "2026-10-03T00:00:00Z",
    )  # fmt: skip
    assert code == 0, stderr
    assert "not callbacks" in stdout
    return out


def metrics(*args: str) -> Any:
    code, stdout, stderr = invoke("callback-metrics", *args)
    assert code == 0, stderr
    return json.loads(stdout)


def test_callbacks_writes_every_output(built: Path) -> None:
    summary = json.loads((built / "callbacks_summary.json").read_text())
    assert summary["quarantined"]
    assert summary["not_callbacks"] > 0
    assert summary["intervals"] == 2 * 96
    for name in ("callback_attempts", "callback_intervals", "retry_outcomes"):
        assert pl.read_delta(str(built / "store" / name)).height > 0, name
    for name in ("callback_intervals.csv", "retry_outcomes.ndjson", "callback_metrics.json"):
        assert (built / "exports" / name).exists(), name
    assert (built / "exports" / "callback_gaps.ndjson").exists()
    assert (built / "quarantine" / "callback_attempts.csv").exists()


def test_document_has_exactly_the_seed_keys(built: Path, seed_keys: set[str]) -> None:
    doc = metrics(*WINDOW, "--store", str(built))
    assert keys_of(doc) == seed_keys
    assert doc["data"]["totalCallbacks"] > 0


def test_store_and_attempts_file_give_the_same_document(built: Path, attempts_csv: Path) -> None:
    from_store = metrics(*WINDOW, "--store", str(built))
    assert metrics(*WINDOW, "--attempts", str(attempts_csv)) == from_store
    assert json.loads((built / "exports" / "callback_metrics.json").read_text()) == from_store


def test_filters_select_requests(built: Path) -> None:
    def total(*args: str) -> int:
        return int(metrics(*WINDOW, "--store", str(built), *args)["data"]["totalCallbacks"])

    everything = total()
    assert total("--callTargetId", "4380,4381") == total("--callTargetId", "4380") + total(
        "--callTargetId", "4381"
    )
    assert total("--type", "asap") + total("--type", "scheduled") == everything
    assert total("--sourceType", "voice") + total("--sourceType", "digital") == everything
    assert total("--firstPartyCalled", "Customer First") == total("--firstPartyCalled", "customer")
    asap = metrics(*WINDOW, "--store", str(built), "--type", "asap")["data"]["outcomes"]
    assert asap["totalCallbackScheduled"] == 0
    assert total("--callTargetId", "no-such-target") == 0


def test_step_lists_interval_documents(built: Path, seed_keys: set[str]) -> None:
    elements = metrics(*WINDOW, "--store", str(built), "--step", "1d", "--tz", "Europe/London")
    assert [(e["intervalBegin"], e["partialInterval"]) for e in elements] == [
        ("2026-09-30T23:00:00Z", True),
        ("2026-10-01T23:00:00Z", False),
        ("2026-10-02T23:00:00Z", True),
    ]
    assert keys_of([e["data"] for e in elements]) == seed_keys - {"data"}
    whole = metrics(*WINDOW, "--store", str(built))["data"]["totalCallbacks"]
    assert sum(e["data"]["totalCallbacks"] for e in elements) == whole


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--begin", "2026-10-01x", "--end", "2026-10-02"), "--begin"),
        (("--begin", "2026-10-01", "--end", "01/10/2026"), "--end"),
        (("--begin", "2026-10-02", "--end", "2026-10-01"), "not after"),
        ((*WINDOW, "--firstPartyCalled", "robot"), "agent, customer"),
        ((*WINDOW, "--callTargetId", " , "), "callTargetId"),
        ((*WINDOW, "--step", "1h", "--tz", "Mars/Olympus_Mons"), "Mars/Olympus_Mons"),
        ((*WINDOW, "--store", "/nonexistent/wfm"), "no callback_attempts"),
        ((*WINDOW, "--attempts", "/nonexistent/a.csv"), "no such file"),
        (("--begin", "0001-01-01", "--end", "9999-12-31", "--step", "15m"),
         "350,597,568 intervals of 15m, more than the 10,000 allowed (104 days of 15m)"),
        (("--begin", "2026-01-01", "--end", "2026-05-01", "--step", "15m"),
         "--begin/--end with --step 15m: 11,520 intervals of 15m, more than the 10,000 allowed"),
        (("--begin", "9999-12-30", "--end", "9999-12-31", "--step", "1d"), "to 9999-12-24 only"),
        (("--begin", "0001-01-01", "--end", "0001-01-02", "--step", "1h"), "from 0001-01-08"),
    ],
)  # fmt: skip
def test_errors_are_one_line_and_exit_2(built: Path, args: tuple[str, ...], message: str) -> None:
    store = () if "--store" in args or "--attempts" in args else ("--store", str(built))
    code, stdout, stderr = invoke("callback-metrics", *args, *store)
    assert code == 2
    assert stdout == ""
    assert len(stderr.strip().splitlines()) == 1
    assert message in stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--start", "2026-10-01T00:00:00Z"),
        ("--start", "2026-10-01T00:00:00", "--end", "2026-10-02T00:00:00Z"),
        ("--tz", "Mars/Olympus_Mons"),
    ],
)
def test_callbacks_errors_exit_2(attempts_csv: Path, tmp_path: Path, args: tuple[str, ...]):
    code, _, stderr = invoke(
        "callbacks", "--attempts", str(attempts_csv), "--out", str(tmp_path), *args
    )
    assert code == 2
    assert len(stderr.strip().splitlines()) == 1


def test_callbacks_without_callbacks_needs_a_window(tmp_path: Path) -> None:
    path = tmp_path / "none.csv"
    empty = pl.DataFrame(schema=dict.fromkeys(CALLBACK_ATTEMPTS, pl.String))
    empty.write_csv(path)
    code, _, stderr = invoke("callbacks", "--attempts", str(path), "--out", str(tmp_path / "o"))
    assert code == 2
    assert "--start" in stderr
    assert not (tmp_path / "o" / "store").exists()  # the window is found before any write


def test_callbacks_whose_every_attempt_is_quarantined_say_so_and_exit_1(
    attempts: pl.DataFrame, tmp_path: Path
) -> None:
    """Every attempt unreadable (times without their offset) and no window given: exit 2
    said "give --start and --end", and no quarantine file showed why. It is a data problem:
    exit 1, the reasons in the line, every row in the quarantine file."""
    path = tmp_path / "naive.csv"
    text = attempts.head(5).with_columns(
        pl.col(pl.Datetime("us", "UTC")).dt.strftime("%Y-%m-%d %H:%M:%S")
    )
    text.write_csv(path)
    out = tmp_path / "o"
    code, _, stderr = invoke("callbacks", "--attempts", str(path), "--out", str(out))
    assert code == 1
    written = out / "quarantine" / "callback_attempts.csv"
    assert stderr.splitlines() == [
        f"wfm-intervals: problem: --attempts {path}: no valid attempts: every row read was "
        f"quarantined (unparsable_timestamp 5; written to {written}), so there is no window to "
        "build"
    ]
    assert pl.read_csv(out / "quarantine" / "callback_attempts.csv").height == 5


def test_interval_documents_stop_at_the_limit() -> None:
    """Ten years of 15-minute documents over a three-day store took 6.6 GB and 51 s; a window
    of more than MAX_INTERVALS step intervals is refused before any is made (a window at the
    limit is not)."""
    from engine.tables.callback_metrics import document_intervals
    from engine.tables.callback_requests import requests

    reqs = requests(pl.LazyFrame(schema=CALLBACK_ATTEMPTS))
    begin = datetime(2000, 1, 1, tzinfo=UTC)
    last = datetime(2027, 5, 19, tzinfo=UTC)  # 10,000 days on
    assert len(document_intervals(reqs, begin=begin, end=last, step="1d")) == 10_000
    with pytest.raises(ValueError, match="10,001 intervals of 1d, more than the 10,000 allowed"):
        document_intervals(reqs, begin=begin, end=last + timedelta(days=1), step="1d")


def test_a_torn_callback_table_is_set_aside_and_built_again(
    attempts_csv: Path, tmp_path: Path
) -> None:
    """The last commit of ``callback_intervals`` cut short (a crash of the machine): every
    later ``callbacks`` failed on it, exit 2, until it was deleted by hand. The next one sets
    it aside, says so on stderr, and writes it anew (as ``build`` does its own tables)."""
    out = tmp_path / "o"
    for _ in range(2):
        assert invoke("callbacks", "--attempts", str(attempts_csv), "--out", str(out))[0] == 0
    first = pl.read_delta(str(out / "store" / "callback_intervals"))
    last = sorted((out / "store" / "callback_intervals" / "_delta_log").glob("*.json"))[-1]
    last.write_bytes(last.read_bytes()[:30])
    code, _, stderr = invoke("callbacks", "--attempts", str(attempts_csv), "--out", str(out))
    assert code == 0, stderr
    assert stderr.startswith(f"wfm-intervals: note: {out / 'store' / 'callback_intervals'}: ")
    again = pl.read_delta(str(out / "store" / "callback_intervals"))
    assert again.sort(again.columns).equals(first.sort(first.columns))
