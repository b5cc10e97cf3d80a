"""Real servers on loopback for tests and benchmarks: PostgreSQL (Debian's binaries) and `chroma run`.

Nothing here is mocked. `PostgresServer` runs `initdb` into a temporary directory and starts
`postgres` on a free 127.0.0.1 port, its unix socket in the same directory (never the system's
/var/run/postgresql), as a non-root account when we are root (PostgreSQL refuses to run as root).
`ChromaServer` runs the chromadb package's own `chroma run` and polls its heartbeat.

    with PostgresServer() as pg, ChromaServer() as chroma:
        url = pg.create_database()          # a fresh, empty database per test
        client = open_client(data_dir=..., chroma_url=chroma.url)

Both can be stopped and started again on the same port and data (the load benchmark's fault
run restarts PostgreSQL mid-load). A missing binary raises `ServiceUnavailable` whose message
names it; pytest fixtures turn that into a skip (or, with COACH_REQUIRE_SERVICES=1, a failure).
This module imports nothing from pytest so benchmarks/load.py can use it too.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

DB_USER = "coach"
_names = itertools.count(1)


class ServiceUnavailable(RuntimeError):
    """A server cannot be started here because a binary is missing; the message names it."""


class ServiceError(RuntimeError):
    """A server was found but did not start; the message carries the end of its log."""


def required() -> bool:
    """COACH_REQUIRE_SERVICES=1 (set by .ci/run): a missing server fails the test instead of skipping it."""
    return os.environ.get("COACH_REQUIRE_SERVICES", "").strip().lower() in ("1", "true", "yes")


def free_port() -> int:
    """A port nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


# -- PostgreSQL ----------------------------------------------------------------------------------

