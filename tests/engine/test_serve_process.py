"""`wfm-intervals serve` as a real process, read by the project's own connectors as real processes.

A demo store is served (`serve --config`, credentials from the environment as an operator gives
them); a tenant configuration points the Kore.ai source and the Mindful metrics at it; `sync
kore` lands the served intervals and `reconcile` compares both with our own numbers from the same
store: zero differences, exit 0. Against another store (another seed) the same reconcile finds
differences and exits 1, so the round trip can fail. Over HTTPS (a throwaway CA from `trustme`),
a client that trusts the CA is answered and a plain-HTTP request to the same port is not.

Every process runs on a fixed instant (``WFM_CLOCK_AT``) and talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from engine import clock
from engine.clock import CLOCK_AT_VARIABLE
from tests.calendar import run_process

AT = "2026-10-03T06:00:00Z"  #: every process's clock: the demo's two days are Oct 1 and 2
START, END = "2026-10-01T00:00:00Z", "2026-10-03T00:00:00Z"
APP_ID, APP_SECRET = "app-roundtrip", "a" * 40
CLIENT_ID, CLIENT_SECRET = "wfm-roundtrip", "client-secret-for-the-round-trip-0123"
ACCOUNT = "acc-roundtrip"


def _environment(**extra: str) -> dict[str, str]:
    """The parent's environment without any ``WFM_`` setting, on the fixed instant."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFM_")}
    return env | {CLOCK_AT_VARIABLE: AT} | extra


