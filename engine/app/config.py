"""The effective configuration: TOML files, ``WFM_`` environment variables, ``.env``, secrets.

Sources, highest priority first (pydantic-settings merges them key by key):

1. keyword arguments of :func:`load_settings` (the command line's overrides);
2. environment variables ``WFM_<SECTION>__<KEY>``, e.g. ``WFM_SOURCES__UJET__PASSWORD``;
3. a ``.env`` file in the working directory, over one beside each config file (same names;
   cron runs from ``/``: the files beside the configuration are found wherever it starts);
4. a secrets directory (``WFM_SECRETS_DIR``, else a ``secrets/`` folder beside a config file):
   one file per setting, named like the variable (``WFM_SOURCES__UJET__PASSWORD``), holding the
   value;
5. the TOML files given by ``--config`` (repeatable) / ``WFM_CONFIG`` (``:``-separated), the
   last one highest: a tenant's file over a site's, merged key by key;
6. the built-in defaults (``engine/data/defaults.toml``, shipped with the package).

Sections: ``[build]`` (:class:`engine.settings.BuildSettings`), ``[output]``, ``[store]``,
``[run]``, ``[reconcile]`` and ``[engine]`` (:mod:`engine.app.sections`) and
``[sources.<name>]`` for each registered connector (its settings model, e.g.
:class:`connectors.vendors.ujet.client.UjetSettings`); ``[tenants.<name>]`` tables hold what
differs per tenant (a BPO's clients: :mod:`engine.app.tenants`; :meth:`AppSettings.tenant`,
``load_settings(tenant=...)``). Credentials are ``SecretStr``:
:meth:`AppSettings.masked`
shows them as ``**********``. :func:`describe_errors` renders a ``ValidationError`` as one line per
problem, naming the setting and never its value. The files are read as :mod:`engine.app.layers`
says (UTF-8, a byte order mark dropped); a setting that is one of a few numbers takes its digits
from a text layer, and the durations and counts have bounds (:mod:`engine.app.limits`).

Example:
    >>> settings = load_settings(env_file=None)
    >>> settings.sources.ujet.rate_limit_per_s, settings.store.state.name
    (1.0, 'state')
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from connectors.errors import ConfigError, missing_allowed
from connectors.registry import SOURCES
from connectors.source import SourceSettings
from engine.app import layers, limits, sections
from engine.app import tenants as tenancy
from engine.app.environment import environment_source, given, reading
from engine.app.layers import env_files, secrets_dir_of
from engine.app.sections import EngineSettings, ReconcileSettings, RunSettings, StoreSettings
from engine.output.vendor import builtin_profiles
from engine.pipeline.build import FORMATS, Format
from engine.serve.settings import ServeSettings
from engine.settings import BuildSettings
from engine.tables.callvolume import ADDITIVE
from engine.tables.forecast import DEFAULT_METRICS

__all__ = [
    "DATA_DIR",
    "DEFAULTS_FILE",
    "DEMO_FILE",
    "AppSettings",
    "OutputSettings",
    "StoreSettings",
    "config_files",
    "describe_errors",
    "env_files",
    "load_settings",
    "secrets_dir_of",
]

#: The built-in settings shipped inside the package (``engine/data/``): the defaults every
#: configuration is layered over, and the demo's settings layered over those.
DATA_DIR = Path(str(resources.files("engine") / "data"))
DEFAULTS_FILE = DATA_DIR / "defaults.toml"
DEMO_FILE = DATA_DIR / "demo.toml"
_FILES: ContextVar[tuple[Path, ...]] = ContextVar("wfm_config_files", default=(DEFAULTS_FILE,))
_SECRETS: ContextVar[Path | None] = ContextVar("wfm_secrets_dir", default=None)
#: Set while a tenant's merged settings are validated: the values given are all there is.
_PLAIN: ContextVar[bool] = ContextVar("wfm_plain_settings", default=False)


@cache
def _profile_minutes() -> dict[str, int]:
    """The built-in export profiles' interval lengths by name (files shipped with the package:
    read once, not once per tenant's settings)."""
    return {name: p.interval_minutes for name, p in builtin_profiles().items()}


def _profile_names() -> frozenset[str]:
    return frozenset(_profile_minutes())


