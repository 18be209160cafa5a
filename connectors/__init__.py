"""The vendor connectors: pull records over HTTP into a landing store, resumably.

The public names, for a notebook or your own job:

- :data:`SOURCES` (every source by name: ``dixa``, ``kore``, ``mindful``, ``ujet``) and
  :func:`get_source`; a :class:`Source` carries its settings model (``settings_model``, a
  :class:`SourceSettings`) and its streams;
- :func:`sync_source`: sync the streams of one source into ``landing_root``, committing each
  stream's cursor under ``state_root`` after every durable page; one :class:`SyncReport` per
  stream (a stream that fails reports its error and does not stop the next);
- :class:`ConnectorError`: the root of every error this layer raises on purpose (itself a
  :class:`engine.errors.WfmError`).

Names are imported on first use: ``import connectors`` loads no vendor module and no HTTP client,
and ``import connectors.errors`` (or any submodule) does not load the registry.

Example:
    >>> import connectors
    >>> sorted(connectors.SOURCES)
    ['dixa', 'kore', 'mindful', 'ujet']
    >>> [stream.name for stream in connectors.get_source("ujet").streams]
    ['calls', 'chats']
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from connectors.errors import ConnectorError
    from connectors.registry import SOURCES, get_source
    from connectors.source import Source, SourceSettings
    from connectors.sync import SyncReport, sync_source

__all__ = [
    "SOURCES",
    "ConnectorError",
    "Source",
    "SourceSettings",
    "SyncReport",
    "get_source",
    "sync_source",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use."""
    if name in ("SOURCES", "get_source"):
        return getattr(importlib.import_module("connectors.registry"), name)
    if name in ("SyncReport", "sync_source"):
        return getattr(importlib.import_module("connectors.sync"), name)
    if name in ("Source", "SourceSettings"):
        return getattr(importlib.import_module("connectors.source"), name)
    if name == "ConnectorError":
        return importlib.import_module("connectors.errors").ConnectorError
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