def _cli(args: list[str], cwd: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    done = run_process(
        [sys.executable, "-m", "engine.cli.main", *args],
        timeout=300,
        cwd=cwd,
        env=_environment(**extra),
        text=True,
    )
    return done  # type: ignore[no-any-return]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def _serving(
    config: Path,
    cwd: Path,
    *,
    scheme: str = "http",
    stop: signal.Signals = signal.SIGTERM,
    more: tuple[str, ...] = (),
    logged: list[str] | None = None,
    **client: Any,
) -> Iterator[str]:
    """``wfm-intervals serve --config config [more]`` on a free loopback port until the block
    ends, then stopped by ``stop`` (its standard error appended to ``logged``)."""
    port = _free_port()
    env = _environment(
        WFM_SERVE__KORE_APPS=json.dumps({APP_ID: APP_SECRET}),
        WFM_SERVE__OAUTH_CLIENTS=json.dumps({CLIENT_ID: CLIENT_SECRET}),
    )
    args = [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)]
    process = subprocess.Popen(
        [*args, "--config", str(config), *more],
        cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    origin = f"{scheme}://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute for the server to answer
            if process.poll() is not None:
                raise AssertionError(f"serve exited {process.returncode}: {process.stderr.read()}")
            try:
                if httpx.get(f"{origin}/healthz", timeout=1, **client).status_code == 200:
                    break
            except httpx.TransportError:
                clock.sleep(0.1)
        else:
            raise AssertionError("serve did not answer /healthz")
        yield origin
    finally:
        process.send_signal(stop)
        _, err = process.communicate(timeout=30)
        if logged is not None:
            logged.append(err)
    # reached when the block passed: SIGTERM (a service manager's stop) or SIGHUP (the terminal
    # gone) is a graceful stop
    assert process.returncode == 0, err
    assert "Traceback" not in err, err
    assert "interrupted" not in err, err


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A two-day demo store (Oct 1 and 2, 2026), built by the demo command."""
    root = tmp_path_factory.mktemp("demo")
    done = _cli(["demo", "--days", "2", "--out", str(root / "out")], root)
    assert done.returncode == 0, done.stderr
    return root / "out"


def _serve_config(root: Path, store: Path, tls: str = "") -> Path:
    path = root / "serve.toml"
    path.write_text(
        f'[serve]\nstore = "{store}"\nkore_account_id = "{ACCOUNT}"\n'
        f"rate_limit_per_minute = 100000\n{tls}\n"
        '[output]\norg_id = "o-demo"\n'
    )
    return path


def _tenant_config(root: Path, origin: str) -> Path:
    path = root / "tenant.toml"
    path.write_text(
        f"""
[sources.kore]
enabled = true
base_url = "{origin}"
account_id = "{ACCOUNT}"
org_id = "o-demo"
app_id = "{APP_ID}"
start = {START}
per_page = 100
rate_limit_per_s = 1000.0
rate_limit_burst = 1000
rate_limit_period_s = 1.0

[sources.mindful]
enabled = true
base_url = "{origin}"
auth = "oauth2"
token_url = "{origin}/oauth2/token"
client_id = "{CLIENT_ID}"
rate_limit_per_s = 1000.0

[build]
tz = "America/New_York"

[store]
landing = "{root / "landing"}"
state = "{root / "state"}"

[output]
dir = "{root / "checked"}"
org_id = "o-demo"
"""
    )
    return path


SECRETS = {
    "WFM_SOURCES__KORE__CLIENT_SECRET": APP_SECRET,
    "WFM_SOURCES__MINDFUL__CLIENT_SECRET": CLIENT_SECRET,
    "WFM_SOURCES__MINDFUL__PII_HASH_SECRET": "p" * 32,
}


def test_sync_kore_and_reconcile_against_serve_find_zero_differences(
    demo: Path, tmp_path: Path
) -> None:
    with _serving(_serve_config(tmp_path, demo), tmp_path) as origin:
        tenant = _tenant_config(tmp_path, origin)
        synced = _cli(["sync", "kore", "--config", str(tenant)], tmp_path, **SECRETS)
        assert synced.returncode == 0, synced.stderr
        args = ["reconcile", "--start", START, "--end", END, "--config", str(tenant)]
        same = _cli([*args, "--store", str(demo), "--json"], tmp_path, **SECRETS)
        assert same.returncode == 0, same.stdout + same.stderr
        doc = json.loads(same.stdout)
        assert doc["ok"] is True
        assert doc["differences"] == []
        assert {c["source"]: c["status"] for c in doc["checks"]} == {"kore": "ok", "mindful": "ok"}
        assert all(c["compared"] > 0 for c in doc["checks"])

        other = tmp_path / "other"  # another demo (another seed) as "ours": it must not match
        made = _cli(["demo", "--days", "2", "--seed", "8", "--out", str(other)], tmp_path)
        assert made.returncode == 0, made.stderr
        differ = _cli([*args, "--store", str(other), "--json"], tmp_path, **SECRETS)
        assert differ.returncode == 1, differ.stdout + differ.stderr
        found = json.loads(differ.stdout)
        assert found["ok"] is False
        assert {d["source"] for d in found["differences"]} == {"kore", "mindful"}
    written = "".join(p.read_text() for p in tmp_path.rglob("*.json"))
    assert not [s for s in (APP_SECRET, CLIENT_SECRET) if s in written]


def test_a_hang_up_stops_serve_gracefully(demo: Path, tmp_path: Path) -> None:
    """SIGHUP (the terminal ``serve`` was started from gone) stops it as SIGTERM does: exit 0,
    no traceback (uvicorn handles SIGINT and SIGTERM only)."""
    with _serving(_serve_config(tmp_path, demo), tmp_path, stop=signal.SIGHUP) as origin:
        assert httpx.get(f"{origin}/healthz", timeout=5).status_code == 200


def test_serve_answers_over_https_and_refuses_plain_http_on_the_same_port(
    demo: Path, tmp_path: Path
) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "server.key"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    tls = f'certfile = "{tmp_path / "server.pem"}"\nkeyfile = "{tmp_path / "server.key"}"'
    config = _serve_config(tmp_path, demo, tls)
    trusted = {"verify": ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))}
    with _serving(config, tmp_path, scheme="https", **trusted) as origin:
        assert origin.startswith("https://")
        token = httpx.post(
            f"{origin}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=(CLIENT_ID, CLIENT_SECRET),
            **trusted,
        )
        assert token.status_code == 200, token.text
        bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
        metrics = httpx.get(
            f"{origin}/v2/callback/historical/metrics",
            params={"timeBegin": START, "timeEnd": END},
            headers=bearer,
            **trusted,
        )
        assert metrics.status_code == 200, metrics.text
        assert sum(metrics.json()["data"]["outcomes"].values()) > 0
        with pytest.raises(httpx.ConnectError):  # the system's CAs do not know ours
            httpx.get(f"{origin}/healthz", timeout=5)
        plain = origin.replace("https://", "http://")
        with pytest.raises(httpx.HTTPError):  # TLS only: a plain request gets no HTTP answer
            httpx.get(f"{plain}/healthz", timeout=5).raise_for_status()


def test_a_tenants_server_names_the_tenant_on_each_request_line(demo: Path, tmp_path: Path) -> None:
    """``serve --tenant acme`` logged its requests without ``tenant=acme``, as a run's lines have
    it (the docs: every line of a tenant's work names it)."""
    config = tmp_path / "tenants.toml"
    config.write_text(f'[tenants.acme.serve]\nstore = "{demo}"\n')
    logged: list[str] = []
    with _serving(config, tmp_path, more=("--tenant", "acme"), logged=logged) as origin:
        assert httpx.get(f"{origin}/healthz", timeout=5).status_code == 200
    lines = [line for line in logged[0].splitlines() if "GET /healthz" in line]
    assert lines
    assert all(" tenant=acme " in line for line in lines)
