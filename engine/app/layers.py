"""The configuration layers' files as text, and what to say when one cannot be read.

TOML files and ``.env`` files are UTF-8, a leading byte order mark (many Windows editors write
one) dropped; a file that is not UTF-8 (a ``.env``, a file of the secrets directory) is one
line naming it, never a traceback and never its content. A ``WFM_`` variable that must hold
JSON (a list, an object) and does not is one line naming the variable as it was given
(``WFM_SERVE__TOKENS``, and the ``.env`` file or secrets directory it came from), the
setting, and the shape it takes, never its value: it may be a secret.

Example:
    >>> from engine.app.config import AppSettings
    >>> print(where_json_is_wrong(AppSettings, "serve", {"WFM_SERVE__TOKENS": "tok-1"}))
    invalid setting serve.tokens: WFM_SERVE__TOKENS is not valid JSON (a list, e.g. '["a"]')
"""

from __future__ import annotations

import json
import os
import re
import tomllib
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Union, get_args, get_origin

from dotenv import dotenv_values
from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError, TomlConfigSettingsSource

from connectors.errors import ConfigError

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

__all__ = [
    "DOTENV_ENCODING",
    "TomlFiles",
    "env_files",
    "not_json",
    "not_text",
    "read_dotenv",
    "read_toml",
    "secrets_dir_of",
    "tenant_not_json",
    "where_json_is_wrong",
]

#: ``.env`` files: UTF-8, a leading byte order mark dropped (else it would be part of the first
#: name, and that variable silently ignored).
DOTENV_ENCODING: Final = "utf-8-sig"
_PREFIX: Final = "WFM_"
_PARSING: Final = re.compile(r'field "([^"]+)" from source "([^"]+)"')


