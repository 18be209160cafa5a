"""Build settings are immutable values all the way down.

``BuildSettings`` is a frozen model, but its per-channel thresholds and targets were plain
dicts: ``s.sl_default_ms["voice"] = 1`` changed what every table built with ``s`` (and every
cached build keyed by it) meant, with no error. They are now dicts that refuse changes, and
dump, copy and pickle as before (the run state keeps the dump).
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest

from engine.settings import BuildSettings, ThresholdOverride

CHANGES: dict[str, Callable[[dict[str, Any]], object]] = {
    "set": lambda d: d.__setitem__("voice", 1),
    "delete": lambda d: d.__delitem__("voice"),
    "update": lambda d: d.update(voice=1),
    "pop": lambda d: d.pop("voice"),
    "popitem": lambda d: d.popitem(),
    "setdefault": lambda d: d.setdefault("new", 1),
    "clear": lambda d: d.clear(),
    "in place or": lambda d: d.__ior__({"voice": 1}),
}


def _settings() -> list[BuildSettings]:
    given = BuildSettings(
        tz="Asia/Kolkata",
        sl_default_ms={"voice": 15_000},
        sl_target={"chat": 0.7},
        sl_overrides=(ThresholdOverride(queue_id="q", channel="voice", threshold_ms=5_000),),
    )
    return [BuildSettings(), given]


@pytest.mark.parametrize("change", CHANGES)
@pytest.mark.parametrize("field", ["sl_default_ms", "sl_target"])
def test_the_per_channel_settings_refuse_changes(field: str, change: str) -> None:
    for settings in _settings():
        before = settings.model_dump(mode="json")
        with pytest.raises(TypeError, match="settings are immutable"):
            CHANGES[change](getattr(settings, field))
        assert settings.model_dump(mode="json") == before


def test_they_read_dump_copy_and_pickle_as_before() -> None:
    default, given = _settings()
    assert given.threshold_ms("q", "voice") == 5_000
    assert given.threshold_ms("other", "voice") == 15_000
    assert given.sl_target["chat"] == 0.7
    assert given.sl_target["voice"] == 0.8  # the defaults fill the channels not given
    dumped = given.model_dump(mode="json")
    assert dumped["sl_default_ms"] == {
        "voice": 15_000, "callback": 20_000, "chat": 60_000, "messaging": 60_000,
        "email": 3_600_000,
    }  # fmt: skip
    assert type(dumped["sl_target"]) is dict
    assert type(given.model_dump()["sl_default_ms"]) is dict
    assert given.model_dump_json().startswith('{"interval_minutes":15,"tz":"Asia/Kolkata"')
    for settings in (default, given):
        assert BuildSettings.model_validate(settings.model_dump(mode="json")) == settings
        for made in (pickle.loads(pickle.dumps(settings)), copy.deepcopy(settings)):  # noqa: S301
            assert made == settings
            with pytest.raises(TypeError, match="settings are immutable"):
                made.sl_default_ms["voice"] = 1
    assert {**given.sl_default_ms, "voice": 1}["voice"] == 1  # a plain dict made from it


def test_the_configured_build_settings_are_frozen_too(tmp_path: Any, monkeypatch: Any) -> None:
    from engine.app.config import AppSettings

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WFM_BUILD__SL_TARGET", '{"chat": 0.75}')
    build = AppSettings().build
    assert build.sl_target["chat"] == 0.75
    with pytest.raises(TypeError, match="settings are immutable"):
        build.sl_target["chat"] = 0.5
    with pytest.raises(TypeError, match="settings are immutable"):
        build.sl_default_ms["voice"] = 1