def find_pg_bindir() -> Path | None:
    """Debian's PostgreSQL binaries (/usr/lib/postgresql/<version>/bin, newest first), or `pg_config --bindir`."""
    override = os.environ.get("COACH_PG_BINDIR")
    candidates = [Path(override)] if override else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout.strip()
            if out:
                candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def _run_as() -> pwd.struct_passwd | None:
    """The account to run PostgreSQL as: None when we are not root, else `postgres` (Debian's) or `nobody`."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise ServiceUnavailable("running as root and neither a 'postgres' nor a 'nobody' account exists "
                             "to run PostgreSQL as (it refuses to run as root)")


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1: initdb into a temp dir, start, stop, remove."""

    def __init__(self, bindir: Path | None = None, *, port: int | None = None) -> None:
        try:
            import psycopg  # noqa: F401  (the driver the tests and the bot use)
        except ImportError:
            raise ServiceUnavailable("the psycopg package (PostgreSQL driver) is not installed; "
                                     "install the test extras: scripts/install --test") from None
        found = bindir or find_pg_bindir()
        if found is None:
            raise ServiceUnavailable("PostgreSQL server binaries (initdb, postgres) not found under "
                                     "/usr/lib/postgresql/*/bin; install them with `apt-get install postgresql`")
        self.bindir = found
        self.account = _run_as()
        self.port = port or free_port()
        self.root: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not initialised"
        return self.root / "data"

    @property
    def log_path(self) -> Path:
        assert self.root is not None, "not initialised"
        return self.root / "postgres.log"

    def _popen_kwargs(self) -> dict:
        # The cwd must be readable by the account we switch to; root's cwd may not be.
        kwargs: dict = {"cwd": str(self.root), "env": {**os.environ, "LC_ALL": "C", "LANG": "C"}}
        if self.account is not None:
            kwargs.update(user=self.account.pw_uid, group=self.account.pw_gid, extra_groups=[])
        return kwargs

    def init(self) -> None:
        """initdb into a fresh temporary directory owned by the account PostgreSQL runs as."""
        self.root = Path(tempfile.mkdtemp(prefix="coach-pg-"))
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        cmd = [str(self.bindir / "initdb"), "-D", str(self.data_dir), "-U", DB_USER, "--auth=trust",
               "-E", "UTF8", "--no-locale", "--no-sync"]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **self._popen_kwargs())
        if result.returncode != 0:
            raise ServiceError(f"initdb failed ({result.returncode}): {result.stderr.strip()[-800:]}")

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """Start (initdb first if needed) and wait until it accepts connections; returns self."""
        if self.root is None:
            self.init()
            atexit.register(self.cleanup)  # a benchmark that crashes still leaves no server behind
        for attempt in range(3):
            try:
                self._start_once(timeout)
                return self
            except ServiceError:
                # Another process may have taken the port between free_port() and bind: try a new one.
                if attempt == 2 or "could not bind" not in _tail(self.log_path, 40):
                    raise
                self.port = free_port()
        return self

    def _start_once(self, timeout: float) -> None:
        log = open(self.log_path, "ab")
        cmd = [str(self.bindir / "postgres"), "-D", str(self.data_dir), "-p", str(self.port),
               "-k", str(self.root), "-c", "listen_addresses=127.0.0.1",
               # Throwaway data: durability settings off for speed; the server still behaves the same.
               "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
               "-c", "max_connections=300", "-c", "shared_buffers=64MB"]
        self.process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                        **self._popen_kwargs())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"postgres exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            if self._accepts():
                return
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"postgres did not accept connections within {timeout}s:\n{_tail(self.log_path)}")

    def _accepts(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname="postgres",
                                 connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def stop(self, *, mode: str = "fast", timeout: float = 30.0) -> None:
        """Stop the server: `fast` (SIGINT: roll back, disconnect) or `immediate` (SIGQUIT: like a crash)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGQUIT if mode == "immediate" else signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self, *, down_seconds: float = 0.0, mode: str = "fast") -> None:
        """Stop, stay down a moment, start again on the same port and data (clients see connections drop)."""
        self.stop(mode=mode)
        time.sleep(down_seconds)
        self._start_once(60.0)

    def cleanup(self) -> None:
        """Stop and remove the data directory."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    # -- databases ---------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def url(self, database: str = "postgres") -> str:
        """A SQLAlchemy URL (psycopg 3) for a database on this server."""
        return f"postgresql+psycopg://{DB_USER}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database (a fresh one per test keeps tests independent); returns its URL."""
        import psycopg

        name = name or f"coach_{os.getpid()}_{next(_names)}"
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"database name {name!r} must be lower-case letters, digits and _")
        with psycopg.connect(host="127.0.0.1", port=self.port, user=DB_USER, dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


# -- Chroma ------------------------------------------------------------------------------------

def find_chroma() -> Path | None:
    """The `chroma` command installed with the chromadb package (beside this Python), or on PATH."""
    beside = Path(sys.executable).parent / "chroma"
    if beside.is_file():
        return beside
    found = shutil.which("chroma")
    return Path(found) if found else None


class ChromaServer:
    """`chroma run --path DIR --host 127.0.0.1 --port N`, ready once its heartbeat answers."""

    def __init__(self, path: Path | None = None, *, port: int | None = None) -> None:
        binary = find_chroma()
        if binary is None:
            raise ServiceUnavailable("the `chroma` command (from the chromadb package) was not found beside "
                                     f"{sys.executable} or on PATH")
        self.binary = binary
        self.port = port or free_port()
        self._own_dir = path is None
        self.root = Path(tempfile.mkdtemp(prefix="coach-chroma-")) if path is None else path
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """What COACH_CHROMA_URL would be."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "chroma.log"

    def start(self, timeout: float = 60.0) -> ChromaServer:
        """Start and wait until GET /api/v2/heartbeat answers; returns self."""
        if self.process is None:
            atexit.register(self.cleanup)
        self.root.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
        self.process = subprocess.Popen(
            [str(self.binary), "run", "--path", str(self.root / "db"), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=str(self.root))
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(f"chroma run exited with {self.process.returncode}:\n{_tail(self.log_path)}")
            if self.heartbeat():
                return self
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"chroma run did not answer its heartbeat within {timeout}s:\n{_tail(self.log_path)}")

    def heartbeat(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=2) as resp:
                return resp.status == 200
        except (urllib.error.URLError, OSError):
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def restart(self) -> None:
        """Same path and port: what was written before the stop is served again."""
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        if self._own_dir:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ChromaServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()
