"""What a route asks for, as `Annotated` dependencies: a signature says what it needs.

The request path: the token says who is calling (no database), the path must name that caller,
the caller must be within the rate limit, and then the route gets the caller's transaction,
whose statements the row-level-security policies see as that user's.

All of that is one dependency, `Transaction`, calling plain functions in that order, rather than
a chain of dependencies: FastAPI solves every dependency on every request, at 20-40 us each
(measured), more than the rest of the checks cost together. And it is `async`: FastAPI runs a
plain `def` dependency in a thread pool, and the hop there and back costs more than the work.
"""

from typing import Annotated, cast

from fastapi import Depends, Path, Request
from fastapi.security import HTTPBearer

from api.database.session import RequestTransaction, identity
from api.edge.errors import Forbidden, Unauthorized
from api.edge.logs import identify_user
from api.identity.ratelimit import enforce_rate_limit
from api.identity.tokens import MAX_SUBJECT_LENGTH
from api.state import Services


def services(request: Request) -> Services:
    """The app-wide objects (a plain function: called, not injected)."""
    return cast(Services, request.app.state.services)


# The bearer scheme, as the OpenAPI document declares it (api/main.py adds it to every task
# route). The header is read below, in our own words: FastAPI's security dependency would cost
# another dependency on every request.
BEARER_SCHEME = HTTPBearer(auto_error=False, description="A JWT whose `sub` is the user id.")

PathUserId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=MAX_SUBJECT_LENGTH,
        description="The owner of the tasks and lists; must equal the token's `sub`.",
        examples=["user_2x7mQ"],
    ),
]


async def authenticate(request: Request, app: Services) -> str:
    """The verified `sub` of the request's bearer token."""
    authorization = request.headers.get("authorization")
    if authorization is None:
        raise Unauthorized("missing bearer token", error=None)
    scheme, _, token = authorization.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("expected 'Authorization: Bearer <token>'", error="invalid_request")
    return await app.verifier.subject(token)


async def transaction(request: Request, user_id: PathUserId) -> RequestTransaction:
    """The caller's transaction: identity, timeouts and retry policy, ready to run."""
    app = services(request)
    caller = await authenticate(request, app)
    identify_user(caller)  # for the request log, which hashes it
    if user_id != caller:
        raise Forbidden("the token does not belong to this user")
    if app.rate_limiter is not None:
        enforce_rate_limit(request, app.rate_limiter, caller)
    config = app.settings
    return RequestTransaction(
        app.database_for(request.method),
        identity=identity(
            caller, statement_timeout_ms=config.db_statement_timeout_ms, lock_timeout_ms=config.db_lock_timeout_ms
        ),
        attempts=config.db_retry_attempts,
        read_only=request.method in ("GET", "HEAD"),
        shares=app.shares,
        settings=config,
    )


Transaction = Annotated[RequestTransaction, Depends(transaction)]
