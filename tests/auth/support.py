"""Helpers for the identity-provider tests: keys, tokens, a JWKS server on loopback, settings."""

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from fastapi.testclient import TestClient
from httpx import Response
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, get_default_algorithms

from api.config import Settings
from api.main import create_app
from tests.support.app import PROBLEM_JSON, tasks_url
from tests.support.tokens import bearer
from tests.support.users import BETTER_AUTH_ALICE

FRONTEND = "http://localhost:3000"  # Better Auth's baseURL: the default `iss` and `aud`
JWKS_PATH = "/api/auth/jwks"
OMIT = object()  # a claim or header value meaning "leave this out"


# --- keys ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SigningKey:
    """A provider's key pair: signs tokens, and publishes its public half as a JWK."""

    kid: str
    alg: str
    private: Any

    @property
    def public(self) -> Any:
        return self.private.public_key()

    def jwk(self) -> dict[str, Any]:
        """The public JWK as Better Auth serves it: with `kid`, `alg` and `use`."""
        exporter = OKPAlgorithm if self.alg == "EdDSA" else ECAlgorithm
        return {**exporter.to_jwk(self.public, as_dict=True), "kid": self.kid, "alg": self.alg, "use": "sig"}

    def public_pem(self) -> bytes:
        return self.public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def public_raw(self) -> bytes:
        if self.alg == "EdDSA":
            return self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return self.public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def ed25519_key(kid: str) -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def p256_key(kid: str) -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


# --- tokens -------------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def _without_omitted(values: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not OMIT}


def better_auth_claims(user_id: str = BETTER_AUTH_ALICE, **overrides: Any) -> dict[str, Any]:
    """The payload of Better Auth's JWT plugin: the user object plus sub, iat, exp, iss, aud.

    An override of OMIT leaves that claim out.
    """
    now = int(time.time())
    claims = {
        "id": user_id,
        "name": "Alice Example",
        "email": "alice@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": "2025-01-02T03:04:05.678Z",
        "updatedAt": "2025-06-07T08:09:10.111Z",
        "iat": now,
        "iss": FRONTEND,
        "aud": FRONTEND,
        "exp": now + 900,
        "sub": user_id,
    }
    return _without_omitted({**claims, **overrides})


def sign(key: SigningKey, payload: Any, *, header: dict[str, Any] | None = None) -> str:
    """A compact JWS built by hand, so header and payload are exactly what the test says.

    The header defaults to Better Auth's `{"alg", "kid"}`; header values of OMIT leave a field
    out. A payload that is not bytes is serialized as JSON.
    """
    fields = _without_omitted({"alg": key.alg, "kid": key.kid, **(header or {})})
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing_input = f"{b64json(fields)}.{b64url(body)}".encode()
    algorithm = get_default_algorithms()[key.alg]
    signature = algorithm.sign(signing_input, algorithm.prepare_key(key.private))
    return f"{signing_input.decode()}.{b64url(signature)}"


def sign_hmac(secret: bytes, payload: Any, *, header: dict[str, Any] | None = None) -> str:
    """An HS256 token signed with any bytes at all (PyJWT refuses PEM keys as secrets)."""
    fields = _without_omitted({"alg": "HS256", "typ": "JWT", **(header or {})})
    signing_input = f"{b64json(fields)}.{b64json(payload)}".encode()
    return f"{signing_input.decode()}.{b64url(hmac.new(secret, signing_input, hashlib.sha256).digest())}"


# --- the identity provider ----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def _answer(self) -> None:
        provider = self.server.provider
        provider.record(self.command, self.path)
        if provider.delay_seconds:
            time.sleep(provider.delay_seconds)
        if self.path != provider.path or self.command not in ("GET", "HEAD"):
            self._send(404, b'{"error":"not found"}')
            return
        status, body = provider.response()
        self._send(status, body, location=provider.redirect_to, cache_control=provider.cache_control)

    def _send(self, status: int, body: bytes, location: str | None = None, cache_control: str | None = None) -> None:
        self.send_response(status)
        if location:
            self.send_header("Location", location)
        if cache_control:
            self.send_header("Cache-Control", cache_control)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    provider: "JwksServer"