def read_toml(file: Path) -> dict[str, Any]:
    """The TOML file ``file`` (a leading byte order mark dropped).

    Raises:
        ConfigError: it is not UTF-8, or not TOML (naming the file, and where).
    """
    try:
        return tomllib.loads(file.read_bytes().decode("utf-8-sig"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {file}: not valid TOML ({exc})") from None


def read_dotenv(file: Path) -> dict[str, str | None]:
    """The variables of the ``.env`` file ``file``, read as the settings read them."""
    return dotenv_values(file, encoding=DOTENV_ENCODING)


class TomlFiles(TomlConfigSettingsSource):
    """pydantic-settings' TOML layer, reading each file as :func:`read_toml` does."""

    def _read_file(self, file_path: Path | Traversable) -> dict[str, Any]:
        return read_toml(Path(str(file_path)))


def env_files(files: Sequence[Path], env_file: Path | str | None) -> tuple[Path, ...]:
    """The dotenv files, lowest priority first: a ``.env`` beside each config file (cron runs
    from ``/``), then ``env_file`` as given (default: ``.env`` in the working directory)."""
    if env_file is None:
        return ()
    beside = [f.parent / Path(env_file).name for f in files[1:]]
    ordered = dict.fromkeys([*beside, Path(env_file)])  # once each, in order
    return tuple(p for p in ordered if p.is_file())


def secrets_dir_of(
    files: Sequence[Path], given: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The secrets directory: ``given``, else ``$WFM_SECRETS_DIR``, else a ``secrets`` folder
    beside the last config file that has one (``None``: no secrets directory).

    Raises:
        ConfigError: the directory named does not exist.
    """
    env = os.environ if environ is None else environ
    found = given or (Path(env["WFM_SECRETS_DIR"]) if env.get("WFM_SECRETS_DIR") else None)
    if found is None:
        beside = [f.parent / "secrets" for f in files[1:] if (f.parent / "secrets").is_dir()]
        found = beside[-1] if beside else None
    if found is not None and not Path(found).is_dir():
        raise ConfigError(f"secrets dir {found}: no such directory")
    return found


def _undecodable(file: Path) -> int | None:
    """The line (from 1) of the first byte of ``file`` that is not UTF-8; ``None``: none."""
    data = file.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return data[: exc.start].count(b"\n") + 1
    return None


def not_text(dotenv: Sequence[Path], secrets_dir: Path | None) -> ConfigError:
    """The error of a ``.env`` file or a secrets directory's file that is not UTF-8 (the
    settings could not be read: one of them is not)."""
    for file in dotenv:
        if (line := _undecodable(file)) is not None:
            return ConfigError(f"env file {file}: not UTF-8 text (line {line}); save it as UTF-8")
    found = sorted(p for p in Path(secrets_dir).rglob("*") if p.is_file()) if secrets_dir else []
    for file in found:
        if _undecodable(file) is not None:
            name = file.relative_to(secrets_dir or file.parent)
            return ConfigError(f"secrets dir {secrets_dir}: file {name} is not UTF-8 text")
    return ConfigError("a .env file or a file of the secrets directory is not UTF-8 text")


def _shape(annotation: Any) -> str | None:
    """How a JSON value for ``annotation`` looks (``None``: it takes text, not JSON)."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _shape(args[0])
    if origin in (Union, types.UnionType):
        return next((s for a in args if (s := _shape(a)) is not None), None)
    if origin in (list, tuple, set, frozenset):
        return """a list, e.g. '["a"]'"""
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return "an object, e.g. '{}'" if is_model or origin is dict else None


def _unwrapped(annotation: Any) -> Any:
    """``annotation`` without ``Annotated``, and of a union the first member taking JSON."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return _unwrapped(args[0])
    if origin in (Union, types.UnionType):
        taking = [a for a in args if _shape(a) is not None]
        return _unwrapped(taking[0]) if taking else None
    return annotation


def _field(model: type[BaseModel], keys: Sequence[str]) -> Any:
    """The annotation of the setting at ``keys`` under ``model`` (``None``: no such setting)."""
    annotation: Any = model
    for key in keys:
        annotation = _unwrapped(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found = annotation.model_fields.get(key)
            annotation = None if found is None else found.annotation
        elif get_origin(annotation) is dict:
            annotation = get_args(annotation)[1] if get_args(annotation) else None
        else:
            return None
    return annotation


def where_json_is_wrong(
    model: type[BaseModel],
    section: str,
    variables: Mapping[str, str | None],
    where: str = "",
    *,
    tenant: str | None = None,
) -> str | None:
    """The error line of the first of ``variables`` under ``section`` (``WFM_SERVE``,
    ``WFM_SERVE__TOKENS``...) that must hold JSON and does not (``where``: after its name, the
    layer it is in); ``None``: none of them. ``tenant``: its variables instead
    (``WFM_TENANTS__ACME__SERVE__TOKENS``, setting ``tenants.acme.serve.tokens``)."""
    prefix = _PREFIX if tenant is None else f"{_PREFIX}TENANTS__{tenant.upper()}__"
    for name, value in variables.items():
        if not name.upper().startswith(prefix) or not value:
            continue
        keys = name[len(prefix) :].lower().split("__")
        if keys[0] != section.lower():
            continue
        shape = _shape(_field(model, keys))
        if shape is None:
            continue
        try:
            json.loads(value)
        except ValueError:
            setting = ".".join(keys if tenant is None else ["tenants", tenant, *keys])
            return f"invalid setting {setting}: {name}{where} is not valid JSON ({shape})"
    return None


def tenant_not_json(
    exc: ValidationError,
    model: type[BaseModel],
    environ: Mapping[str, str],
    dotenv: Sequence[Path],
    secrets_dir: Path | None,
) -> ConfigError | None:
    """The line of a tenant's ``WFM_TENANTS__<NAME>__…`` variable that must hold JSON and does
    not, behind ``exc`` (a tenant's settings refused, the variable's text taken as the value:
    tenants are plain data until validated), as :func:`where_json_is_wrong` says the base's;
    ``None``: no such variable (``exc`` is the error)."""
    layers: list[tuple[Mapping[str, str | None], str]] = [(environ, "")]
    layers += [(read_dotenv(file), f" in {file}") for file in reversed(dotenv)]
    if secrets_dir is not None and Path(secrets_dir).is_dir():
        files = [p for p in sorted(Path(secrets_dir).iterdir()) if p.is_file()]
        given = {p.name: p.read_text(encoding="utf-8").strip() for p in files}
        layers.append((given, f" in secrets dir {secrets_dir}"))
    for error in exc.errors():
        at = [str(part) for part in error["loc"]]
        if len(at) < 3 or at[0] != "tenants" or not isinstance(error["input"], str):
            continue
        for variables, where in layers:
            line = where_json_is_wrong(model, at[2], variables, where, tenant=at[1])
            if line is not None:
                return ConfigError(line)
    return None


def not_json(
    exc: SettingsError,
    model: type[BaseModel],
    environ: Mapping[str, str],
    dotenv: Sequence[Path],
    secrets_dir: Path | None,
) -> ConfigError:
    """The error of pydantic-settings' ``exc``: a ``WFM_`` variable (of the environment
    ``environ``, a ``.env`` file of ``dotenv`` or the secrets directory) that must hold JSON and
    does not, named; anything else as pydantic-settings says it."""
    found = _PARSING.search(str(exc))
    if found is None:
        return ConfigError(f"settings: {exc}")
    section, source = found.groups()
    layers: list[tuple[Mapping[str, str | None], str]] = []
    if "DotEnv" in source:
        layers = [(read_dotenv(file), f" in {file}") for file in reversed(dotenv)]
    elif "Secrets" in source and secrets_dir is not None:
        files = [p for p in sorted(Path(secrets_dir).iterdir()) if p.is_file()]
        given = {p.name: p.read_text(encoding="utf-8").strip() for p in files}
        layers = [(given, f" in secrets dir {secrets_dir}")]
    else:
        layers = [(environ, "")]
    for variables, where in layers:
        if (line := where_json_is_wrong(model, section, variables, where)) is not None:
            return ConfigError(line)
    variable = f"{_PREFIX}{section.upper()}"
    return ConfigError(f"invalid setting {section}: a {variable} variable is not valid JSON")
