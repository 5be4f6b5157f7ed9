"""A real PgBouncer in transaction mode, in front of a test database, as Neon's pooled URL is."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.servers import free_port


def pgbouncer_binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        message = "pgbouncer is not installed (make test installs it with apt-get when run as root)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@contextmanager
def running_pgbouncer(*, host: str, port: int | str, dbname: str, login_role: str) -> Iterator[dict]:
    """PgBouncer in transaction mode on a free port (never 6432: nothing may depend on the port).

    Yields {"url": 2 server connections shared by every client, "single_url": only 1, "port"}.
    """
    # Its own directory, readable by the unprivileged user pgbouncer runs as.
    tmp_path = Path(tempfile.mkdtemp(prefix="taskapi-pgbouncer-"))
    run_as = ["-u", "pgserver"] if os.geteuid() == 0 else []  # it refuses to run as root
    if run_as:
        shutil.chown(tmp_path, "pgserver")
    listen_port = free_port()
    config = tmp_path / "pgbouncer.ini"
    (tmp_path / "users.txt").write_text(f'"{login_role}" ""\n"postgres" ""\n')
    config.write_text(
        f"""
[databases]
{dbname} = host={host} port={port} dbname={dbname} pool_size=2
single = host={host} port={port} dbname={dbname} pool_size=1

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen_port}
unix_socket_dir =
auth_type = trust
auth_file = {tmp_path}/users.txt
pool_mode = transaction
max_client_conn = 200
default_pool_size = 2
ignore_startup_parameters = extra_float_digits
logfile = {tmp_path}/pgbouncer.log
pidfile = {tmp_path}/pgbouncer.pid
"""
    )
    process = subprocess.Popen([pgbouncer_binary(), *run_as, str(config)])
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", listen_port), timeout=0.2).close()
                break
            except OSError:
                assert process.poll() is None, (tmp_path / "pgbouncer.log").read_text()
                assert time.monotonic() < deadline, "pgbouncer did not start"
                time.sleep(0.05)
        yield {
            "url": f"postgresql://{login_role}@127.0.0.1:{listen_port}/{dbname}",
            "single_url": f"postgresql://{login_role}@127.0.0.1:{listen_port}/single",
            "port": listen_port,
        }
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)
