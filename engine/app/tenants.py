"""Tenants: several configurations of the same vendors in one file (a BPO's clients).

A config file names tenants as ``[tenants.<name>]`` tables holding any of the settings sections
(``[tenants.acme.sources.ujet] base_url = …``); their secrets come from the same layers as every
other setting, by variable name (``WFM_TENANTS__ACME__SOURCES__UJET__PASSWORD``: environment,
``.env``, secrets directory). A tenant's effective settings are the base settings (everything
outside ``[tenants]``, every layer applied) with the tenant's table (every layer applied) merged
over them key by key: a table merges, any other value (a list too) replaces.

Isolation: unless the tenant sets its own, its landing store, state and output directory are
the ``tenants/<name>/`` folder of the base ``[store] landing``, ``[store] state`` and ``[output]
dir``, so its run, lock, tables, exports and report never touch another tenant's. When the base
sets ``[serve] store`` and the tenant does not, the tenant's serve store is its own ``[output]
dir`` if it sets one (its tables are there), else the ``tenants/<name>/`` folder of the base's.
:func:`check_disjoint` refuses two tenants whose folders (the serve store too: ``serve --tenant``
must answer with that tenant's tables) are the same or one inside the other. Not
``tenant=<name>/``: Polars' Delta reader takes every ``key=value`` folder of a table's path
for a Hive partition column, and ``pl.scan_delta`` of a table under ``tenant=acme/`` fails
("path contains column not present in the given Hive schema"); DuckDB's ``read_parquet`` adds
a ``tenant`` column.

The functions here work on plain data (what the layers merged), never on files or models;
:meth:`engine.app.config.AppSettings.tenant` validates the result.

Example:
    >>> merge({"sources": {"ujet": {"per_page": 100, "enabled": False}}},
    ...       {"sources": {"ujet": {"enabled": True}}})
    {'sources': {'ujet': {'per_page': 100, 'enabled': True}}}
    >>> tenant_folder(Path("data/landing"), "acme").as_posix()
    'data/landing/tenants/acme'
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from connectors.errors import ConfigError

__all__ = [
    "ISOLATED",
    "NAME_RULE",
    "WHOLE",
    "check_declared",
    "check_disjoint",
    "check_name",
    "checked",
    "declared",
    "folders",
    "for_tenant",
    "is_name",
    "located",
    "merge",
    "restrict",
    "shown_keys",
    "tenant_data",
    "tenant_folder",
]

#: A tenant name: a safe path segment and a safe part of a variable name (``__`` separates
#: those, and variable names are case-insensitive).
_NAME: Final = re.compile(r"[a-z0-9]+(?:_[a-z0-9]+)*")
_MAX_NAME: Final = 40
NAME_RULE: Final = "lowercase letters and digits, single underscores between, at most 40 long"
#: The settings that are a tenant's own folder unless it sets them: (section, key).
ISOLATED: Final = (("store", "landing"), ("store", "state"), ("output", "dir"))
#: The serve store: the tenant's own ``[output] dir`` if it sets one, else as :data:`ISOLATED`
#: (when the base sets it; unset, ``serve`` reads the output directory anyway).
_SERVED: Final = ("serve", "store")
#: Maps of credentials (name -> secret) a tenant that sets replaces whole, as a list of tokens
#: is: merged key by key, the base's apps and clients would open every such tenant's tables.
WHOLE: Final = (("serve", "kore_apps"), ("serve", "oauth_clients"))


def is_name(name: str) -> bool:
    """Whether ``name`` is a tenant name (:data:`NAME_RULE`)."""
    return len(name) <= _MAX_NAME and _NAME.fullmatch(name) is not None


def check_name(name: str) -> str:
    """``name`` if it is a tenant name (:data:`NAME_RULE`).

    Raises:
        ConfigError: it is not (the message names the rule).
    """
    if not is_name(name):
        raise ConfigError(f"tenants.{name}: not a tenant name ({NAME_RULE})")
    return name


def declared(data: Mapping[str, Any], where: str, sections: Iterable[str]) -> list[str]:
    """The tenants a config file's data declares (``[tenants.<name>]`` tables), checked.

    Args:
        data: the file's parsed TOML.
        where: how errors name the file (``config file site.toml``).
        sections: the sections a tenant may hold (the top-level settings sections).

    Raises:
        ConfigError: ``tenants`` is not a table of tables, a name breaks :data:`NAME_RULE`, or a
            tenant holds a section that does not exist (``[tenants.acme.bogus]``, or
            ``[tenants.acme.tenants]``).
    """
    found = data.get("tenants", {})
    if not isinstance(found, Mapping):
        raise ConfigError(f"{where}: tenants must be a table of [tenants.<name>] tables")
    for name, table in found.items():
        checked(check_name(name), table, sections, where)
    return list(found)


def checked(name: str, table: Any, sections: Iterable[str], where: str) -> Mapping[str, Any]:
    """Tenant ``name``'s ``table`` if it is a table of settings sections (``sections``, less
    ``tenants``: a tenant holds no tenants).

    Raises:
        ConfigError: it is not (the message starts with ``where``).
    """
    known = [s for s in sections if s != "tenants"]
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: tenants.{name} must be a table ([tenants.{name}])")
    if unknown := sorted(set(table) - set(known)):
        raise ConfigError(
            f"{where}: unknown section [tenants.{name}.{unknown[0]}] (known: {', '.join(known)})"
        )
    return table


def check_declared(found: Mapping[str, Any], names: Iterable[str]) -> None:
    """Refuse a tenant the merged layers hold (``found``) that no config file declares
    (``names``): tenants are declared in files; a variable alone (a typo, a tenant removed)
    would otherwise make a tenant of base settings.

    Raises:
        ConfigError: one line naming the tenant and the variable form.
    """
    declared_names = sorted(set(names))
    if stray := sorted(set(found) - set(declared_names)):
        raise ConfigError(
            f"tenants.{stray[0]}: set by a variable, .env or secrets file "
            f"(WFM_TENANTS__{stray[0].upper()}__...) but declared in no config file (add "
            f"[tenants.{stray[0]}]; declared: {', '.join(declared_names) or 'none'})"
        )


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``over`` merged over ``base``, key by key: where both hold a table the tables merge,
    otherwise ``over``'s value wins (a list replaces a list). Neither argument is changed."""
    out = dict(base)
    for key, value in over.items():
        below = out.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            out[key] = merge(below, value)
        else:
            out[key] = value
    return out