class JwksServer:
    """An identity provider's JWKS endpoint on 127.0.0.1, in a daemon thread.

    Serves the public halves of `keys` at `path`; `serve` swaps them (rotation), `stop` takes
    the provider down (connections refused) and `start` brings it back on the same port.
    Every request is recorded as (method, path).
    """

    def __init__(self, path: str = JWKS_PATH) -> None:
        self.path = path
        self.port = 0
        self.delay_seconds = 0.0
        self.status = 200
        self.raw_body: bytes | None = None  # served instead of the JWKS when set
        self.redirect_to: str | None = None  # sent as Location when set (with a 3xx status)
        self.cache_control: str | None = None  # sent as Cache-Control when set
        self._document: dict[str, Any] = {"keys": []}
        self._requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> None:
        assert self._server is None, "already running"
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.provider = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=5)
        self._server = None

    def serve(self, *keys: SigningKey | dict[str, Any]) -> None:
        """Publish these keys (a SigningKey's public JWK, or a raw JWK dict) and no others."""
        entries = [key.jwk() if isinstance(key, SigningKey) else key for key in keys]
        with self._lock:
            self._document = {"keys": entries}

    def response(self) -> tuple[int, bytes]:
        with self._lock:
            body = self.raw_body if self.raw_body is not None else json.dumps(self._document).encode()
            return self.status, body

    def record(self, method: str, path: str) -> None:
        with self._lock:
            self._requests.append((method, path))

    @property
    def requests(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._requests)

    @property
    def fetches(self) -> int:
        """How many times the JWKS itself was asked for."""
        return sum(1 for request in self.requests if request == ("GET", self.path))


@contextmanager
def jwks_server(*keys: SigningKey) -> Iterator[JwksServer]:
    """A JWKS server on loopback publishing these keys, running for the length of the block."""
    server = JwksServer()
    server.serve(*keys)
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the app ------------------------------------------------------------------------------


def settings_for(
    database_url: str,
    jwks_url: str | None,
    *,
    secret: str | None = None,
    issuer: str | None = FRONTEND,
    audience: str | None = FRONTEND,
    algorithms: str | None = None,
    leeway: int = 5,
    min_refresh: float = 0.0,
    max_age: float = 300.0,
    token_cache: float = 30.0,
    timeout: float = 2.0,
) -> Settings:
    """Every token setting spelled out, so nothing leaks in from the environment or a .env."""
    settings = Settings(
        _env_file=None,
        database_url=database_url,
        jwt_secret=secret,
        jwt_jwks_url=jwks_url,
        jwt_issuer=issuer,
        jwt_audience=audience,
        jwt_algorithms=algorithms,
        JWT_LEEWAY=leeway,
        jwt_jwks_min_refresh_seconds=min_refresh,
        jwt_jwks_max_age_seconds=max_age,
        jwt_cache_seconds=token_cache,
        jwt_jwks_timeout_seconds=timeout,
    )
    # extra="ignore" would drop a misspelt name silently: check each value arrived.
    assert (settings.jwt_jwks_url, settings.jwt_issuer, settings.jwt_audience) == (jwks_url, issuer, audience)
    assert (settings.jwt_leeway_seconds, settings.jwt_jwks_min_refresh_seconds) == (leeway, min_refresh)
    assert (settings.jwt_jwks_max_age_seconds, settings.jwt_cache_seconds) == (max_age, token_cache)
    assert settings.jwt_algorithms == algorithms and settings.jwt_jwks_timeout_seconds == timeout
    assert (settings.jwt_secret.get_secret_value() if settings.jwt_secret else None) == secret
    return settings


@contextmanager
def running(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan run (the JWKS is fetched here), as a test client."""
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def create(client: TestClient, owner: str, token: str, title: str = "a task") -> Response:
    return client.post(tasks_url(owner), json={"title": title}, headers=bearer(token))


def task_rows(admin: psycopg.Connection) -> list[tuple[str, str]]:
    """(user_id, title) of every row, seen past row-level security."""
    return admin.execute("select user_id, title from tasks order by id").fetchall()


def challenge_params(response: Response) -> dict[str, str]:
    """The auth-params of a `WWW-Authenticate: Bearer ...` challenge."""
    header = response.headers["www-authenticate"]
    scheme, _, rest = header.partition(" ")
    assert scheme == "Bearer", header
    params = {}
    for part in rest.split(", "):
        name, _, value = part.partition("=")
        params[name.strip()] = value.strip().strip('"')
    return params


def assert_rejected(
    response: Response,
    token: str | None = None,
    *,
    reason: str | set[str] | None = None,
    case: object = None,
) -> None:
    """401 problem details with an invalid_token challenge that leaks nothing of the token."""
    assert response.status_code == 401, (case, response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_JSON, case
    params = challenge_params(response)
    assert params.get("error") == "invalid_token", (case, params)
    description = params.get("error_description", "")
    assert description and len(description) <= 64, (case, params)
    if reason is not None:
        assert description in ({reason} if isinstance(reason, str) else reason), (case, params)
    assert response.json()["detail"] == description, case
    if token:
        assert_not_echoed(response, token)


def assert_not_echoed(response: Response, token: str) -> None:
    """Neither the token nor any of its parts appears in the body or the headers."""
    seen = response.text + "\n" + "\n".join(response.headers.values())
    assert token not in seen
    for part in token.split("."):
        if len(part) >= 16:
            assert part not in seen, part
