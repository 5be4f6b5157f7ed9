"""What a database failure means, decided in one place.

The session asks it which failures to replay; the HTTP edge asks it which status to answer
(503 with `Retry-After` for anything the database cannot serve right now, 422 for a value that
does not fit, and a bug's 500 for the rest).
"""

from enum import StrEnum

import psycopg
from psycopg import errors as pg_errors

from api.database.pool import PoolTimeout


class Failure(StrEnum):
    CONFLICT = "conflict"  # serialization failure or deadlock: replay the whole transaction
    POOL_TIMEOUT = "pool_timeout"  # no pooled connection came free in time
    STATEMENT_TIMEOUT = "statement_timeout"  # cancelled by statement_timeout or lock_timeout
    UNREACHABLE = "unreachable"  # refused, lost, shut down, restarting
    OVERLOADED = "overloaded"  # out of connections, memory or disk
    BAD_VALUE = "bad_value"  # a value the table cannot hold
    BUG = "bug"  # anything else: ours to fix


class DeadConnection(psycopg.OperationalError):
    """The pooled connection was found dead; the cause is the driver's own error."""


_BY_SQLSTATE_PREFIX = (
    ("40001", Failure.CONFLICT),
    ("40P01", Failure.CONFLICT),
    ("57014", Failure.STATEMENT_TIMEOUT),  # query_canceled: statement_timeout
    ("55P03", Failure.STATEMENT_TIMEOUT),  # lock_not_available: lock_timeout
    ("08", Failure.UNREACHABLE),  # connection exceptions
    ("57P", Failure.UNREACHABLE),  # admin shutdown, crash shutdown, cannot connect now
    ("53", Failure.OVERLOADED),  # insufficient resources
    ("22", Failure.BAD_VALUE),  # data exceptions
    ("23514", Failure.BAD_VALUE),  # check_violation
)


def classify(exc: BaseException) -> Failure:
    """The kind of a failure raised while talking to PostgreSQL."""
    if isinstance(exc, PoolTimeout):
        return Failure.POOL_TIMEOUT
    if isinstance(exc, DeadConnection):
        return Failure.UNREACHABLE
    sqlstate = getattr(exc, "sqlstate", None) or ""
    for prefix, failure in _BY_SQLSTATE_PREFIX:
        if sqlstate.startswith(prefix):
            return failure
    if isinstance(exc, pg_errors.OperationalError) and not sqlstate:
        return Failure.UNREACHABLE  # the server never answered: refused, unreachable, lost
    return Failure.BUG


def is_replayable(exc: BaseException) -> bool:
    """Replaying the whole transaction is the right answer (it was rolled back, nothing kept)."""
    return classify(exc) is Failure.CONFLICT
