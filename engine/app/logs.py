"""One logger for every command: the standard library's ``logging`` with one handler and one of
two formats, chosen by the global ``--log-format text|json`` and ``--log-level`` options.

Why the standard library: every module already logs through ``logging.getLogger`` (the connectors
must not import the engine's CLI), and one handler on the root logger with one formatter is all
structured output needs; ``structlog`` would add a second API for the same records.

- ``text``: ``2026-11-06T02:00:01Z level=INFO logger=engine.pipeline.run run=3f9c… event=step
  step=sync seconds=0.2`` (``key=value``, values with spaces quoted);
- ``json``: one JSON object per line with ``timestamp``, ``level``, ``logger``, ``run``,
  ``event`` and the record's fields (``source``, ``stream``, ``step``, …), or ``message``.

A record's fields are given as ``extra={"fields": {...}}`` (the run's events are logged so); the
run id is one per command invocation, on every line; inside :func:`tenant_scope` every line
also names the tenant (``tenant=acme``; ``"tenant"`` in JSON). Secrets never reach a record:
the code logs names, counts and URLs without credentials, and the tests check the lines; as a
second guard, the configuration's secrets are masked in every line (:func:`mask`).

Example:
    >>> record = logging.LogRecord("x", logging.INFO, "f", 1, "hello", None, None)
    >>> record.created = 0.0
    >>> json.loads(JsonFormatter().format(record))["timestamp"]
    '1970-01-01T00:00:00.000Z'
"""

from __future__ import annotations

import json
import logging
import sys
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, Final, Literal

__all__ = [
    "FORMATS",
    "LEVELS",
    "JsonFormatter",
    "TextFormatter",
    "configure",
    "current_format",
    "level",
    "log_lines",
    "mask",
    "run_id",
    "tenant_scope",
    "uninstall",
]

FORMATS: Final = ("text", "json")
LEVELS: Final = ("debug", "info", "warning", "error")
LogFormat = Literal["text", "json"]
_RUN_ID = uuid.uuid4().hex[:12]
_HANDLER_NAME = "wfm-intervals"
_LEVEL = [logging.INFO]  # the configured --log-level
_SECRETS: set[str] = set()  # values never shown (mask)
_TENANT: ContextVar[str | None] = ContextVar("wfm_log_tenant", default=None)
_MIN_SECRET = 4  # shorter values would mask ordinary words
#: Our loggers' roots: their records are shown from --log-level up; other libraries' from WARNING.
OURS: Final = ("engine", "connectors", "wfm_intervals")


def run_id() -> str:
    """This invocation's id (on every log line)."""
    return _RUN_ID


@contextmanager
def tenant_scope(name: str | None) -> Iterator[None]:
    """Every line logged inside names tenant ``name`` (``None``: no tenant, as outside)."""
    token = _TENANT.set(name)
    try:
        yield
    finally:
        _TENANT.reset(token)


def _tenant(record: logging.LogRecord) -> dict[str, str]:
    name = getattr(record, "tenant", None)
    return {"tenant": name} if isinstance(name, str) else {}


def _stamp(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return dict(fields) if isinstance(fields, dict) else {}


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": _stamp(record),
            "level": record.levelname,
            "logger": record.name,
            "run": getattr(record, "run", ""),
            **_tenant(record),
        }
        fields = _fields(record)
        line |= fields if fields else {"message": record.getMessage()}
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info).splitlines()[-1]
        return _masked(json.dumps(line, default=str))


def _value(value: Any) -> str:
    text = str(value)
    return '"' + text.replace('"', '\\"') + '"' if any(c in text for c in ' "=') else text


class TextFormatter(logging.Formatter):
    """``timestamp level=… logger=… run=…`` then ``key=value`` fields or the message."""

    def format(self, record: logging.LogRecord) -> str:
        head = (
            f"{_stamp(record)} level={record.levelname} logger={record.name} "
            f"run={getattr(record, 'run', '')}"
        )
        head += "".join(f" tenant={v}" for v in _tenant(record).values())
        fields = _fields(record)
        body = " ".join(f"{k}={_value(v)}" for k, v in fields.items()) or record.getMessage()
        return _masked(f"{head} {body}")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on whatever ``sys.stderr`` is when a record is written (a test runner swaps
    it; a handler holding the first one would write into a closed stream)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _RunFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.run = _RUN_ID
        record.tenant = _TENANT.get()
        return True


def configure(fmt: LogFormat = "text", level: str = "info") -> logging.Handler:
    """Install the one handler (stderr) on the root logger, replacing an earlier one of ours;
    ``level`` is the lowest level shown."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    handler = _Stderr(sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(_RunFilter())
    handler.setLevel(level.upper())
    _LEVEL[0] = handler.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)  # libraries (httpx, uvicorn): warnings only
    for name in OURS:  # ours: what --log-level asks (a command may quieten a logger further)
        logging.getLogger(name).setLevel(handler.level)
    if handler.level > logging.DEBUG:  # the connectors' line per stream: `sync -v` or debug
        logging.getLogger("connectors").setLevel(max(handler.level, logging.WARNING))
    return handler


def uninstall() -> None:
    """Remove the handler :func:`configure` installed and the levels it set (tests run many
    commands in one process; a command's process ends with it)."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    for name in OURS:
        logging.getLogger(name).setLevel(logging.NOTSET)
    root.setLevel(logging.WARNING)
    _LEVEL[0] = logging.INFO
    _SECRETS.clear()


def mask(values: Iterable[str]) -> None:
    """Never show these values (the configuration's secrets) in a line: a second guard, since
    no code logs a secret; each becomes ``**********``."""
    _SECRETS.update(v for v in values if len(v) >= _MIN_SECRET)


def _masked(line: str) -> str:
    for secret in _SECRETS:
        if secret in line:
            line = line.replace(secret, "**********")
    return line


def level() -> int:
    """The configured lowest level shown (``--log-level``; INFO by default)."""
    return _LEVEL[0]


@contextmanager
def log_lines(*names: str, level: int = logging.INFO, quiet: bool = False) -> Iterator[None]:
    """Let the named loggers' records at ``level`` and above (lower if ``--log-level`` asks)
    through to the one log handler; ``quiet``: none at all."""
    shown = logging.CRITICAL + 1 if quiet else min(level, _LEVEL[0])
    loggers = [logging.getLogger(n) for n in names]
    saved = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(shown)
    try:
        yield
    finally:
        for lg, lvl in zip(loggers, saved, strict=True):
            lg.setLevel(lvl)


def current_format() -> LogFormat:
    """The format of the installed handler (``text`` when none is installed)."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == _HANDLER_NAME and isinstance(handler.formatter, JsonFormatter):
            return "json"
    return "text"
