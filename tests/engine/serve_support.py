"""A real ``serve`` on loopback (uvicorn in a thread) over a small committed store."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import uvicorn

from engine import clock
from engine.demo.callbacks import generate_attempts
from engine.output import files as outputs
from engine.output.store import write_attempts
from engine.serve.app import create_app
from engine.serve.documents import StoreDocuments
from engine.serve.guard import Guard
from engine.serve.server import config
from engine.serve.settings import ServeSettings
from engine.settings import BuildSettings
from engine.tables.callback_requests import in_chain_order
from engine.tables.callvolume import build
from tests.connectors.kore_support import CONTACTS, DAY, NOW

KORE_SECRET = "k" * 40
APP_ID = "cs-serve-test"
TOKEN = "static-token-for-tests-0123456789"  # noqa: S105 - a test credential
CLIENT_ID, CLIENT_SECRET = "wfm-client", "client-secret-for-tests-0123456789"
ORG_ID = "wfm-intervals"
#: The Kore.ai Contact Volume route (account ``acc``), the Mindful metrics route, and a body.
KORE_URL = "/agentassist/api/public/analytics/account/acc/callvolume"
METRICS = "/v2/callback/historical/metrics"
BODY = {"orgId": ORG_ID, "toTimeStamp": "2026-10-02T00:00:00Z", "limit": 2}
WINDOW = (DAY, NOW.replace(hour=0, minute=0) + timedelta(days=1))


def ours() -> pl.DataFrame:
    """The volume table the store holds (the engine's own build of the Kore.ai test contacts)."""
    return build(CONTACTS.lazy(), window=WINDOW, settings=BuildSettings()).collect()


def attempts() -> pl.DataFrame:
    """A day of callback attempts, in chain order (as the store writes them)."""
    frame = generate_attempts(seed=5, start=DAY, days=1, scale=0.2)
    return in_chain_order(frame.lazy()).collect()


def write_store(root: Path) -> Path:
    """A committed store at ``root`` with ``store/callvolume``, ``store/callback_attempts`` and
    the ``summary.json`` that says the grid they were built on (as a build writes it)."""
    outputs.write_store(ours(), root / "store" / "callvolume", by="interval_start_utc")
    write_attempts(attempts(), root / "store" / "callback_attempts")
    grid = BuildSettings()
    summary = {"tz": grid.tz, "interval_minutes": grid.interval_minutes}
    (root / "summary.json").write_text(json.dumps(summary), encoding="utf-8")
    return root


def serve_settings(**kw: Any) -> ServeSettings:
    values: dict[str, Any] = {
        "kore_apps": {APP_ID: KORE_SECRET},
        "tokens": (TOKEN,),
        "oauth_clients": {CLIENT_ID: CLIENT_SECRET},
    }
    return ServeSettings.model_validate(values | kw)


@contextmanager
def running(
    root: Path, settings: ServeSettings | None = None, *, limit: int | None = None, **docs: Any
) -> Iterator[str]:
    """Serve ``root`` on a free loopback port, configured as the command serves (``limit``: the
    most connections); yields the origin ``http://127.0.0.1:<port>``."""
    app = create_app(
        StoreDocuments(root, org_id=ORG_ID, **docs), Guard(settings or serve_settings())
    )
    server = uvicorn.Server(config(app, host="127.0.0.1", port=0, limit=limit))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("the server did not start")
        clock.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
