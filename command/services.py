"""The local stack without Docker: a PostGIS cluster and a Mosquitto broker run as plain
processes under a folder of ours (./.run by default, a temp folder in tests)."""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path


class ServiceError(RuntimeError):
    """A local service could not be started or reached; the message says what to do."""


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bindir() -> Path:
    """The newest installed PostgreSQL that has PostGIS next to it."""
    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        version = Path(bindir).parent.name
        if glob.glob(f"/usr/share/postgresql/{version}/extension/postgis.control"):
            return Path(bindir)
    raise ServiceError("PostgreSQL with PostGIS is not installed: run `make setup` "
                       "(Debian package postgresql-15-postgis-3)")


def _running_as_root() -> bool:
    return os.geteuid() == 0


def _as_postgres(cmd: list[str]) -> list[str]:
    # PostgreSQL refuses to run as root; hand the command to the postgres system user.
    return ["runuser", "-u", "postgres", "--", *cmd] if _running_as_root() else cmd


def _chown_to(path: Path, user: str) -> None:
    if _running_as_root():
        info = pwd.getpwnam(user)
        for p in [path, *path.rglob("*")]:
            os.chown(p, info.pw_uid, info.pw_gid)


SHARED_STATE = Path("/var/lib/citygrid")


def reachable_by(user: str, path: Path) -> bool:
    """Can the system user enter this folder (every folder above it searchable)?"""
    if not _running_as_root():
        return True
    return subprocess.run(["runuser", "-u", user, "--", "test", "-x", str(path)], capture_output=True).returncode == 0


def service_home(run_dir: Path, name: str, user: str) -> Path:
    """Where a service keeps its files: ./.run/NAME, or — when the checkout lies where the
    service's own user cannot go (a clone under /root is mode 0700) — a folder of its own
    under /var/lib/citygrid, named after the checkout so two checkouts never share one."""
    run_dir = run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    if reachable_by(user, run_dir):
        return run_dir / name
    tag = hashlib.sha1(str(run_dir).encode()).hexdigest()[:12]
    home = SHARED_STATE / f"{run_dir.parent.name}-{tag}" / name
    home.mkdir(parents=True, exist_ok=True)
    SHARED_STATE.chmod(0o755)
    home.parent.chmod(0o755)
    link = run_dir / name
    if not link.exists() and not link.is_symlink():
        link.symlink_to(home)       # so ./.run still shows where everything is
    return home


def _wait_for_port(port: int, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise ServiceError(f"{what} did not start listening on port {port} within {timeout:.0f}s\n{tail}")


@dataclass
class PostgresCluster:
    data_dir: Path
    port: int
    superuser: str = "citygrid"
    password: str | None = None     # None: trust on loopback (throwaway test clusters)

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / "postgres.log"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir.parent / "pgsocket"

    def url(self, database: str) -> str:
        auth = self.superuser + (f":{self.password}" if self.password else "")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{database}"

    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def running(self) -> bool:
        if not self.initialised():
            return False
        r = subprocess.run(_as_postgres([str(_pg_bindir() / "pg_ctl"), "status", "-D", str(self.data_dir)]),
                           capture_output=True, text=True)
        return r.returncode == 0

    def init(self) -> None:
        if self.initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        cmd = [str(_pg_bindir() / "initdb"), "-D", str(self.data_dir), "-U", self.superuser,
               "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync"]
        pwfile = self.data_dir.parent / ".pwfile"
        if self.password:
            pwfile.write_text(self.password)
            cmd += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
        else:
            cmd += ["--auth=trust"]
        _chown_to(self.data_dir.parent, "postgres")   # includes the password file
        r = subprocess.run(_as_postgres(cmd), capture_output=True, text=True)
        pwfile.unlink(missing_ok=True)
        if r.returncode != 0:
            raise ServiceError(f"initdb failed:\n{r.stderr}")

    def start(self, *, fast: bool = False) -> None:
        """Start the cluster; `fast` trades durability for speed (tests only)."""
        if self.running():
            return
        if not port_is_free(self.port):
            raise ServiceError(
                f"port {self.port} is already in use by another program; stop it or choose "
                "another port in CITYGRID_DATABASE_URL")
        opts = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.socket_dir}"
                " -c max_connections=200 -c shared_buffers=256MB")
        if fast:
            opts += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        _chown_to(self.data_dir.parent, "postgres")
        r = subprocess.run(_as_postgres([str(_pg_bindir() / "pg_ctl"), "start", "-w", "-t", "60",
                                         "-D", str(self.data_dir), "-l", str(self.log_path), "-o", opts]),
                           capture_output=True, text=True)
        if r.returncode != 0:
            log = self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            raise ServiceError(f"PostgreSQL did not start:\n{r.stderr}\n{log}")

    def stop(self) -> None:
        if self.running():
            subprocess.run(_as_postgres([str(_pg_bindir() / "pg_ctl"), "stop", "-m", "fast", "-w",
                                         "-D", str(self.data_dir)]), capture_output=True, check=False)

    def ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')


@dataclass
class MosquittoBroker:
    directory: Path
    port: int
    auth_dir: Path | None = None        # passwd and acl from `citygrid devices broker-auth`: logins required

    @property
    def pid_path(self) -> Path:
        return self.directory / "mosquitto.pid"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def pid(self) -> int | None:
        """The broker's pid, if that process is still our broker (a stale pid file after a
        reboot may name some other program)."""
        try:
            pid = int(self.pid_path.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        conf = str(self.directory / "mosquitto.conf").encode()
        return pid if any(b"mosquitto" in part for part in cmdline) and conf in cmdline else None

    def running(self) -> bool:
        return self.pid() is not None

    def start(self) -> None:
        if self.running():
            return
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(exe).exists():
            raise ServiceError("mosquitto is not installed: run `make setup` (Debian package mosquitto)")
        if not port_is_free(self.port):
            raise ServiceError(
                f"port {self.port} is already in use by another program; stop it or choose "
                "another port in CITYGRID_MQTT_URL")
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "data").mkdir(exist_ok=True)
        conf = self.directory / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            + (f"allow_anonymous false\npassword_file {self.auth_dir / 'passwd'}\nacl_file {self.auth_dir / 'acl'}\n"
               if self.auth_dir else "allow_anonymous true\n") +
            "persistence true\n"
            f"persistence_location {self.directory / 'data'}/\n"
            "autosave_interval 30\n"
            "max_queued_messages 1000000\n"
            "max_inflight_messages 20000\n"
            "persistent_client_expiration 7d\n"
            f"pid_file {self.pid_path}\n"
            f"log_dest file {self.log_path}\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
        )
        _chown_to(self.directory, "mosquitto")
        if self.auth_dir:
            _chown_to(self.auth_dir, "mosquitto")
        self.pid_path.unlink(missing_ok=True)
        subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
        _wait_for_port(self.port, 15, "Mosquitto", self.log_path)

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            if self.pid() is None:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