def tenant_folder(base: Path, name: str) -> Path:
    """Tenant ``name``'s folder of ``base``: ``<base>/tenants/<name>``."""
    return Path(base) / "tenants" / name


def tenant_data(name: str, base: Mapping[str, Any], overlay: Mapping[str, Any]) -> dict[str, Any]:
    """Tenant ``name``'s settings data: ``overlay`` merged over ``base`` (:func:`merge`), with
    the credential maps of :data:`WHOLE` it sets taken whole (not merged with the base's), and
    each of :data:`ISOLATED` the tenant does not set moved into its ``tenants/<name>`` folder
    of the base's; ``[serve] store``, when the base sets it and the tenant does not, is the
    tenant's own ``[output] dir`` if it sets one, else its ``tenants/<name>`` folder of the
    base's (so ``serve --tenant`` reads the tables that tenant's run writes).

    Example:
        >>> data = tenant_data("acme", {"store": {"landing": Path("l"), "state": Path("s")},
        ...                             "output": {"dir": Path("o")}},
        ...                    {"store": {"state": "/srv/acme/state"}})
        >>> [str(data["store"]["landing"]), data["store"]["state"], str(data["output"]["dir"])]
        ['l/tenants/acme', '/srv/acme/state', 'o/tenants/acme']
    """
    merged = merge(base, overlay)
    for section, key in WHOLE:
        if _sets(overlay, section, key):
            merged[section] = {**merged[section], key: overlay[section][key]}
    for section, key in (*ISOLATED, _SERVED):
        given = base.get(section, {}).get(key)
        if _sets(overlay, section, key) or given is None:
            continue
        folder = tenant_folder(Path(given), name)
        if (section, key) == _SERVED and _sets(overlay, "output", "dir"):
            folder = merged["output"]["dir"]  # its own output dir: where its tables are
        merged[section] = {**merged[section], key: folder}
    return merged


def _sets(overlay: Mapping[str, Any], section: str, key: str) -> bool:
    own = overlay.get(section, {})
    return isinstance(own, Mapping) and key in own


