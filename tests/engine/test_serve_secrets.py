"""A serve secret that is not valid text is refused at start, naming the setting, never the value.

One token read from a variable holding a byte that is not UTF-8 (``caf\\xe9`` in Latin-1: a lone
surrogate in Python) made every Bearer request a 500 (``UnicodeEncodeError`` comparing it), the
valid tokens' requests too; a Kore.ai app's or an OAuth client's secret likewise.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli.main import cli
from engine.serve.settings import ServeSettings
from tests.environment import invoke

SECRET = "serve-Wm52-never-shown"  # noqa: S105 - a fake secret
BAD = SECRET + "\udce9"  # the byte 0xe9 of a Latin-1 variable, as Python keeps it
SETTINGS = {
    "tokens": json.dumps(["good-token", BAD]),
    "kore_apps": json.dumps({"cs-1": BAD}),
    "oauth_clients": json.dumps({"client-1": BAD}),
}


@pytest.mark.parametrize(("name", "value"), SETTINGS.items(), ids=SETTINGS.keys())
def test_a_secret_that_is_not_text_stops_serve_at_start(
    tmp_path: Path, name: str, value: str
) -> None:
    env = {"WFM_SERVE__TOKENS": json.dumps(["good-token"]), f"WFM_SERVE__{name.upper()}": value}
    # a public address without TLS is refused too: the secret must be refused first, at load
    args = ["serve", "--host", "0.0.0.0", "--store", str(tmp_path)]  # noqa: S104
    result = invoke(cli, args, env)
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        f"wfm-intervals: error: invalid setting serve.{name}: "
        "not a usable secret: it is not valid text"
    )
    assert SECRET not in result.output + result.stderr


def test_secrets_of_any_text_are_kept() -> None:
    settings = ServeSettings.model_validate(
        {"tokens": ["café"], "kore_apps": {"a": "clé\n"}, "oauth_clients": {"c": "ü"}}
    )
    assert settings.tokens[0].get_secret_value() == "café"
