"""Real processes for fault tests: a private PostgreSQL cluster that a test may stop and start, and the
web server running against it. Nothing here touches the PostgreSQL that the rest of the suite uses."""

import contextlib
import glob
import os
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

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def postgres_bin_dir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _as_postgres_user(command: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root; this machine kind runs tests as root.
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *command]
    return command


class PostgresCluster:
    def __init__(self, bin_dir: Path, directory: Path, port: int):
        self.bin_dir, self.directory, self.port = bin_dir, directory, port
        self.data = directory / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/controlplane"

    def _run(self, *args: str) -> None:
        subprocess.run(_as_postgres_user([str(self.bin_dir / args[0]), *args[1:]]), check=True, capture_output=True)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "controlplane")

    def start(self) -> None:
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.directory / "log"), "-w", "start",
            "-o", f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off",
        )  # fmt: skip

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextlib.contextmanager
def private_postgres():
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        import pytest

        pytest.skip("PostgreSQL server binaries are not installed")
    directory = Path(tempfile.mkdtemp(prefix="cp-pg-"))
    shutil.chown(directory, "postgres") if os.geteuid() == 0 else None
    cluster = PostgresCluster(bin_dir, directory, free_port())
    cluster.init()
    try:
        yield cluster
    finally:
        with contextlib.suppress(Exception):
            cluster.stop()
        shutil.rmtree(directory, ignore_errors=True)


def manage(env: dict, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


@contextlib.contextmanager
def web_server(env: dict, port: int):
    """gunicorn (2 workers) on 127.0.0.1:port; yields the base URL."""
    log = tempfile.NamedTemporaryFile(prefix="cp-web-", suffix=".log", delete=False)  # noqa: SIM115
    process = subprocess.Popen(
        [
            sys.executable, "-m", "gunicorn", "controlplane.wsgi:application", "--bind", f"127.0.0.1:{port}",
            "--workers", "2", "--timeout", "30", "--graceful-timeout", "5",
        ],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{base}/login/", timeout=10)  # the first request loads the app
                break
            except OSError:  # refused, reset or timed out while gunicorn starts
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(Path(log.name).read_text()[-3000:]) from None
                time.sleep(0.2)
        yield base
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
        log.close()


def http(method: str, url: str, *, headers: dict | None = None, data: bytes | None = None, timeout: float = 10):
    """(status, headers, body, seconds) without raising on HTTP errors."""
    request = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read(), time.monotonic() - started
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read(), time.monotonic() - started