def folders(data: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """The (setting, folder) pairs of :data:`ISOLATED` in a tenant's settings data, and its
    ``serve.store`` when set (unset, ``serve`` reads ``output.dir``, already a pair)."""
    pairs = [(f"{section}.{key}", Path(data[section][key])) for section, key in ISOLATED]
    served = data.get(_SERVED[0], {}).get(_SERVED[1])
    return pairs + ([] if served is None else [(".".join(_SERVED), Path(served))])


def check_disjoint(owned: Mapping[str, Iterable[tuple[str, Path]]]) -> None:
    """Refuse two tenants sharing a folder: ``owned`` maps each tenant to its (setting,
    folder) pairs (:func:`folders`); no folder of one may be a folder of another, or inside
    it. Paths are compared as the system resolves them (``..`` and symbolic links followed,
    as far as they exist): ``shared`` and ``x/../shared`` are one folder.

    Raises:
        ConfigError: one line naming both tenants, both settings and the folders.

    Example:
        >>> try:
        ...     check_disjoint({"a": [("store.state", Path("/s"))],
        ...                     "b": [("store.state", Path("/s/b"))]})
        ... except ConfigError as exc:
        ...     print(str(exc).partition(":")[0])
        tenants.b.store.state (/s/b) is inside tenants.a.store.state (/s)
    """
    owner: dict[tuple[str, ...], tuple[str, str]] = {}
    for name, pairs in owned.items():
        for setting, folder in pairs:
            parts = Path(os.path.realpath(Path(folder).absolute())).parts
            other = owner.setdefault(parts, (name, setting))
            if other[0] != name:
                raise ConfigError(_clash((name, setting), parts, other, parts, "is"))
    for parts, mine in owner.items():
        for depth in range(1, len(parts)):
            outer = owner.get(parts[:depth])
            if outer is not None and outer[0] != mine[0]:
                raise ConfigError(_clash(mine, parts, outer, parts[:depth], "is inside"))


def _clash(
    one: tuple[str, str], at: tuple[str, ...], two: tuple[str, str], of: tuple[str, ...], how: str
) -> str:
    return (
        f"tenants.{one[0]}.{one[1]} ({Path(*at)}) {how} tenants.{two[0]}.{two[1]} ({Path(*of)}):"
        " give each tenant its own folder (or leave it unset: tenants/<name>)"
    )


#: A command of a fix hint that takes ``--tenant``, and a setting path of a source.
_COMMAND: Final = re.compile(
    r"\bwfm-intervals (?:run|sync|verify|reconcile|report|serve|config show|state [a-z]+|"
    r"export [a-z-]+)\b(?! --tenant)"
)
_SOURCE_SETTING: Final = re.compile(r"(?<![\w./\[-])sources\.(?=[a-z<])")


def for_tenant(name: str | None, line: str) -> str:
    """``line`` (a message about tenant ``name``'s work) with its fix hints made the tenant's:
    each ``wfm-intervals <command>`` given ``--tenant <name>`` (as printed, it would do every
    tenant, or refuse), each ``sources.…`` setting path given ``tenants.<name>.`` (where the
    tenant's own value goes). ``name`` None (no tenants): ``line`` unchanged.

    Example:
        >>> for_tenant("acme", "`wfm-intervals state reset ujet calls --yes`")
        '`wfm-intervals state reset --tenant acme ujet calls --yes`'
        >>> for_tenant("acme", "fix: wfm-intervals run --full-refresh; check sources.ujet.key")
        'fix: wfm-intervals run --tenant acme --full-refresh; check tenants.acme.sources.ujet.key'
    """
    if name is None:
        return line
    line = _COMMAND.sub(lambda m: f"{m[0]} --tenant {name}", line)
    return _SOURCE_SETTING.sub(f"tenants.{name}.sources.", line)


def shown_keys(overlay: Mapping[str, Any]) -> dict[str, Any]:
    """What ``config show`` shows of a tenant: the keys its table sets, and its folders."""
    isolated: dict[str, Any] = {}
    for section, key in ISOLATED:
        isolated.setdefault(section, {})[key] = None
    return merge(isolated, overlay)


def located(exc: ValidationError, prefix: tuple[str, ...]) -> ValidationError:
    """``exc`` with ``prefix`` (``("tenants", "acme")``) in front of each error's location.

    Each error is rebuilt as a custom error of its type and message: pydantic rebuilds only its
    own standard types from data, and a setting of the wrong type for a path (``path_type``)
    made this an internal error.

    Example:
        >>> from pathlib import Path
        >>> from pydantic import BaseModel
        >>> class Store(BaseModel):
        ...     landing: Path
        >>> try:
        ...     Store(landing=5)
        ... except ValidationError as exc:
        ...     (error,) = located(exc, ("tenants", "a")).errors()
        >>> error["loc"], error["type"]
        (('tenants', 'a', 'landing'), 'path_type')
    """
    errors: list[Any] = [
        {"type": PydanticCustomError(e["type"], e["msg"]), "loc": (*prefix, *e["loc"])}
        | {"input": e["input"]}
        for e in exc.errors()
    ]
    return ValidationError.from_exception_data(exc.title, errors)


def restrict(full: Mapping[str, Any], shape: Mapping[str, Any]) -> dict[str, Any]:
    """The part of ``full`` at the keys ``shape`` has (recursively where both hold tables):
    a tenant's effective values at the keys its table sets.

    Example:
        >>> restrict({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"c": None}})
        {'a': {'c': 2}}
    """
    out: dict[str, Any] = {}
    for key, value in shape.items():
        if key not in full:
            continue
        below = full[key]
        both = isinstance(value, Mapping) and isinstance(below, Mapping)
        out[key] = restrict(below, value) if both else below
    return out
