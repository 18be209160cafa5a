"""The environment the settings' ``WFM_`` variables are read from: the process's, or a mapping.

:func:`~engine.app.config.load_settings` given ``environ`` reads every ``WFM_`` variable from
that mapping, not only ``WFM_CONFIG`` and ``WFM_SECRETS_DIR``: a caller in this process (a
scheduler, a notebook, the tests) runs with an environment of its own without changing the
process's. (Changing it is not safe while other threads run: glibc's ``setenv`` moves the
environment's array when it adds a name, under any thread reading it.)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar

from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource
from pydantic_settings.sources.utils import parse_env_vars

__all__ = ["environment_source", "given", "reading"]

_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("wfm_environ", default=None)


@contextmanager
def reading(environ: Mapping[str, str] | None) -> Iterator[None]:
    """Settings made in the block read their variables from ``environ`` (``None``: the
    process environment)."""
    token = _ENVIRON.set(environ)
    try:
        yield
    finally:
        _ENVIRON.reset(token)


def given() -> Mapping[str, str] | None:
    """The environment of the enclosing :func:`reading` (``None``: none, the process's)."""
    return _ENVIRON.get()


class _MappedEnvironment(EnvSettingsSource):
    """pydantic-settings' environment source, reading a mapping instead of ``os.environ``."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = dict(environ)  # set before the base class loads the variables
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def environment_source(
    settings_cls: type[BaseSettings], process: PydanticBaseSettingsSource
) -> PydanticBaseSettingsSource:
    """The environment source of settings made now: ``process`` (the process environment's),
    or one reading the mapping of the enclosing :func:`reading`."""
    environ = given()
    return process if environ is None else _MappedEnvironment(settings_cls, environ)
