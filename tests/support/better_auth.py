"""A real Better Auth identity provider for tests: tokens obtained exactly as a frontend obtains them.

`better_auth()` starts tests/identity_provider/server.mjs (the `better-auth` npm package with
email-and-password sign-in and its JWT plugin, on an in-memory database) as a Node process on a
free port, and stops it at the end of the block:

    with better_auth() as idp:
        account = idp.sign_up("ann@example.com", "correct horse battery", "Ann")
        token = idp.token(account)  # GET /api/auth/token, as authClient.token() does
        jwt.decode(token, jwt.PyJWKClient(idp.jwks_url).get_signing_key_from_jwt(token).key,
                   algorithms=["EdDSA"], issuer=idp.issuer, audience=idp.audience)

The npm packages are installed from tests/identity_provider/package-lock.json on first use.
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import urlsplit
from uuid import uuid4

import httpx
import pytest

PROVIDER_DIR = Path(__file__).resolve().parent.parent / "identity_provider"
LISTENING = "better-auth listening on "
API = "/api/auth"
START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
HTTP_TIMEOUT_SECONDS = 10.0
PASSWORD = "correct horse battery staple"  # every test account's; each has an address of its own


def unique_email() -> str:
    """An address no account has yet."""
    return f"{uuid4().hex[:12]}@example.com"


def _unavailable(message: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def ensure_installed() -> Path:
    """tests/identity_provider with its node_modules, installed with `npm ci` if missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _unavailable("Node.js and npm are not installed: the Better Auth identity provider cannot run")
    if not (PROVIDER_DIR / "node_modules" / "better-auth" / "package.json").is_file():
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=PROVIDER_DIR,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if installed.returncode != 0:
            pytest.fail(
                f"npm ci failed in {PROVIDER_DIR} (exit status {installed.returncode}):\n"
                f"{installed.stdout}{installed.stderr}",
                pytrace=False,
            )
    return PROVIDER_DIR


@dataclass(frozen=True)
class Account:
    """A signed-in user: Better Auth's user id and the session a browser would hold as cookies."""

    user_id: str
    email: str
    name: str
    session_token: str  # the session's token (the JSON body's "token"; the cookie holds it signed)
    cookies: Mapping[str, str] = field(repr=False)  # name -> value, as Set-Cookie gave them

    @property
    def cookie_header(self) -> str:
        return "; ".join(f"{name}={value}" for name, value in self.cookies.items())


