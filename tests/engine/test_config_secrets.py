"""A secret that is not valid text (an environment variable's undecodable byte, which Python
keeps as a lone surrogate) is refused at load, by one line naming the setting, never the value.

A ``pii_hash_secret`` read from a variable holding a ``\\xff`` byte passed ``config show
--check``; the sync then stopped with a ``UnicodeEncodeError`` traceback from the keyed hash,
quoting the byte and its position in the secret.
"""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from engine.app.config import load_settings
from engine.cli.main import cli
from tests.environment import invoke

SECRET = "hmac-Pq41-never-shown"  # noqa: S105 - a fake secret
SOURCES = ("ujet", "dixa", "mindful", "kore")


@pytest.mark.parametrize("source", SOURCES)
def test_a_hash_secret_that_is_not_text_is_refused_at_load(source: str) -> None:
    environ = {f"WFM_SOURCES__{source.upper()}__PII_HASH_SECRET": SECRET + "\udcff"}
    checked = invoke(cli, ["config", "show", "--check"], environ)
    assert checked.exit_code == 2
    assert checked.stderr.strip() == (
        f"wfm-intervals: error: invalid setting sources.{source}.pii_hash_secret: "
        "not a usable secret: it is not valid text"
    )
    assert SECRET not in checked.output + checked.stderr
    with pytest.raises(ValidationError):
        load_settings(env_file=None, environ=environ, allow_missing=True)


def test_a_hash_secret_of_any_text_is_kept() -> None:
    environ = {"WFM_SOURCES__MINDFUL__PII_HASH_SECRET": "café\tclé \n"}
    settings = load_settings(env_file=None, environ=environ, allow_missing=True)
    assert settings.source("mindful").pii_hash_secret == SecretStr("café\tclé \n")
