"""The public names of ``engine`` and ``connectors``: each resolves, lazily, to its home's object.

A notebook user reads ``engine.__all__`` and ``connectors.__all__``: every name listed must load
and be the very object of the module it lives in (no copy, no stale alias), nothing else may
answer, and importing either package must stay light (no Polars, no vendor module, no HTTP
client) until a name is used.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import connectors
import engine
from connectors.errors import ConfigError, ConnectorError
from engine.errors import WfmError

ROOT = Path(__file__).resolve().parents[1]

#: Where each public name lives (module, attribute; no attribute: the name is the module).
ENGINE_HOMES = {
    "BuildSettings": ("engine.settings", "BuildSettings"),
    "ThresholdOverride": ("engine.settings", "ThresholdOverride"),
    "CALLBACK_ATTEMPTS": ("engine.schema", "CALLBACK_ATTEMPTS"),
    "CONTACTS": ("engine.schema", "CONTACTS"),
    "QUARANTINE": ("engine.schema", "QUARANTINE"),
    "interval_grid": ("engine.interval", "interval_grid"),
    "snap_window": ("engine.interval", "snap_window"),
    "read_table": ("engine.output.read", "read_table"),
    "validate_contacts": ("engine.validate.contacts", "validate_contacts"),
    "validate_callback_attempts": (
        "engine.validate.callback_attempts",
        "validate_callback_attempts",
    ),
    "WfmError": ("engine.errors", "WfmError"),
    "callback_intervals": ("engine.tables.callback_intervals", None),
    "callback_metrics": ("engine.tables.callback_metrics", None),
    "callback_requests": ("engine.tables.callback_requests", None),
    "callvolume": ("engine.tables.callvolume", None),
    "forecast": ("engine.tables.forecast", None),
    "retry_outcomes": ("engine.tables.retry_outcomes", None),
}
CONNECTORS_HOMES = {
    "SOURCES": ("connectors.registry", "SOURCES"),
    "get_source": ("connectors.registry", "get_source"),
    "sync_source": ("connectors.sync", "sync_source"),
    "SyncReport": ("connectors.sync", "SyncReport"),
    "Source": ("connectors.source", "Source"),
    "SourceSettings": ("connectors.source", "SourceSettings"),
    "ConnectorError": ("connectors.errors", "ConnectorError"),
}


def home(module: str, attribute: str | None) -> object:
    found = importlib.import_module(module)
    return found if attribute is None else getattr(found, attribute)


@pytest.mark.parametrize(
    ("package", "homes"), [(engine, ENGINE_HOMES), (connectors, CONNECTORS_HOMES)]
)
def test_every_public_name_is_its_homes_object(package: object, homes: dict) -> None:
    names = package.__all__  # type: ignore[attr-defined]
    assert sorted(names) == sorted(homes)
    assert len(set(names)) == len(names)
    assert dir(package) == sorted(names)
    for name in names:
        assert getattr(package, name) is home(*homes[name]), name


@pytest.mark.parametrize("package", [engine, connectors])
def test_an_unknown_name_is_an_attribute_error(package: object) -> None:
    with pytest.raises(AttributeError, match="no attribute 'build'"):
        package.build  # type: ignore[attr-defined]  # noqa: B018
    assert not hasattr(package, "_private")


def test_the_connector_error_root_hangs_from_the_engines() -> None:
    assert issubclass(connectors.ConnectorError, engine.WfmError)
    with pytest.raises(connectors.ConnectorError, match="known: dixa, kore, mindful, ujet"):
        connectors.get_source("genesys")
    assert issubclass(ConfigError, ConnectorError)
    assert issubclass(ConnectorError, WfmError)


#: The functions of the public table modules that docs/api.md and the docstring name.
PROMISED = {
    "callvolume": ("build", "derive", "rollup", "rollup_window"),
    "callback_requests": ("requests",),
    "callback_intervals": ("build", "rollup"),
    "retry_outcomes": ("build", "rollup"),
    "callback_metrics": ("document", "document_intervals"),
    "forecast": ("long_format",),
}


@pytest.mark.parametrize("module", sorted(PROMISED))
def test_the_table_modules_have_what_the_api_page_promises(module: str) -> None:
    table = getattr(engine, module)
    missing = [f for f in PROMISED[module] if not callable(getattr(table, f, None))]
    assert missing == []


LOADED = """
import sys
import {package}
heavy = {heavy!r}
print(sorted(m for m in sys.modules if m in heavy or m.startswith(heavy)))
"""


@pytest.mark.parametrize(
    ("package", "heavy"),
    [
        ("engine", ("polars", "engine.tables", "engine.validate", "connectors")),
        ("connectors", ("polars", "httpx", "connectors.registry", "connectors.vendors", "engine")),
    ],
)
def test_importing_the_package_loads_nothing_heavy(package: str, heavy: tuple[str, ...]) -> None:
    probe = LOADED.format(package=package, heavy=heavy)
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
