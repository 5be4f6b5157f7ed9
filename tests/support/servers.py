"""Running `taskapi serve` as a real process for tests that need real HTTP."""

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

TASKAPI = [sys.executable, "-c", "from api.ops.cli import main; main()"]
CLEAN_ENV = {key: value for key, value in os.environ.items() if not key.startswith(("DATABASE_", "JWT_"))}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_taskapi(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*TASKAPI, *args], env={**CLEAN_ENV, **env}, cwd=cwd, capture_output=True, text=True, timeout=120
    )


@contextmanager
def serving(env: dict[str, str], cwd: Path, *args: str) -> Iterator[tuple[str, list[str]]]:
    """Run `taskapi serve` until it answers; yield its base URL and the lines it prints."""
    port = free_port()
    process = subprocess.Popen(
        [*TASKAPI, "serve", "--port", str(port), *args],
        env={**CLEAN_ENV, **env, "PYTHONUNBUFFERED": "1"},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, "".join(output)
            assert time.monotonic() < deadline, "taskapi serve did not answer in time"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield base, output
    finally:
        process.terminate()
        # A graceful shutdown; a single process reports that it was asked to stop.
        assert process.wait(timeout=30) in (0, 128 + signal.SIGTERM), "".join(output)
        reader.join(timeout=5)
    assert "Application shutdown complete" in "".join(output)


def postgres_running(pgdata: Path) -> bool:
    # pg_ctl status would do too; the pid file is what it reads.
    return (pgdata / "postmaster.pid").exists()


def printed_token(output: list[str]) -> str:
    match = re.search(r"export TOKEN=(\S+)", "".join(output))
    assert match, "".join(output)
    return match.group(1)
