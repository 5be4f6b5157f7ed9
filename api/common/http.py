"""HTTP pieces every resource's routes share: the documented errors, the conditional and
idempotency headers, ids written as plain digits, and the link to the next page."""

from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Header, Request
from pydantic import WithJsonSchema

from api.common.etags import EntityTags
from api.edge.errors import RETRY_AFTER_HEADER, documented_header, documented_problem

COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: documented_problem("Malformed JSON body"),
    401: documented_problem(
        "Missing, malformed, expired or badly signed token",
        {
            "WWW-Authenticate": documented_header(
                '`Bearer realm="taskapi"`, with `error` and `error_description` for a bad token'
            )
        },
    ),
    403: documented_problem("The token belongs to another user than the one in the path"),
    413: documented_problem("The request body is larger than the server accepts"),
    422: documented_problem("Invalid fields; `errors` names each one"),
    429: documented_problem("Too many requests from this user; retry after `Retry-After` seconds", RETRY_AFTER_HEADER),
    503: documented_problem("The database is unavailable; retry after `Retry-After` seconds", RETRY_AFTER_HEADER),
}
JSON_BODY: dict[int | str, dict[str, Any]] = {415: documented_problem("A body was sent that is not `application/json`")}
BAD_PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: documented_problem("`If-Match` names a version that is no longer current; GET it and retry")
}

JSON = "application/json"


def plain_digits(value: object) -> object:
    """Python's int() also takes "1_0", " 10", "+10" and other scripts' digits: a path is not code."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("must be a positive integer written in plain digits")
    return value


IF_MATCH = (
    'Change only if it is still at this version (its `ETag`, e.g. `"3"`), else 412. '
    "A value naming none of its versions (weak, malformed) never matches."
)
IF_NONE_MATCH = "Answer 304 Not Modified, without a body, if it is still at this version."
IDEMPOTENCY_KEY = (
    "A unique key per intended creation (e.g. a UUID). Retrying with the same key and body "
    "replays the first answer and creates nothing; the same key with another body is a 422. "
    "Keys are per user and remembered for IDEMPOTENCY_KEY_TTL_SECONDS (default 24 h)."
)
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]+$"


def _optional_header_schema(title: str, description: str, example: str, **constraints: Any) -> WithJsonSchema:
    """An optional header is absent or a string, never null: its published schema says so."""
    schema = {"type": "string", **constraints, "description": description, "examples": [example], "title": title}
    return WithJsonSchema(schema)


IfMatch = Annotated[
    str | None,
    Header(alias="If-Match", max_length=1024, description=IF_MATCH, examples=['"3"']),
    _optional_header_schema("If-Match", IF_MATCH, '"3"', maxLength=1024),
]
IfNoneMatch = Annotated[
    str | None,
    Header(alias="If-None-Match", max_length=1024, description=IF_NONE_MATCH, examples=['"3"']),
    _optional_header_schema("If-None-Match", IF_NONE_MATCH, '"3"', maxLength=1024),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description=IDEMPOTENCY_KEY,
        examples=["5f0c8f1e-3b7a-4d2c-9a51-2f8e6c1d0b47"],
    ),
    _optional_header_schema(
        "Idempotency-Key",
        IDEMPOTENCY_KEY,
        "5f0c8f1e-3b7a-4d2c-9a51-2f8e6c1d0b47",
        maxLength=255,
        minLength=1,
        pattern=IDEMPOTENCY_KEY_PATTERN,
    ),
]


def if_match_tags(field: str | None) -> EntityTags | None:
    return EntityTags.parse(field) if field is not None else None


def next_page_link(request: Request, cursor: str) -> str:
    """The next page's URL, relative (RFC 8288 resolves it against the request's URL): built
    from the client's own query, never from the `Host` header, which anyone can set."""
    query = request.url.include_query_params(cursor=cursor).query
    return f"{quote(request.scope['path'])}?{query}"


def page_headers(request: Request, cursor: str | None) -> dict[str, str]:
    """`Link: <next page>; rel="next"` when there is a next page, else nothing."""
    return {} if cursor is None else {"Link": f'<{next_page_link(request, cursor)}>; rel="next"'}


def page_answer(things: str) -> dict[str, Any]:
    """The documented 200 of a route that lists `things`, a page at a time."""
    return {
        "description": f'A page of {things}; `Link: <...>; rel="next"` when more exist.',
        "headers": {"Link": documented_header("RFC 8288 link to the next page")},
    }


def created_answer(thing: str, etag_header: dict[str, Any]) -> dict[str, Any]:
    """The documented 201 of a create that takes an Idempotency-Key."""
    return {
        "description": "Created; or, for a repeated `Idempotency-Key`, the first answer replayed.",
        "headers": {
            "Location": documented_header(f"The new {thing}'s URL"),
            **etag_header,
            "Idempotent-Replayed": documented_header("`true` when this answer is a replay"),
        },
    }


def created_headers(location: str, *, replayed: bool) -> dict[str, str]:
    return {"Location": location} | ({"Idempotent-Replayed": "true"} if replayed else {})
