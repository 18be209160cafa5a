"""One logger for every command (issue 15 item 2): ``--log-format text|json``, ``--log-level``,
no box-drawing tables in a pipe, and one JSON summary shape for ``sync`` and ``run``."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import Result

from engine.cli.main import cli
from engine.demo.stack import Stack
from tests.engine.run_support import SECRETS, lean_config
from tests.engine.run_support import clean_environment as _clean
from tests.environment import invoke as beside

BOX = set("─│┌┐└┘├┤┬┴┼━┃┏┓┗┛╭╮╯╰")


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _clean(monkeypatch, tmp_path)


def _invoke(args: list[str]) -> Result:
    return beside(cli, args, SECRETS, catch_exceptions=False)  # the emulators' threads run


def test_json_log_lines_carry_the_fields_and_the_level_switch_filters(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    config = lean_config(tmp_path / "site", stack)
    done = _invoke(["--log-format", "json", "run", "--config", str(config)])
    assert done.exit_code == 0, done.output
    lines = [json.loads(line) for line in done.stderr.splitlines()]
    assert lines, "a run logs its steps"
    runs = {line["run"] for line in lines}
    assert len(runs) == 1  # one invocation, one id on every line
    assert all({"timestamp", "level", "logger", "run"} <= set(line) for line in lines)
    streams = [line for line in lines if line.get("event") == "sync.stream"]
    assert {(s["source"], s["stream"]) for s in streams} == {
        ("ujet", "calls"), ("ujet", "chats"), ("mindful", "attempts")
    }  # fmt: skip
    assert {s["step"] for s in lines if s.get("event") == "step"} >= {"sync", "build", "export"}
    text = done.stderr
    assert not [s for s in SECRETS.values() if s in text]
    quiet = _invoke(
        ["--log-level", "warning", "--log-format", "json", "run", "--config", str(config)]
    )
    assert quiet.exit_code == 0, quiet.output
    assert quiet.stderr == ""  # info lines filtered out


def test_sync_and_run_summaries_have_one_shape_and_no_boxes_in_a_pipe(
    tmp_path: Path, stack: Stack, now: datetime
) -> None:
    config = lean_config(tmp_path / "site", stack)
    synced = _invoke(["sync", "--json", "--config", str(config)])
    assert synced.exit_code == 0, synced.output
    sync_doc = json.loads(synced.stdout)
    ran = _invoke(["run", "--json", "--quiet", "--config", str(config)])
    assert ran.exit_code == 0, ran.output
    run_doc = json.loads(ran.stdout)
    assert set(sync_doc) <= set(run_doc)  # the same keys for the same things
    assert sync_doc["ok"] is run_doc["ok"] is True
    assert set(sync_doc["pulled"][0]) <= set(run_doc["pulled"][0])
    plain = _invoke(["sync", "--config", str(config)])  # CliRunner's stdout is not a terminal
    assert plain.exit_code == 0, plain.output
    out = plain.stdout
    assert "sync summary" in out
    assert "ujet/calls" in out
    assert not set(out) & BOX
    assert not set(plain.stderr) & BOX


def test_a_configured_secret_never_shows_in_a_line(capsys: pytest.CaptureFixture[str]) -> None:
    """The second guard: were a secret ever logged, the line shows ``**********`` instead."""
    import logging

    from engine.app import logs

    logs.configure("json", "info")
    logs.mask(["s3cr3t-value", "ab"])  # too short a value is not masked (it would hit words)
    logging.getLogger("engine.test").info("token s3cr3t-value in ab")
    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "token ********** in ab"
