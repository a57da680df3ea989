"""The local stack: real PostgreSQL and Mosquitto processes, clear errors on taken ports."""
from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

from command.services import MosquittoBroker, PostgresCluster, ServiceError, free_port


def _home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="citygrid-test-"))
    home.chmod(0o755)   # the services run as their own system users and must reach inside
    return home


def test_broker_delivers_a_qos1_message(mqtt_broker):
    port = str(mqtt_broker.port)
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", port, "-t", "citygrid/test", "-q", "1",
                            "-C", "1", "-W", "10"], stdout=subprocess.PIPE, text=True)
    # Publish until the subscriber (which needs a moment to subscribe) has what it waits for.
    for _ in range(50):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", port, "-t", "citygrid/test", "-q", "1",
                        "-m", "你好"], check=True)
        try:
            out, _ = sub.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            continue
    assert out.strip() == "你好"


def test_taken_port_is_refused_with_a_clear_message():
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        home = _home()
        try:
            with pytest.raises(ServiceError, match=f"port {port} is already in use.*CITYGRID_MQTT_URL"):
                MosquittoBroker(home / "mqtt", port).start()
            cluster = PostgresCluster(home / "pg" / "data", port, password="secret-pass")
            cluster.init()
            with pytest.raises(ServiceError, match=f"port {port} is already in use.*CITYGRID_DATABASE_URL"):
                cluster.start()
        finally:
            shutil.rmtree(home, ignore_errors=True)


def test_password_cluster_start_status_stop_is_repeatable():
    home = _home()
    cluster = PostgresCluster(home / "pg" / "data", free_port(), superuser="citygrid", password="s3cret-pass")
    try:
        cluster.init()
        cluster.init()                       # second init: a no-op
        cluster.start(fast=True)
        cluster.start(fast=True)             # already running: a no-op
        assert cluster.running()
        cluster.ensure_database("citygrid")
        cluster.ensure_database("citygrid")
        import psycopg

        with psycopg.connect(cluster.url("citygrid")) as conn:
            assert conn.execute("SELECT current_user").fetchone()[0] == "citygrid"
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(cluster.url("citygrid").replace("s3cret-pass", "wrong"))
        cluster.stop()
        assert not cluster.running()
    finally:
        cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


def test_cli_stack_in_a_folder_the_service_users_cannot_enter(tmp_path_factory):
    """A checkout under /root (mode 0700): the services keep their files elsewhere."""
    from typer.testing import CliRunner

    from command.cli import app
    from command.services import SHARED_STATE

    private = Path(tempfile.mkdtemp(prefix="citygrid-private-"))       # 0700, like /root
    run_dir = private / ".run"
    env = {"CITYGRID_RUN_DIR": str(run_dir), "CITYGRID_DEMO": "1",
           "CITYGRID_DATABASE_URL": f"postgresql://citygrid:pw-12345678@127.0.0.1:{free_port()}/citygrid",
           "CITYGRID_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}"}
    runner = CliRunner()
    try:
        up = runner.invoke(app, ["services", "up"], env=env)
        assert up.exit_code == 0, up.output
        assert runner.invoke(app, ["services", "status"], env=env).exit_code == 0
        assert (run_dir / "pg").is_symlink() and str((run_dir / "pg").resolve()).startswith(str(SHARED_STATE))
        assert runner.invoke(app, ["db", "migrate"], env=env).exit_code == 0
    finally:
        runner.invoke(app, ["services", "down"], env=env)
        for name in ("pg", "mosquitto"):
            target = (run_dir / name).resolve()
            if str(target).startswith(str(SHARED_STATE)):
                shutil.rmtree(target.parent, ignore_errors=True)
        shutil.rmtree(private, ignore_errors=True)
    assert runner.invoke(app, ["services", "status"], env=env).exit_code == 1
