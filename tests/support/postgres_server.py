"""A throwaway PostgreSQL from a system installation (e.g. Debian's /usr/lib/postgresql/15/bin).

`running_postgres(bindir)` runs initdb into a fresh temporary directory, starts the server on a
unix socket in that directory only (no TCP), and at the end of the block stops it and deletes the
directory. PostgreSQL refuses to run as root, so under root it runs as the unprivileged system
user `pgserver`, the one the suite's pgserver instance already runs as.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg

RUN_AS = "pgserver"
SUPERUSER = "postgres"
PORT = 5432  # only names the socket file; the socket directory is this server's own
START_TIMEOUT_SECONDS = 60.0
STOP_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Postgres:
    socket_dir: Path
    port: int = PORT

    def url(self, dbname: str, user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@/{dbname}?host={quote(str(self.socket_dir))}&port={self.port}"


def _unprivileged(directory: Path) -> dict[str, Any]:
    """subprocess arguments that run the child as RUN_AS when we are root, after handing it `directory`."""
    if os.geteuid() != 0:
        return {}
    from pgserver.utils import ensure_user_exists  # the suite's pgserver creates the same user

    ensure_user_exists(RUN_AS)
    shutil.chown(directory, RUN_AS, RUN_AS)
    return {"user": RUN_AS, "group": RUN_AS, "extra_groups": []}


@contextmanager
def running_postgres(bindir: Path) -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster from `bindir` (trust authentication, fsync off) for the block."""
    directory = Path(tempfile.mkdtemp(prefix="taskapi-postgres-"))
    try:
        run_as = _unprivileged(directory)
        data = directory / "data"
        initdb = subprocess.run(
            [bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust", "--no-sync", "-E", "UTF8"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=120,
            **run_as,
        )
        assert initdb.returncode == 0, f"initdb failed:\n{initdb.stdout}{initdb.stderr}"
        settings = {
            "listen_addresses": "",
            "unix_socket_directories": str(directory),
            "port": str(PORT),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        options = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        log_path = directory / "postgres.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [bindir / "postgres", "-D", data, *options], cwd=directory, stdout=log, stderr=log, **run_as
            )
        try:
            server = Postgres(socket_dir=directory)
            _wait_until_accepting(server, process, log_path)
            yield server
        finally:
            _stop(process)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _wait_until_accepting(server: Postgres, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while True:
        try:
            psycopg.connect(server.url("postgres"), connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            assert process.poll() is None, f"postgres exited with status {process.returncode}:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"postgres did not accept connections within {START_TIMEOUT_SECONDS} s"
            time.sleep(0.05)  # the polling interval, not a readiness guess


def _stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)  # "fast" shutdown: disconnect clients, then exit
    try:
        process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
