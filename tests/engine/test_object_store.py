"""``build --out s3://...`` and ``callbacks --out s3://...``: the store on an S3-compatible object
store (issue 14; engine/output/location.py), written and read by the same writers and readers.

The object store is a real S3 server on loopback (moto's, started once for the module on
``127.0.0.1``; never the internet), reached through the standard AWS variables as a user's
would be. Each command's store, exports and summary on the bucket equal, value for value, the
same command's on a local folder; with ``--engine ray`` (a local two-worker cluster) the Ray
tasks are handed the files' ``s3://`` URLs from the log, and read them (the staged local copies
are gone by then). A wrong endpoint, a missing bucket and object storage where it is not
supported are each exit 2 and one line, and no secret is ever in what a command prints.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from click.testing import CliRunner
from polars.testing import assert_frame_equal

from engine import clock
from engine.cli.main import cli, main
from engine.demo.callbacks import generate_attempts
from engine.demo.contacts import generate_contacts
from engine.distributed import helper  # no Ray needed for the helper itself
from engine.output import location
from tests.calendar import wait_for_exit

pytest.importorskip("moto.server", reason="moto[server] (dev extra) not installed")
boto3 = pytest.importorskip("boto3", reason="moto[server] (dev extra) not installed")

#: Credentials of the test server: fake, but treated as the secrets they stand for.
SECRET = "wfm-test-secret-0a1b2c3d4e5f"  # noqa: S105 - a fake, for the server on loopback
KEY_ID = "wfm-test-key-id"
BUCKET = "wfm-store"
START = datetime(2026, 10, 31, tzinfo=UTC)  # three days across New York's fall-back
TABLES = {
    "build": ("contacts", "callvolume"),
    "callbacks": ("callback_attempts", "callback_intervals", "retry_outcomes"),
}
OTHERS = {
    "build": ("exports/callvolume.csv", "exports/callvolume_document.json", "summary.json"),
    "callbacks": (
        "exports/callback_metrics.json",
        "exports/callback_intervals.csv",
        "exports/callback_gaps.ndjson",
        "quarantine/callback_attempts.csv",
        "callbacks_summary.json",
    ),
}


def _free_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return int(free.getsockname()[1])


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """The S3 server on loopback (a process of its own: the object-store client holds this
    process's interpreter while it waits), the AWS variables naming it, and a client of its
    bucket."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):  # up in well under a second here; 30 s at most
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            clock.sleep(0.1)
        with pytest.MonkeyPatch.context() as env:
            for name, value in {
                "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_ACCESS_KEY_ID": KEY_ID,
                "AWS_SECRET_ACCESS_KEY": SECRET,
                "AWS_REGION": "us-east-1",
                "AWS_ALLOW_HTTP": "true",
            }.items():
                env.setenv(name, value)
            client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
            client.create_bucket(Bucket=BUCKET)
            yield client
    finally:
        server.terminate()
        wait_for_exit(server, 30)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("inputs")
    contacts = generate_contacts(seed=5, start=START, days=3, scale=0.05)
    contacts.write_parquet(where / "build.parquet")
    generate_attempts(seed=4, start=START, days=3, scale=0.1).write_parquet(where / "c.parquet")
    return where


def _args(command: str, inputs: Path) -> list[str]:
    given = "--contacts" if command == "build" else "--attempts"
    return [
        command,
        given,
        str(inputs / ("build.parquet" if command == "build" else "c.parquet")),
        "--tz",
        "America/New_York",
    ]


def _summary(text: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(text)
    return {k: v for k, v in found.items() if k not in ("files", "seconds")}


def _same_outputs(command: str, local: Path, url: str, client: Any) -> None:
    """Every table of ``command`` (read back through the log, from the bucket) and every other
    output equal, value for value, between the local folder and the bucket's prefix."""
    for name in TABLES[command]:
        here = pl.read_delta(str(local / "store" / name))
        there = pl.read_delta(f"{url}/store/{name}")
        assert here.height > 0
        assert_frame_equal(here, there, check_row_order=False)
    prefix = url.removeprefix(f"s3://{BUCKET}/")
    for rel in OTHERS[command]:
        body = client.get_object(Bucket=BUCKET, Key=f"{prefix}/{rel}")["Body"].read().decode()
        mine = (local / rel).read_text()
        if rel.endswith("summary.json"):
            assert _summary(body) == _summary(mine)
            assert f"{url}/store/{TABLES[command][-1]}" in json.loads(body)["files"]
        else:
            assert body == mine


@pytest.mark.parametrize("command", ["build", "callbacks"])
def test_a_store_on_s3_equals_the_same_command_on_a_local_folder(
    s3: Any, inputs: Path, tmp_path: Path, command: str
) -> None:
    url = f"s3://{BUCKET}/local-{command}"
    local = CliRunner().invoke(cli, [*_args(command, inputs), "--out", str(tmp_path / "out")])
    remote = CliRunner().invoke(cli, [*_args(command, inputs), "--out", url])
    assert local.exit_code == remote.exit_code == 0, remote.output
    assert SECRET not in remote.output
    assert f"{url}/store/" in remote.output
    _same_outputs(command, tmp_path / "out", url, s3)
    again = CliRunner().invoke(cli, [*_args(command, inputs), "--out", url])  # a second version
    assert again.exit_code == 0, again.output
    _same_outputs(command, tmp_path / "out", url, s3)
    assert location.bound() == {}  # the staging folder is gone with the command


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # Ray Data's own, inside Ray
def test_the_ray_tasks_read_the_partitions_from_s3(
    s3: Any, inputs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both commands on a local two-worker cluster: the driver hands the tasks the files'
    ``s3://`` URLs from the log (no local copy is left to read), and the tables equal the
    local engine's on a local folder; with ``--format parquet`` the tasks also write the
    tables' files to the bucket (the driver commits them)."""
    ray = pytest.importorskip("ray", reason="the optional 'ray' extra is not installed")
    from engine.distributed import callbacks as on_ray  # the optional extra
    from engine.distributed import ray_engine

    handed: list[str] = []
    for module in (ray_engine, on_ray):

        def spy(
            parts: list[list[str]], *args: Any, _real: Any = module.map_partitions, **kwargs: Any
        ) -> Any:
            handed.extend(f for p in parts for f in p)
            return _real(parts, *args, **kwargs)

        monkeypatch.setattr(module, "map_partitions", spy)
    # a cluster of its own ("local": never one another test started), whose workers see AWS_*
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        for command in ("build", "callbacks"):
            url = f"s3://{BUCKET}/ray-{command}"
            out = tmp_path / command
            local = CliRunner().invoke(cli, [*_args(command, inputs), "--out", str(out)])
            remote = CliRunner().invoke(
                cli, [*_args(command, inputs), "--out", url, "--engine", "ray"]
            )
            assert local.exit_code == remote.exit_code == 0, remote.output
            _same_outputs(command, out, url, s3)
            # the store alone: the tasks put the tables' files in the bucket themselves
            alone = [*_args(command, inputs), "--format", "parquet", "--out"]
            local = CliRunner().invoke(cli, [*alone, str(out / "alone")])
            remote = CliRunner().invoke(cli, [*alone, f"{url}-alone", "--engine", "ray"])
            assert local.exit_code == remote.exit_code == 0, remote.output
            for name in TABLES[command]:
                here = pl.read_delta(str(out / "alone" / "store" / name))
                there = pl.read_delta(f"{url}-alone/store/{name}")
                assert here.height > 0
                assert_frame_equal(here, there, check_row_order=False)
    finally:
        ray.shutdown()
    assert handed
    assert all(f.startswith(f"s3://{BUCKET}/ray-") for f in handed), handed[:3]


def _fails(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as ended:
        main(args)
    out, err = capsys.readouterr()
    assert ended.value.code == 2, err
    assert SECRET not in out + err
    assert KEY_ID not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("wfm-intervals: error: "), err
    return lines[0]


def test_a_wrong_endpoint_or_a_missing_bucket_is_exit_2_and_one_line(
    s3: Any, inputs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = _fails([*_args("build", inputs), "--out", "s3://no-such-bucket/x"], capsys)
    assert "s3://no-such-bucket/x: the object store cannot be used" in missing
    assert "NoSuchBucket" in missing
    assert "not a bucket name" in _fails([*_args("build", inputs), "--out", "s3://B/x"], capsys)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{_free_port()}")
    nowhere = _fails([*_args("callbacks", inputs), "--out", f"s3://{BUCKET}/x"], capsys)
    assert f"s3://{BUCKET}/x: the object store cannot be used" in nowhere


def test_object_storage_where_it_is_not_supported_is_exit_2_and_one_line(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"s3://{BUCKET}/local-build"
    for args in (
        ["export", "contact-volume", "--store", url, "--out", str(tmp_path / "x.json")],
        ["report", "--store", url],
        ["build", "--contacts", url + "/c.parquet", "--out", str(tmp_path / "o")],
        ["callback-metrics", f"--store={url}"],
    ):
        line = _fails(args, capsys)
        assert line.endswith("object storage is not supported here"), line
        assert url in line
    config = tmp_path / "wfm.toml"
    config.write_text(f'[output]\ndir = "{url}"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    line = _fails(["run", "--config", str(config)], capsys)
    assert "[output] dir" in line
    assert "object storage (s3://) is not supported" in line
    assert not (tmp_path / "s3:").exists()  # nothing written to a folder named like the URL


def test_one_line_leaves_out_the_secrets_and_colour(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    chained = f"Generic S3 error\n \x1b[31m↳\x1b[0m Error performing PUT with {SECRET}\n ↳ 403"
    assert location.one_line(chained) == "Generic S3 error -> Error performing PUT with *** -> 403"
    assert location.one_line(ValueError("first\nsecond")) == "first"


def test_the_helper_process_binds_the_commands_staging_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``--ray-address`` the job runs in a helper process (engine/distributed/helper.py):
    there the staging folder stands for the same bucket prefix, so its driver lists ``s3://``
    URLs too."""
    monkeypatch.setattr(location, "_BOUND", {})
    location.bind(tmp_path, f"s3://{BUCKET}/p")
    try:
        found = helper.call("127.0.0.1:1", location.remote, tmp_path / "store" / "callvolume")
    finally:
        helper.close()
    assert found == f"s3://{BUCKET}/p/store/callvolume"
