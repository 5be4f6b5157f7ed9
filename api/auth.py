"""Bearer-token authentication: a pure dependency that never touches the database."""

import time
from typing import Annotated

import jwt
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.errors import Forbidden, Unauthorized

ALGORITHM = "HS256"
MAX_SUBJECT_LENGTH = 255
MAX_TOKEN_LENGTH = 8192

# Declares the bearer scheme in OpenAPI; errors are produced below, in our own words.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT whose `sub` is the user id.")


def mint_token(secret: str, user_id: str, *, ttl_seconds: int = 3600) -> str:
    """A signed token for local use and tests."""
    now = int(time.time())
    claims = {"sub": user_id, "iat": now, "exp": now + ttl_seconds}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def is_valid_user_id(value: object) -> bool:
    """A user id is a non-empty, bounded string without control characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_SUBJECT_LENGTH and value.isprintable()


def verify_token(token: str, *, secret: str, leeway_seconds: int) -> str:
    """Return the token's subject, or raise Unauthorized with a short, non-leaking reason."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise Unauthorized("token too long")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            leeway=leeway_seconds,
            options={"require": ["exp", "sub"], "verify_aud": False},
        )
    except jwt.ExpiredSignatureError:
        raise Unauthorized("token expired") from None
    except jwt.ImmatureSignatureError:
        raise Unauthorized("token not yet valid") from None
    except jwt.InvalidSignatureError:
        raise Unauthorized("bad signature") from None
    except jwt.MissingRequiredClaimError as exc:
        raise Unauthorized(f"missing claim {exc.claim}") from None
    except jwt.InvalidAlgorithmError:
        raise Unauthorized("algorithm not allowed") from None
    except jwt.PyJWTError:
        raise Unauthorized("malformed token") from None
    subject = claims.get("sub")
    if not is_valid_user_id(subject):
        raise Unauthorized("invalid subject")
    return subject


def token_subject(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The verified `sub` of the request's bearer token."""
    if credentials is None:
        header = request.headers.get("authorization")
        if header is None:
            raise Unauthorized("missing bearer token", error=None)
        raise Unauthorized("expected 'Authorization: Bearer <token>'", error="invalid_request")
    settings = request.app.state.settings
    return verify_token(
        credentials.credentials,
        secret=settings.jwt_secret.get_secret_value(),
        leeway_seconds=settings.jwt_leeway_seconds,
    )


PathUserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SUBJECT_LENGTH,
        description="The owner of the tasks; must equal the token's `sub`.",
        examples=["user_2x7mQ"],
    ),
]


def current_user_id(user_id: PathUserId, subject: Annotated[str, Depends(token_subject)]) -> str:
    """The caller's id, once the token is valid and it names the user in the path."""
    if user_id != subject:
        raise Forbidden("the token does not belong to this user")
    return subject


CurrentUserId = Annotated[str, Depends(current_user_id)]
