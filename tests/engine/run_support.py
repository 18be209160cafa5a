"""Shared helpers of the ``run`` and ``reconcile`` tests: the four emulators on loopback, a config
file pointing at them (secrets only in the environment), and readers of what a run wrote.

The data is one day (the tests' YESTERDAY, a Sunday) at a low scale: UJET voice and chat, Dixa
e-mail and messaging, Mindful callbacks; the Kore.ai emulator aggregates the contacts UJET and
Dixa serve.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import Result
from polars.testing import assert_frame_equal

from engine.cli.main import cli
from engine.clock import CLOCK_AT_VARIABLE
from engine.demo import stack as demo_stack
from engine.demo.stack import Stack
from tests.calendar import YESTERDAY
from tests.environment import invoke as beside

T0 = YESTERDAY
DAY = (T0, T0 + timedelta(days=1))
SECRETS = {
    "WFM_SOURCES__UJET__PASSWORD": "ujet-pw-Rr71-never-logged",
    "WFM_SOURCES__UJET__PII_HASH_SECRET": "hmac-Ux32-never-logged",
    "WFM_SOURCES__DIXA__API_TOKEN": "dixa-tok-Dd55-never-logged",
    "WFM_SOURCES__DIXA__PII_HASH_SECRET": "hmac-Dx17-never-logged",
    "WFM_SOURCES__MINDFUL__CLIENT_SECRET": "mindful-cs-Mm09-never-logged",
    "WFM_SOURCES__MINDFUL__PII_HASH_SECRET": "hmac-Mx44-never-logged",
    "WFM_SOURCES__KORE__CLIENT_SECRET": "kore-cs-Kk28-never-logged",
}


@contextmanager
def emulators() -> Iterator[Stack]:
    """The four emulators serving the tests' YESTERDAY (fast limits: the tests never wait). The
    secrets are in no process environment of this process: :func:`invoke` hands them to the
    command (:mod:`tests.environment`), a child process gets them in its own."""
    with demo_stack.emulators(SECRETS, start=T0) as stack:
        yield stack


def write_config(root: Path, stack: Stack, **sections: dict[str, Any]) -> Path:
    """``root/wfm.toml`` for ``stack`` with the tests' day (see demo_stack.write_config)."""
    return demo_stack.write_config(root, stack, start=T0, **sections)


def lean_config(root: Path, stack: Stack) -> Path:
    """``root/wfm.toml`` with UJET and Mindful only (one source per canonical table), a 60-minute
    lookback and no report: the store-safety and crash tests' configuration."""
    root.mkdir(parents=True, exist_ok=True)
    return write_config(
        root,
        stack,
        sources__dixa={"enabled": False},
        sources__kore={"enabled": False},
        run={"lookback_minutes": 60, "report": False},
    )


def invoke(args: list[str], config: Path | None = None) -> Result:
    """``wfm-intervals ARGS --config CONFIG`` with the secrets in the environment only."""
    extra = ["--config", str(config)] if config is not None else []
    return beside(cli, [*args, *extra], SECRETS, catch_exceptions=False)  # emulators run


def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable or .env of the developer's leaks into a test."""
    for name in [n for n in os.environ if n.startswith("WFM_") and n != CLOCK_AT_VARIABLE]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def away_from_configs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """:func:`clean_environment`, working in an empty folder of its own, as cron runs from
    ``/``: nothing beside the configs is in the working directory."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    clean_environment(monkeypatch, elsewhere)


def closed_port_url(path: str = "") -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def table(out: Path, name: str) -> pl.DataFrame:
    """A stored table, sorted by every key-like column (without the partition column)."""
    frame = pl.read_delta(str(out / "store" / name)).drop("date", strict=False)
    return frame.sort(frame.columns[:8], nulls_last=True)


def same_tables(got: dict[str, pl.DataFrame], want: dict[str, pl.DataFrame]) -> None:
    """Each table of ``want`` equal to ``got``'s, rows in any order."""
    for name, frame in want.items():
        assert_frame_equal(got[name], frame, check_row_order=False)


def run_json(config: Path, *args: str) -> dict[str, object]:
    """The ``--json`` summary of ``wfm-intervals run`` with ``config``, which must exit 0."""
    result = invoke(["run", "--json", "--quiet", *args], config)
    assert result.exit_code == 0, result.output
    summary: dict[str, object] = json.loads(result.stdout)
    return summary


def csv_rows(path: Path) -> int:
    """Rows of a CSV file (0 when it is missing or empty)."""
    if not path.is_file() or not path.stat().st_size:
        return 0
    return pl.read_csv(path, infer_schema=False).height


def one_error_line(result: Result) -> str:
    """The single stderr line of a failed command."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("wfm-intervals: error: "), lines[0]
    return lines[0]
