"""Where each effective setting came from: the layer that set it (``config show --origin``),
and the settings rendered as TOML (:func:`to_toml`, what ``config show`` prints).

The layers, lowest priority first, as :func:`engine.app.config.load_settings` merges them: the
built-in defaults, each ``--config`` file in order, the secrets directory, the ``.env`` files
(those beside the config files, then the working directory's), the ``WFM_`` environment
variables. A setting no layer names has its model default. A layer that sets a whole table (a
``WFM_SERVE__TOKENS`` JSON value) is the origin of every key under it.

Example:
    >>> layers = [("defaults", {"output": {"dir": "out"}}), ("site.toml", {"output": {"dir": "x"}})]
    >>> origin_of("output.dir", flatten_layers(layers)), origin_of("build.tz", [])
    ('site.toml', 'model default')
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from engine.app.config import DEFAULTS_FILE
from engine.app.layers import read_dotenv, read_toml

__all__ = ["flatten", "flatten_layers", "layers_of", "origin_of", "to_toml"]

_PREFIX = "WFM_"
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out |= flatten(value, f"{path}.")
        else:
            out[path] = value
    return out


def _variables(names: Iterable[str]) -> list[str]:
    """``WFM_SOURCES__UJET__PASSWORD`` -> ``sources.ujet.password`` (other names left out)."""
    return [
        n[len(_PREFIX) :].lower().replace("__", ".")
        for n in names
        if n.upper().startswith(_PREFIX) and "__" in n
    ]


def layers_of(
    files: Sequence[Path],
    dotenv: Sequence[Path],
    secrets_dir: Path | None,
    environ: Mapping[str, str] | None = None,
) -> list[tuple[str, list[str]]]:
    """Each layer's label and the dotted settings it names, lowest priority first."""
    env = os.environ if environ is None else environ
    layers: list[tuple[str, list[str]]] = []
    for file in files:
        label = "built-in defaults" if file == DEFAULTS_FILE else str(file)
        layers.append((label, list(flatten(read_toml(file)))))
    if secrets_dir is not None:
        names = [p.name for p in sorted(Path(secrets_dir).iterdir()) if p.is_file()]
        layers.append((f"secrets dir {secrets_dir}", _variables(names)))
    layers.extend((str(file), _variables(read_dotenv(file))) for file in dotenv)
    named = sorted(n for n in env if n.upper().startswith(_PREFIX))
    layers.extend((f"environment {name}", _variables([name])) for name in named)
    return layers


def flatten_layers(layers: Iterable[tuple[str, Mapping[str, Any]]]) -> list[tuple[str, list[str]]]:
    """``(label, nested data)`` layers as ``(label, dotted keys)``."""
    return [(label, list(flatten(data))) for label, data in layers]


def origin_of(path: str, layers: Sequence[tuple[str, list[str]]]) -> str:
    """The label of the highest layer that names ``path`` or a table holding it."""
    found = "model default"
    for label, keys in layers:
        if any(path == k or path.startswith(f"{k}.") for k in keys):
            found = label
    return found


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _toml_value(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, Mapping):
        pairs = (f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None)
        return "{" + ", ".join(pairs) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def to_toml(data: Mapping[str, Any], prefix: str = "") -> str:
    """Render nested settings data as TOML (``None`` values become comments).

    Example:
        >>> print(to_toml({"store": {"state": "data/state", "x": None}}))
        [store]
        state = "data/state"
        # x = (not set)
    """
    lines: list[str] = []
    scalars = {k: v for k, v in data.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in data.items() if isinstance(v, Mapping)}
    if prefix and scalars:
        lines.append(f"[{prefix}]")
    for key, value in scalars.items():
        name = _toml_key(key)
        lines.append(f"# {name} = (not set)" if value is None else f"{name} = {_toml_value(value)}")
    for key, value in tables.items():
        section = f"{prefix}.{_toml_key(key)}" if prefix else _toml_key(key)
        body = to_toml(value, section)
        if body:
            lines.extend(["", body] if lines else [body])
    return "\n".join(lines)
