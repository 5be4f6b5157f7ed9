"""Everything a route may ask for, as `Annotated` dependencies: a signature says what it needs.

The request path: the token says who is calling (`token_subject`, no database), the path must
name that caller (`CurrentUserId`), the caller must be within the rate limit (`RateLimited`),
and then the route gets the caller's transaction (`Transaction`), whose statements the
row-level-security policies see as that user's. All are `async`: FastAPI runs a plain `def`
dependency in a thread pool, and the hop there and back costs more than the work.
"""

from typing import Annotated, cast

from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.config import Settings
from api.database.session import RequestTransaction, identity
from api.edge.errors import Forbidden, TooManyRequests, Unauthorized
from api.edge.logs import identify_user
from api.edge.middleware import add_response_headers
from api.identity.tokens import MAX_SUBJECT_LENGTH
from api.state import Services


def services(request: Request) -> Services:
    return cast(Services, request.app.state.services)


AppServices = Annotated[Services, Depends(services)]


async def settings(app: AppServices) -> Settings:
    return app.settings


AppSettings = Annotated[Settings, Depends(settings)]

# Declares the bearer scheme in OpenAPI; errors are produced below, in our own words.
bearer_scheme = HTTPBearer(auto_error=False, description="A JWT whose `sub` is the user id.")


async def token_subject(
    request: Request,
    app: AppServices,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> str:
    """The verified `sub` of the request's bearer token."""
    if credentials is None:
        if "authorization" not in request.headers:
            raise Unauthorized("missing bearer token", error=None)
        raise Unauthorized("expected 'Authorization: Bearer <token>'", error="invalid_request")
    return await app.verifier.subject(credentials.credentials)


PathUserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SUBJECT_LENGTH,
        description="The owner of the tasks; must equal the token's `sub`.",
        examples=["user_2x7mQ"],
    ),
]


async def current_user_id(user_id: PathUserId, subject: Annotated[str, Depends(token_subject)]) -> str:
    """The caller's id, once the token is valid and names the user in the path."""
    identify_user(subject)  # for the request log, which hashes it
    if user_id != subject:
        raise Forbidden("the token does not belong to this user")
    return subject


CurrentUserId = Annotated[str, Depends(current_user_id)]


async def rate_limit(request: Request, app: AppServices, user_id: CurrentUserId) -> None:
    """429 once the caller has used up this window; every answer says how much is left."""
    if app.rate_limiter is None:
        return
    verdict = app.rate_limiter.hit(user_id)
    headers = verdict.headers(app.rate_limiter.window_seconds)
    if not verdict.allowed:
        raise TooManyRequests("too many requests; slow down", headers=headers)
    add_response_headers(request, headers)


RateLimited = Depends(rate_limit)


async def transaction(request: Request, app: AppServices, user_id: CurrentUserId) -> RequestTransaction:
    """The caller's transaction: identity, timeouts and retry policy, ready to run."""
    config = app.settings
    return RequestTransaction(
        app.database_for(request.method).engine,
        identity=identity(
            user_id, statement_timeout_ms=config.db_statement_timeout_ms, lock_timeout_ms=config.db_lock_timeout_ms
        ),
        attempts=config.db_retry_attempts,
        read_only=request.method in ("GET", "HEAD"),
        shares=app.shares,
    )


Transaction = Annotated[RequestTransaction, Depends(transaction)]
