"""Timestamps as the API writes them: RFC 3339 text in UTC, with a `Z`.

A `timestamptz` is only ever rendered into JSON (or, for a page's cursor, parsed once), so the
pool's connections read it as PostgreSQL's text, never as a `datetime`: building a `datetime`
in the session's time zone, moving it to UTC and formatting it again cost about half of
reading and rendering a page of tasks.

`rfc3339` rewrites PostgreSQL's ISO output in a UTC session (`2026-11-29 06:59:09.8314+00`)
with string operations; any other ISO text (another session time zone, JSON's `T` and
`+00:00`) is parsed, then formatted the same way. Both give exactly what orjson gives for the
`datetime` (`OPT_UTC_Z`): microseconds in six digits when there are any, none otherwise.
"""

from datetime import UTC, datetime

import orjson

_TIME_WITH_MICROSECONDS = len("HH:MM:SS.ffffff")


def rfc3339(text: str) -> str:
    """An ISO 8601 timestamp with an offset (PostgreSQL's or JSON's) as the API writes it."""
    if len(text) >= 22 and text[4] == "-" and text[10] == " " and text.endswith("+00"):
        day, time = text[:10], text[11:-3]
        if len(time) > 8:  # a fraction, its trailing zeros trimmed by PostgreSQL
            time = time.ljust(_TIME_WITH_MICROSECONDS, "0")
        return f"{day}T{time}Z"
    return utc_text(datetime.fromisoformat(text))


def utc_text(moment: datetime) -> str:
    """A timezone-aware moment as the API writes it."""
    return orjson.dumps(moment.astimezone(UTC), option=orjson.OPT_UTC_Z)[1:-1].decode()
