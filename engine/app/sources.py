"""The connectors this application is assembled from: the one engine room that knows the registry.

The orchestration rooms (``pipeline/``, ``cli/``) ask here for a source's declaration by name; the
core never sees a connector at all. Keeping the registry behind this module means a build of the
engine with another set of connectors changes this file only.

Example:
    >>> connector("ujet").streams[0].name
    'calls'
    >>> connector("nope")
    Traceback (most recent call last):
    ...
    connectors.errors.ConfigError: unknown source 'nope' (known: dixa, kore, mindful, ujet)
"""

from __future__ import annotations

from connectors.registry import SOURCES, get_source
from connectors.source import Source

__all__ = ["SOURCES", "connector"]


def connector(name: str) -> Source:
    """The declaration of the source called ``name``.

    Raises:
        ConfigError: no such source; the message lists the known ones.
    """
    return get_source(name)
