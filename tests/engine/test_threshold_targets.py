"""Service-level threshold targets name a real channel, and the document's averages in seconds
are exact.

A threshold whose channel is not a canonical one (``q1/vioce``, ``Voice``) matched no contact and
was dropped without a word; it is now refused, on the command line and in the configuration,
with one line naming the option or setting and listing the channels. With
``--duration-unit s`` the Contact Volume document's averages are the correctly rounded
``total_ms / (answered * 1000)``, whatever the size of the table (docs/metrics.md).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.cli.build import _thresholds
from engine.cli.main import cli
from engine.demo.contacts import generate_contacts
from engine.output.files import callvolume_document
from engine.settings import BuildSettings, ThresholdOverride
from engine.tables.callvolume import build, derive

START = datetime(2026, 10, 1, tzinfo=UTC)
CHANNEL_LIST = "channels: voice, chat, email, callback, messaging"
#: One voice contact of queue q1, answered after 25 s: within a 30 s threshold, not 20 s.
CONTACTS = """\
source,contact_id,segment_no,channel,direction,queue_id,queue_name,offered_at,answered_at,\
ended_at,outcome,wait_ms,talk_ms,updated_at
s,c12,1,voice,inbound,q1,Q1,2026-10-01T09:46:00Z,2026-10-01T09:46:25Z,2026-10-01T09:50:00Z,\
answered,25000,1000,2026-10-01T10:00:00Z
"""


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No WFM_ variable and no .env of the developer's leaks into these tests."""
    for name in [n for n in os.environ if n.startswith("WFM_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout, result.stderr


def build_q1(tmp_path: Path, threshold: str) -> tuple[int, str, pl.DataFrame | None]:
    path = tmp_path / "contacts.csv"
    path.write_text(CONTACTS, encoding="utf-8")
    out = tmp_path / "o"
    code, _, stderr = invoke(
        "build", "--contacts", str(path), "--out", str(out), "--format", "csv",
        "--sl-threshold", threshold,
    )  # fmt: skip
    csv = out / "exports" / "callvolume.csv"
    return code, stderr, pl.read_csv(csv).filter(pl.col("answered") > 0) if code == 0 else None


def test_a_queue_and_channel_threshold_applies(tmp_path: Path) -> None:
    code, stderr, rows = build_q1(tmp_path, "q1/voice=30000")
    assert code == 0, stderr
    assert rows is not None
    assert rows["answered_within_sl"].to_list() == [1]
    assert rows["service_level"].to_list() == [1.0]


@pytest.mark.parametrize(
    ("threshold", "named"),
    [
        ("q1/vioce=30000", "'vioce'"),  # a typo'd channel
        ("q1/Voice=30000", "'Voice'"),  # channels are lower case
        ("Voice=30000", "'Voice'"),  # a channel default but for case: a typo, not a queue
        ("VOICE=30s", "'VOICE'"),
        ("voice =30000", "'voice '"),
        ("q1/=30000", "TARGET=MILLISECONDS"),  # no channel after the slash
        ("/voice=30000", "TARGET=MILLISECONDS"),  # no queue
        ("=30000", "TARGET=MILLISECONDS"),
    ],
)
def test_a_threshold_for_no_channel_is_one_line_and_exit_2(
    tmp_path: Path, threshold: str, named: str
) -> None:
    code, stderr, _ = build_q1(tmp_path, threshold)
    assert code == 2
    assert stderr.strip().splitlines() == [stderr.strip()]
    assert f"--sl-threshold {threshold!r}" in stderr
    assert named in stderr
    if named != "TARGET=MILLISECONDS":
        assert CHANNEL_LIST in stderr
    assert not (tmp_path / "o").exists()  # nothing built


def test_targets_parse_to_channel_defaults_and_queue_overrides() -> None:
    defaults, overrides = _thresholds(("chat=45s", "Q1=15000", "sales/uk/voice=10000", "vip=1s"))
    assert defaults == {"chat": 45_000}
    assert overrides == (
        ThresholdOverride(queue_id="Q1", threshold_ms=15_000),  # a queue id is free text
        ThresholdOverride(queue_id="sales/uk", channel="voice", threshold_ms=10_000),
        ThresholdOverride(queue_id="vip", threshold_ms=1_000),
    )


def test_settings_refuse_a_threshold_for_no_channel() -> None:
    with pytest.raises(ValidationError, match=r"unknown channel 'vioce' \(channels: voice"):
        ThresholdOverride(queue_id="q1", channel="vioce", threshold_ms=30_000)
    with pytest.raises(ValidationError, match=r"unknown channel 'Voice' \(channels: voice"):
        BuildSettings(sl_default_ms={"Voice": 30_000})
    # a queue may still be named like a channel where the queue is a field of its own
    named_so = BuildSettings(sl_overrides=[{"queue_id": "Voice", "threshold_ms": 1}])
    assert named_so.threshold_ms("Voice", "voice") == 1


@pytest.mark.parametrize(
    ("toml", "setting", "named"),
    [
        (
            '[build]\nsl_overrides = [{queue_id = "q1", channel = "vioce", threshold_ms = 30000}]',
            "build.sl_overrides.0.channel",
            "'vioce'",
        ),
        ("[build.sl_default_ms]\nVoice = 30000", "build.sl_default_ms", "'Voice'"),
        ("[build.sl_target]\nVoice = 0.9", "build.sl_target", "'Voice'"),
    ],
)
def test_config_check_refuses_a_threshold_for_no_channel(
    tmp_path: Path, toml: str, setting: str, named: str
) -> None:
    path = tmp_path / "cfg.toml"
    path.write_text(toml + "\n", encoding="utf-8")
    code, _, stderr = invoke("config", "show", "--config", str(path), "--check")
    assert code == 2
    assert stderr.strip().splitlines() == [
        f"wfm-intervals: error: invalid setting {setting}: unknown channel {named} ({CHANNEL_LIST})"
    ]


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    """A derived volume table, in the document's order (interval, queue, channel)."""
    contacts = generate_contacts(seed=11, start=START, days=1).lazy()
    s = BuildSettings()
    window = (START, START + timedelta(hours=3))
    built = derive(build(contacts, window=window, settings=s), settings=s).collect()
    return built.sort("interval_start_utc", "queue_id", "channel")


def seconds_document(table: pl.DataFrame, sums: list[tuple[int, int, int]]) -> list[dict]:
    """The document rows in seconds of the first ``len(sums)`` rows of ``table``, given
    ``(handle_ms, wait_answered_ms, answered)``, with their ratios in ms derived anew."""
    handle, wait, answered = (list(c) for c in zip(*sums, strict=True))
    rows = table.head(len(sums)).with_columns(
        pl.Series("handle_ms", handle, pl.Int64),
        pl.Series("wait_answered_ms", wait, pl.Int64),
        pl.Series("answered", answered, pl.Int64),
    )
    rows = derive(rows.lazy(), settings=BuildSettings()).collect()
    return callvolume_document(rows, org_id="o-1", unit="s")["CallVolumeUpdate"]


def exact(total: int, answered: int) -> float | None:
    """The correctly rounded double of ``total / (answered * 1000)`` (Python's int division is
    correctly rounded; the Fraction states what it is of)."""
    if answered == 0:
        return None
    assert total / (answered * 1000) == float(Fraction(total, answered * 1000))
    return total / (answered * 1000)


@pytest.mark.parametrize("size", [1, 2, 40])
def test_seconds_averages_do_not_depend_on_the_table_size(table: pl.DataFrame, size: int) -> None:
    # 114,999 ms over 2 answered: 57.4995 s (it was 57.499500000000005 in a larger table)
    rows = seconds_document(table, [(114_999, 40_001, 2)] * size)
    assert {r["averageHandleTime"] for r in rows} == {57.4995}
    assert {r["averageSpeedOfAnswer"] for r in rows} == {20.0005}


@given(
    sums=st.lists(
        st.tuples(st.integers(0, 2**53), st.integers(0, 2**53), st.integers(0, 2**32 - 1)),
        min_size=1,
        max_size=40,
    )
)
def test_seconds_averages_are_the_exact_fractions(
    table: pl.DataFrame, sums: list[tuple[int, int, int]]
) -> None:
    rows = seconds_document(table, sums)
    assert [r["averageHandleTime"] for r in rows] == [exact(h, a) for h, _, a in sums]
    assert [r["averageSpeedOfAnswer"] for r in rows] == [exact(w, a) for _, w, a in sums]


def test_a_short_abandon_threshold_beyond_a_week_is_refused(tmp_path: Path) -> None:
    """``--short-abandon-ms 99999999999999999999`` was accepted (the settings file capped it at a
    week, the option and the Python API did not): every abandon a short one."""
    code, _, stderr = invoke("build", "--contacts", str(tmp_path / "none.csv"), "--out",
                             str(tmp_path / "out"), "--short-abandon-ms", "604800001")  # fmt: skip
    assert code == 2
    assert "--short-abandon-ms" in stderr
    with pytest.raises(ValidationError, match="short_abandon_ms"):
        BuildSettings(short_abandon_ms=10**20)