def _checked(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200:
        raise AssertionError(
            f"{response.request.method} {response.request.url} answered {response.status_code}: {response.text}"
        )
    return response


@dataclass(frozen=True)
class BetterAuth:
    """A running Better Auth server, and what a resource server needs to know to verify its tokens."""

    base_url: str

    @property
    def origin(self) -> str:
        parts = urlsplit(self.base_url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}{API}/jwks"

    @property
    def issuer(self) -> str:
        """The `iss` claim: the JWT plugin defaults it to the origin of Better Auth's baseURL."""
        return self.origin

    @property
    def audience(self) -> str:
        """The `aud` claim (a single string): the origin of Better Auth's baseURL, like `iss`."""
        return self.origin

    def _headers(self, account: Account | None = None) -> dict[str, str]:
        # A frontend served from Better Auth's own origin; its fetch() sends this Origin.
        headers = {"Origin": self.origin}
        if account is not None:
            headers["Cookie"] = account.cookie_header
        return headers

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return _checked(
            httpx.post(f"{self.base_url}{API}{path}", json=body, headers=self._headers(), timeout=HTTP_TIMEOUT_SECONDS)
        )

    def _get(self, path: str, account: Account | None = None) -> httpx.Response:
        return _checked(
            httpx.get(f"{self.base_url}{API}{path}", headers=self._headers(account), timeout=HTTP_TIMEOUT_SECONDS)
        )

    @staticmethod
    def _account(response: httpx.Response) -> Account:
        body = response.json()
        cookies = {name: value for name, value in response.cookies.items() if value}
        assert cookies, f"{response.request.url} set no session cookie: {response.headers}"
        user = body["user"]
        return Account(
            user_id=user["id"], email=user["email"], name=user["name"], session_token=body["token"], cookies=cookies
        )

    def sign_up(self, email: str, password: str, name: str) -> Account:
        """POST /api/auth/sign-up/email (authClient.signUp.email): creates the user and signs it in."""
        return self._account(self._post("/sign-up/email", {"email": email, "password": password, "name": name}))

    def sign_in(self, email: str, password: str) -> Account:
        """POST /api/auth/sign-in/email (authClient.signIn.email): a new session for an existing user."""
        return self._account(self._post("/sign-in/email", {"email": email, "password": password}))

    def token(self, account: Account) -> str:
        """A JWT for this session: GET /api/auth/token with the session cookie, as authClient.token() does."""
        return self._get("/token", account).json()["token"]

    def session_jwt(self, account: Account) -> str:
        """The other way a frontend gets one: GET /api/auth/get-session answers with it in `set-auth-jwt`.

        Only get-session carries that header; the sign-up and sign-in responses do not.
        """
        response = self._get("/get-session", account)
        token = response.headers.get("set-auth-jwt")
        assert token, f"get-session answered without set-auth-jwt: {response.headers}"
        return token

    def jwks(self) -> httpx.Response:
        """GET /api/auth/jwks, the public keys (the plugin creates the first key here if there is none yet)."""
        return _checked(httpx.get(self.jwks_url, timeout=HTTP_TIMEOUT_SECONDS))

    def kids(self) -> list[str]:
        return [key["kid"] for key in self.jwks().json()["keys"]]


def _read_lines(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _stderr_of(stderr: IO[str]) -> str:
    stderr.flush()
    stderr.seek(0)
    return stderr.read()


def _stop(process: subprocess.Popen[str]) -> int:
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"Better Auth did not exit within {STOP_TIMEOUT_SECONDS} s of SIGTERM") from None


def _wait_until_listening(process: subprocess.Popen[str], lines: queue.Queue[str | None], stderr: IO[str]) -> str:
    """The base URL from the line server.mjs prints once it accepts connections."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    printed: list[str] = []
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise AssertionError(
                f"Better Auth did not report listening within {START_TIMEOUT_SECONDS} s; "
                f"stdout: {''.join(printed)!r}; stderr:\n{_stderr_of(stderr)}"
            ) from None
        if line is None:
            raise AssertionError(
                f"Better Auth exited with status {process.wait()} before listening; "
                f"stdout: {''.join(printed)!r}; stderr:\n{_stderr_of(stderr)}"
            )
        if line.startswith(LISTENING):
            return line.removeprefix(LISTENING).strip()
        printed.append(line)


@contextmanager
def better_auth(
    *,
    rotation_interval_seconds: int | None = None,
    grace_period_seconds: int | None = None,
    slim_payload: bool = False,
    key_alg: str | None = None,
) -> Iterator[BetterAuth]:
    """Run Better Auth on a free port for the length of the block.

    rotation_interval_seconds and grace_period_seconds are the JWT plugin's `jwks.rotationInterval`
    and `jwks.gracePeriod`; slim_payload makes tokens carry no user fields (`jwt.definePayload`
    returning {}); key_alg is `jwks.keyPairConfig.alg` (default EdDSA with Ed25519).
    """
    directory = ensure_installed()
    # Nothing from the calling environment may reconfigure it (BETTER_AUTH_URL, ..._SECRETS,
    # ..._TRUSTED_ORIGINS), nor turn on Better Auth's test mode (NODE_ENV=test or TEST skip its
    # origin checks): the tests see what a deployment sees.
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BETTER_AUTH_", "JWKS_", "JWT_"))
        and key not in {"NODE_ENV", "TEST", "BASE_URL", "HOST", "PORT", "SLIM_PAYLOAD"}
    }
    env.update({"PORT": "0", "BETTER_AUTH_TELEMETRY": "0", "NO_COLOR": "1"})
    if rotation_interval_seconds is not None:
        env["JWKS_ROTATION_INTERVAL_SECONDS"] = str(rotation_interval_seconds)
    if grace_period_seconds is not None:
        env["JWKS_GRACE_PERIOD_SECONDS"] = str(grace_period_seconds)
    if slim_payload:
        env["SLIM_PAYLOAD"] = "1"
    if key_alg is not None:
        env["JWT_KEY_ALG"] = key_alg

    with tempfile.TemporaryFile(mode="w+", encoding="utf-8") as stderr:
        process = subprocess.Popen(
            [shutil.which("node") or "node", "server.mjs"],
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            encoding="utf-8",
        )
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        # Keeps draining stdout after start-up, so the process never blocks on a full pipe.
        reader = threading.Thread(target=_read_lines, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            yield BetterAuth(base_url=_wait_until_listening(process, lines, stderr))
        finally:
            try:
                returncode = _stop(process)
            finally:
                reader.join(timeout=STOP_TIMEOUT_SECONDS)
                process.stdout.close()
        assert returncode == 0, f"Better Auth exited with status {returncode}; stderr:\n{_stderr_of(stderr)}"
