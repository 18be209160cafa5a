"""Every connector by name: adding a vendor is one line here (and its module and config table).

Example:
    >>> sorted(SOURCES)
    ['dixa', 'kore', 'mindful', 'ujet']
    >>> get_source("ujet").streams[0].name
    'calls'
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from connectors.errors import ConfigError
from connectors.source import Source
from connectors.vendors.dixa.client import DIXA
from connectors.vendors.kore.client import KORE
from connectors.vendors.mindful.client import MINDFUL
from connectors.vendors.ujet.client import UJET

__all__ = ["SOURCES", "get_source"]

#: Source name -> declaration, one line per vendor.
SOURCES: Mapping[str, Source] = MappingProxyType(
    {
        UJET.name: UJET,
        MINDFUL.name: MINDFUL,
        DIXA.name: DIXA,
        KORE.name: KORE,
    }
)


def get_source(name: str) -> Source:
    """The source called ``name``.

    Raises:
        ConfigError: No such source (the message lists the known ones).
    """
    try:
        return SOURCES[name]
    except KeyError:
        known = ", ".join(sorted(SOURCES))
        raise ConfigError(f"unknown source {name!r} (known: {known})") from None
