"""``wfm-intervals reconcile`` over the emulators: clean data reconciles exactly; a perturbed
Kore.ai row and a Mindful record changed after our sync are caught (exit 1), shown in the table,
in ``reconcile.json`` and in the HTML report; tolerances, skipped sources and a built store."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest
from pydantic import SecretStr

from engine.app.config import load_settings
from engine.pipeline.checks import Inputs, load_inputs, reconcile
from tests.engine.run_support import (
    DAY,
    SECRETS,
    T0,
    Stack,
    emulators,
    invoke,
    one_error_line,
    write_config,
)
from tests.engine.run_support import clean_environment as _clean

WINDOW = ["--start", DAY[0].isoformat(), "--end", DAY[1].isoformat()]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


@pytest.fixture
def synced(tmp_path: Path) -> Iterator[tuple[Stack, Path]]:
    """The emulators, a config for them, and one sync of every source into the landing store."""
    with emulators() as stack:
        config = write_config(tmp_path, stack)
        result = invoke(["sync"], config)
        assert result.exit_code == 0, result.output
        yield stack, config


def _document(out: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((out / "reconcile.json").read_text())
    return data


def test_clean_data_reconciles_exactly(tmp_path: Path, synced: tuple[Stack, Path]) -> None:
    _, config = synced
    result = invoke(["reconcile", *WINDOW], config)
    assert result.exit_code == 0, result.output
    assert "reconciliation" in result.stdout
    assert "differences" not in result.stdout.splitlines()[-1]
    doc = _document(tmp_path / "out")
    assert doc["ok"] is True
    assert doc["differences"] == []
    checks = {c["source"]: c for c in doc["checks"]}  # type: ignore[attr-defined]
    assert {n: c["status"] for n, c in checks.items()} == {"mindful": "ok", "kore": "ok"}
    assert checks["mindful"]["compared"] == 54  # every number of the seed-000 document
    assert checks["kore"]["compared"] > 0
    as_json = invoke(["reconcile", *WINDOW, "--json"], config)
    assert json.loads(as_json.stdout)["checks"] == doc["checks"]


def test_a_perturbed_kore_row_is_caught(tmp_path: Path, synced: tuple[Stack, Path]) -> None:
    stack, config = synced
    row = stack.kore.expected_callvolume().sort("interval_start_utc").row(3, named=True)
    stack.kore.perturb(
        row["interval_start_utc"], row["queue_id"], row["channel"], offeredContacts=2
    )
    assert invoke(["sync", "kore"], config).exit_code == 0
    result = invoke(["reconcile", *WINDOW], config)
    assert result.exit_code == 1, result.output
    assert "2 differences out of tolerance" not in result.stderr
    assert result.stderr.strip() == "wfm-intervals: reconciliation: 1 differences out of tolerance"
    at = row["interval_start_utc"].strftime("%Y-%m-%dT%H:%M:%SZ")
    shown = [line for line in result.stdout.splitlines() if at in line]
    assert len(shown) == 1
    assert all(text in shown[0] for text in (at, row["queue_id"], "offered", "-2"))
    doc = _document(tmp_path / "out")
    assert doc["ok"] is False
    assert doc["differences"] == [
        {
            "source": "kore",
            "interval_start_utc": at,
            "queue_id": row["queue_id"],
            "channel": row["channel"],
            "field": "offered",
            "ours": row["offered"],
            "theirs": row["offered"] + 2,
            "diff": -2,
            "within_tolerance": False,
            "presence": "both",
        }
    ]
    csv = pl.read_csv(tmp_path / "out" / "reconcile" / "callvolume_kore.csv")
    assert csv["field"].to_list() == ["offered"]
    run = invoke(["run", "--json", "--quiet"], config)  # a run reconciles too: exit 1
    assert run.exit_code == 1, run.output
    assert json.loads(run.stdout)["problems"] == ["reconciliation: 1 differences out of tolerance"]
    page = (tmp_path / "out" / "report.html").read_text()
    assert '<div id="reconcile">' in page
    assert "<td>offered</td>" in page
    assert "out of tolerance" in page  # the difference row, in words

    lenient = invoke(["reconcile", *WINDOW, "--json", "--tolerance", "offered=2"], config)
    assert lenient.exit_code == 0, lenient.output
    checks = {c["source"]: c["status"] for c in json.loads(lenient.stdout)["checks"]}
    assert checks == {"mindful": "ok", "kore": "within_tolerance"}


def test_a_mindful_record_changed_after_the_sync_is_caught(
    tmp_path: Path, synced: tuple[Stack, Path]
) -> None:
    stack, config = synced
    truth = stack.mindful.expected_attempts(
        SecretStr(SECRETS["WFM_SOURCES__MINDFUL__PII_HASH_SECRET"])
    )
    single = truth.filter((pl.len().over("original_id") == 1) & (pl.col("type") == "asap"))
    changed = single.filter(pl.col("outcome") == "successful").row(0, named=True)
    stack.mindful.update_attempts([changed["attempt_id"]], outcome="failure")
    result = invoke(["reconcile", *WINDOW], config)
    assert result.exit_code == 1, result.output
    doc = _document(tmp_path / "out")
    found = {d["field"]: d for d in doc["differences"]}  # type: ignore[attr-defined]
    assert found["data.outcomes.totalSuccessful"]["diff"] == 1
    assert found["data.outcomes.totalFailure"]["diff"] == -1
    assert found["data.outcomes.totalFailure"]["within_tolerance"] is False
    assert {d["source"] for d in found.values()} == {"mindful"}
    assert "data.outcomes.totalSuccessful" in result.stdout
    assert "kore" not in {d["source"] for d in found.values()}


def test_sources_not_configured_are_skipped(tmp_path: Path, synced: tuple[Stack, Path]) -> None:
    stack, _ = synced
    config = write_config(
        tmp_path, stack, sources__mindful={"enabled": False}, sources__kore={"enabled": False}
    )
    result = invoke(["reconcile", *WINDOW, "--json"], config)
    assert result.exit_code == 0, result.output
    checks = json.loads(result.stdout)["checks"]
    assert [(c["source"], c["status"], c["note"]) for c in checks] == [
        ("mindful", "skipped", "sources.mindful.enabled is false"),
        ("kore", "skipped", "sources.kore.enabled is false"),
    ]


def test_ours_from_a_built_store_and_an_unreachable_vendor(
    tmp_path: Path, synced: tuple[Stack, Path]
) -> None:
    stack, config = synced
    run = invoke(["run", "--quiet", "--start", WINDOW[1], "--end", WINDOW[3]], config)
    assert run.exit_code == 0, run.output
    built = invoke(
        ["reconcile", *WINDOW, "--store", str(tmp_path / "out"), "--out", "elsewhere"], config
    )
    assert built.exit_code == 0, built.output
    assert _document(tmp_path / "elsewhere")["ok"] is True
    url = stack.mindful.base_url
    stack.mindful.stop()
    gone = invoke(["reconcile", *WINDOW], config)
    assert gone.exit_code == 2
    assert f"({url}/oauth2/token)" in one_error_line(gone)


def test_the_api_cuts_windows_per_source(synced: tuple[Stack, Path]) -> None:
    _, config = synced
    settings = load_settings(config, environ=os.environ | SECRETS)
    inputs = load_inputs(settings)
    assert isinstance(inputs, Inputs)
    cut = {"kore": (T0, T0), "mindful": (T0, T0 + timedelta(hours=6))}
    rec = reconcile(settings, inputs, window=DAY, windows=cut)
    assert [(c.source, c.status) for c in rec.checks] == [("mindful", "ok"), ("kore", "skipped")]
    assert rec.checks[0].window_end == (T0 + timedelta(hours=6)).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_kore_rows_with_nothing_of_ours_are_differences(synced: tuple[Stack, Path]) -> None:
    _, config = synced
    settings = load_settings(config, environ=os.environ | SECRETS)
    inputs = load_inputs(settings)
    nothing = Inputs(inputs.contacts.clear(), inputs.requests, inputs.kore_rows)
    rec = reconcile(settings, nothing, window=DAY)
    kore = rec.checks[1]
    assert (kore.source, kore.status) == ("kore", "out_of_tolerance")
    assert kore.differences == len([d for d in rec.differences if d["source"] == "kore"]) > 0
    assert {d["presence"] for d in rec.differences if d["source"] == "kore"} == {"theirs_only"}
    assert {d["ours"] for d in rec.differences if d["source"] == "kore"} == {0}


def test_a_history_longer_than_max_window_days_reconciles(synced: tuple[Stack, Path]) -> None:
    """A run's full rebuild reconciles Kore.ai over its whole history: past ``[build]
    max_window_days`` (a typed window's limit) the check stopped the run with an internal
    error after the tables were committed, its state never written, every night again."""
    _, config = synced
    settings = load_settings(config, environ=os.environ | SECRETS)
    inputs = load_inputs(settings)
    assert isinstance(inputs, Inputs)
    long = (DAY[1] - timedelta(days=settings.build.max_window_days + 50), DAY[1])
    rec = reconcile(settings, inputs, window=long, windows={"mindful": (T0, T0)})
    kore = rec.checks[1]
    assert (kore.source, kore.status) == ("kore", "ok")
    assert kore.window_start == long[0].strftime("%Y-%m-%dT%H:%M:%SZ")
