"""The UJET demo leg: emulator -> connector over HTTP -> checked against the truth -> tables."""

from __future__ import annotations

from pathlib import Path

from engine.demo import run_demo


def test_demo_syncs_exactly_the_emulators_truth_and_builds(tmp_path: Path) -> None:
    said: list[str] = []
    report = run_demo(tmp_path / "out", days=2, seed=5, scale=0.02, say=said.append)
    assert report.matches, report.mismatch
    assert all(r.ok for r in report.syncs)
    assert report.segments > 0
    assert report.records > report.segments // 2
    assert report.build is not None
    assert report.build.contacts == report.segments
    assert report.build.quarantined_total == 0
    assert (tmp_path / "out" / "summary.json").is_file()
    assert (tmp_path / "out" / "quarantine" / "ujet_records.csv").is_file()
    assert any("== the emulator's truth: OK" in line for line in said)