class OutputSettings(BaseModel):
    """``[output]``: where and in which formats the tables are written."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dir: sections.Folder = Path("out")
    formats: tuple[Format, ...] = FORMATS
    org_id: str = Field(default="wfm-intervals", min_length=1)
    duration_unit: Literal["ms", "s"] = "ms"
    vendor_profiles: tuple[str, ...] = ()
    forecast: bool = False
    forecast_metrics: tuple[str, ...] = DEFAULT_METRICS
    forecast_time: Literal["utc", "local"] = "utc"
    settle_minutes: int = Field(default=15, ge=0, le=1440)

    @field_validator("vendor_profiles")
    @classmethod
    def _known_profiles(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        known = _profile_names()
        if bad := [v for v in value if v not in known]:
            raise ValueError(f"unknown profile {bad[0]!r} (built in: {', '.join(sorted(known))})")
        return value

    @field_validator("forecast_metrics")
    @classmethod
    def _additive(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [v for v in value if v not in ADDITIVE]:
            raise ValueError(f"{bad[0]!r} is not an additive column of the volume table")
        return value


_source_fields: dict[str, Any] = {
    name: (source.settings_model, Field(default_factory=source.settings_model))
    for name, source in SOURCES.items()
}
if TYPE_CHECKING:
    SourcesSettings = BaseModel
else:
    SourcesSettings = create_model(
        "SourcesSettings", __config__=ConfigDict(extra="forbid", frozen=True), **_source_fields
    )


class AppSettings(BaseSettings):
    """Everything configurable; see the module docstring for where values come from."""

    model_config = SettingsConfigDict(
        env_prefix="WFM_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding=layers.DOTENV_ENCODING,
        extra="ignore",  # .env may hold other WFM_ names (WFM_CONFIG); TOML is checked below
        frozen=True,
        hide_input_in_errors=True,  # a refused value may be a secret: never in an error's text
    )

    build: BuildSettings = BuildSettings()
    output: OutputSettings = OutputSettings()
    store: StoreSettings = StoreSettings()
    run: RunSettings = RunSettings()
    reconcile: ReconcileSettings = ReconcileSettings()
    engine: EngineSettings = EngineSettings()
    serve: ServeSettings = ServeSettings()
    sources: SourcesSettings = Field(default_factory=SourcesSettings)
    #: ``[tenants.<name>]``: each tenant's settings as the layers gave them (plain data, secrets
    #: too: never dumped or shown as they are; :meth:`tenant` validates one, :meth:`masked`
    #: shows them masked).
    tenants: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True, repr=False)
    _resolved: dict[tuple[str, bool], AppSettings] = PrivateAttr(default_factory=dict)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Init > environment > ``.env`` > secrets dir > ``--config`` file > defaults.toml
        (init only while a tenant's merged settings are validated)."""
        if _PLAIN.get():
            return (init_settings,)
        secrets_dir = _SECRETS.get()
        secrets: tuple[PydanticBaseSettingsSource, ...] = ()
        if secrets_dir is not None:
            secrets = (
                NestedSecretsSettingsSource(
                    file_secret_settings,
                    secrets_dir=secrets_dir,
                    secrets_dir_missing="error",
                    secrets_nested_delimiter="__",
                    secrets_prefix="WFM_",
                ),
            )
        toml = layers.TomlFiles(settings_cls, toml_file=list(_FILES.get()), deep_merge=True)
        env_settings = environment_source(settings_cls, env_settings)
        return (init_settings, env_settings, dotenv_settings, *secrets, toml)

    @model_validator(mode="wrap")
    @classmethod
    def _bounded(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        """The digits a text layer gives a ``Literal`` of numbers read as the number, and the
        bounds of :data:`engine.app.limits.BOUNDS` and the vendor profiles' interval lengths
        checked (a setting out of them is an error at its location)."""
        made = handler(limits.literal_digits(cls, data))
        dumped = made.model_dump()
        errors = [*limits.out_of_bounds(dumped), *limits.unfit_profiles(dumped, _profile_minutes())]
        if errors:
            raise ValidationError.from_exception_data(cls.__name__, errors)
        return made

    def source(self, name: str) -> SourceSettings:
        """The settings of source ``name`` (``[sources.<name>]``).

        Raises:
            ConfigError: No such source.
        """
        value = getattr(self.sources, name, None)
        if not isinstance(value, SourceSettings):
            raise ConfigError(f"unknown source {name!r} (known: {', '.join(sorted(SOURCES))})")
        return value

    def enabled_sources(self) -> list[str]:
        """Names of the sources with ``enabled = true``, in registry order."""
        return [name for name in SOURCES if self.source(name).enabled]

    def tenant_names(self) -> list[str]:
        """The configured tenants, sorted (empty: a configuration without tenants)."""
        return sorted(self.tenants)

    def tenant(self, name: str, *, allow_missing: bool = False) -> AppSettings:
        """Tenant ``name``'s effective settings: these settings with its ``[tenants.<name>]``
        table merged over them key by key, its landing store, state and output directory in
        ``tenants/<name>`` folders of these unless it sets its own (:mod:`engine.app.tenants`).
        The result has no tenants, and is made once (these settings are immutable).
        ``allow_missing``: an enabled source may lack what it needs to run (``config show``).

        Raises:
            ConfigError: no tenant of that name (the message lists the known ones).
            ValidationError: a setting of the tenant is invalid; each error's location starts
                with ``tenants.<name>``.
        """
        if name not in self.tenants:
            if not self.tenants:
                msg = f"tenant {name!r}: no tenants are configured ([tenants.<name>] tables)"
                raise ConfigError(msg)
            raise ConfigError(f"tenant {name!r}: unknown (known: {', '.join(self.tenant_names())})")
        if (found := self._resolved.get((name, allow_missing))) is not None:
            return found
        overlay = tenancy.checked(name, self.tenants[name], type(self).model_fields, "settings")
        base = self.model_dump()  # with what dumps leave out (no table setting) but a tenant keeps
        base["build"]["max_window_days"] = self.build.max_window_days
        data = tenancy.tenant_data(name, base, overlay)
        token = _PLAIN.set(True)
        try:
            with missing_allowed(allow_missing):
                made = self._resolved[name, allow_missing] = type(self)(**data)
                return made
        except ValidationError as exc:
            raise tenancy.located(exc, ("tenants", name)) from None
        finally:
            _PLAIN.reset(token)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy (``update``: with these fields replaced) whose tenants are made afresh."""
        copied = super().model_copy(update=update, deep=deep)
        copied._resolved = {}
        return copied

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets shown as ``**********`` (or null);
        with tenants, ``tenants`` holds each one's effective values at the keys its table
        sets, and its folders."""
        data: dict[str, Any] = self.model_dump(mode="json")
        shown: dict[str, Any] = {}
        for name in self.tenant_names():
            effective = self.tenant(name, allow_missing=True).masked()
            shown[name] = tenancy.restrict(effective, tenancy.shown_keys(self.tenants[name]))
        if shown:
            data["tenants"] = shown
        return data


def describe_errors(exc: ValidationError) -> list[str]:
    """One line per validation problem: ``<setting path>: <message>`` (never the value).

    Example:
        >>> try:
        ...     load_settings(env_file=None, output={"duration_unit": "h", "nope": 1})
        ... except ValidationError as exc:
        ...     for line in describe_errors(exc):
        ...         print(line)
        output.duration_unit: Input should be 'ms' or 's'
        output.nope: Extra inputs are not permitted
    """
    lines = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "settings"
        message = str(error["msg"]).removeprefix("Value error, ")
        lines.append(f"{where}: {message}")
    return lines


@contextmanager
def _using(
    files: tuple[Path, ...], secrets_dir: Path | None, environ: Mapping[str, str] | None
) -> Iterator[None]:
    tokens = (_FILES.set(files), _SECRETS.set(secrets_dir))
    try:
        with reading(environ):
            yield
    finally:
        _FILES.reset(tokens[0])
        _SECRETS.reset(tokens[1])


def config_files(
    config: Path | Sequence[Path] | None, environ: Mapping[str, str] | None = None
) -> list[Path]:
    """The TOML files to layer, lowest priority first: the built-in defaults, then ``config``
    (one file or several, in order), else ``$WFM_CONFIG`` (paths separated by ``:``).

    Raises:
        ConfigError: the built-in defaults or a named file are missing.
    """
    env = os.environ if environ is None else environ
    given = [config] if isinstance(config, Path | str) else list(config or ())
    if not given and env.get("WFM_CONFIG"):
        given = [Path(p) for p in env["WFM_CONFIG"].split(os.pathsep) if p]
    if not DEFAULTS_FILE.is_file():
        raise ConfigError(f"built-in defaults {DEFAULTS_FILE}: missing (reinstall wfm-intervals)")
    for path in given:
        if not Path(path).is_file():
            raise ConfigError(f"config file {path}: no such file")
    return [DEFAULTS_FILE, *(Path(p) for p in given)]


def load_settings(
    config: Path | Sequence[Path] | None = None,
    *,
    env_file: Path | str | None = ".env",
    secrets_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
    allow_missing: bool = False,
    tenant: str | None = None,
    **overrides: Any,
) -> AppSettings:
    """Load the effective settings (see the module docstring for the order).

    With ``[tenants.<name>]`` tables, what is returned without ``tenant`` is the base every
    tenant is merged over (its sources may lack what a run needs: each tenant gives that);
    every tenant is checked here (its settings valid but for what a source lacks, its folders
    its own), so a broken tenant stops every command, not only its own.

    Args:
        config: TOML files layered over the built-in defaults, in order (a later file wins, key
            by key); default ``$WFM_CONFIG`` (paths separated by ``:``).
        env_file: The dotenv file (``None``: none); a file of the same name beside each config
            file is read too, below it.
        secrets_dir: The secrets directory; default ``$WFM_SECRETS_DIR``, else a ``secrets``
            directory beside the last config file that has one.
        environ: The environment every ``WFM_`` variable is read from (default: the one of
            the enclosing :func:`~engine.app.environment.reading`, else ``os.environ``).
        allow_missing: an enabled source may lack what it needs to run (``config show``).
        tenant: return this tenant's effective settings (:meth:`AppSettings.tenant`).
        **overrides: Top-level sections as dicts (the highest priority).

    Raises:
        ConfigError: The config file, the secrets directory or the package's built-in defaults
            are missing, a file is not TOML, a ``.env`` or secrets file is not UTF-8, a ``WFM_``
            variable that must hold JSON does not, a tenant is misnamed, unknown, named only by
            a variable (tenants are declared in config files), or shares a folder with another.
        ValidationError: A setting is invalid or out of its bounds (render it with
            :func:`describe_errors`).
    """
    environ = given() if environ is None else environ  # a caller's (environment.reading)
    env = os.environ if environ is None else environ
    files = config_files(config, env)
    secrets_dir = secrets_dir_of(files, secrets_dir, env)
    sections = list(AppSettings.model_fields)
    names = list(tenancy.declared(overrides, "settings", sections))
    for file in files:
        data = layers.read_toml(file)
        if unknown := sorted(set(data) - set(sections)):
            known = ", ".join(sections)
            raise ConfigError(
                f"config file {file}: unknown section [{unknown[0]}] (known: {known})"
            )
        names += tenancy.declared(data, f"config file {file}", sections)
    with _using(tuple(files), secrets_dir, environ), missing_allowed(allow_missing or bool(names)):
        dotenv = env_files(files, env_file)
        try:
            settings = AppSettings(_env_file=dotenv or None, **overrides)  # type: ignore[call-arg]
        except UnicodeDecodeError:  # a .env file or a file of the secrets dir
            raise layers.not_text(dotenv, secrets_dir) from None
        except SettingsError as exc:  # a WFM_ variable that must hold JSON
            raise layers.not_json(exc, AppSettings, env, dotenv, secrets_dir) from None
    tenancy.check_declared(settings.tenants, names)
    try:
        each = {name: settings.tenant(name, allow_missing=True) for name in settings.tenant_names()}
    except ValidationError as exc:  # a tenant's variable not JSON: named as the base's would be
        raise layers.tenant_not_json(exc, AppSettings, env, dotenv, secrets_dir) or exc from None
    tenancy.check_disjoint({name: tenancy.folders(one.model_dump()) for name, one in each.items()})
    return settings if tenant is None else settings.tenant(tenant, allow_missing=allow_missing)
